//! What the bench prints: a table per clip, a table per concurrency step, a
//! summary line, and one JSON object (the last line) with the issue 14 targets.

use serde_json::json;

use crate::capacity::Step;
use crate::{Args, ClipResult, pct};

/// Issue 14's targets, as the `targets` keys name them. The step criteria
/// come from the command line, whose defaults are these.
const FIRST_PARTIAL_SECS: f64 = 1.0;
const UTTERANCE_FINAL_SECS: f64 = 1.0;
const LAST_FINAL_SECS: f64 = 1.5;
const OFFLINE_SLACK_POINTS: f64 = 1.0;
const RSS_MB: f64 = 400.0;
const STREAMS: usize = 8;
const STRETCH_STREAMS: usize = 14;

/// Seconds for a table; "never" for an event that did not come.
fn secs(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "never".into()
    }
}

/// Three decimals for the JSON; non-finite (never came) becomes null.
fn round(x: f64) -> serde_json::Value {
    ((x * 1000.0).round() / 1000.0).into()
}

pub fn print_clips(results: &[ClipResult]) {
    println!(
        "{:<10} {:>5} {:>5} {:>4} {:>9} {:>9} {:>28} {:>27} {:>12}",
        "clip",
        "secs",
        "words",
        "utts",
        "WER strm%",
        "WER offl%",
        "first partial after speech s",
        "final after utterance end s",
        "last final s"
    );
    for r in results {
        println!(
            "{:<10} {:>5.1} {:>5} {:>4} {:>9.1} {:>9.1} {:>28} {:>27} {:>12}",
            r.name,
            r.secs,
            r.words,
            r.utterances,
            pct(r.stream_edits, r.words),
            pct(r.offline_edits, r.words),
            secs(r.latency.first_partial),
            secs(r.latency.worst_utterance_final()),
            secs(r.latency.last_final),
        );
        if r.stream_edits > 0 || r.offline_edits > 0 {
            println!("    stream:  {}", r.stream_text);
            println!("    offline: {}", r.offline_text);
        }
    }
}

fn print_steps(args: &Args, steps: &[Step]) {
    println!();
    println!(
        "{:>7} {:>12} {:>28} {:>27} {:>6} {:>14} {:>11}  result",
        "streams",
        "last final s",
        "first partial after speech s",
        "final after utterance end s",
        "WER %",
        "1-stream WER %",
        "peak RSS MB"
    );
    for s in steps {
        println!(
            "{:>7} {:>12} {:>28} {:>27} {:>6.1} {:>14.1} {:>11}  {}",
            s.sessions,
            secs(s.worst_last_final_secs),
            secs(s.worst_first_partial_secs),
            secs(s.worst_utterance_final_secs),
            s.wer_pct,
            s.reference_wer_pct,
            s.peak_rss_mb
                .map_or_else(|| "-".into(), |mb| format!("{mb:.0}")),
            if s.ok() {
                "ok".to_owned()
            } else {
                format!("FAILED: {}", s.failed.join(", "))
            }
        );
    }
    println!(
        "a step passes with every session stored without errors, its last final ≤ {} s after its audio, \
         WER ≤ 1-stream WER + {} points, {}",
        args.final_within_secs,
        args.wer_slack_points,
        match args.server_pid {
            Some(_) => format!("peak server RSS ≤ {} MB", args.max_rss_mb),
            None => "RSS not checked (no --server-pid)".into(),
        }
    );
}

