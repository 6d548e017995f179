//! A fake NVIDIA Riva server (tonic, the project's own protos) with scripted
//! behaviour, recording what each call received.
//!
//! Recognition is deterministic and content-based: a run of at least 10 ms
//! at one non-zero level (quantized by [`WORD_STEP`]) is one word, `w{level - 1}`
//! (see [`word_audio`]), with the run's times in ms; silence is no word. So a
//! test that sends runs of distinct levels can tell lost, doubled or
//! misplaced audio from the words. Interims are cumulative hypotheses of the
//! current utterance; every `words_per_utterance` words a final closes it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use auscult::engine::riva::proto::AudioEncoding;
use auscult::engine::riva::proto::asr::riva_speech_recognition_server::{
    RivaSpeechRecognition, RivaSpeechRecognitionServer,
};
use auscult::engine::riva::proto::asr::{
    SpeechRecognitionAlternative, StreamingRecognitionConfig, StreamingRecognitionResult,
    StreamingRecognizeRequest, StreamingRecognizeResponse, WordInfo,
    streaming_recognize_request::StreamingRequest,
};
use futures_util::Stream;
use tokio::sync::mpsc;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

/// Sample level per word index in [`word_audio`].
pub const WORD_STEP: i32 = 500;
/// Audio per recognized word.
pub const WORD_MS: u32 = 250;
const RATE: u32 = 16_000;
/// Shorter runs (a tone's) are no word.
const MIN_RUN: usize = (RATE / 100) as usize;

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct Script {
    pub words_per_utterance: usize,
    /// Never send `is_final` (some hosted models).
    pub never_final: bool,
    /// Call numbers (0-based) that fail with `fail_code` once they have
    /// received this many ms of audio.
    pub fail_calls: Vec<(usize, u32)>,
    /// The status those calls fail with (`UNAVAILABLE` unless set).
    pub fail_code: tonic::Code,
    /// Call numbers (0-based) that end cleanly, with no final for the open
    /// utterance, once they have received this many ms of audio.
    pub end_calls: Vec<(usize, u32)>,
    /// Required metadata: `function-id` and the API key of `authorization: Bearer`.
    pub require_auth: Option<(String, String)>,
    /// Once a call has received this many ms of audio, it stops reading its
    /// requests and keeps the call open (an overloaded server: HTTP/2 flow
    /// control then holds the client back).
    pub stall_after_ms: Option<u32>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            words_per_utterance: 4,
            never_final: false,
            fail_calls: Vec::new(),
            fail_code: tonic::Code::Unavailable,
            end_calls: Vec::new(),
            require_auth: None,
            stall_after_ms: None,
        }
    }
}

/// What one call received.
#[derive(Debug, Clone, Default)]
pub struct CallRecord {
    pub config: Option<StreamingRecognitionConfig>,
    /// Config requests after the first message, audio before the config, etc.
    pub protocol_errors: Vec<String>,
    pub audio: Vec<u8>,
    pub audio_messages: usize,
    pub function_id: Option<String>,
    pub authorization: Option<String>,
    pub rejected: bool,
    /// The client half-closed its request stream.
    pub half_closed: bool,
}

#[derive(Clone)]
pub struct FakeRiva {
    pub addr: SocketAddr,
    script: Arc<Script>,
    calls: Arc<Mutex<Vec<CallRecord>>>,
}

impl FakeRiva {
    /// Serves plaintext gRPC on a free local port.
    pub async fn start(script: Script) -> FakeRiva {
        Self::serve(script, None).await
    }

    /// Serves TLS with this PEM certificate chain and key.
    pub async fn start_tls(script: Script, cert_pem: &str, key_pem: &str) -> FakeRiva {
        Self::serve(script, Some(Identity::from_pem(cert_pem, key_pem))).await
    }

