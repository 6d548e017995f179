//! One session's Transcribe stream: 100 ms chunks, keepalive silence, and
//! reopening a failed stream with the audio since the last final resent.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use aws_sdk_transcribestreaming::Client;
use aws_sdk_transcribestreaming::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_transcribestreaming::operation::start_medical_stream_transcription::StartMedicalStreamTranscriptionOutput;
use aws_sdk_transcribestreaming::operation::start_stream_transcription::StartStreamTranscriptionOutput;
use aws_sdk_transcribestreaming::primitives::Blob;
use aws_sdk_transcribestreaming::types::error::AudioStreamError;
use aws_sdk_transcribestreaming::types::{
    AudioEvent, AudioStream, ContentIdentificationType, ContentRedactionType, LanguageCode,
    MediaEncoding, MedicalContentIdentificationType, MedicalTranscriptResultStream,
    PartialResultsStability, Specialty, TranscriptResultStream, Type,
};
use std::time::Duration;
use tokio::sync::mpsc;

use tokio::time::Instant;

use super::results::{ResultIds, Segment, Timeline, from_medical, from_standard};
use super::{TranscribeSettings, Variant};
use crate::audio::pcm::{s16le_samples, to_s16};
use crate::engine::{Consumed, EngineEvent, EngineInput, StreamParams};
use crate::protocol::ErrorCode;

/// Why a stream attempt ended.
enum Outcome {
    /// All finals arrived after our end of audio.
    Done,
    /// The session went away.
    Abandoned,
    /// The stream reached its age limit, ended cleanly and gave its finals.
    Rotated,
    /// The service failed the stream; `limit` for `LimitExceededException`.
    Failed { limit: bool, message: String },
}

/// The service side of one open stream.
enum Output {
    Medical(Box<StartMedicalStreamTranscriptionOutput>),
    Standard(Box<StartStreamTranscriptionOutput>),
}

impl Output {
    /// The next results (`None` when the service ends the stream).
    async fn recv(&mut self) -> Result<Option<Vec<Segment>>, (bool, String)> {
        fn fail<E: ProvideErrorMetadata + std::error::Error + 'static>(e: E) -> (bool, String) {
            let limit = e.code() == Some("LimitExceededException");
            (limit, DisplayErrorContext(&e).to_string())
        }
        match self {
            Output::Medical(out) => {
                match out.transcript_result_stream.recv().await.map_err(fail)? {
                    None => Ok(None),
                    Some(MedicalTranscriptResultStream::TranscriptEvent(ev)) => Ok(Some(
                        ev.transcript
                            .and_then(|t| t.results)
                            .unwrap_or_default()
                            .into_iter()
                            .filter_map(from_medical)
                            .collect(),
                    )),
                    Some(_) => Ok(Some(Vec::new())),
                }
            }
            Output::Standard(out) => {
                match out.transcript_result_stream.recv().await.map_err(fail)? {
                    None => Ok(None),
                    Some(TranscriptResultStream::TranscriptEvent(ev)) => Ok(Some(
                        ev.transcript
                            .and_then(|t| t.results)
                            .unwrap_or_default()
                            .into_iter()
                            .filter_map(from_standard)
                            .collect(),
                    )),
                    Some(_) => Ok(Some(Vec::new())),
                }
            }
        }
    }
}

/// PCM chunks flowing into the SDK's request body.
struct AudioIn(mpsc::Receiver<Vec<u8>>);

impl futures_util::Stream for AudioIn {
    type Item = Result<AudioStream, AudioStreamError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|chunk| {
            chunk.map(|bytes| {
                Ok(AudioStream::AudioEvent(
                    AudioEvent::builder().audio_chunk(Blob::new(bytes)).build(),
                ))
            })
        })
    }
}

/// What the session has given the engine and the service has not finalized.
#[derive(Default)]
struct Pending {
    /// s16le session audio not yet covered by a final.
    bytes: Vec<u8>,
    /// Session sample index where `bytes` starts.
    start: u64,
    /// The session sent `Finish`.
    finishing: bool,
    /// The session went away.
    gone: bool,
}

