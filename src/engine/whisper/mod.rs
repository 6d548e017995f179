//! `whisper`: the embedded Whisper tiny.en engine (CTranslate2 via `ct2rs`),
//! the default engine.
//!
//! One model serves every session. Each stream's audio is appended to an
//! inbox by a light async task; a dedicated scheduler thread gates it with a
//! VAD, re-decodes growing windows in batches and commits agreed words.

mod agreement;
mod mel;
mod model;
mod scheduler;
mod stream;
mod tokenizer;
mod vad;

use std::sync::atomic::AtomicU64;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::mpsc;

pub use model::{FETCH_SCRIPT, ModelError};

use super::{
    Consumed, Engine, EngineError, EngineInput, EngineStream, Readiness, STREAM_CHANNEL_DEPTH,
    StreamParams,
};
use crate::config::WhisperConfig;
use model::WhisperModel;
use scheduler::Health;
use stream::{Inbox, StreamState};

pub const NAME: &str = "whisper";

pub struct WhisperEngine {
    registrations: Sender<StreamState>,
    health: Arc<Mutex<Health>>,
    description: String,
}

impl WhisperEngine {
    /// Loads and warms up the model, then starts the scheduler thread.
    /// Blocking (about a second): call it from a blocking context.
    pub fn load(config: &WhisperConfig) -> Result<Self, ModelError> {
        let started = Instant::now();
        let model = WhisperModel::load(&config.model_dir, config.threads, &config.compute_type)?;
        let loaded = started.elapsed();
        // Warm-up: the first decode allocates and tunes; pay for it before serving.
        model.decode(&[&vec![0.0; mel::SAMPLE_RATE as usize]])?;
        tracing::info!(
            model_dir = %config.model_dir.display(),
            compute_type = %config.compute_type,
            threads = config.threads,
            load_secs = loaded.as_secs_f64(),
            warmup_secs = (started.elapsed() - loaded).as_secs_f64(),
            "whisper model loaded"
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let health = Arc::new(Mutex::new(Health::default()));
        let thread_health = health.clone();
        std::thread::Builder::new()
            .name("whisper-scheduler".into())
            .spawn(move || scheduler::run(model, rx, thread_health))
            .map_err(|e| ModelError::Decode(format!("cannot start the scheduler thread: {e}")))?;
        let description = format!(
            "whisper tiny.en loaded from {} ({}, {} threads)",
            config.model_dir.display(),
            config.compute_type,
            config.threads
        );
        Ok(WhisperEngine {
            registrations: tx,
            health,
            description,
        })
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
        let (audio_tx, audio_rx) = mpsc::channel(STREAM_CHANNEL_DEPTH);
        let (events_tx, events_rx) = mpsc::channel(STREAM_CHANNEL_DEPTH);
        let lag_ms = Arc::new(AtomicU64::new(0));
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let consumed = Arc::new(Consumed::default());
        let state = StreamState::new(
            params.session_id.clone(),
            inbox.clone(),
            events_tx,
            (lag_ms.clone(), Arc::clone(&consumed)),
        );
        self.registrations
            .send(state)
            .map_err(|_| EngineError::Unavailable("the whisper scheduler has stopped".into()))?;
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
        let health = self.health.lock().expect("health lock");
        if health.stopped {
            Readiness::not_ready("the whisper scheduler has stopped")
        } else if let Some(error) = &health.last_error {
            Readiness::not_ready(format!("last whisper decode failed: {error}"))
        } else {
            Readiness::ready(self.description.clone())
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