    async fn serve(script: Script, identity: Option<Identity>) -> FakeRiva {
        auscult::engine::riva::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = FakeRiva {
            addr,
            script: Arc::new(script),
            calls: Arc::new(Mutex::new(Vec::new())),
        };
        let mut builder = Server::builder();
        if let Some(identity) = identity {
            builder = builder
                .tls_config(ServerTlsConfig::new().identity(identity))
                .unwrap();
        }
        let router = builder.add_service(RivaSpeechRecognitionServer::new(fake.clone()));
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(router.serve_with_incoming(incoming));
        fake
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> Vec<CallRecord> {
        self.calls.lock().unwrap().clone()
    }
}

/// `WORD_MS` of constant level per word index: what the fake names `w{index}`.
pub fn word_audio(indices: impl IntoIterator<Item = i32>, rate: u32) -> Vec<u8> {
    let per_word = (rate * WORD_MS / 1000) as usize;
    let mut out = Vec::new();
    for i in indices {
        let v = ((i + 1) * WORD_STEP) as i16;
        for _ in 0..per_word {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

type ResponseStream =
    Pin<Box<dyn Stream<Item = Result<StreamingRecognizeResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl RivaSpeechRecognition for FakeRiva {
    type StreamingRecognizeStream = ResponseStream;

    async fn streaming_recognize(
        &self,
        request: Request<Streaming<StreamingRecognizeRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let record = CallRecord {
            function_id: header("function-id"),
            authorization: header("authorization"),
            ..CallRecord::default()
        };
        let index = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(record.clone());
            calls.len() - 1
        };
        if let Some((function_id, key)) = &self.script.require_auth {
            let bearer = format!("Bearer {key}");
            if record.function_id.as_deref() != Some(function_id.as_str())
                || record.authorization.as_deref() != Some(bearer.as_str())
            {
                self.calls.lock().unwrap()[index].rejected = true;
                return Err(Status::unauthenticated(
                    "missing or wrong function-id/authorization",
                ));
            }
        }
        let fail_code = self.script.fail_code;
        let fail_after_ms = self
            .script
            .fail_calls
            .iter()
            .find(|(call, _)| *call == index)
            .map(|(_, ms)| *ms);
        let end_after_ms = self
            .script
            .end_calls
            .iter()
            .find(|(call, _)| *call == index)
            .map(|(_, ms)| *ms);
        let (tx, rx) = mpsc::channel(64);
        let calls = self.calls.clone();
        let script = self.script.clone();
        let mut requests = request.into_inner();
        tokio::spawn(async move {
            let mut session = Recognizer::new(script.words_per_utterance, script.never_final);
            let mut first = true;
            loop {
                let message = match requests.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) => {
                        calls.lock().unwrap()[index].half_closed = true;
                        break;
                    }
                    Err(_) => return,
                };
                match message.streaming_request {
                    Some(StreamingRequest::StreamingConfig(config)) => {
                        let mut calls = calls.lock().unwrap();
                        if !first {
                            calls[index]
                                .protocol_errors
                                .push("config after the first request".into());
                        }
                        calls[index].config = Some(config);
                    }
                    Some(StreamingRequest::AudioContent(bytes)) => {
                        {
                            let mut calls = calls.lock().unwrap();
                            if first {
                                calls[index]
                                    .protocol_errors
                                    .push("audio before the config".into());
                            }
                            calls[index].audio.extend_from_slice(&bytes);
                            calls[index].audio_messages += 1;
                        }
                        for response in session.push(&bytes) {
                            if tx.send(Ok(response)).await.is_err() {
                                return;
                            }
                        }
                        if let Some(ms) = fail_after_ms
                            && session.samples * 1000 / u64::from(RATE) >= u64::from(ms)
                        {
                            let _ = tx
                                .send(Err(Status::new(fail_code, "scripted failure")))
                                .await;
                            return;
                        }
                        if let Some(ms) = end_after_ms
                            && session.samples * 1000 / u64::from(RATE) >= u64::from(ms)
                        {
                            return; // the response stream ends with no final
                        }
                        if let Some(ms) = script.stall_after_ms
                            && session.samples * 1000 / u64::from(RATE) >= u64::from(ms)
                        {
                            // Hold the call (and its unread requests) until the client goes.
                            tx.closed().await;
                            return;
                        }
                    }
                    None => {}
                }
                first = false;
            }
            for response in session.finish() {
                if tx.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// The content-based recognizer of one call.
struct Recognizer {
    words_per_utterance: usize,
    never_final: bool,
    /// Samples received in the call.
    samples: u64,
    /// The current run: its level and first sample.
    run: (i32, u64),
    /// Words recognized so far in the call: (name, start ms, end ms).
    words: Vec<(String, i32, i32)>,
    /// Index into `words` where the open utterance starts.
    utterance_start: usize,
}

impl Recognizer {
    fn new(words_per_utterance: usize, never_final: bool) -> Self {
        Recognizer {
            words_per_utterance,
            never_final,
            samples: 0,
            run: (0, 0),
            words: Vec::new(),
            utterance_start: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) -> Vec<StreamingRecognizeResponse> {
        let mut out = Vec::new();
        for b in bytes.chunks_exact(2) {
            let sample = i16::from_le_bytes([b[0], b[1]]);
            let level = (f64::from(sample) / f64::from(WORD_STEP)).round() as i32;
            if level != self.run.0 {
                out.extend(self.close_run());
                self.run = (level, self.samples);
            }
            self.samples += 1;
        }
        out
    }

    /// Ends the current run: a word (and an interim or a final) if it is one.
    fn close_run(&mut self) -> Option<StreamingRecognizeResponse> {
        let (level, start) = self.run;
        if level == 0 || ((self.samples - start) as usize) < MIN_RUN {
            return None;
        }
        let ms = |sample: u64| (sample * 1000 / u64::from(RATE)) as i32;
        self.words
            .push((format!("w{}", level - 1), ms(start), ms(self.samples)));
        let open = self.words.len() - self.utterance_start;
        Some(if open >= self.words_per_utterance && !self.never_final {
            self.final_response()
        } else {
            self.interim_response()
        })
    }

    fn processed_secs(&self) -> f32 {
        self.samples as f32 / RATE as f32
    }

    fn interim_response(&self) -> StreamingRecognizeResponse {
        let text: Vec<&str> = self.words[self.utterance_start..]
            .iter()
            .map(|w| w.0.as_str())
            .collect();
        response(StreamingRecognitionResult {
            alternatives: vec![SpeechRecognitionAlternative {
                transcript: text.join(" "),
                confidence: 0.0,
                words: Vec::new(),
            }],
            is_final: false,
            stability: 0.5,
            channel_tag: 1,
            audio_processed: self.processed_secs(),
        })
    }

    fn final_response(&mut self) -> StreamingRecognizeResponse {
        let words = &self.words[self.utterance_start..];
        let text: Vec<&str> = words.iter().map(|w| w.0.as_str()).collect();
        let result = StreamingRecognitionResult {
            alternatives: vec![SpeechRecognitionAlternative {
                transcript: format!("{} ", text.join(" ")),
                confidence: 0.9,
                words: words
                    .iter()
                    .map(|(word, start, end)| WordInfo {
                        start_time: *start,
                        end_time: *end,
                        word: word.clone(),
                        confidence: 0.9,
                        speaker_tag: 0,
                    })
                    .collect(),
            }],
            is_final: true,
            stability: 1.0,
            channel_tag: 1,
            audio_processed: self.processed_secs(),
        };
        self.utterance_start = self.words.len();
        response(result)
    }

    /// At the end of the request stream: the last word, then a final for
    /// the open utterance (unless this server never finalizes).
    fn finish(&mut self) -> Vec<StreamingRecognizeResponse> {
        let mut out: Vec<_> = self.close_run().into_iter().collect();
        if !self.never_final && self.utterance_start < self.words.len() {
            out.push(self.final_response());
        }
        out
    }
}

fn response(result: StreamingRecognitionResult) -> StreamingRecognizeResponse {
    StreamingRecognizeResponse {
        results: vec![result],
        id: None,
    }
}

/// The LINEAR_PCM encoding number, for assertions.
pub fn linear_pcm() -> i32 {
    AudioEncoding::LinearPcm as i32
}
