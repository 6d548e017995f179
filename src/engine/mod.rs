//! Speech engines behind one trait: open a stream, push mono f32 audio at the
//! engine's rate, finish; results come back as partial/final transcripts.
//!
//! Each engine lives in its own module; [`EngineRegistry`] is the factory that
//! builds the configured ones and answers readiness for `/ready`.

mod loadtest;
pub mod registry;
pub mod riva;
pub mod transcribe;
#[cfg(feature = "embedded-whisper")]
pub mod whisper;
pub mod whole;

pub use loadtest::LoadTestEngine;
pub use registry::EngineRegistry;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::protocol::Word;

/// How deep the per-stream audio and event channels are. Audio chunks are
/// typically 100 ms, so this is several seconds of slack before the session
/// starts queueing (bounded) on its side.
pub const STREAM_CHANNEL_DEPTH: usize = 64;

/// What a session asks of an engine when it opens a stream.
#[derive(Debug, Clone)]
pub struct StreamParams {
    /// Used only for log correlation; never as a metric label.
    pub session_id: String,
    pub language: String,
    /// The rate of the audio the engine will receive (from [`Engine::engine_rate`]).
    pub sample_rate: u32,
    pub specialty: Option<String>,
    pub mode: Option<String>,
}

/// Audio and control flowing into an engine stream.
#[derive(Debug)]
pub enum EngineInput {
    /// Mono samples at the stream's sample rate, in [-1, 1].
    Audio(Vec<f32>),
    /// No more audio: flush pending text into finals, then send [`EngineEvent::Finished`].
    Finish,
}

/// One transcript result from an engine. Times are seconds from the stream start.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptResult {
    pub result_id: String,
    pub is_partial: bool,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub words: Vec<Word>,
}

/// Events flowing out of an engine stream.
#[derive(Debug, Clone)]
pub enum EngineEvent {
    Transcript(TranscriptResult),
    /// A non-fatal problem the client should hear about (e.g. `engine_retrying`).
    Warning {
        code: crate::protocol::ErrorCode,
        message: String,
    },
    /// PHI/PII entities of the final with this `result_id`, sent just before it.
    Entities {
        result_id: String,
        entities: Vec<crate::protocol::Entity>,
    },
    /// The stream failed for good. The session stores its audio and closes `engine_failed`.
    Failed {
        message: String,
    },
    /// All finals for the audio pushed before `Finish` have been sent.
    Finished,
}

/// The two ends a session holds for one open engine stream.
pub struct EngineStream {
    pub audio: mpsc::Sender<EngineInput>,
    pub events: mpsc::Receiver<EngineEvent>,
    /// How far the engine's processing trails the audio it was given, in ms.
    /// Engines that cannot tell leave it at 0.
    pub lag_ms: Arc<AtomicU64>,
    /// How much of the audio it was given the engine has dealt with.
    pub consumed: Arc<Consumed>,
}

/// How many samples of a stream's audio the engine has dealt with: decoded
/// (Whisper) or handed to its service (Transcribe, Riva). The session counts
/// what it handed over; the difference is audio waiting inside the engine
/// (its channel, an inbox, a resend buffer during a reconnect), which the
/// session's buffer limit counts beside its own backlog.
#[derive(Debug, Default)]
pub struct Consumed(AtomicU64);

impl Consumed {
    /// Records that the first `samples` of the stream are dealt with (never goes back).
    pub fn reached(&self, samples: u64) {
        self.0
            .fetch_max(samples, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn samples(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Whether an engine can take sessions now, and why not.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub detail: String,
}

impl Readiness {
    pub fn ready(detail: impl Into<String>) -> Self {
        Readiness {
            ready: true,
            detail: detail.into(),
        }
    }

    pub fn not_ready(detail: impl Into<String>) -> Self {
        Readiness {
            ready: false,
            detail: detail.into(),
        }
    }
}

/// Why an engine could not open a stream.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("engine is not ready: {0}")]
    Unavailable(String),
    #[error("engine rejected the stream parameters: {0}")]
    BadParams(String),
}

/// A speech engine. One instance serves all sessions; each session opens its own stream.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// The name clients use in `start.engine` and `AUSCULT_ENGINE`.
    fn name(&self) -> &str;

    /// The sample rate this engine wants, given the client's input rate.
    fn engine_rate(&self, input_rate: u32) -> u32;

    /// Opens a stream for one session.
    async fn open(&self, params: StreamParams) -> Result<EngineStream, EngineError>;

    /// Whether the engine can take sessions now (shown in `/ready`).
    async fn readiness(&self) -> Readiness;
}

pub type SharedEngine = Arc<dyn Engine>;
