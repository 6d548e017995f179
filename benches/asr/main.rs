//! `auscult-asr-bench`: how well and how fast the Whisper engine transcribes
//! real-time 16 kHz streams through the full WebSocket path, against the
//! targets of issue 14 (on a 2-core machine):
//!
//! - single stream: the first partial ≤ 1.0 s after speech starts, a final
//!   ≤ 1.0 s after each utterance ends, the last final ≤ 1.5 s after the
//!   audio ends, and WER no worse than an offline decode of the same clips
//!   (same model, in this process) + 1 point;
//! - ≥ 8 concurrent streams (stretch: 14), each with its last final ≤ 1.5 s
//!   after its audio ends, the WER within 1 point of the single-stream WER
//!   of the same clips, and the server's RSS ≤ 400 MB.
//!
//! Streams espeak-ng clinical dictation with known texts through a running
//! server's `/v1/stream`, one clip at a time, then steps the number of
//! concurrent sessions (1, 2, 3, 4, 6, 8, 10, 12, 14, 16) until one fails.
//! "After speech starts" and "after an utterance ends" count from when the
//! frame holding the clip's first, or the utterance's last, speech sample was
//! sent (see `clips::utterances`). Prints tables, then one JSON object as its
//! last line; `max_realtime_sessions` is the largest step that met everything.
//!
//! Run it with `scripts/bench-asr.sh`, which builds and starts the server.

mod capacity;
mod clips;
mod report;
mod rss;
mod stream;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use auscult::config::WhisperConfig;
use auscult::engine::whisper::WhisperEngine;
use auscult::engine::whole;
use clips::Clip;

/// How long the offline reference decode waits for each event.
const OFFLINE_TIMEOUT: Duration = Duration::from_secs(120);

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
    /// A concurrency step needs every session's last final within this many seconds of the end of its audio.
    #[arg(long, default_value_t = 1.5)]
    final_within_secs: f64,
    /// A concurrency step needs its WER within this many points of the single-stream WER of the same clips.
    #[arg(long, default_value_t = 1.0)]
    wer_slack_points: f64,
    /// A concurrency step needs the server's peak RSS at or below this (MB of 1024 kB); checked only with --server-pid.
    #[arg(long, default_value_t = 400.0)]
    max_rss_mb: f64,
    /// The server's process id, to sample its RSS from /proc every 200 ms during each step.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Stop stepping concurrency here.
    #[arg(long, default_value_t = 16)]
    max_sessions: usize,
    /// Skip the concurrency search.
    #[arg(long)]
    no_capacity: bool,
    /// Run every step up to --max-sessions even after one fails (to see
    /// the latency, WER and memory at 8 whatever happens before).
    #[arg(long)]
    keep_going: bool,
}

struct ClipResult {
    name: String,
    secs: f64,
    words: usize,
    utterances: usize,
    speech_start_secs: f64,
    stream_edits: usize,
    offline_edits: usize,
    latency: stream::Latency,
    stream_text: String,
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
    match args.server_pid {
        Some(pid) => {
            let kb = rss::vm_rss_kb(pid)
                .await
                .with_context(|| format!("--server-pid {pid}"))?;
            eprintln!(
                "server pid {pid}: RSS {:.0} MB now, checked during each step",
                kb as f64 / 1024.0
            );
        }
        None => eprintln!("no --server-pid: the server's RSS is not checked"),
    }
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
            utterances: clip.utterances.len(),
            speech_start_secs: clip.speech_start_secs(),
            stream_edits: auscult::eval::word_edits(&clip.reference, &run.text),
            offline_edits: auscult::eval::word_edits(&clip.reference, &offline_text),
            latency: run.latency(clip),
            stream_text: run.text,
            offline_text,
        });
    }
    report::print_clips(&results);

    let steps = if args.no_capacity {
        None
    } else {
        Some(capacity::search(&args, &clips, &results).await)
    };
    report::print_summary(&args, &results, steps.as_deref());
    Ok(())
}

/// Offline decodes of every clip; the engine is dropped before streaming
/// starts so it does not hold memory or threads during the measurements.
async fn offline_texts(args: &Args, clips: &[Clip]) -> anyhow::Result<Vec<String>> {
    let config = WhisperConfig::new(args.model_dir.clone());
    let engine = tokio::task::spawn_blocking(move || WhisperEngine::load(&config)).await??;
    let mut texts = Vec::new();
    for clip in clips {
        let finals =
            whole::transcribe_whole(&engine, &clip.samples, clips::RATE, OFFLINE_TIMEOUT).await?;
        texts.push(whole::joined(&finals));
    }
    Ok(texts)
}

/// Word-weighted WER in percent.
fn pct(edits: usize, words: usize) -> f64 {
    100.0 * edits as f64 / words.max(1) as f64
}