impl Pending {
    /// Takes one message from the session.
    fn take(&mut self, msg: Option<EngineInput>) {
        match msg {
            Some(EngineInput::Audio(samples)) => {
                self.bytes
                    .extend(samples.iter().flat_map(|&s| to_s16(s).to_le_bytes()));
            }
            Some(EngineInput::Finish) => self.finishing = true,
            None => self.gone = true,
        }
    }

    /// Whether more session input can arrive.
    fn open(&self) -> bool {
        !self.finishing && !self.gone
    }
}

/// One open stream.
struct Live {
    output: Output,
    /// The SDK's audio input; `None` once its end frame is due.
    sdk_tx: Option<mpsc::Sender<Vec<u8>>>,
    ids: ResultIds,
    timeline: Timeline,
    rotate_at: Instant,
    /// Ending at its age limit: no more audio, its finals still to come.
    rotating: bool,
    /// Seconds of audio (the client's and keepalive silence) it was given.
    service_secs: f64,
    /// Service seconds where the open partial ends (how far it has heard).
    heard_secs: f64,
    /// Bytes of [`Pending::bytes`] it was given.
    sent: usize,
    last_audio: Instant,
}

fn failed(message: &str) -> Outcome {
    Outcome::Failed {
        limit: false,
        message: message.to_owned(),
    }
}

/// How to reach the service for one session (fixed for the session).
struct Service {
    client: Client,
    variant: Variant,
    settings: TranscribeSettings,
    params: StreamParams,
}

pub(super) struct Run {
    service: Service,
    events: mpsc::Sender<EngineEvent>,
    audio: Pending,
    streams_opened: u32,
    /// Where `audio` started when a stream last ended with audible audio
    /// left unfinalized (see [`Run::finals_complete`]).
    suspect_end_at: Option<u64>,
    /// The protocol id of a partial whose final has not arrived.
    open_partial: Option<String>,
    /// A final arrived since the last failure (failures count only in a row).
    progress: bool,
    lag_ms: Arc<AtomicU64>,
    /// How far the session's audio has been handed to a stream.
    consumed: Arc<Consumed>,
}

impl Run {
    pub(super) fn new(
        client: Client,
        variant: Variant,
        settings: TranscribeSettings,
        params: StreamParams,
        events: mpsc::Sender<EngineEvent>,
        (lag_ms, consumed): (Arc<AtomicU64>, Arc<Consumed>),
    ) -> Self {
        Run {
            service: Service {
                client,
                variant,
                settings,
                params,
            },
            events,
            audio: Pending::default(),
            streams_opened: 0,
            suspect_end_at: None,
            open_partial: None,
            progress: false,
            lag_ms,
            consumed,
        }
    }

    fn rate(&self) -> u32 {
        self.service.params.sample_rate
    }

    fn settings(&self) -> &TranscribeSettings {
        &self.service.settings
    }

    /// Bytes in one 100 ms chunk.
    fn chunk_bytes(&self) -> usize {
        self.rate() as usize / 10 * 2
    }

    pub(super) async fn run(mut self, mut input: mpsc::Receiver<EngineInput>) {
        let session_id = self.service.params.session_id.clone();
        let mut failures = 0u32;
        loop {
            let (limit, message) = match self.attempt(&mut input).await {
                Outcome::Done => {
                    let _ = self.events.send(EngineEvent::Finished).await;
                    return;
                }
                Outcome::Abandoned => return,
                Outcome::Rotated => {
                    tracing::info!(event = "transcribe_stream_rotated", session_id = %session_id, streams = self.streams_opened);
                    continue;
                }
                Outcome::Failed { limit, message } => (limit, message),
            };
            if std::mem::take(&mut self.progress) {
                failures = 0;
            }
            failures += 1;
            tracing::warn!(
                event = "transcribe_stream_failed",
                session_id = %session_id,
                attempt = failures,
                limit_exceeded = limit,
                error = %message
            );
            if failures >= self.settings().max_attempts {
                let _ = self.events.send(EngineEvent::Failed { message }).await;
                return;
            }
            let warning = if limit {
                "the speech service is at its stream limit; retrying"
            } else {
                "the speech service stream failed; reconnecting"
            };
            let _ = self
                .events
                .send(EngineEvent::Warning {
                    code: ErrorCode::EngineRetrying,
                    message: warning.to_owned(),
                })
                .await;
            let base = self.settings().backoff * 2u32.saturating_pow(failures - 1);
            let jitter = base.mul_f64(fastrand::f64() * 0.5);
            // The client's audio keeps coming meanwhile; it shows as lag.
            let wake = tokio::time::sleep(base + jitter);
            tokio::pin!(wake);
            loop {
                tokio::select! {
                    () = &mut wake => break,
                    msg = input.recv(), if self.audio.open() => {
                        self.audio.take(msg);
                        self.publish_lag(0, 0.0);
                    }
                }
            }
            if self.audio.gone {
                return;
            }
        }
    }

