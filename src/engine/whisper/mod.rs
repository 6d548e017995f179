//! `whisper`: the embedded Whisper engine (CTranslate2 via `ct2rs`), the
//! default engine.
//!
//! Each stream's audio is appended to an inbox by a light async task; decode
//! workers (one model replica each) gate it with a VAD, re-decode growing
//! windows at their own length in batches and commit agreed words. The
//! engine admits `max_streams` streams; past that `open` refuses, so the
//! sessions it has stay in time instead of all falling behind together.

mod agreement;
mod mel;
mod model;
mod scheduler;
mod stream;
mod tokenizer;
mod vad;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{Semaphore, mpsc};

pub use model::{FETCH_SCRIPT, ModelError};

use super::{
    Consumed, Engine, EngineError, EngineInput, EngineStream, Readiness, STREAM_CHANNEL_DEPTH,
    StreamParams,
};
use crate::config::WhisperConfig;
use model::{Decoder, Pass, Request, WhisperModel};
use scheduler::Shared;
use stream::{Inbox, Reporting, StreamState};

pub const NAME: &str = "whisper";

pub struct WhisperEngine {
    shared: Arc<Shared>,
    /// One permit per stream the engine admits.
    admitted: Arc<Semaphore>,
    max_streams: usize,
    endpoint: Duration,
    next_id: AtomicU64,
    description: String,
    /// The decode worker threads, joined when the engine is dropped.
    workers: Vec<std::thread::JoinHandle<()>>,
}

/// How long dropping the engine waits for its workers to finish the streams
/// still open and leave. A worker still inside CTranslate2 when the process
/// exits crashes it as the library's globals are torn down.
const WORKERS_EXIT_WAIT: Duration = Duration::from_secs(10);

impl WhisperEngine {
    /// Loads and warms up one model replica per decode worker, then starts
    /// the workers. Blocking (about a second): call it from a blocking context.
    pub fn load(config: &WhisperConfig) -> Result<Self, ModelError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = if config.workers == 0 {
            cores
        } else {
            config.workers
        };
        let threads = if config.threads == 0 {
            (cores / workers).max(1)
        } else {
            config.threads
        };
        let shared = Shared::new(workers);
        let mut handles = Vec::with_capacity(workers);
        for worker in 0..workers {
            let started = Instant::now();
            let mut model = WhisperModel::load(
                &config.model_dir,
                threads,
                &config.compute_type,
                &config.prompt,
            )?;
            let loaded = started.elapsed();
            // Warm-up: the first decode allocates and tunes; pay for it before serving.
            let warm = vec![0.0; mel::SAMPLE_RATE as usize];
            model.decode(&[Request {
                audio: &warm,
                pass: Pass::Short,
            }])?;
            tracing::info!(
                worker,
                model_dir = %config.model_dir.display(),
                compute_type = %config.compute_type,
                threads,
                load_secs = loaded.as_secs_f64(),
                warmup_secs = (started.elapsed() - loaded).as_secs_f64(),
                "whisper model loaded"
            );
            let pool = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("whisper-{worker}"))
                .spawn(move || scheduler::run(model, pool))
                .map_err(|e| ModelError::Decode(format!("cannot start a decode worker: {e}")))?;
            handles.push(handle);
        }
        let description = format!(
            "whisper from {} ({}, {workers} workers × {threads} threads, up to {} streams)",
            config.model_dir.display(),
            config.compute_type,
            config.max_streams,
        );
        Ok(WhisperEngine {
            shared,
            admitted: Arc::new(Semaphore::new(config.max_streams)),
            max_streams: config.max_streams,
            endpoint: config.endpoint,
            next_id: AtomicU64::new(1),
            description,
            workers: handles,
        })
    }
}

impl Drop for WhisperEngine {
    fn drop(&mut self) {
        self.shared.close();
        if self.shared.wait_workers_gone(WORKERS_EXIT_WAIT) {
            for worker in self.workers.drain(..) {
                let _ = worker.join();
            }
        } else {
            tracing::warn!(
                event = "whisper_workers_still_busy",
                wait_s = WORKERS_EXIT_WAIT.as_secs()
            );
        }
    }
}

#[async_trait]
impl Engine for WhisperEngine {
    fn name(&self) -> &str {
        NAME
    }

    fn engine_rate(&self, _input_rate: u32) -> u32 {
        mel::SAMPLE_RATE
    }

    async fn open(&self, params: StreamParams) -> Result<EngineStream, EngineError> {
        if params.sample_rate != mel::SAMPLE_RATE {
            return Err(EngineError::BadParams(format!(
                "whisper needs {} Hz audio",
                mel::SAMPLE_RATE
            )));
        }
        let Ok(slot) = Arc::clone(&self.admitted).try_acquire_owned() else {
            metrics::counter!("auscult_whisper_refused_total").increment(1);
            return Err(EngineError::Unavailable(format!(
                "whisper is at capacity ({} live streams, AUSCULT_WHISPER_MAX_STREAMS)",
                self.max_streams
            )));
        };
        let (audio_tx, audio_rx) = mpsc::channel(STREAM_CHANNEL_DEPTH);
        let (events_tx, events_rx) = mpsc::channel(STREAM_CHANNEL_DEPTH);
        let lag_ms = Arc::new(AtomicU64::new(0));
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let consumed = Arc::new(Consumed::default());
        let state = StreamState::new(
            (
                self.next_id.fetch_add(1, Ordering::Relaxed),
                params.session_id.clone(),
            ),
            inbox.clone(),
            Reporting {
                events: events_tx,
                lag_ms: lag_ms.clone(),
                consumed: Arc::clone(&consumed),
            },
            slot,
            self.endpoint,
        );
        if self.shared.health.lock().expect("health lock").stopped {
            return Err(EngineError::Unavailable(
                "the whisper decode workers have stopped".into(),
            ));
        }
        self.shared.register(state);
        tracing::debug!(session_id = %params.session_id, "whisper stream opened");
        tokio::spawn(drain(audio_rx, inbox));
        Ok(EngineStream {
            audio: audio_tx,
            events: events_rx,
            lag_ms,
            consumed,
        })
    }

    async fn readiness(&self) -> Readiness {
        let health = self.shared.health.lock().expect("health lock");
        if health.stopped {
            Readiness::not_ready("the whisper decode workers have stopped")
        } else if let Some(error) = &health.last_error {
            Readiness::not_ready(format!("last whisper decode failed: {error}"))
        } else {
            Readiness::ready(format!(
                "{}; {} live",
                self.description,
                self.max_streams - self.admitted.available_permits()
            ))
        }
    }
}

/// Keeps the session's audio channel drained: every chunk is appended to the
/// inbox at once, whatever the scheduler is doing.
async fn drain(mut audio: mpsc::Receiver<EngineInput>, inbox: Arc<Mutex<Inbox>>) {
    while let Some(input) = audio.recv().await {
        let mut inbox = inbox.lock().expect("inbox lock");
        match input {
            EngineInput::Audio(samples) => {
                inbox.total += samples.len() as u64;
                inbox.audio.extend_from_slice(&samples);
            }
            EngineInput::Finish => {
                inbox.finished = true;
                return;
            }
        }
    }
    inbox.lock().expect("inbox lock").closed = true;
}

#[cfg(test)]
mod tests;
