//! The two wires a load session can speak: the native WebSocket
//! (`/v1/stream`) and Socket.IO v5 over an Engine.IO v4 WebSocket
//! (`/socket.io/`, namespace `/transcribe`), written out by hand so the
//! generator itself costs little per session: `start` with an
//! acknowledgement, `audio` as a binary event with one attachment, `stop`,
//! and the server's events as JSON.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const NS: &str = "/transcribe";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// The native WebSocket, `/v1/stream`.
    Ws,
    /// Socket.IO over an Engine.IO WebSocket.
    Socketio,
}

/// Why a connection did not open.
pub enum ConnectError {
    /// 503 at the upgrade, or a `connect_error` saying `server_at_capacity`.
    Refused,
    Failed(String),
}

/// The sending half.
pub struct Sender {
    sink: SplitSink<Ws, Message>,
    transport: Transport,
}

/// The receiving half: the server's messages as JSON.
pub struct Receiver {
    stream: SplitStream<Ws>,
    transport: Transport,
    /// Engine.IO pings to answer, handed to the sender.
    pongs: tokio::sync::mpsc::UnboundedSender<()>,
}

/// Opens `url` (for Socket.IO: the server's base, `ws://host:port`).
pub async fn connect(
    url: &str,
    token: Option<&str>,
    transport: Transport,
) -> Result<(Sender, Receiver, tokio::sync::mpsc::UnboundedReceiver<()>), ConnectError> {
    let url = match transport {
        Transport::Ws => url.to_owned(),
        Transport::Socketio => format!(
            "{}/socket.io/?EIO=4&transport=websocket",
            url.trim_end_matches('/')
        ),
    };
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|_| ConnectError::Failed("bad_url".into()))?;
    if let Some(token) = token
        && let Ok(value) = format!("Bearer {token}").parse()
    {
        request.headers_mut().insert("authorization", value);
    }
    let ws = match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => ws,
        Err(WsError::Http(resp)) if resp.status() == 503 => return Err(ConnectError::Refused),
        Err(_) => return Err(ConnectError::Failed("connect_failed".into())),
    };
    let (mut sink, mut stream) = ws.split();
    if transport == Transport::Socketio {
        // Engine.IO open, then the namespace connect and its answer.
        let open = next_text(&mut stream).await?;
        if !open.starts_with('0') {
            return Err(ConnectError::Failed("no_engineio_open".into()));
        }
        let connect = format!("40{NS},");
        send(&mut sink, Message::Text(connect.into())).await?;
        // The server's first Engine.IO ping may come before the answer.
        let mut answer = next_text(&mut stream).await?;
        while answer == "2" {
            send(&mut sink, Message::Text("3".into())).await?;
            answer = next_text(&mut stream).await?;
        }
        if answer.starts_with(&format!("44{NS},")) {
            return Err(if answer.contains("server_at_capacity") {
                ConnectError::Refused
            } else {
                ConnectError::Failed("connect_error".into())
            });
        }
        if !answer.starts_with(&format!("40{NS},")) {
            return Err(ConnectError::Failed("no_namespace_connect".into()));
        }
    }
    let (pongs, pong_rx) = tokio::sync::mpsc::unbounded_channel();
    Ok((
        Sender { sink, transport },
        Receiver {
            stream,
            transport,
            pongs,
        },
        pong_rx,
    ))
}

async fn next_text(stream: &mut SplitStream<Ws>) -> Result<String, ConnectError> {
    match tokio::time::timeout(std::time::Duration::from_secs(30), stream.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => Ok(t.as_str().to_owned()),
        _ => Err(ConnectError::Failed("handshake_failed".into())),
    }
}

async fn send(sink: &mut SplitSink<Ws, Message>, msg: Message) -> Result<(), ConnectError> {
    sink.send(msg)
        .await
        .map_err(|_| ConnectError::Failed("send_failed".into()))
}

impl Sender {
    /// Sends `start` (its acknowledgement, on Socket.IO, carries `ready`).
    pub async fn start(&mut self, start: &Value) -> Result<(), WsError> {
        let text = match self.transport {
            Transport::Ws => start.to_string(),
            Transport::Socketio => format!("42{NS},0[\"start\",{start}]"),
        };
        self.sink.send(Message::Text(text.into())).await
    }

    pub async fn audio(&mut self, bytes: Vec<u8>) -> Result<(), WsError> {
        if self.transport == Transport::Socketio {
            let head = format!("451-{NS},[\"audio\",{{\"_placeholder\":true,\"num\":0}}]");
            self.sink.feed(Message::Text(head.into())).await?;
        }
        self.sink.send(Message::Binary(bytes.into())).await
    }

    pub async fn stop(&mut self) -> Result<(), WsError> {
        let text = match self.transport {
            Transport::Ws => r#"{"type":"stop"}"#.to_owned(),
            Transport::Socketio => format!("42{NS},[\"stop\"]"),
        };
        self.sink.send(Message::Text(text.into())).await
    }

    /// Answers an Engine.IO ping.
    pub async fn pong(&mut self) -> Result<(), WsError> {
        self.sink.send(Message::Text("3".into())).await
    }

    pub async fn close(mut self) {
        let _ = self.sink.close().await;
    }
}

impl Receiver {
    /// The next server message (`None`: the connection ended).
    pub async fn next(&mut self) -> Option<Value> {
        while let Some(Ok(msg)) = self.stream.next().await {
            let Message::Text(text) = msg else { continue };
            let text = text.as_str();
            match self.transport {
                Transport::Ws => {
                    if let Ok(v) = serde_json::from_str(text) {
                        return Some(v);
                    }
                }
                Transport::Socketio => {
                    if text == "2" {
                        let _ = self.pongs.send(());
                        continue;
                    }
                    if let Some(v) = socketio_message(text) {
                        return Some(v);
                    }
                }
            }
        }
        None
    }
}

/// The message in a Socket.IO event (`42/transcribe,["name",{..}]`) or
/// acknowledgement (`43/transcribe,0[{..}]`) of the namespace.
fn socketio_message(text: &str) -> Option<Value> {
    let (kind, rest) = (text.get(..2)?, text.get(2..)?);
    let rest = rest.strip_prefix(NS)?.strip_prefix(',')?;
    let args = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let v: Value = serde_json::from_str(args).ok()?;
    match kind {
        "42" => v.get(1).cloned(),
        "43" => v.get(0).cloned(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::socketio_message;

    #[test]
    fn events_and_acks_of_the_namespace_are_read() {
        let ev = socketio_message(r#"42/transcribe,["ack",{"type":"ack","durable_bytes":5}]"#);
        assert_eq!(ev.unwrap()["durable_bytes"], 5);
        let ack = socketio_message(r#"43/transcribe,0[{"type":"ready"}]"#);
        assert_eq!(ack.unwrap()["type"], "ready");
        assert!(socketio_message(r#"42/other,["x",{}]"#).is_none());
    }
}
