//! One session's Transcribe stream: 100 ms chunks, keepalive silence, and
//! reopening a failed stream with the audio since the last final resent.

use std::pin::Pin;
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
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::results::{Segment, Timeline, from_medical, from_standard};
use super::{TranscribeSettings, Variant};
use crate::engine::{EngineEvent, EngineInput, StreamParams};
use crate::protocol::ErrorCode;

/// Why a stream attempt ended.
enum Outcome {
    /// All finals arrived after our end of audio.
    Done,
    /// The session went away.
    Abandoned,
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

pub(super) struct Run {
    client: Client,
    variant: Variant,
    settings: TranscribeSettings,
    params: StreamParams,
    events: mpsc::Sender<EngineEvent>,
    /// s16le session audio not yet covered by a final.
    unfinal: Vec<u8>,
    /// Session sample index where `unfinal` starts.
    unfinal_start: u64,
    /// The session sent `Finish`.
    finishing: bool,
    streams_opened: u32,
    /// Where `unfinal` started when a stream last ended with audible audio
    /// left unfinalized (see [`Run::finals_complete`]).
    suspect_end_at: Option<u64>,
}

impl Run {
    pub(super) fn new(
        client: Client,
        variant: Variant,
        settings: TranscribeSettings,
        params: StreamParams,
        events: mpsc::Sender<EngineEvent>,
    ) -> Self {
        Run {
            client,
            variant,
            settings,
            params,
            events,
            unfinal: Vec::new(),
            unfinal_start: 0,
            finishing: false,
            streams_opened: 0,
            suspect_end_at: None,
        }
    }

    fn rate(&self) -> u32 {
        self.params.sample_rate
    }

    /// Bytes in one 100 ms chunk.
    fn chunk_bytes(&self) -> usize {
        self.rate() as usize / 10 * 2
    }