    /// Opens one stream, resends the audio since the last final, then streams
    /// until the end, a failure, or the stream's age limit.
    async fn attempt(&mut self, input: &mut mpsc::Receiver<EngineInput>) -> Outcome {
        let mut live = match self.open_stream(input).await {
            Ok(live) => live,
            Err(outcome) => return outcome,
        };
        loop {
            if let Err(outcome) = self.feed(&mut live).await {
                return outcome;
            }
            let keepalive = tokio::time::sleep_until(live.last_audio + self.settings().keepalive);
            tokio::select! {
                msg = input.recv(), if self.audio.open() => {
                    self.audio.take(msg);
                    if self.audio.gone {
                        return Outcome::Abandoned;
                    }
                    live.last_audio = Instant::now();
                }
                results = live.output.recv() => {
                    if let Some(outcome) = self.on_results(&mut live, results).await {
                        return outcome;
                    }
                }
                () = keepalive, if live.sdk_tx.is_some() => {
                    if let Err(outcome) = self.keepalive(&mut live).await {
                        return outcome;
                    }
                }
            }
        }
    }

    /// Opens a stream; the client's audio keeps coming meanwhile.
    async fn open_stream(
        &mut self,
        input: &mut mpsc::Receiver<EngineInput>,
    ) -> Result<Live, Outcome> {
        let (sdk_tx, sdk_rx) = mpsc::channel::<Vec<u8>>(crate::engine::STREAM_CHANNEL_DEPTH);
        let send_timeout = self.settings().send_timeout;
        let opened = {
            let opening = tokio::time::timeout(send_timeout, self.service.open(sdk_rx));
            tokio::pin!(opening);
            loop {
                tokio::select! {
                    opened = &mut opening => break opened,
                    msg = input.recv(), if self.audio.open() => self.audio.take(msg),
                }
            }
        };
        if self.audio.gone {
            return Err(Outcome::Abandoned);
        }
        let output = match opened {
            Ok(Ok(output)) => output,
            Ok(Err(failed)) => return Err(failed),
            Err(_) => return Err(failed("opening the stream timed out")),
        };
        self.streams_opened += 1;
        let now = Instant::now();
        Ok(Live {
            output,
            sdk_tx: Some(sdk_tx),
            ids: ResultIds::new(self.streams_opened, self.open_partial.clone()),
            timeline: Timeline::new(self.audio.start as f64 / f64::from(self.rate())),
            rotate_at: now + self.settings().max_stream,
            rotating: false,
            service_secs: 0.0,
            heard_secs: 0.0,
            sent: 0,
            last_audio: now,
        })
    }

    /// Hands the stream every whole chunk there is (all of it once
    /// finishing), up to a rotation point, and ends its input when done.
    async fn feed(&mut self, live: &mut Live) -> Result<(), Outcome> {
        let rate = f64::from(self.rate());
        while !live.rotating
            && let Some(tx) = &live.sdk_tx
        {
            let available = self.audio.bytes.len() - live.sent;
            let take = if available >= self.chunk_bytes() {
                self.chunk_bytes()
            } else if self.audio.finishing && available > 0 {
                available
            } else {
                break;
            };
            let chunk = &self.audio.bytes[live.sent..live.sent + take];
            if rotation_point(live.rotate_at, chunk) {
                live.rotating = true;
                break;
            }
            if !self.hand_over(tx, chunk.to_vec()).await {
                return Err(failed("the stream stopped taking audio"));
            }
            live.sent += take;
            live.service_secs += take as f64 / 2.0 / rate;
            self.consumed
                .reached(self.audio.start + live.sent as u64 / 2);
        }
        let behind = if self.open_partial.is_some() {
            live.service_secs - live.heard_secs
        } else {
            0.0
        };
        self.publish_lag(live.sent, behind);
        if self.audio.finishing || live.rotating {
            // Dropping the sender ends the SDK's input: it sends the end frame.
            live.sdk_tx = None;
        }
        Ok(())
    }

