//! `riva`: NVIDIA Riva streaming speech recognition over gRPC.
//!
//! One shared [`Channel`] serves every session; each session opens its own
//! `StreamingRecognize` call: the config first, then 16 kHz LINEAR_PCM in
//! 100 ms chunks. Riva's interim hypotheses of one utterance become partials
//! of one `result_id`; `is_final` closes it. Riva's word times are
//! milliseconds from the start of the call.
//!
//! Recovery: when a call fails (`UNAVAILABLE`, `INVALID_ARGUMENT`, …) or
//! ends before the session finished, the stream reconnects and resends the
//! audio since the last final, offsetting the new call's times by where that
//! audio starts. After `max_retries` failed reconnects in a row the session
//! gets `engine_failed` (and stores its audio as usual). When a call ends
//! without a final for pending text, that text is finalized.
//!
//! Never logged: transcript text, audio, the API key.

pub mod proto;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use tokio::sync::mpsc;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use self::proto::asr::riva_speech_recognition_client::RivaSpeechRecognitionClient;
use self::proto::asr::{
    RecognitionConfig, SpeakerDiarizationConfig, SpeechContext, StreamingRecognitionConfig,
    StreamingRecognitionResult, StreamingRecognizeRequest, StreamingRecognizeResponse,
    streaming_recognize_request::StreamingRequest,
};
use super::{
    Consumed, Engine, EngineError, EngineEvent, EngineInput, EngineStream, Readiness,
    STREAM_CHANNEL_DEPTH, StreamParams, TranscriptResult,
};
use crate::audio::pcm::to_s16;
use crate::config::RivaConfig;
use crate::protocol::{ErrorCode, Word};

pub const NAME: &str = "riva";

/// The rate sent to Riva (its ASR models' rate).
const RATE: u32 = 16_000;
/// Samples per request: 100 ms.
const CHUNK: usize = (RATE / 10) as usize;
/// Requests queued for a call before the stream waits for the network.
const REQUEST_DEPTH: usize = 32;

/// Why the engine could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum RivaSetupError {
    #[error("invalid AUSCULT_RIVA_URL: {0}")]
    Url(String),
    #[error("cannot read AUSCULT_RIVA_CA_FILE {path}: {source}")]
    CaFile {
        path: String,
        source: std::io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("AUSCULT_RIVA_FUNCTION_ID or AUSCULT_RIVA_API_KEY is not a valid header value")]
    Metadata,
}

/// The metadata sent on every call (the hosted endpoint's auth).
#[derive(Clone, Default)]
struct CallMetadata {
    function_id: Option<AsciiMetadataValue>,
    authorization: Option<AsciiMetadataValue>,
}

pub struct RivaEngine {
    endpoint: Endpoint,
    channel: Channel,
    metadata: CallMetadata,
    settings: Arc<RivaConfig>,
}

impl RivaEngine {
    /// Builds the shared channel (connected lazily: the server starts even
    /// when Riva is down; `/ready` says whether it answers).
    pub fn new(settings: &RivaConfig) -> Result<Self, RivaSetupError> {
        install_crypto_provider();
        let mut endpoint = Endpoint::from_shared(settings.url.clone())
            .map_err(|e| RivaSetupError::Url(e.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        if settings.url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_enabled_roots();
            if let Some(path) = &settings.ca_file {
                let pem = std::fs::read(path).map_err(|source| RivaSetupError::CaFile {
                    path: path.display().to_string(),
                    source,
                })?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| RivaSetupError::Tls(e.to_string()))?;
        }
        let channel = endpoint.connect_lazy();
        let mut metadata = CallMetadata::default();
        if let Some(id) = &settings.function_id {
            metadata.function_id =
                Some(MetadataValue::try_from(id.as_str()).map_err(|_| RivaSetupError::Metadata)?);
        }
        if let Some(key) = &settings.api_key {
            let mut value =
                MetadataValue::try_from(format!("Bearer {}", key.expose_secret().trim()))
                    .map_err(|_| RivaSetupError::Metadata)?;
            value.set_sensitive(true);
            metadata.authorization = Some(value);
        }
        Ok(RivaEngine {
            endpoint,
            channel,
            metadata,
            settings: Arc::new(settings.clone()),
        })
    }
}

#[async_trait]
impl Engine for RivaEngine {
    fn name(&self) -> &str {
        NAME
    }