    pub(super) async fn run(mut self, mut input: mpsc::Receiver<EngineInput>) {
        let mut failures = 0u32;
        loop {
            let outcome = self.attempt(&mut input).await;
            let (limit, message) = match outcome {
                Outcome::Done => {
                    let _ = self.events.send(EngineEvent::Finished).await;
                    return;
                }
                Outcome::Abandoned => return,
                Outcome::Failed { limit, message } => (limit, message),
            };
            failures += 1;
            tracing::warn!(
                event = "transcribe_stream_failed",
                session_id = %self.params.session_id,
                attempt = failures,
                limit_exceeded = limit,
                error = %message
            );
            if failures >= self.settings.max_attempts {
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
            let base = self.settings.backoff * 2u32.saturating_pow(failures - 1);
            let jitter = base.mul_f64(fastrand::f64() * 0.5);
            tokio::time::sleep(base + jitter).await;
        }
    }

    /// Opens one stream, resends the audio since the last final, then streams
    /// until the end or a failure.
    async fn attempt(&mut self, input: &mut mpsc::Receiver<EngineInput>) -> Outcome {
        let (sdk_tx, sdk_rx) = mpsc::channel::<Vec<u8>>(crate::engine::STREAM_CHANNEL_DEPTH);
        let mut output =
            match tokio::time::timeout(self.settings.send_timeout, self.open(sdk_rx)).await {
                Ok(Ok(output)) => output,
                Ok(Err(failed)) => return failed,
                Err(_) => {
                    return Outcome::Failed {
                        limit: false,
                        message: "opening the stream timed out".to_owned(),
                    };
                }
            };
        self.streams_opened += 1;
        let stream_no = self.streams_opened;
        let rate = f64::from(self.rate());
        let mut timeline = Timeline::new(self.unfinal_start as f64 / rate);
        let mut service_secs = 0.0;
        let mut sent = 0usize;
        let mut sdk_tx = Some(sdk_tx);
        let mut last_audio = Instant::now();
        loop {
            // Send every whole chunk we have (all of it once finishing).
            while let Some(tx) = &sdk_tx {
                let available = self.unfinal.len() - sent;
                let take = if available >= self.chunk_bytes() {
                    self.chunk_bytes()
                } else if self.finishing && available > 0 {
                    available
                } else {
                    break;
                };
                let chunk = self.unfinal[sent..sent + take].to_vec();
                if !self.hand_over(tx, chunk).await {
                    return Outcome::Failed {
                        limit: false,
                        message: "the stream stopped taking audio".to_owned(),
                    };
                }
                sent += take;
                service_secs += take as f64 / 2.0 / rate;
            }
            if self.finishing {
                // Dropping the sender ends the SDK's input: it sends the end frame.
                sdk_tx = None;
            }
            let keepalive = tokio::time::sleep_until(last_audio + self.settings.keepalive);
            tokio::select! {
                msg = input.recv(), if !self.finishing => match msg {
                    Some(EngineInput::Audio(samples)) => {
                        last_audio = Instant::now();
                        self.unfinal.extend(samples.iter().flat_map(|s| {
                            ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes()
                        }));
                    }
                    Some(EngineInput::Finish) => self.finishing = true,
                    None => return Outcome::Abandoned,
                },
                results = output.recv() => match results {
                    Ok(Some(segments)) => {
                        for segment in segments {
                            let (result, entities) = timeline.map(stream_no, segment);
                            if !self.deliver(result, entities, &mut sent).await {
                                return Outcome::Abandoned;
                            }
                        }
                    }
                    Ok(None) if self.finishing && sdk_tx.is_none() && self.finals_complete() => {
                        return Outcome::Done;
                    }
                    Ok(None) => {
                        return Outcome::Failed {
                            limit: false,
                            message: "the service ended the stream early".to_owned(),
                        };
                    }
                    Err((limit, message)) => return Outcome::Failed { limit, message },
                },
                () = keepalive, if sdk_tx.is_some() => {
                    let silence = vec![0u8; self.chunk_bytes()];
                    timeline.silence.push((service_secs, 0.1));
                    service_secs += 0.1;
                    last_audio = Instant::now();
                    if let Some(tx) = &sdk_tx
                        && !self.hand_over(tx, silence).await
                    {
                        return Outcome::Failed {
                            limit: false,
                            message: "the stream stopped taking audio".to_owned(),
                        };
                    }
                }
            }
        }
    }

    /// Whether a stream that ended after our end of audio gave all its finals.
    /// A normal end and a service that hung up early look the same to the
    /// SDK; audible audio after the last final means words may be missing,
    /// so the audio is tried once more on a new stream (noise that never
    /// becomes words is then accepted).
    fn finals_complete(&mut self) -> bool {
        const AUDIBLE: i16 = 1_000;
        // At least 100 ms of it: a resampler's ringing after the last word is not speech.
        let audible = self
            .unfinal
            .chunks_exact(2)
            .filter(|b| i16::from_le_bytes([b[0], b[1]]).unsigned_abs() > AUDIBLE as u16)
            .count()
            >= self.rate() as usize / 10;
        if !audible || self.suspect_end_at == Some(self.unfinal_start) {
            return true;
        }
        self.suspect_end_at = Some(self.unfinal_start);
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
        if !result.is_partial {
            let end = (result.end * f64::from(self.rate())).round() as u64;
            let covered = end.saturating_sub(self.unfinal_start) as usize * 2;
            let drop = covered.min(*sent);
            self.unfinal.drain(..drop);
            *sent -= drop;
            self.unfinal_start += drop as u64 / 2;
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
            tokio::time::timeout(self.settings.send_timeout, tx.send(chunk)).await,
            Ok(Ok(()))
        )
    }

    async fn open(&self, audio: mpsc::Receiver<Vec<u8>>) -> Result<Output, Outcome> {
        let s = &self.settings;
        let rate = self.rate() as i32;
        let failed = |limit: bool, message: String| Outcome::Failed { limit, message };
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
                    Err(e) => Err(failed(
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
                    Err(e) => Err(failed(
                        e.code() == Some("LimitExceededException"),
                        DisplayErrorContext(&e).to_string(),
                    )),
                }
            }
        }
    }
}