    /// Forwards what the service sent; `Some` when the stream is over.
    async fn on_results(
        &mut self,
        live: &mut Live,
        results: Result<Option<Vec<Segment>>, (bool, String)>,
    ) -> Option<Outcome> {
        match results {
            Ok(Some(segments)) => {
                for segment in segments {
                    if segment.is_partial {
                        live.heard_secs = segment.end;
                    }
                    let id = live.ids.protocol_id(&segment.result_id);
                    let (result, entities) = live.timeline.map(id, segment);
                    if !self.deliver(result, entities, &mut live.sent).await {
                        return Some(Outcome::Abandoned);
                    }
                }
                None
            }
            // The old stream gave its finals; the rest goes on a new one.
            Ok(None) if live.rotating => Some(Outcome::Rotated),
            Ok(None) if self.audio.finishing && live.sdk_tx.is_none() && self.finals_complete() => {
                Some(Outcome::Done)
            }
            Ok(None) => Some(failed("the service ended the stream early")),
            Err((limit, message)) => Some(Outcome::Failed { limit, message }),
        }
    }

    /// The client is pausing: 100 ms of silence keeps the stream alive, or,
    /// past the stream's age limit, the pause is where it rotates.
    async fn keepalive(&mut self, live: &mut Live) -> Result<(), Outcome> {
        if Instant::now() >= live.rotate_at {
            live.rotating = true;
            return Ok(());
        }
        live.timeline.silence.push((live.service_secs, 0.1));
        live.service_secs += 0.1;
        live.last_audio = Instant::now();
        let silence = vec![0u8; self.chunk_bytes()];
        if let Some(tx) = &live.sdk_tx
            && !self.hand_over(tx, silence).await
        {
            return Err(failed("the stream stopped taking audio"));
        }
        Ok(())
    }

