//! `auscult-load`: a load generator for Auscult. Opens N concurrent streaming
//! sessions with ramp-up, paces audio in real time (or × speed), measures ack
//! and transcript latency, samples the server's CPU and memory, and verifies
//! afterwards that every accepted session was stored with exactly the bytes
//! sent. Prints a table, then one JSON object as its last line.

mod audio;
mod proc_stats;
mod session;
mod stats;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use session::{Outcome, SessionPlan};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "auscult-load",
    about = "Load generator for the Auscult streaming server"
)]
pub struct Args {
    /// WebSocket URL of the stream endpoint (`--transport socketio`: the
    /// server's base URL, e.g. ws://127.0.0.1:8080).
    #[arg(long, default_value = "ws://127.0.0.1:8080/v1/stream")]
    pub url: String,
    /// The wire: the native WebSocket, or Socket.IO over an Engine.IO WebSocket.
    #[arg(long, value_enum, default_value = "ws")]
    pub transport: wire::Transport,
    /// Bearer token (omit for a loopback server without tokens).
    #[arg(long)]
    pub token: Option<String>,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 10)]
    pub sessions: usize,
    /// Spread session starts over this many seconds.
    #[arg(long, default_value_t = 5.0)]
    pub ramp_secs: f64,
    /// Seconds of audio each session streams.
    #[arg(long, default_value_t = 30.0)]
    pub duration_secs: f64,
    /// Input sample rate.
    #[arg(long, default_value_t = 16_000)]
    pub rate: u32,
    /// pcm_s16le or pcm_f32le.
    #[arg(long, default_value = "pcm_s16le")]
    pub encoding: String,
    /// Audio per frame, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub frame_ms: u32,
    /// Stream this WAV (16-bit PCM, mono; looped to fill the duration) instead of generated audio.
    #[arg(long)]
    pub wav: Option<PathBuf>,
    /// Pace audio at this multiple of real time.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Server process id, to sample its CPU and RSS from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Server data dir: verify stored audio under <data-dir>/objects against the bytes sent.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Engine to ask for (default: the server's default).
    #[arg(long)]
    pub engine: Option<String>,
    /// How long to wait for `stored` after `stop`.
    #[arg(long, default_value_t = 60.0)]
    pub stop_timeout_secs: f64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("auscult-load: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(report) => {
            print!("{}", report.table());
            println!("{}", report.json());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("auscult-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<stats::Report, String> {
    let source = Arc::new(audio::Source::new(&args)?);
    let sampler = args.server_pid.map(proc_stats::Sampler::start);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.sessions {
        let delay = if args.sessions > 1 {
            args.ramp_secs * i as f64 / (args.sessions - 1) as f64
        } else {
            0.0
        };
        let plan = SessionPlan {
            index: i,
            start_after: Duration::from_secs_f64(delay),
            source: Arc::clone(&source),
        };
        let args = args.clone();
        tasks.spawn(async move { session::run(&args, plan).await });
    }
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(args.sessions);
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.map_err(|e| format!("session task failed: {e}"))?);
    }
    let elapsed = started.elapsed();
    let server = match sampler {
        Some(s) => Some(s.stop().await),
        None => None,
    };
    let verified = args
        .data_dir
        .as_ref()
        .map(|dir| verify(dir, &outcomes, &source));
    Ok(stats::Report::new(
        &args, &outcomes, elapsed, server, verified,
    ))
}

/// Compares every stored `audio.wav` data chunk with the bytes the session sent.
fn verify(
    data_dir: &std::path::Path,
    outcomes: &[Outcome],
    source: &audio::Source,
) -> stats::Verification {
    let mut v = stats::Verification::default();
    for o in outcomes.iter().filter(|o| o.accepted) {
        let Some(key) = &o.stored_audio_key else {
            v.missing += 1;
            continue;
        };
        let path = data_dir.join("objects").join(key);
        let ok = std::fs::read(&path).ok().and_then(|bytes| {
            let data = audio::wav_data(&bytes)?;
            Some(data.len() as u64 == o.bytes_sent && source.matches(o.index, data))
        });
        match ok {
            Some(true) => v.verified += 1,
            Some(false) => v.mismatched += 1,
            None => v.missing += 1,
        }
    }
    v
}
