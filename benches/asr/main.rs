//! `auscult-asr-bench`: how well and how fast the Whisper engine transcribes
//! real-time streams (issue 3). Streams espeak-ng clinical dictation with
//! known texts through a running server's `/v1/stream`, one clip at a time,
//! and compares each with an offline decode of the same clip by the same
//! model in this process. Then finds how many concurrent real-time 16 kHz
//! sessions the server sustains with every last final in time.
//! Prints a table, then one JSON object as its last line.
//!
//! Run it with `scripts/bench-asr.sh`, which builds and starts the server.

mod clips;
mod offline;
mod stream;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde_json::json;

use auscult::config::WhisperConfig;
use clips::Clip;

#[derive(Debug, Parser)]
#[command(
    name = "auscult-asr-bench",
    about = "Accuracy, latency and capacity of streaming Whisper"
)]
struct Args {
    /// WebSocket URL of the stream endpoint (the server's default engine must be whisper).
    #[arg(long, default_value = "ws://127.0.0.1:8080/v1/stream")]
    url: String,
    /// Bearer token (omit for a loopback server without tokens).
    #[arg(long)]
    token: Option<String>,
    /// The model the server uses, for the offline reference decode.
    #[arg(
        long,
        env = "AUSCULT_WHISPER_MODEL_DIR",
        default_value = "models/whisper-tiny.en"
    )]
    model_dir: PathBuf,
    /// A concurrency step passes when every session's last final comes within this many seconds of the end of its audio.
    #[arg(long, default_value_t = 3.0)]
    final_within_secs: f64,
    /// Stop stepping concurrency here.
    #[arg(long, default_value_t = 16)]
    max_sessions: usize,
    /// Skip the concurrency search.
    #[arg(long)]
    no_capacity: bool,
}