    /// How far results trail the client's audio: audio not yet handed to the
    /// service, plus, while a result is open, how far the service's words
    /// trail what it was given.
    fn publish_lag(&self, sent: usize, behind_secs: f64) {
        let unsent = (self.audio.bytes.len() - sent.min(self.audio.bytes.len())) as u64 / 2;
        let ms =
            unsent * 1000 / u64::from(self.rate().max(1)) + (behind_secs.max(0.0) * 1000.0) as u64;
        self.lag_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether a stream that ended after our end of audio gave all its finals.
    /// A normal end and a service that hung up early look the same to the
    /// SDK; audible audio after the last final means words may be missing,
    /// so the audio is tried once more on a new stream (noise that never
    /// becomes words is then accepted).
    fn finals_complete(&mut self) -> bool {
        const AUDIBLE: i16 = 1_000;
        // At least 100 ms of it: a resampler's ringing after the last word is not speech.
        let audible = s16le_samples(&self.audio.bytes)
            .filter(|s| s.unsigned_abs() > AUDIBLE as u16)
            .count()
            >= self.rate() as usize / 10;
        if !audible || self.suspect_end_at == Some(self.audio.start) {
            return true;
        }
        self.suspect_end_at = Some(self.audio.start);
        false
    }

    /// Forwards one result; a final also drops the audio it covers from the
    /// resend buffer. `false` when the session is gone.
    async fn deliver(
        &mut self,
        result: crate::engine::TranscriptResult,
        entities: Vec<crate::protocol::Entity>,
        sent: &mut usize,
    ) -> bool {
        if result.is_partial {
            self.open_partial = Some(result.result_id.clone());
        } else {
            self.progress = true;
            if self.open_partial.as_ref() == Some(&result.result_id) {
                self.open_partial = None;
            }
            let end = (result.end * f64::from(self.rate())).round() as u64;
            let covered = end.saturating_sub(self.audio.start) as usize * 2;
            let drop = covered.min(*sent);
            self.audio.bytes.drain(..drop);
            *sent -= drop;
            self.audio.start += drop as u64 / 2;
            if !entities.is_empty() {
                let announce = EngineEvent::Entities {
                    result_id: result.result_id.clone(),
                    entities,
                };
                if self.events.send(announce).await.is_err() {
                    return false;
                }
            }
        }
        self.events
            .send(EngineEvent::Transcript(result))
            .await
            .is_ok()
    }

    async fn hand_over(&self, tx: &mpsc::Sender<Vec<u8>>, chunk: Vec<u8>) -> bool {
        matches!(
            tokio::time::timeout(self.settings().send_timeout, tx.send(chunk)).await,
            Ok(Ok(()))
        )
    }
}

/// How long past its age limit a stream waits for a quiet chunk to end on,
/// before it is ended even mid-speech (still ahead of the 4-hour cut).
pub(super) const ROTATION_GRACE: Duration = Duration::from_secs(60);

/// Whether a stream past its age limit ends before `chunk`: ahead of the
/// service's 4-hour cut the stream is ended cleanly (its finals still arrive)
/// and the session goes on on a new one. It ends before a quiet chunk, so no
/// word is split across two streams (the second would hear half a word).
fn rotation_point(rotate_at: Instant, chunk: &[u8]) -> bool {
    let now = Instant::now();
    now >= rotate_at && (quiet(chunk) || now >= rotate_at + ROTATION_GRACE)
}

/// Whether s16le audio is below 1% of full scale (RMS): a pause, not speech.
fn quiet(chunk: &[u8]) -> bool {
    let samples = chunk.len() / 2;
    if samples == 0 {
        return true;
    }
    let energy: f64 = s16le_samples(chunk).map(|s| f64::from(s).powi(2)).sum();
    (energy / samples as f64).sqrt() < 0.01 * 32768.0
}

impl Service {
    async fn open(&self, audio: mpsc::Receiver<Vec<u8>>) -> Result<Output, Outcome> {
        let s = &self.settings;
        let rate = self.params.sample_rate as i32;
        let refused = |limit: bool, message: String| Outcome::Failed { limit, message };
        match self.variant {
            Variant::Medical => {
                let mut req = self
                    .client
                    .start_medical_stream_transcription()
                    .language_code(LanguageCode::EnUs)
                    .media_sample_rate_hertz(rate)
                    .media_encoding(MediaEncoding::Pcm)
                    .specialty(Specialty::from(s.specialty.as_str()))
                    .r#type(Type::from(s.kind.as_str()))
                    .show_speaker_label(s.speaker_labels)
                    .set_vocabulary_name(s.vocabulary.clone())
                    .audio_stream(AudioIn(audio).into());
                if s.phi {
                    req = req.content_identification_type(MedicalContentIdentificationType::Phi);
                }
                match req.send().await {
                    Ok(out) => Ok(Output::Medical(Box::new(out))),
                    Err(e) => Err(refused(
                        e.code() == Some("LimitExceededException"),
                        DisplayErrorContext(&e).to_string(),
                    )),
                }
            }
            Variant::Standard => {
                let mut req = self
                    .client
                    .start_stream_transcription()
                    .language_code(LanguageCode::from(self.params.language.as_str()))
                    .media_sample_rate_hertz(rate)
                    .media_encoding(MediaEncoding::Pcm)
                    .show_speaker_label(s.speaker_labels)
                    .set_vocabulary_name(s.vocabulary.clone())
                    .audio_stream(AudioIn(audio).into());
                if let Some(level) = &s.stability {
                    req = req
                        .enable_partial_results_stabilization(true)
                        .partial_results_stability(PartialResultsStability::from(level.as_str()));
                }
                match s.pii.as_deref() {
                    Some("identify") => {
                        req = req.content_identification_type(ContentIdentificationType::Pii)
                    }
                    Some("redact") => req = req.content_redaction_type(ContentRedactionType::Pii),
                    _ => {}
                }
                match req.send().await {
                    Ok(out) => Ok(Output::Standard(Box::new(out))),
                    Err(e) => Err(refused(
                        e.code() == Some("LimitExceededException"),
                        DisplayErrorContext(&e).to_string(),
                    )),
                }
            }
        }
    }
}
