//! The concurrency search: how many real-time 16 kHz sessions the server
//! holds at once with every last final in time, the WER of the single-stream
//! runs of the same clips, and its memory within bounds.

use std::time::Duration;

use crate::clips::Clip;
use crate::{Args, ClipResult, pct, rss, stream};

/// Concurrency steps, so that the 8-stream target and the 14-stream stretch
/// are both tried; past 16 (with a larger `--max-sessions`), every 4.
const STEPS: [usize; 10] = [1, 2, 3, 4, 6, 8, 10, 12, 14, 16];

pub struct Step {
    pub sessions: usize,
    /// The criteria it missed: "errors", "last_final", "wer", "rss".
    pub failed: Vec<&'static str>,
    pub worst_last_final_secs: f64,
    /// Not criteria of a step, shown to see how latency grows with load.
    pub worst_first_partial_secs: f64,
    pub worst_utterance_final_secs: f64,
    pub wer_pct: f64,
    /// The single-stream WER of this step's mix of clips.
    pub reference_wer_pct: f64,
    /// None without `--server-pid`.
    pub peak_rss_mb: Option<f64>,
    pub errors: Vec<String>,
}

impl Step {
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Runs the steps up to `--max-sessions`, stopping after the first that fails
/// (unless `--keep-going`).
/// N sessions stream the clips of 7 s or more (7–15 s; session i gets clip
/// i mod their count, so sessions end at different times) in real time at
/// once, starts spread over a second.
pub async fn search(args: &Args, clips: &[Clip], results: &[ClipResult]) -> Vec<Step> {
    let long: Vec<usize> = (0..clips.len())
        .filter(|&i| clips[i].secs() >= 7.0)
        .collect();
    let pool = if long.is_empty() {
        (0..clips.len()).collect()
    } else {
        long
    };
    let counts = STEPS
        .into_iter()
        .chain((20..).step_by(4))
        .take_while(|&n| n <= args.max_sessions);
    let mut steps = Vec::new();
    for n in counts {
        eprintln!("capacity: {n} concurrent sessions…");
        let mix: Vec<usize> = (0..n).map(|i| pool[i % pool.len()]).collect();
        let step = run_step(args, clips, results, &mix).await;
        eprintln!(
            "  {n} sessions: worst last final {:.2} s, WER {:.1} % (single-stream {:.1} %), peak RSS {}, {}",
            step.worst_last_final_secs,
            step.wer_pct,
            step.reference_wer_pct,
            step.peak_rss_mb
                .map_or_else(|| "not measured".to_owned(), |mb| format!("{mb:.0} MB")),
            if step.ok() { "ok" } else { "FAILED" }
        );
        let ok = step.ok();
        steps.push(step);
        if !ok && !args.keep_going {
            break;
        }
    }
    steps
}

/// One step: session i streams clip `mix[i]`.
async fn run_step(args: &Args, clips: &[Clip], results: &[ClipResult], mix: &[usize]) -> Step {
    let n = mix.len();
    let sampler = args.server_pid.map(rss::Sampler::start);
    let runs = futures_util::future::join_all(mix.iter().enumerate().map(|(i, &c)| {
        let pcm = clips[c].s16le();
        let delay = Duration::from_millis((i as u64 * 1000) / n as u64);
        let url = args.url.clone();
        let token = args.token.clone();
        async move { stream::run(&url, token.as_deref(), &pcm, delay).await }
    }))
    .await;
    let mut step = Step {
        sessions: n,
        failed: Vec::new(),
        worst_last_final_secs: 0.0,
        worst_first_partial_secs: f64::NEG_INFINITY,
        worst_utterance_final_secs: 0.0,
        wer_pct: 0.0,
        reference_wer_pct: 0.0,
        peak_rss_mb: None,
        errors: Vec::new(),
    };
    if let Some(sampler) = sampler {
        match sampler.finish().await {
            Ok(mb) => step.peak_rss_mb = Some(mb),
            Err(e) => step.errors.push(format!("rss: {e:#}")),
        }
    }
    let (mut edits, mut words, mut reference_edits) = (0, 0, 0);
    let mut clean = true;
    for (&c, run) in mix.iter().zip(&runs) {
        let latency = run.latency(&clips[c]);
        step.worst_last_final_secs = step.worst_last_final_secs.max(latency.last_final);
        step.worst_first_partial_secs = step.worst_first_partial_secs.max(latency.first_partial);
        step.worst_utterance_final_secs = step
            .worst_utterance_final_secs
            .max(latency.worst_utterance_final());
        clean &= run.errors.is_empty() && run.stored;
        step.errors.extend(run.errors.iter().cloned());
        edits += auscult::eval::word_edits(&clips[c].reference, &run.text);
        words += results[c].words;
        reference_edits += results[c].stream_edits;
    }
    step.wer_pct = pct(edits, words);
    step.reference_wer_pct = pct(reference_edits, words);
    if !clean {
        step.failed.push("errors");
    }
    if step.worst_last_final_secs > args.final_within_secs {
        step.failed.push("last_final");
    }
    if step.wer_pct > step.reference_wer_pct + args.wer_slack_points {
        step.failed.push("wer");
    }
    let rss_ok = step.peak_rss_mb.is_some_and(|mb| mb <= args.max_rss_mb);
    if args.server_pid.is_some() && !rss_ok {
        step.failed.push("rss");
    }
    step
}
