//! `GET /v1/stream`: authenticates the upgrade, then pumps WebSocket messages
//! between the socket and the transport-free session link, with keepalive pings.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tower_sessions::session::Id as LoginId;

use super::AppState;
use super::auth::{Caller, RefusalCode};
use super::http::error_response;
use super::serve::ConnectionSlot;
use crate::accounts::login_sessions;
use crate::session::{self, EntryRefusal, Inbound, Outbound};
use crate::telemetry;

pub async fn stream(
    State(state): State<AppState>,
    slot: Option<axum::Extension<ConnectionSlot>>,
    caller: Result<Caller, Response>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let (user, login) = match caller {
        Ok(caller) => {
            let login = caller.login_session();
            (caller.user, login)
        }
        Err(refusal) => {
            let code = refusal
                .extensions()
                .get::<RefusalCode>()
                .map_or("unauthorized", |c| c.0);
            telemetry::connection_refused(code);
            return refusal;
        }
    };
    if let Err(refusal) = state.sessions.check_entry(&user) {
        let mut resp = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            refusal.code().as_str(),
            refusal.message(),
        );
        if refusal == EntryRefusal::AtCapacity {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        return resp;
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let max = state.sessions.settings().max_message_bytes;
    let keepalive = state.keepalive;
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        // Audio frames are a few KiB; tungstenite's 128 KiB defaults cost RSS on every connection.
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        // What waits for a slow client on top of the socket's own buffer.
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            let sessions = state.sessions.clone();
            sessions.track_connection(async move {
                // The socket keeps its place under the connection cap until it closes.
                let _slot = slot;
                pump(socket, user, login, state, keepalive).await
            })
        })
}

/// Per-connection socket buffer (the read buffer grows for larger messages).
const SOCKET_BUFFER_BYTES: usize = 16 * 1024;
/// Unsent bytes a connection may hold before a write fails.
const MAX_WRITE_BUFFER_BYTES: usize = 1024 * 1024;

/// Ping cadence and how long a silent peer is tolerated.
#[derive(Debug, Clone, Copy)]
pub struct Keepalive {
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
}

async fn pump(
    socket: WebSocket,
    user: String,
    login: Option<LoginId>,
    state: AppState,
    keepalive: Keepalive,
) {
    let login_hash = login.as_ref().map(login_sessions::id_hash);
    // A connection opened with a login cookie keeps that login alive.
    let keep_login = super::login::keep_connection_login(&state, login);
    let session::TransportEnds {
        inbound,
        mut outbound,
    } = state.sessions.open(user, login_hash);
    let (mut sink, mut stream) = socket.split();
    let epoch = Instant::now();
    let last_seen = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&last_seen);

    // Set once the connection is closing: the reader then only drains what
    // the client still sends (closing a socket with unread data resets it,
    // and the reset would destroy the `stored` and `closed` the client has
    // not read yet).
    let closing = tokio_util::sync::CancellationToken::new();
    let draining = closing.clone();
    let reader = async move {
        while let Some(msg) = stream.next().await {
            seen.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            let item = match msg {
                Ok(Message::Binary(b)) => Inbound::Binary(b),
                Ok(Message::Text(t)) => Inbound::Text(t.as_str().to_owned()),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(Message::Close(_)) => return,
                Err(e) if is_too_big(&e) => {
                    if inbound.send(Inbound::TooBig).await.is_ok() {
                        // Give the session time to send its error and close frame.
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    return;
                }
                Err(_) => return,
            };
            if draining.is_cancelled() {
                continue;
            }
            // A session that is gone or no longer reading: drain until the writer closes.
            tokio::select! {
                _ = inbound.send(item) => {}
                () = draining.cancelled() => {}
            }
        }
    };

    let writer = async move {
        let mut ping = tokio::time::interval(keepalive.ping_interval);
        ping.tick().await;
        loop {
            tokio::select! {
                out = outbound.recv() => {
                    let Some(first) = out else {
                        closing.cancel();
                        let _ = timed(sink.close()).await;
                        return;
                    };
                    // Queue everything already waiting, then flush once: one write for a burst.
                    let mut next = Some(first);
                    while let Some(item) = next.take() {
                        match item {
                            Outbound::Msg(msg) => {
                                let frame = Message::Text(msg.to_json().into());
                                if timed(sink.feed(frame)).await.is_err() {
                                    return;
                                }
                            }
                            Outbound::Close(code, reason) => {
                                closing.cancel();
                                let frame = CloseFrame { code: code.as_u16(), reason: reason.into() };
                                let _ = timed(sink.send(Message::Close(Some(frame)))).await;
                                return;
                            }
                        }
                        next = outbound.try_recv().ok();
                    }
                    if timed(sink.flush()).await.is_err() {
                        return;
                    }
                }
                _ = ping.tick() => {
                    let silent_ms = (epoch.elapsed().as_millis() as u64).saturating_sub(last_seen.load(Ordering::Relaxed));
                    if silent_ms > keepalive.pong_timeout.as_millis() as u64 {
                        tracing::info!(event = "client_pong_timeout", silent_ms);
                        return;
                    }
                    if timed(sink.send(Message::Ping(Vec::new().into()))).await.is_err() {
                        return;
                    }
                }
            }
        }
    };

    // The client going away ends the connection at once; the server's close
    // gives the client a moment to read the last messages and answer it.
    tokio::pin!(reader, writer);
    tokio::select! {
        () = &mut reader => {}
        () = &mut writer => {
            let _ = tokio::time::timeout(CLOSE_LINGER, &mut reader).await;
        }
        () = keep_login => {}
    }
}

/// How long a connection the server closed stays open for the client's
/// close frame, reading and discarding what it still sends.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// How long one write to the socket may wait for the client to read. A
/// client that takes longer is not reading: the connection ends (its
/// session waits for a resume) instead of the server holding its messages.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A socket write bounded by [`WRITE_TIMEOUT`]; `Err` when it failed or timed out.
async fn timed<F>(write: F) -> Result<(), ()>
where
    F: std::future::Future<Output = Result<(), axum::Error>>,
{
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(()),
        Err(_) => {
            tracing::info!(
                event = "client_not_reading",
                timeout_s = WRITE_TIMEOUT.as_secs()
            );
            Err(())
        }
    }
}

fn is_too_big(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        let text = err.to_string();
        if text.contains("Message too long")
            || text.contains("Space limit exceeded")
            || text.contains("Frame too long")
        {
            return true;
        }
        source = err.source();
    }
    false
}
