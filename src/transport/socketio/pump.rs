//! One Socket.IO socket as a client connection of the session layer: client
//! events in order to the session link, the session's messages out as events
//! (`ready` and start errors through the `start` acknowledgement).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::{SendError, SocketError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower_sessions::session::Id as LoginId;

use super::events::{ClientEvent, Enqueue, Feed, Queued};
use crate::accounts::login_sessions;
use crate::protocol::{ErrorCode, ServerMsg};
use crate::session::{Inbound, Outbound, TransportEnds};
use crate::telemetry;
use crate::transport::AppState;
use crate::transport::auth::Caller;

/// How long one emit may wait for room in the socket's send buffer. A
/// client that takes longer is not reading: the socket is closed (its
/// session waits for a resume), as on the WebSocket.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a socket the server closes stays open for the client to read
/// its last messages (`stored`, `closed`, a fatal error).
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// How often a full send buffer is tried again.
const RETRY_EVERY: Duration = Duration::from_millis(5);

/// An admitted socket's connection, ready to run once the socket is connected.
pub struct Connection {
    events: mpsc::UnboundedReceiver<Queued>,
    user: String,
    login: Option<LoginId>,
    /// Set by the disconnect handler.
    gone: CancellationToken,
}

impl Connection {
    /// Registers the socket's handlers: every event is queued in order (see
    /// [`Enqueue`]); a disconnect ends the pump. Called by the connect
    /// middleware, before the client hears it is connected, so that no
    /// event can come before the handlers.
    pub fn prepare(socket: &SocketRef, state: &AppState, caller: &Caller) -> Self {
        let max = state.sessions.settings().max_message_bytes;
        let (feed, events) = Feed::new(max, super::max_queued_bytes(max));
        socket.extensions.insert(feed);
        socket.on_fallback(Enqueue);
        let gone = CancellationToken::new();
        let on_gone = gone.clone();
        socket.on_disconnect(async move || on_gone.cancel());
        Connection {
            events,
            user: caller.user.clone(),
            login: caller.login_session(),
            gone,
        }
    }

