//! A fake Amazon Transcribe (Medical) streaming service, offline: a hyper
//! server (HTTP/1.1 chunked or h2c) that speaks the event-stream framing,
//! answers its headers before reading the body, and transcribes a toy
//! "language" so tests can tell which audio reached it.
//!
//! The toy language: every 100 ms block of 16-bit PCM is read at its middle
//! sample; `round(sample / 1000) = k ≠ 0` is the word `w{k}`, consecutive
//! blocks of the same `k` are one word, and a block of 0 is a gap. Three words
//! make a result (cumulative partials with one `ResultId`, then a final with
//! confidence); the end of the audio finalizes the rest. Words named in
//! `phi_words` come back as PHI entities on finals.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder, write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use tokio::sync::mpsc;

/// What one request to the fake did.
#[derive(Debug, Clone, Default)]
pub struct FakeStream {
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    pub path: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub sample_rate: u32,
    pub media_encoding: String,
    pub audio: Vec<u8>,
    /// Whether the client's signed empty end frame arrived.
    pub ended: bool,
    /// The HTTP status the fake answered with.
    pub status: u16,
}

impl FakeStream {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn audio_secs(&self) -> f64 {
        self.audio.len() as f64 / 2.0 / f64::from(self.sample_rate.max(1))
    }
}

/// How the fake treats one incoming stream (consumed in order; the last repeats).
#[derive(Debug, Clone)]
pub enum Plan {
    /// Transcribe until the audio ends.
    Normal,
    /// Refuse the request: HTTP 429 `LimitExceededException`.
    LimitExceeded,
    /// Answer 200, then after this many seconds of audio send an in-stream
    /// `InternalFailureException` and hang up.
    FailAfter(f64),
    /// Answer 200, then after this many seconds of audio end the response
    /// quietly, as at the 4-hour stream limit.
    HangUpAfter(f64),
    /// Accept the request and never answer it (status recorded as 0).
    NoAnswer,
}

struct State {
    plans: VecDeque<Plan>,
    streams: Vec<FakeStream>,
    phi_words: Vec<String>,
    no_audio_timeout: Duration,
    timeouts: usize,
}

/// A running fake; dropped with the test's runtime.
#[derive(Clone)]
pub struct FakeTranscribe {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeTranscribe {
    pub async fn start() -> FakeTranscribe {
        Self::start_with(vec![Plan::Normal]).await
    }