    fn engine_rate(&self, _input_rate: u32) -> u32 {
        RATE
    }

    async fn open(&self, params: StreamParams) -> Result<EngineStream, EngineError> {
        if params.sample_rate != RATE {
            return Err(EngineError::BadParams(format!(
                "riva streams take {RATE} Hz audio"
            )));
        }
        let (audio_tx, audio_rx) = mpsc::channel(STREAM_CHANNEL_DEPTH);
        let (events_tx, events_rx) = mpsc::channel(STREAM_CHANNEL_DEPTH);
        let stream = RivaStream {
            client: self.channel.clone(),
            metadata: self.metadata.clone(),
            config: recognition_config(&self.settings, &params.language),
            max_retries: self.settings.max_retries,
            session_id: params.session_id,
            events: events_tx,
            pending: Vec::new(),
            pending_start: 0,
            sent_upto: 0,
            attempt_start: 0,
            next_id: 0,
            open: None,
            last_final_end: 0.0,
            keepalive: self.settings.keepalive,
            call_sent: 0,
            inserted: Vec::new(),
            progress: false,
            consumed: Arc::default(),
        };
        let consumed = Arc::clone(&stream.consumed);
        tokio::spawn(stream.run(audio_rx));
        Ok(EngineStream {
            audio: audio_tx,
            events: events_rx,
            lag_ms: Arc::new(AtomicU64::new(0)),
            consumed,
        })
    }