    pub async fn run(self, socket: SocketRef, state: AppState) {
        let Connection {
            mut events,
            user,
            login,
            gone,
        } = self;
        let login_hash = login.as_ref().map(login_sessions::id_hash);
        let keep_login = crate::transport::login::keep_connection_login(&state, login);
        let TransportEnds {
            inbound,
            mut outbound,
        } = state.sessions.open(user, login_hash);
        // The acknowledgement of the latest `start`, answered by its `ready`
        // or by the error that refuses it.
        let pending: Arc<Mutex<Option<AckSender>>> = Arc::default();

        let reader = {
            let socket = socket.clone();
            let pending = Arc::clone(&pending);
            async move {
                while let Some(Queued { event, budget }) = events.recv().await {
                    let item = match event {
                        ClientEvent::Start { body, ack } => {
                            *lock(&pending) = ack;
                            Inbound::Text(start_text(body))
                        }
                        ClientEvent::Audio(Some(pcm)) => Inbound::Binary(pcm),
                        ClientEvent::Audio(None) => {
                            let msg = "an audio event carries one binary attachment of PCM";
                            local_error(&socket, ErrorCode::BadFrame, msg);
                            continue;
                        }
                        ClientEvent::Stop => Inbound::Text(r#"{"type":"stop"}"#.to_owned()),
                        ClientEvent::Unknown => {
                            let msg = "unknown event: the client events are start, audio and stop";
                            local_error(&socket, ErrorCode::BadMessage, msg);
                            continue;
                        }
                        ClientEvent::TooBig => {
                            let _ = inbound.send(Inbound::TooBig).await;
                            // Nothing more is read: the session answers and closes.
                            return std::future::pending().await;
                        }
                    };
                    // The event's share of the byte budget is held until the
                    // session has taken it.
                    if inbound.send(item).await.is_err() {
                        return std::future::pending().await;
                    }
                    drop(budget);
                }
                std::future::pending::<()>().await
            }
        };

        let closing_gone = gone.clone();
        let writer = async move {
            while let Some(first) = outbound.recv().await {
                let mut batch = vec![first];
                while let Ok(next) = outbound.try_recv() {
                    batch.push(next);
                }
                for item in coalesce_acks(batch) {
                    match item {
                        Outbound::Msg(msg) => {
                            if send(&socket, &pending, msg).await.is_err() {
                                return;
                            }
                        }
                        Outbound::Close(_, reason) => {
                            tracing::info!(event = "socketio_server_close", sid = %socket.id, reason);
                            // A polling client takes the last messages with its
                            // next poll: give it that, or its own disconnect.
                            tokio::select! {
                                () = closing_gone.cancelled() => {}
                                () = tokio::time::sleep(CLOSE_LINGER) => {}
                            }
                            let _ = socket.clone().disconnect();
                            return;
                        }
                    }
                }
            }
            // The session let go of this connection (it moved to another).
            let _ = socket.clone().disconnect();
        };

        tokio::select! {
            () = writer => {}
            () = reader => {}
            () = gone.cancelled() => {
                tracing::info!(event = "socketio_disconnected");
            }
            () = keep_login => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `start` event's object as the session's start message: the `type`
/// is implied by the event. Anything but an object is passed on as is and
/// refused by the session as a bad message.
fn start_text(body: Option<serde_json::Value>) -> String {
    match body {
        Some(serde_json::Value::Object(mut fields)) => {
            fields.insert("type".into(), "start".into());
            serde_json::Value::Object(fields).to_string()
        }
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// An error the transport answers itself (a malformed event the session
/// never sees); non-fatal.
fn local_error(socket: &SocketRef, code: ErrorCode, message: &str) {
    telemetry::client_error(code);
    let _ = socket.emit("error", &ServerMsg::error(code, message, false));
}

/// Whether an error answers a `start` (and so goes to its acknowledgement).
fn answers_start(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::BadMessage
            | ErrorCode::BadStart
            | ErrorCode::AlreadyStarted
            | ErrorCode::UnsupportedSampleRate
            | ErrorCode::UnsupportedEncoding
            | ErrorCode::UnsupportedChannels
            | ErrorCode::UnknownEngine
            | ErrorCode::EngineUnavailable
            | ErrorCode::UnknownSession
            | ErrorCode::ServerAtCapacity
            | ErrorCode::UserAtCapacity
            | ErrorCode::ServerShutdown
    )
}

/// Only the newest of the acks waiting in one batch is sent: each one
/// supersedes the ones before it.
fn coalesce_acks(batch: Vec<Outbound>) -> Vec<Outbound> {
    let last_ack = batch
        .iter()
        .rposition(|item| matches!(item, Outbound::Msg(ServerMsg::Ack(_))));
    batch
        .into_iter()
        .enumerate()
        .filter(|(i, item)| {
            !matches!(item, Outbound::Msg(ServerMsg::Ack(_))) || Some(*i) == last_ack
        })
        .map(|(_, item)| item)
        .collect()
}

/// Sends one message: as the pending `start`'s acknowledgement when it
/// answers it, else as the event named by its `type`, waiting for room in
/// the send buffer. `Err` when the socket is gone or not reading.
async fn send(
    socket: &SocketRef,
    pending: &Mutex<Option<AckSender>>,
    msg: ServerMsg,
) -> Result<(), ()> {
    let answers = match &msg {
        ServerMsg::Ready(_) => true,
        ServerMsg::Error(e) => answers_start(e.code),
        _ => false,
    };
    if answers && let Some(ack) = lock(pending).take() {
        // A start is the first thing on a connection: the buffer has room.
        return ack.send(&msg).map_err(|_| ());
    }
    let event = event_name(&msg);
    let started = Instant::now();
    loop {
        match socket.emit(event, &msg) {
            Ok(()) => return Ok(()),
            Err(SendError::Socket(SocketError::InternalChannelFull))
                if started.elapsed() < WRITE_TIMEOUT =>
            {
                tokio::time::sleep(RETRY_EVERY).await;
            }
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                tracing::info!(
                    event = "client_not_reading",
                    sid = %socket.id,
                    timeout_s = WRITE_TIMEOUT.as_secs()
                );
                let _ = socket.clone().disconnect();
                return Err(());
            }
            Err(_) => return Err(()),
        }
    }
}

fn event_name(msg: &ServerMsg) -> &'static str {
    match msg {
        ServerMsg::Ready(_) => "ready",
        ServerMsg::Transcript(_) => "transcript",
        ServerMsg::Ack(_) => "ack",
        ServerMsg::Error(_) => "error",
        ServerMsg::Stored(_) => "stored",
        ServerMsg::Closed(_) => "closed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AckMsg;

    fn ack(n: u64) -> Outbound {
        Outbound::Msg(ServerMsg::Ack(AckMsg {
            received_bytes: n,
            durable_bytes: n,
            engine_lag_ms: None,
        }))
    }

    #[test]
    fn only_the_newest_ack_of_a_batch_is_sent_and_order_is_kept() {
        let closed = || {
            Outbound::Msg(ServerMsg::Closed(crate::protocol::ClosedMsg {
                reason: crate::protocol::CloseReason::ClientStop,
            }))
        };
        let out = coalesce_acks(vec![ack(1), ack(2), closed(), ack(3)]);
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0], Outbound::Msg(ServerMsg::Closed(_))));
        assert!(matches!(&out[1], Outbound::Msg(ServerMsg::Ack(a)) if a.durable_bytes == 3));
    }

    #[test]
    fn a_start_object_gets_its_type_and_anything_else_is_passed_on() {
        let text = start_text(Some(serde_json::json!({"sample_rate": 16000})));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "start");
        assert_eq!(v["sample_rate"], 16000);
        assert_eq!(start_text(Some(serde_json::json!([1, 2]))), "[1,2]");
        assert_eq!(start_text(None), "");
    }
}
