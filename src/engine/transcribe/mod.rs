//! `transcribe-medical` and `transcribe`: Amazon Transcribe (Medical) streaming.
//!
//! One SDK client serves every session; each session's stream is a task
//! ([`stream`]) that chunks audio into 100 ms PCM frames, keeps the service
//! fed with silence while the client pauses, and reopens the stream (resending
//! the audio since the last final) when the service fails it.

mod results;
mod stream;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_transcribestreaming::config::{Credentials, Region, SharedHttpClient};
use tokio::sync::{OnceCell, mpsc};

use super::{
    Consumed, Engine, EngineError, EngineStream, Readiness, STREAM_CHANNEL_DEPTH, StreamParams,
};

pub const MEDICAL: &str = "transcribe-medical";
pub const STANDARD: &str = "transcribe";

/// The rate the medical service gets: its minimum. Sending 16 kHz for every
/// input (rather than native 16–48 kHz) keeps bandwidth and cost flat and the
/// service transcribes speech no worse for it.
const MEDICAL_RATE: u32 = 16_000;

/// The service ends a stream after 4 hours; streams are rotated 5 minutes
/// before that, so the service's own cut never lands mid-word.
pub const DEFAULT_MAX_STREAM: Duration = Duration::from_secs(4 * 3600 - 300);

/// Medical specialties the service accepts.
pub const SPECIALTIES: &[&str] = &[
    "PRIMARYCARE",
    "CARDIOLOGY",
    "NEUROLOGY",
    "ONCOLOGY",
    "RADIOLOGY",
    "UROLOGY",
];

/// Medical audio types (`mode` in `start`).
pub const TYPES: &[&str] = &["DICTATION", "CONVERSATION"];

/// Which service operation an engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `StartMedicalStreamTranscription` (en-US only).
    Medical,
    /// `StartStreamTranscription`.
    Standard,
}

/// Settings shared by both engines (`AUSCULT_TRANSCRIBE_*`).
#[derive(Clone)]
pub struct TranscribeSettings {
    /// Region; `None` takes it from the AWS chain.
    pub region: Option<String>,
    /// Endpoint override (tests point it at a fake service).
    pub endpoint: Option<String>,
    /// Medical: PRIMARYCARE, CARDIOLOGY, NEUROLOGY, ONCOLOGY, RADIOLOGY, UROLOGY.
    pub specialty: String,
    /// Medical: DICTATION or CONVERSATION.
    pub kind: String,
    pub vocabulary: Option<String>,
    pub speaker_labels: bool,
    /// Medical: ask for PHI entities (`PHI` content identification).
    pub phi: bool,
    /// Standard: partial-results stabilization `low`, `medium` or `high` (none when unset).
    pub stability: Option<String>,
    /// Standard: `identify` or `redact` PII.
    pub pii: Option<String>,
    /// After this long without client audio, send 100 ms of silence (the
    /// service fails a stream after 15 s without audio).
    pub keepalive: Duration,
    /// How long opening a stream, or handing it one chunk, may take.
    pub send_timeout: Duration,
    /// Consecutive failed attempts before the session fails `engine_failed`.
    pub max_attempts: u32,
    /// First retry backoff (doubles per attempt, with jitter).
    pub backoff: Duration,
    /// A stream older than this is ended gracefully (its finals arrive) and
    /// the session goes on on a new one, ahead of the service's 4-hour limit.
    pub max_stream: Duration,
    /// Fixed credentials instead of the default chain (tests).
    pub credentials: Option<Credentials>,
    /// Another HTTP client than the SDK's default (tests reach a fake over h2c).
    pub http_client: Option<SharedHttpClient>,
}

impl Default for TranscribeSettings {
    fn default() -> Self {
        TranscribeSettings {
            region: None,
            endpoint: None,
            specialty: "PRIMARYCARE".to_owned(),
            kind: "DICTATION".to_owned(),
            vocabulary: None,
            speaker_labels: false,
            phi: false,
            stability: None,
            pii: None,
            keepalive: Duration::from_secs(5),
            send_timeout: Duration::from_secs(10),
            max_attempts: 5,
            backoff: Duration::from_millis(250),
            max_stream: DEFAULT_MAX_STREAM,
            credentials: None,
            http_client: None,
        }
    }
}

impl std::fmt::Debug for TranscribeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TranscribeSettings")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("specialty", &self.specialty)
            .field("kind", &self.kind)
            .field("vocabulary", &self.vocabulary)
            .field("speaker_labels", &self.speaker_labels)
            .field("phi", &self.phi)
            .field("stability", &self.stability)
            .field("pii", &self.pii)
            .field("keepalive", &self.keepalive)
            .field("max_stream", &self.max_stream)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "[REDACTED]"),
            )
            .finish_non_exhaustive()
    }
}