/// `steps` is None when the concurrency search was skipped.
pub fn print_summary(args: &Args, results: &[ClipResult], steps: Option<&[Step]>) {
    let words: usize = results.iter().map(|r| r.words).sum();
    let stream_wer = pct(results.iter().map(|r| r.stream_edits).sum(), words);
    let offline_wer = pct(results.iter().map(|r| r.offline_edits).sum(), words);
    let worst = |f: fn(&ClipResult) -> f64| results.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
    let first_max = worst(|r| r.latency.first_partial);
    let utterance_max = worst(|r| r.latency.worst_utterance_final());
    let last_max = worst(|r| r.latency.last_final);
    let sustained = steps.map(|steps| {
        steps
            .iter()
            .take_while(|s| s.ok())
            .map(|s| s.sessions)
            .last()
            .unwrap_or(0)
    });
    let step_at = |n: usize| steps.and_then(|steps| steps.iter().find(|s| s.sessions == n));

    if let Some(steps) = steps {
        print_steps(args, steps);
    }
    println!(
        "single stream: WER {stream_wer:.1} % vs offline {offline_wer:.1} % over {words} words; \
         first partial ≤ {} s after speech starts; final ≤ {} s after each utterance ends; \
         last final ≤ {} s after the audio; {}",
        secs(first_max),
        secs(utterance_max),
        secs(last_max),
        match (sustained, args.server_pid) {
            (None, _) => "concurrency not measured (--no-capacity)".to_owned(),
            (Some(n), Some(_)) => format!(
                "{n} concurrent real-time streams met every step criterion \
                 (peak RSS {} MB at {STREAMS})",
                step_at(STREAMS)
                    .and_then(|s| s.peak_rss_mb)
                    .map_or_else(|| "-".into(), |mb| format!("{mb:.0}"))
            ),
            (Some(n), None) => format!(
                "{n} concurrent real-time streams met every step criterion (RSS not checked)"
            ),
        }
    );

    let summary = json!({
        "clips": results.iter().map(|r| json!({
            "clip": r.name,
            "secs": round(r.secs),
            "words": r.words,
            "utterances": r.utterances,
            "speech_start_secs": round(r.speech_start_secs),
            "wer_stream_pct": round(pct(r.stream_edits, r.words)),
            "wer_offline_pct": round(pct(r.offline_edits, r.words)),
            "first_partial_after_speech_secs": round(r.latency.first_partial),
            "final_after_utterance_secs":
                r.latency.utterance_finals.iter().map(|&x| round(x)).collect::<Vec<_>>(),
            "final_after_utterance_max_secs": round(r.latency.worst_utterance_final()),
            "last_final_secs": round(r.latency.last_final),
        })).collect::<Vec<_>>(),
        "words": words,
        "wer_stream_pct": round(stream_wer),
        "wer_offline_pct": round(offline_wer),
        "first_partial_after_speech_max_secs": round(first_max),
        "final_after_utterance_max_secs": round(utterance_max),
        "last_final_max_secs": round(last_max),
        "server_pid": args.server_pid,
        "step_criteria": {
            "final_within_secs": args.final_within_secs,
            "wer_slack_points": args.wer_slack_points,
            "max_rss_mb": args.server_pid.map(|_| args.max_rss_mb),
        },
        "capacity": steps.unwrap_or_default().iter().map(|s| json!({
            "sessions": s.sessions,
            "ok": s.ok(),
            "failed": s.failed,
            "worst_last_final_secs": round(s.worst_last_final_secs),
            "worst_first_partial_after_speech_secs": round(s.worst_first_partial_secs),
            "worst_final_after_utterance_secs": round(s.worst_utterance_final_secs),
            "wer_pct": round(s.wer_pct),
            "single_stream_wer_pct": round(s.reference_wer_pct),
            "peak_rss_mb": s.peak_rss_mb.map(round),
            "errors": s.errors,
        })).collect::<Vec<_>>(),
        "max_realtime_sessions": sustained,
        "targets": {
            "at_least_8_streams": sustained.map(|n| n >= STREAMS),
            "stretch_14_streams": sustained.map(|n| n >= STRETCH_STREAMS),
            "first_partial_within_1_s": first_max <= FIRST_PARTIAL_SECS,
            "final_after_utterance_within_1_s": utterance_max <= UTTERANCE_FINAL_SECS,
            "last_final_within_1_5_s": last_max <= LAST_FINAL_SECS,
            "single_stream_wer_within_1_point_of_offline":
                stream_wer <= offline_wer + OFFLINE_SLACK_POINTS,
            // Null without a pid, or when no 8-stream step ran.
            "rss_within_400_mb_at_8": args.server_pid.and(step_at(STREAMS))
                .map(|s| s.peak_rss_mb.is_some_and(|mb| mb <= RSS_MB)),
        },
    });
    println!("{summary}");
}