    pub async fn start_with(plans: Vec<Plan>) -> FakeTranscribe {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            plans: plans.into(),
            streams: Vec::new(),
            phi_words: Vec::new(),
            no_audio_timeout: Duration::from_secs(15),
            timeouts: 0,
        }));
        let fake = FakeTranscribe { addr, state };
        let serving = fake.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let fake = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let fake = fake.clone();
                        async move {
                            match fake.handle(req) {
                                Some(response) => Ok::<_, std::convert::Infallible>(response),
                                None => std::future::pending().await,
                            }
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
                });
            }
        });
        fake
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Words the fake reports as PHI entities.
    pub fn set_phi_words(&self, words: &[&str]) {
        self.state.lock().unwrap().phi_words = words.iter().map(|w| (*w).to_owned()).collect();
    }

    /// The service's no-audio timeout (15 s, as the real one).
    pub fn set_no_audio_timeout(&self, timeout: Duration) {
        self.state.lock().unwrap().no_audio_timeout = timeout;
    }

    pub fn streams(&self) -> Vec<FakeStream> {
        self.state.lock().unwrap().streams.clone()
    }

    /// How many streams failed the no-audio timeout.
    pub fn timeouts(&self) -> usize {
        self.state.lock().unwrap().timeouts
    }

    /// The response to one request; `None` for a request never answered.
    fn handle(&self, req: Request<Incoming>) -> Option<Response<Body>> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let record = FakeStream {
            version: format!("{:?}", req.version()),
            path: req.uri().path().to_owned(),
            target: header("x-amz-target"),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned()))
                .collect(),
            sample_rate: header("x-amzn-transcribe-sample-rate").parse().unwrap_or(0),
            media_encoding: header("x-amzn-transcribe-media-encoding"),
            ..FakeStream::default()
        };
        let (index, plan, phi, no_audio) = {
            let mut s = self.state.lock().unwrap();
            let plan = if s.plans.len() > 1 {
                s.plans.pop_front().unwrap()
            } else {
                s.plans.front().cloned().unwrap_or(Plan::Normal)
            };
            let mut record = record;
            record.status = match plan {
                Plan::LimitExceeded => 429,
                Plan::NoAnswer => 0,
                _ => 200,
            };
            s.streams.push(record);
            (
                s.streams.len() - 1,
                plan,
                s.phi_words.clone(),
                s.no_audio_timeout,
            )
        };
        if matches!(plan, Plan::NoAnswer) {
            return None;
        }
        if matches!(plan, Plan::LimitExceeded) {
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.try_send(Ok(Frame::data(Bytes::from_static(
                br#"{"Message":"You have reached your limit of concurrent streams."}"#,
            ))));
            let mut resp = Response::new(BodyExt::boxed(StreamBody::new(ReceiverStream(rx))));
            *resp.status_mut() = hyper::StatusCode::TOO_MANY_REQUESTS;
            let h = resp.headers_mut();
            h.insert(
                "x-amzn-errortype",
                "LimitExceededException:".parse().unwrap(),
            );
            h.insert("content-type", "application/json".parse().unwrap());
            return Some(resp);
        }
        let (tx, rx) = mpsc::channel(64);
        let state = self.state.clone();
        tokio::spawn(async move {
            let body = req.into_body();
            let fail_after = match plan {
                Plan::FailAfter(secs) => Some((secs, true)),
                Plan::HangUpAfter(secs) => Some((secs, false)),
                _ => None,
            };
            run_stream(state, index, body, tx, fail_after, phi, no_audio).await;
        });
        let mut resp = Response::new(BodyExt::boxed(StreamBody::new(ReceiverStream(rx))));
        resp.headers_mut().insert(
            "content-type",
            "application/vnd.amazon.eventstream".parse().unwrap(),
        );
        resp.headers_mut()
            .insert("x-amzn-request-id", "fake-request".parse().unwrap());
        Some(resp)
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;
type FrameResult = Result<Frame<Bytes>, std::convert::Infallible>;

struct ReceiverStream(mpsc::Receiver<FrameResult>);

impl futures_util::Stream for ReceiverStream {
    type Item = FrameResult;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<FrameResult>> {
        self.0.poll_recv(cx)
    }
}

fn string_header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

fn encode(message: &Message) -> FrameResult {
    let mut buf = Vec::new();
    write_message_to(message, &mut buf).unwrap();
    Ok(Frame::data(Bytes::from(buf)))
}

fn event(json: serde_json::Value) -> FrameResult {
    encode(&Message::new_from_parts(
        vec![
            string_header(":message-type", "event"),
            string_header(":event-type", "TranscriptEvent"),
            string_header(":content-type", "application/json"),
        ],
        Bytes::from(json.to_string()),
    ))
}

fn exception(kind: &str, message: &str) -> FrameResult {
    encode(&Message::new_from_parts(
        vec![
            string_header(":message-type", "exception"),
            string_header(":exception-type", kind),
            string_header(":content-type", "application/json"),
        ],
        Bytes::from(serde_json::json!({ "Message": message }).to_string()),
    ))
}

/// The toy recognizer for one stream.
struct Recognizer {
    rate: u32,
    pending: Vec<u8>,
    blocks: usize,
    /// Words of the current result: (k, start block, end block).
    words: Vec<(i64, usize, usize)>,
    current: Option<(i64, usize)>,
    result_seq: usize,
    stream: usize,
    phi: Vec<String>,
}

impl Recognizer {
    fn block_bytes(&self) -> usize {
        (self.rate as usize / 10) * 2
    }

    /// Feeds audio; returns the events to send.
    fn push(&mut self, audio: &[u8]) -> Vec<serde_json::Value> {
        self.pending.extend_from_slice(audio);
        let mut out = Vec::new();
        let bb = self.block_bytes();
        while self.pending.len() >= bb {
            let block: Vec<u8> = self.pending.drain(..bb).collect();
            let mid = bb / 2 / 2 * 2;
            let sample = i16::from_le_bytes([block[mid], block[mid + 1]]);
            let k = (f64::from(sample) / 1000.0).round() as i64;
            let at = self.blocks;
            self.blocks += 1;
            match self.current {
                Some((ck, _)) if ck == k => {}
                Some((ck, start)) => {
                    self.words.push((ck, start, at));
                    self.current = None;
                    if self.words.len() >= 3 {
                        out.push(self.result(false));
                        out.push(serde_json::json!({"Transcript": {"Results": []}}));
                        self.words.clear();
                        self.result_seq += 1;
                    } else {
                        out.push(self.result(true));
                    }
                    if k != 0 {
                        self.current = Some((k, at));
                    }
                }
                None if k != 0 => self.current = Some((k, at)),
                None => out.push(serde_json::json!({"Transcript": {"Results": []}})),
            }
        }
        out
    }