/// Either Transcribe engine; one per process.
pub struct TranscribeEngine {
    variant: Variant,
    settings: TranscribeSettings,
    config: OnceCell<aws_config::SdkConfig>,
    client: OnceCell<aws_sdk_transcribestreaming::Client>,
}

impl TranscribeEngine {
    pub fn new(variant: Variant, settings: TranscribeSettings) -> Self {
        TranscribeEngine {
            variant,
            settings,
            config: OnceCell::new(),
            client: OnceCell::new(),
        }
    }

    async fn sdk_config(&self) -> &aws_config::SdkConfig {
        self.config.get_or_init(|| self.load_config()).await
    }

    async fn load_config(&self) -> aws_config::SdkConfig {
        // The SDK cannot replay a streamed request body; the engine retries itself.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::disabled());
        if let Some(endpoint) = &self.settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(region) = &self.settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(credentials) = self.settings.credentials.clone() {
            loader = loader.credentials_provider(credentials);
        }
        if let Some(http_client) = self.settings.http_client.clone() {
            loader = loader.http_client(http_client);
        }
        loader.load().await
    }

    async fn client(&self) -> &aws_sdk_transcribestreaming::Client {
        self.client
            .get_or_init(|| async {
                aws_sdk_transcribestreaming::Client::new(self.sdk_config().await)
            })
            .await
    }
}

#[async_trait]
impl Engine for TranscribeEngine {
    fn name(&self) -> &str {
        match self.variant {
            Variant::Medical => MEDICAL,
            Variant::Standard => STANDARD,
        }
    }

    /// Medical: always 16 kHz (its minimum; 8 kHz input is upsampled).
    /// Standard: 8 kHz input stays 8 kHz, anything else goes at 16 kHz.
    fn engine_rate(&self, input_rate: u32) -> u32 {
        match self.variant {
            Variant::Standard if input_rate <= 8_000 => 8_000,
            _ => MEDICAL_RATE,
        }
    }

    async fn open(&self, params: StreamParams) -> Result<EngineStream, EngineError> {
        if self.variant == Variant::Medical && !params.language.eq_ignore_ascii_case("en-US") {
            return Err(EngineError::BadParams(
                "Transcribe Medical supports en-US only".to_owned(),
            ));
        }
        // The `start` message's specialty and mode override the configured ones.
        let mut settings = self.settings.clone();
        if let Some(specialty) = &params.specialty {
            let upper = specialty.to_uppercase();
            if !SPECIALTIES.contains(&upper.as_str()) {
                return Err(EngineError::BadParams(format!(
                    "specialty must be one of {}",
                    SPECIALTIES.join(", ")
                )));
            }
            settings.specialty = upper;
        }
        if let Some(mode) = &params.mode {
            let upper = mode.to_uppercase();
            if !TYPES.contains(&upper.as_str()) {
                return Err(EngineError::BadParams(
                    "mode must be dictation or conversation".to_owned(),
                ));
            }
            settings.kind = upper;
        }
        let client = self.client().await.clone();
        let (audio_tx, audio_rx) = mpsc::channel(STREAM_CHANNEL_DEPTH);
        let (events_tx, events_rx) = mpsc::channel(STREAM_CHANNEL_DEPTH);
        let lag_ms = Arc::new(AtomicU64::new(0));
        let consumed = Arc::new(Consumed::default());
        let run = stream::Run::new(
            client,
            self.variant,
            settings,
            params,
            events_tx,
            (Arc::clone(&lag_ms), Arc::clone(&consumed)),
        );
        tokio::spawn(run.run(audio_rx));
        Ok(EngineStream {
            audio: audio_tx,
            events: events_rx,
            lag_ms,
            consumed,
        })
    }

    async fn readiness(&self) -> Readiness {
        use aws_credential_types::provider::ProvideCredentials as _;
        let config = self.sdk_config().await;
        let Some(provider) = config.credentials_provider() else {
            return Readiness::not_ready("no AWS credentials provider");
        };
        match tokio::time::timeout(Duration::from_secs(5), provider.provide_credentials()).await {
            Ok(Ok(_)) => Readiness::ready(format!("{} credentials resolve", self.name())),
            Ok(Err(_)) | Err(_) => Readiness::not_ready("AWS credentials do not resolve"),
        }
    }
}
