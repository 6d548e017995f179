//! A protocol client over tokio-tungstenite that records every server message.

use auscult::protocol::{
    AckMsg, CloseReason, ErrorCode, ErrorMsg, ReadyMsg, ServerMsg, StoredMsg, TranscriptMsg,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::WAIT;
use super::audio::Enc;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the server did next.
#[derive(Debug)]
pub enum Event {
    Msg(ServerMsg),
    /// A close frame, with its code.
    Close(Option<u16>),
    /// The connection ended without a close frame.
    Gone,
}

pub struct WsClient {
    ws: Ws,
    /// Every message received on this connection, in order.
    pub log: Vec<ServerMsg>,
    /// The close code, once a close frame arrived.
    pub close_code: Option<u16>,
    pub ended: bool,
}

/// Everything up to the end of a connection.
#[derive(Debug)]
pub struct Ending {
    pub msgs: Vec<ServerMsg>,
    pub close_code: Option<u16>,
}

impl Ending {
    pub fn stored(&self) -> &StoredMsg {
        self.msgs
            .iter()
            .find_map(|m| match m {
                ServerMsg::Stored(s) => Some(s),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no stored message in {:?}", self.msgs))
    }

    pub fn closed_reason(&self) -> CloseReason {
        self.msgs
            .iter()
            .find_map(|m| match m {
                ServerMsg::Closed(c) => Some(c.reason),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no closed message in {:?}", self.msgs))
    }

    pub fn errors(&self) -> Vec<&ErrorMsg> {
        errors(&self.msgs)
    }

    /// The session ended without a false `stored`: the client heard
    /// `storage_failed` and `closed` `storage_pending`.
    pub fn assert_storage_pending(&self) {
        assert!(
            !self.msgs.iter().any(|m| matches!(m, ServerMsg::Stored(_))),
            "no false stored: {:?}",
            self.msgs
        );
        assert!(
            self.errors()
                .iter()
                .any(|e| e.code == ErrorCode::StorageFailed),
            "storage_failed reported: {:?}",
            self.msgs
        );
        assert_eq!(self.closed_reason(), CloseReason::StoragePending);
    }

    /// Index of the first message matching `f`.
    pub fn position(&self, f: impl Fn(&ServerMsg) -> bool) -> Option<usize> {
        self.msgs.iter().position(f)
    }
}

pub fn errors(msgs: &[ServerMsg]) -> Vec<&ErrorMsg> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Error(e) => Some(e),
            _ => None,
        })
        .collect()
}

pub fn acks(msgs: &[ServerMsg]) -> Vec<AckMsg> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Ack(a) => Some(*a),
            _ => None,
        })
        .collect()
}

pub fn transcripts(msgs: &[ServerMsg]) -> Vec<&TranscriptMsg> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Transcript(t) => Some(t),
            _ => None,
        })
        .collect()
}

pub fn finals(msgs: &[ServerMsg]) -> Vec<&TranscriptMsg> {
    transcripts(msgs)
        .into_iter()
        .filter(|t| !t.is_partial)
        .collect()
}

/// The HTTP status of a refused upgrade, if that is what the error is.
pub fn refused_status(err: &tungstenite::Error) -> Option<u16> {
    match err {
        tungstenite::Error::Http(resp) => Some(resp.status().as_u16()),
        _ => None,
    }
}

pub fn start_json(rate: u32, enc: &str, channels: u16) -> Value {
    json!({"type": "start", "sample_rate": rate, "encoding": enc, "channels": channels, "language": "en-US"})
}