    async fn readiness(&self) -> Readiness {
        // A fresh connection (not the shared channel): does the endpoint answer now?
        let probe = self
            .endpoint
            .clone()
            .connect_timeout(Duration::from_secs(2));
        match tokio::time::timeout(Duration::from_secs(3), probe.connect()).await {
            Ok(Ok(_)) => Readiness::ready(format!("riva endpoint {} answers", self.settings.url)),
            Ok(Err(e)) => Readiness::not_ready(format!(
                "riva endpoint {} does not answer: {e}",
                self.settings.url
            )),
            Err(_) => Readiness::not_ready(format!(
                "riva endpoint {} does not answer (timeout)",
                self.settings.url
            )),
        }
    }
}

/// Both rustls back ends are in the build (ring here, aws-lc-rs for the AWS
/// SDKs), so rustls cannot pick one itself: make ring the process default
/// (a no-op when one is already installed).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The config sent first on every call.
fn recognition_config(settings: &RivaConfig, language: &str) -> StreamingRecognitionConfig {
    let speech_contexts = if settings.phrases.is_empty() {
        Vec::new()
    } else {
        vec![SpeechContext {
            phrases: settings.phrases.clone(),
            boost: settings.phrase_boost,
        }]
    };
    StreamingRecognitionConfig {
        config: Some(RecognitionConfig {
            encoding: proto::AudioEncoding::LinearPcm as i32,
            sample_rate_hertz: RATE as i32,
            language_code: language.to_owned(),
            max_alternatives: 1,
            speech_contexts,
            audio_channel_count: 1,
            enable_word_time_offsets: true,
            enable_automatic_punctuation: true,
            model: settings.model.clone().unwrap_or_default(),
            diarization_config: settings.diarization.then_some(SpeakerDiarizationConfig {
                enable_speaker_diarization: true,
                max_speaker_count: 0,
            }),
            ..Default::default()
        }),
        interim_results: true,
    }
}

fn audio_request(samples: &[i16]) -> StreamingRecognizeRequest {
    let mut bytes = Vec::with_capacity(samples.len() * 2);
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    StreamingRecognizeRequest {
        streaming_request: Some(StreamingRequest::AudioContent(bytes)),
        id: None,
    }
}

/// Waits for room in the call's request channel; false when it is closed.
async fn reserve(requests: &Option<mpsc::Sender<StreamingRecognizeRequest>>) -> bool {
    match requests {
        Some(tx) => tx.reserve().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Failures a new call may get past (a dropped stream, an idle stream
/// closed by the server); auth and configuration errors are not retried.
fn retryable(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::Unavailable
            | Code::InvalidArgument
            | Code::Internal
            | Code::Unknown
            | Code::Aborted
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
    )
}

/// What one call's response task reports.
type CallEvent = Result<StreamingRecognizeResponse, tonic::Status>;

/// One open `StreamingRecognize` call.
struct Call {
    requests: Option<mpsc::Sender<StreamingRecognizeRequest>>,
    responses: mpsc::Receiver<CallEvent>,
}

/// The utterance whose interims have been sent as partials.
struct OpenUtterance {
    result_id: String,
    text: String,
}

/// One session's stream state. Sample positions are absolute (16 kHz samples
/// since the session's stream started).
struct RivaStream {
    client: Channel,
    metadata: CallMetadata,
    config: StreamingRecognitionConfig,
    max_retries: u32,
    session_id: String,
    events: mpsc::Sender<EngineEvent>,
    /// Audio since the last final (resent after a reconnect).
    pending: Vec<i16>,
    pending_start: u64,
    /// How far the current call has been sent audio.
    sent_upto: u64,
    /// Where the current call's audio (and so its time zero) starts.
    attempt_start: u64,
    next_id: u64,
    open: Option<OpenUtterance>,
    /// Session seconds where the last final ended.
    last_final_end: f64,
    /// Silence after this long without audio (a client pause).
    keepalive: Duration,
    /// Samples sent on the current call, keepalive silence included.
    call_sent: u64,
    /// Keepalive silence in the current call: (call sample, length).
    inserted: Vec<(u64, u64)>,
    /// The current call has delivered results.
    progress: bool,
    /// How far the session's audio has gone out on a call.
    consumed: Arc<Consumed>,
}

enum Outcome {
    /// The session is gone or finished.
    Done,
    /// The call failed or ended early; reconnect.
    Retry(String),
}

impl RivaStream {
    async fn run(mut self, mut audio: mpsc::Receiver<EngineInput>) {
        let mut finishing = false;
        let mut failures: u32 = 0;
        loop {
            match self.drive(&mut audio, &mut finishing).await {
                Outcome::Done => return,
                Outcome::Retry(why) => {
                    // Retries are bounded in a row: a call that got results made progress.
                    if std::mem::take(&mut self.progress) {
                        failures = 0;
                    }
                    failures += 1;
                    tracing::warn!(event = "riva_stream_retry", session_id = %self.session_id, attempt = failures, error = %why);
                    if failures > self.max_retries {
                        let _ = self
                            .events
                            .send(EngineEvent::Failed {
                                message: format!("riva: {why}"),
                            })
                            .await;
                        return;
                    }
                    let _ = self
                        .events
                        .send(EngineEvent::Warning {
                            code: ErrorCode::EngineRetrying,
                            message: "the speech engine reconnects".into(),
                        })
                        .await;
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(failures))).await;
                }
            }
        }
    }

    /// Opens a call, resends the pending audio and drives it until it ends.
    async fn drive(
        &mut self,
        audio: &mut mpsc::Receiver<EngineInput>,
        finishing: &mut bool,
    ) -> Outcome {
        let mut call = self.open_call();
        self.attempt_start = self.pending_start;
        self.sent_upto = self.pending_start;
        self.send_ready(&mut call, *finishing);
        let mut last_sent = tokio::time::Instant::now();
        loop {
            // More to send than the request channel took: wait for room.
            let backlog = call.requests.is_some() && self.has_unsent(*finishing);
            let idle = call.requests.is_some() && !*finishing && !backlog;
            tokio::select! {
                input = audio.recv(), if !*finishing => match input {
                    Some(EngineInput::Audio(chunk)) => {
                        self.pending.extend(chunk.iter().map(|&s| to_s16(s)));
                        if self.send_ready(&mut call, false) {
                            last_sent = tokio::time::Instant::now();
                        }
                    }
                    Some(EngineInput::Finish) => {
                        *finishing = true;
                        self.send_ready(&mut call, true);
                    }
                    None => return Outcome::Done,
                },
                room = reserve(&call.requests), if backlog => {
                    if room {
                        self.send_ready(&mut call, *finishing);
                        last_sent = tokio::time::Instant::now();
                    } else {
                        // The call is over: its outcome arrives on `responses`.
                        call.requests = None;
                    }
                }
                () = tokio::time::sleep_until(last_sent + self.keepalive), if idle => {
                    // A client pause: silence keeps Riva from closing the stream.
                    self.send_silence(&mut call);
                    last_sent = tokio::time::Instant::now();
                }
                event = call.responses.recv() => match event {
                    Some(Ok(response)) => {
                        for result in response.results {
                            if self.on_result(result).await.is_err() {
                                return Outcome::Done;
                            }
                        }
                    }
                    Some(Err(status)) => {
                        let why = format!("{:?}: {}", status.code(), status.message());
                        if !retryable(status.code()) {
                            let _ = self.events.send(EngineEvent::Failed { message: format!("riva: {why}") }).await;
                            return Outcome::Done;
                        }
                        return Outcome::Retry(why);
                    }
                    None => {
                        if *finishing {
                            // Pending text the server never finalized.
                            let _ = self.finalize_open().await;
                            let _ = self.events.send(EngineEvent::Finished).await;
                            return Outcome::Done;
                        }
                        // Reconnect and resend the audio since the last final.
                        return Outcome::Retry("the call ended before the session".into());
                    }
                },
            }
        }
    }

    fn open_call(&mut self) -> Call {
        self.call_sent = 0;
        self.inserted.clear();
        let (req_tx, req_rx) = mpsc::channel(REQUEST_DEPTH);
        let _ = req_tx.try_send(StreamingRecognizeRequest {
            streaming_request: Some(StreamingRequest::StreamingConfig(self.config.clone())),
            id: None,
        });
        let (resp_tx, resp_rx) = mpsc::channel(STREAM_CHANNEL_DEPTH);
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(req_rx));
        if let Some(v) = &self.metadata.function_id {
            request.metadata_mut().insert("function-id", v.clone());
        }
        if let Some(v) = &self.metadata.authorization {
            request.metadata_mut().insert("authorization", v.clone());
        }
        let mut client = RivaSpeechRecognitionClient::new(self.client.clone());
        tokio::spawn(async move {
            let mut stream = match client.streaming_recognize(request).await {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    let _ = resp_tx.send(Err(status)).await;
                    return;
                }
            };
            loop {
                match stream.message().await {
                    Ok(Some(m)) => {
                        if resp_tx.send(Ok(m)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(status) => {
                        let _ = resp_tx.send(Err(status)).await;
                        return;
                    }
                }
            }
        });
        Call {
            requests: Some(req_tx),
            responses: resp_rx,
        }
    }

    /// Whether audio waits to be sent: a whole chunk, or any when finishing.
    fn has_unsent(&self, all: bool) -> bool {
        let unsent = self.pending_start + self.pending.len() as u64 - self.sent_upto;
        unsent >= CHUNK as u64 || (all && unsent > 0)
    }

    /// Sends whole 100 ms chunks of unsent audio (and the remainder when
    /// `all`) as far as the request channel has room; after the last audio
    /// when `all`, half-closes the call so Riva flushes its finals. Returns
    /// whether anything was sent.
    fn send_ready(&mut self, call: &mut Call, all: bool) -> bool {
        let Some(requests) = &call.requests else {
            return false;
        };
        let mut sent = false;
        let end = self.pending_start + self.pending.len() as u64;
        while self.sent_upto < end {
            let from = (self.sent_upto - self.pending_start) as usize;
            let to = (from + CHUNK).min(self.pending.len());
            if to - from < CHUNK && !all {
                break;
            }
            if requests
                .try_send(audio_request(&self.pending[from..to]))
                .is_err()
            {
                return sent; // full: the caller waits for room
            }
            self.sent_upto += (to - from) as u64;
            self.call_sent += (to - from) as u64;
            self.consumed.reached(self.sent_upto);
            sent = true;
        }
        if all {
            call.requests = None;
        }
        sent
    }

    /// 100 ms of silence the session never sent; its place in the call is
    /// remembered so the call's times still map onto the session's.
    fn send_silence(&mut self, call: &mut Call) {
        if let Some(requests) = &call.requests
            && requests.try_send(audio_request(&[0; CHUNK])).is_ok()
        {
            self.inserted.push((self.call_sent, CHUNK as u64));
            self.call_sent += CHUNK as u64;
        }
    }

    /// The session sample for a time in ms in the current call: the call's
    /// audio starts at `attempt_start`, minus the keepalive silence before it.
    fn session_sample(&self, call_ms: i64) -> u64 {
        let at = (call_ms.max(0) as u64) * u64::from(RATE) / 1000;
        let mut silence = 0;
        for &(start, len) in &self.inserted {
            if start >= at {
                break;
            }
            silence += len.min(at - start);
        }
        self.attempt_start + at - silence
    }

    /// Seconds in the session for a time in ms in the current call.
    fn session_secs(&self, call_ms: i64) -> f64 {
        self.session_sample(call_ms) as f64 / f64::from(RATE)
    }

    fn sent_secs(&self) -> f64 {
        self.sent_upto as f64 / f64::from(RATE)
    }

    async fn on_result(&mut self, result: StreamingRecognitionResult) -> Result<(), ()> {
        self.progress = true;
        let Some(alt) = result.alternatives.into_iter().next() else {
            return Ok(());
        };
        let text = alt.transcript.trim().to_owned();
        if !result.is_final {
            if text.is_empty() {
                return Ok(());
            }
            let result_id = match &mut self.open {
                Some(open) => {
                    open.text = text.clone();
                    open.result_id.clone()
                }
                None => {
                    let result_id = self.new_id();
                    self.open = Some(OpenUtterance {
                        result_id: result_id.clone(),
                        text: text.clone(),
                    });
                    result_id
                }
            };
            let end = if result.audio_processed > 0.0 {
                self.session_secs((f64::from(result.audio_processed) * 1000.0) as i64)
            } else {
                self.sent_secs()
            };
            return self
                .emit(TranscriptResult {
                    result_id,
                    is_partial: true,
                    start: self.last_final_end,
                    end: end.max(self.last_final_end),
                    text,
                    words: Vec::new(),
                })
                .await;
        }
        let open = self.open.take();
        let words: Vec<Word> = alt
            .words
            .iter()
            .map(|w| Word {
                word: w.word.clone(),
                start: self.session_secs(i64::from(w.start_time)),
                end: self.session_secs(i64::from(w.end_time)),
                confidence: Some(w.confidence),
            })
            .collect();
        // The audio up to the end of the final is done: never resent.
        let cut_ms = alt
            .words
            .last()
            .map(|w| i64::from(w.end_time))
            .or((result.audio_processed > 0.0)
                .then(|| (f64::from(result.audio_processed) * 1000.0) as i64));
        let end = match cut_ms {
            Some(ms) => {
                self.cut_pending(ms);
                self.session_secs(ms)
            }
            None => self.sent_secs(),
        };
        if text.is_empty() && open.is_none() {
            return Ok(());
        }
        let result_id = open.map(|o| o.result_id).unwrap_or_else(|| self.new_id());
        let start = words
            .first()
            .map(|w| w.start)
            .unwrap_or(self.last_final_end);
        self.last_final_end = end;
        self.emit(TranscriptResult {
            result_id,
            is_partial: false,
            start,
            end: end.max(start),
            text,
            words,
        })
        .await
    }

    /// Drops the audio before `call_ms` of the current call from the resend buffer.
    fn cut_pending(&mut self, call_ms: i64) {
        let abs = self.session_sample(call_ms).min(self.sent_upto);
        if abs > self.pending_start {
            let n = ((abs - self.pending_start) as usize).min(self.pending.len());
            self.pending.drain(..n);
            self.pending_start += n as u64;
        }
    }

    /// Turns the open utterance's last interim into a final (the server
    /// never sent `is_final` for it).
    async fn finalize_open(&mut self) -> Result<(), ()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let end = self.sent_secs().max(self.last_final_end);
        let start = self.last_final_end;
        // The audio it covers was recognized: do not resend it.
        let n = ((self.sent_upto - self.pending_start) as usize).min(self.pending.len());
        self.pending.drain(..n);
        self.pending_start += n as u64;
        self.last_final_end = end;
        self.emit(TranscriptResult {
            result_id: open.result_id,
            is_partial: false,
            start,
            end,
            text: open.text,
            words: Vec::new(),
        })
        .await
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("riva-{}", self.next_id)
    }

    async fn emit(&self, result: TranscriptResult) -> Result<(), ()> {
        self.events
            .send(EngineEvent::Transcript(result))
            .await
            .map_err(|_| ())
    }
}