    fn finish(&mut self) -> Vec<serde_json::Value> {
        if let Some((k, start)) = self.current.take() {
            self.words.push((k, start, self.blocks));
        }
        if self.words.is_empty() {
            return Vec::new();
        }
        let last = self.result(false);
        self.words.clear();
        vec![last]
    }

    fn result(&self, partial: bool) -> serde_json::Value {
        let t = |block: usize| block as f64 / 10.0;
        let items: Vec<serde_json::Value> = self
            .words
            .iter()
            .map(|(k, s, e)| {
                let mut item = serde_json::json!({
                    "StartTime": t(*s), "EndTime": t(*e), "Type": "pronunciation",
                    "Content": format!("w{k}"),
                });
                if !partial {
                    item["Confidence"] = serde_json::json!(0.9);
                }
                item
            })
            .collect();
        let text: Vec<String> = self.words.iter().map(|(k, _, _)| format!("w{k}")).collect();
        let mut alternative = serde_json::json!({"Transcript": text.join(" "), "Items": items});
        if !partial {
            let entities: Vec<serde_json::Value> = self
                .words
                .iter()
                .filter(|(k, _, _)| self.phi.contains(&format!("w{k}")))
                .map(|(k, s, e)| {
                    serde_json::json!({"StartTime": t(*s), "EndTime": t(*e),
                        "Category": "PHI", "Content": format!("w{k}"), "Confidence": 0.95})
                })
                .collect();
            alternative["Entities"] = serde_json::json!(entities);
        }
        serde_json::json!({"Transcript": {"Results": [{
            "ResultId": format!("fake-{}-{}", self.stream, self.result_seq),
            "StartTime": t(self.words[0].1),
            "EndTime": t(self.words.last().unwrap().2),
            "IsPartial": partial,
            "Alternatives": [alternative],
        }]}})
    }
}

async fn run_stream(
    state: Arc<Mutex<State>>,
    index: usize,
    mut body: Incoming,
    tx: mpsc::Sender<FrameResult>,
    fail_after: Option<(f64, bool)>,
    phi: Vec<String>,
    no_audio: Duration,
) {
    let rate = state.lock().unwrap().streams[index].sample_rate;
    let mut rec = Recognizer {
        rate,
        pending: Vec::new(),
        blocks: 0,
        words: Vec::new(),
        current: None,
        result_seq: 0,
        stream: index,
        phi,
    };
    let mut decoder = MessageFrameDecoder::new();
    let mut buf = BytesMut::new();
    let mut received = 0usize;
    loop {
        let frame = match tokio::time::timeout(no_audio, body.frame()).await {
            Err(_) => {
                state.lock().unwrap().timeouts += 1;
                let msg =
                    "Your request timed out because no new audio was received for 15 seconds.";
                let _ = tx.send(exception("BadRequestException", msg)).await;
                return;
            }
            Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Ok(DecodedFrame::Complete(outer)) = decoder.decode_frame(&mut buf) {
            if outer.payload().is_empty() {
                state.lock().unwrap().streams[index].ended = true;
                for ev in rec.finish() {
                    let _ = tx.send(event(ev)).await;
                }
                return;
            }
            let Ok(inner) =
                aws_smithy_eventstream::frame::read_message_from(outer.payload().clone())
            else {
                continue;
            };
            let audio = inner.payload().clone();
            received += audio.len();
            state.lock().unwrap().streams[index]
                .audio
                .extend_from_slice(&audio);
            for ev in rec.push(&audio) {
                let _ = tx.send(event(ev)).await;
            }
            if let Some((secs, exception_frame)) = fail_after
                && received as f64 / 2.0 / f64::from(rate.max(1)) >= secs
            {
                if !exception_frame {
                    return;
                }
                let _ = tx
                    .send(exception(
                        "InternalFailureException",
                        "A problem occurred while processing the audio.",
                    ))
                    .await;
                return;
            }
        }
    }
}