impl WsClient {
    /// Upgrades with extra request headers; an HTTP refusal comes back as `Err`.
    pub async fn connect(
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<WsClient, tungstenite::Error> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            let name: tungstenite::http::HeaderName = name.parse().expect("header name");
            request
                .headers_mut()
                .insert(name, HeaderValue::from_str(value).expect("header value"));
        }
        let (ws, _resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("upgrade answered in time")?;
        Ok(WsClient {
            ws,
            log: Vec::new(),
            close_code: None,
            ended: false,
        })
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send text");
    }

    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .expect("send binary");
    }

    /// Sends a binary frame, tolerating a connection the server already closed.
    pub async fn try_send_binary(&mut self, bytes: &[u8]) -> bool {
        self.ws
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .is_ok()
    }

    /// Reads whatever the server sent within `wait`, without failing when it sent nothing.
    pub async fn drain_for(&mut self, wait: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.ended {
            let Ok(item) = tokio::time::timeout_at(deadline, self.next_event()).await else {
                return;
            };
            drop(item);
        }
    }

    /// Sends `start` and waits for `ready`.
    pub async fn start(&mut self, rate: u32, enc: Enc, channels: u16) -> ReadyMsg {
        self.send_json(&start_json(rate, enc.name(), channels))
            .await;
        self.expect_ready().await
    }

    /// Sends a resuming `start` and waits for `ready`.
    pub async fn resume(
        &mut self,
        rate: u32,
        enc: Enc,
        channels: u16,
        session_id: &str,
        offset_bytes: u64,
    ) -> ReadyMsg {
        self.send_resume(rate, enc, channels, session_id, offset_bytes)
            .await;
        self.expect_ready().await
    }

    pub async fn send_resume(
        &mut self,
        rate: u32,
        enc: Enc,
        channels: u16,
        session_id: &str,
        offset_bytes: u64,
    ) {
        let mut start = start_json(rate, enc.name(), channels);
        start["resume"] = json!({"session_id": session_id, "offset_bytes": offset_bytes});
        self.send_json(&start).await;
    }

    /// Sends audio in binary frames of `frame_size` bytes (the last may be shorter).
    pub async fn send_audio(&mut self, bytes: &[u8], frame_size: usize) {
        for chunk in bytes.chunks(frame_size) {
            self.send_binary(chunk).await;
        }
    }

    pub async fn stop(&mut self) {
        self.send_text(r#"{"type":"stop"}"#).await;
    }

    /// The next thing the server did (skipping pings).
    pub async fn next_event(&mut self) -> Event {
        loop {
            let item = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("no server message within {WAIT:?}; so far: {:?}", self.log)
                });
            match item {
                Some(Ok(Message::Text(text))) => {
                    let msg: ServerMsg = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("unparseable server message {text}: {e}"));
                    self.log.push(msg.clone());
                    return Event::Msg(msg);
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code));
                    self.close_code = code;
                    self.ended = true;
                    return Event::Close(code);
                }
                Some(Ok(Message::Binary(_))) => panic!("the server sent a binary frame"),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    self.ended = true;
                    return Event::Gone;
                }
            }
        }
    }

    /// Waits for a WebSocket ping from the server (recording any messages on the way).
    pub async fn wait_ping(&mut self) {
        loop {
            let item = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no ping within {WAIT:?}"));
            match item {
                Some(Ok(Message::Ping(_))) => return,
                Some(Ok(Message::Text(text))) => {
                    let msg: ServerMsg = serde_json::from_str(text.as_str()).expect("server JSON");
                    self.log.push(msg);
                }
                Some(Ok(_)) => {}
                other => panic!("connection ended while waiting for a ping: {other:?}"),
            }
        }
    }

    pub async fn recv(&mut self) -> ServerMsg {
        match self.next_event().await {
            Event::Msg(m) => m,
            other => panic!("expected a message, got {other:?}; so far: {:?}", self.log),
        }
    }

    /// Waits for the message `f` picks, passing over acks and transcripts.
    /// Anything else that arrives first fails the test.
    pub async fn expect<T>(&mut self, what: &str, f: impl Fn(&ServerMsg) -> Option<T>) -> T {
        loop {
            let msg = match self.next_event().await {
                Event::Msg(m) => m,
                other => panic!("waiting for {what}, got {other:?}; so far: {:?}", self.log),
            };
            if let Some(t) = f(&msg) {
                return t;
            }
            if !matches!(msg, ServerMsg::Ack(_) | ServerMsg::Transcript(_)) {
                panic!("waiting for {what}, got {msg:?}");
            }
        }
    }

    pub async fn expect_ready(&mut self) -> ReadyMsg {
        self.expect("ready", |m| match m {
            ServerMsg::Ready(r) => Some(r.clone()),
            _ => None,
        })
        .await
    }

    pub async fn expect_error(&mut self, code: ErrorCode) -> ErrorMsg {
        self.expect(code.as_str(), |m| match m {
            ServerMsg::Error(e) if e.code == code => Some(e.clone()),
            _ => None,
        })
        .await
    }

    pub async fn expect_final(&mut self) -> TranscriptMsg {
        self.expect("a final transcript", |m| match m {
            ServerMsg::Transcript(t) if !t.is_partial => Some(t.clone()),
            _ => None,
        })
        .await
    }

    /// Waits until an ack says at least `bytes` are durable; returns that ack.
    pub async fn wait_durable(&mut self, bytes: u64) -> AckMsg {
        self.expect(&format!("an ack of {bytes} durable bytes"), |m| match m {
            ServerMsg::Ack(a) if a.durable_bytes >= bytes => Some(*a),
            _ => None,
        })
        .await
    }

    /// The highest durable byte count acknowledged so far.
    pub fn last_durable(&self) -> u64 {
        acks(&self.log)
            .iter()
            .map(|a| a.durable_bytes)
            .max()
            .unwrap_or(0)
    }

    /// Reads until the connection ends; returns the messages read by this call.
    pub async fn collect_until_close(&mut self) -> Ending {
        let from = self.log.len();
        while !self.ended {
            self.next_event().await;
        }
        Ending {
            msgs: self.log[from..].to_vec(),
            close_code: self.close_code,
        }
    }

    /// Sends `stop` and reads everything up to the close.
    pub async fn stop_and_collect(&mut self) -> Ending {
        self.stop().await;
        self.collect_until_close().await
    }

    /// Drops the TCP connection with no close frame (a reset, like a lost network).
    pub fn drop_abruptly(self) {
        if let MaybeTlsStream::Plain(tcp) = self.ws.get_ref() {
            let _ = tcp.set_zero_linger();
        }
        drop(self.ws);
    }
}