struct ClipResult {
    name: String,
    secs: f64,
    words: usize,
    stream_edits: usize,
    offline_edits: usize,
    run: stream::Run,
    offline_text: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(bench(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auscult-asr-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let clips = clips::synthesize_all()?;
    eprintln!(
        "{} clips synthesised; offline reference decodes…",
        clips.len()
    );
    let offline_texts = offline_texts(&args, &clips).await?;

    eprintln!("streaming each clip in real time through {}…", args.url);
    let mut results = Vec::new();
    for (clip, offline_text) in clips.iter().zip(offline_texts) {
        let run = stream::run(
            &args.url,
            args.token.as_deref(),
            &clip.s16le(),
            Duration::ZERO,
        )
        .await;
        anyhow::ensure!(
            run.errors.is_empty(),
            "clip {}: {:?}",
            clip.name,
            run.errors
        );
        results.push(ClipResult {
            name: clip.name.clone(),
            secs: clip.secs(),
            words: auscult::eval::words(&clip.reference).len(),
            stream_edits: auscult::eval::word_edits(&clip.reference, &run.text),
            offline_edits: auscult::eval::word_edits(&clip.reference, &offline_text),
            run,
            offline_text,
        });
    }
    print_clips(&results);

    let steps = if args.no_capacity {
        Vec::new()
    } else {
        capacity(&args, &clips).await
    };
    print_summary(&args, &results, &steps);
    Ok(())
}

/// Offline decodes of every clip; the engine is dropped before streaming
/// starts so it does not hold memory or threads during the measurements.
async fn offline_texts(args: &Args, clips: &[Clip]) -> anyhow::Result<Vec<String>> {
    let config = WhisperConfig {
        model_dir: args.model_dir.clone(),
        threads: 0,
        compute_type: "int8".into(),
    };
    let engine = tokio::task::spawn_blocking(move || offline::load(&config)).await??;
    let mut texts = Vec::new();
    for clip in clips {
        texts.push(offline::transcribe(&engine, &clip.samples).await?);
    }
    Ok(texts)
}

struct Step {
    sessions: usize,
    ok: bool,
    worst_last_final_secs: f64,
    worst_first_result_secs: f64,
    wer: f64,
    errors: Vec<String>,
}

/// Steps N = 1, 2, 3, 4, 6, 8, 12, 16…: N sessions stream the clips of 7 s
/// or more (7–15 s; session i gets clip i mod their count, so sessions end
/// at different times) in real time at once, starts spread over a second.
/// A step passes when every session is stored without errors and got its
/// last final within `final_within_secs` of the end of its audio.
async fn capacity(args: &Args, clips: &[Clip]) -> Vec<Step> {
    let long: Vec<&Clip> = clips.iter().filter(|c| c.secs() >= 7.0).collect();
    let pool = if long.is_empty() {
        clips.iter().collect()
    } else {
        long
    };
    let mut steps = Vec::new();
    let mut n = 1;
    while n <= args.max_sessions {
        eprintln!("capacity: {n} concurrent sessions…");
        let runs = futures_util::future::join_all((0..n).map(|i| {
            let clip = pool[i % pool.len()];
            let pcm = clip.s16le();
            let delay = Duration::from_millis((i as u64 * 1000) / n as u64);
            let url = args.url.clone();
            let token = args.token.clone();
            async move {
                let run = stream::run(&url, token.as_deref(), &pcm, delay).await;
                (clip, run)
            }
        }))
        .await;
        let mut step = Step {
            sessions: n,
            ok: true,
            worst_last_final_secs: 0.0,
            worst_first_result_secs: 0.0,
            wer: 0.0,
            errors: Vec::new(),
        };
        let (mut edits, mut words) = (0, 0);
        for (clip, run) in &runs {
            let last = run.last_final_secs.unwrap_or(f64::INFINITY);
            step.worst_last_final_secs = step.worst_last_final_secs.max(last);
            step.worst_first_result_secs = step
                .worst_first_result_secs
                .max(run.first_result_secs.unwrap_or(f64::INFINITY));
            step.ok &= run.errors.is_empty() && run.stored && last <= args.final_within_secs;
            step.errors.extend(run.errors.iter().cloned());
            edits += auscult::eval::word_edits(&clip.reference, &run.text);
            words += auscult::eval::words(&clip.reference).len();
        }
        step.wer = edits as f64 / words.max(1) as f64;
        eprintln!(
            "  {n} sessions: worst last final {:.2} s, worst first result {:.2} s, WER {:.1} %, {}",
            step.worst_last_final_secs,
            step.worst_first_result_secs,
            step.wer * 100.0,
            if step.ok { "ok" } else { "FAILED" }
        );
        let ok = step.ok;
        steps.push(step);
        if !ok {
            break;
        }
        n = match n {
            1..=3 => n + 1,
            4..=7 => n + 2,
            _ => n + 4,
        };
    }
    steps
}

fn pct(edits: usize, words: usize) -> f64 {
    100.0 * edits as f64 / words.max(1) as f64
}

fn print_clips(results: &[ClipResult]) {
    println!(
        "{:<10} {:>6} {:>6} {:>10} {:>11} {:>13} {:>11}",
        "clip", "secs", "words", "WER strm%", "WER offl%", "first res s", "last fin s"
    );
    for r in results {
        println!(
            "{:<10} {:>6.1} {:>6} {:>10.1} {:>11.1} {:>13.2} {:>11.2}",
            r.name,
            r.secs,
            r.words,
            pct(r.stream_edits, r.words),
            pct(r.offline_edits, r.words),
            r.run.first_result_secs.unwrap_or(f64::NAN),
            r.run.last_final_secs.unwrap_or(f64::NAN),
        );
        if r.stream_edits > 0 || r.offline_edits > 0 {
            println!("    stream:  {}", r.run.text);
            println!("    offline: {}", r.offline_text);
        }
    }
}

fn print_summary(args: &Args, results: &[ClipResult], steps: &[Step]) {
    let words: usize = results.iter().map(|r| r.words).sum();
    let stream_wer = pct(results.iter().map(|r| r.stream_edits).sum(), words);
    let offline_wer = pct(results.iter().map(|r| r.offline_edits).sum(), words);
    let max_of = |f: &dyn Fn(&ClipResult) -> Option<f64>| {
        results
            .iter()
            .map(|r| f(r).unwrap_or(f64::INFINITY))
            .fold(0.0, f64::max)
    };
    let first_max = max_of(&|r| r.run.first_result_secs);
    let last_max = max_of(&|r| r.run.last_final_secs);
    let sustained = steps
        .iter()
        .take_while(|s| s.ok)
        .map(|s| s.sessions)
        .last()
        .unwrap_or(0);
    println!();
    for s in steps {
        println!(
            "{:>3} sessions: worst last final {:>6.2} s, worst first result {:>6.2} s, WER {:>5.1} % {}",
            s.sessions,
            s.worst_last_final_secs,
            s.worst_first_result_secs,
            s.wer * 100.0,
            if s.ok { "ok" } else { "FAILED" }
        );
    }
    println!(
        "WER streaming {stream_wer:.1} % vs offline {offline_wer:.1} % over {words} words; \
         first result ≤ {first_max:.2} s; last final ≤ {last_max:.2} s after the audio; \
         {sustained} concurrent real-time sessions sustained"
    );
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let summary = json!({
        "clips": results.iter().map(|r| json!({
            "clip": r.name,
            "secs": round(r.secs),
            "words": r.words,
            "wer_stream_pct": round(pct(r.stream_edits, r.words)),
            "wer_offline_pct": round(pct(r.offline_edits, r.words)),
            "first_result_secs": r.run.first_result_secs.map(round),
            "last_final_secs": r.run.last_final_secs.map(round),
        })).collect::<Vec<_>>(),
        "wer_stream_pct": round(stream_wer),
        "wer_offline_pct": round(offline_wer),
        "first_result_max_secs": round(first_max),
        "last_final_max_secs": round(last_max),
        "capacity": steps.iter().map(|s| json!({
            "sessions": s.sessions,
            "ok": s.ok,
            "worst_last_final_secs": round(s.worst_last_final_secs),
            "worst_first_result_secs": round(s.worst_first_result_secs),
            "wer_pct": round(s.wer * 100.0),
            "errors": s.errors,
        })).collect::<Vec<_>>(),
        "max_realtime_sessions": sustained,
        "targets": {
            "wer_within_2_points_of_offline": stream_wer <= offline_wer + 2.0,
            "first_result_within_1_5_s": first_max <= 1.5,
            "last_final_within_3_s": last_max <= args.final_within_secs,
            "at_least_4_sessions": sustained >= 4,
        },
    });
    println!("{summary}");
}
