//! Socket.IO (socketioxide) on the same listener: path `/socket.io/`,
//! namespace `/transcribe`, over Engine.IO long-polling and WebSocket.
//!
//! A connect is authenticated (cookie, `auth: {token}`, `Authorization:
//! Bearer`, `?access_token=`, the same Origin check as the upgrade) and goes
//! through the session entry; a refusal is a `connect_error` whose `message`
//! is the stable code. An accepted socket is one client connection of the
//! session layer, exactly as a `/v1/stream` WebSocket is: [`pump`] translates
//! events to the session link and the session's messages to events.

mod events;
mod pump;

use std::sync::{Arc, Mutex, PoisonError};

use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SocketIo, TransportType};

use super::AppState;
use super::auth::Caller;
use super::serve::ConnectionSlot;
use crate::config::SocketIoTransports;

/// Where Socket.IO is served, as clients configure it (`path` option).
pub const PATH: &str = "/socket.io";
/// The namespace clients connect to.
pub const NAMESPACE: &str = "/transcribe";

/// Packets the server queues for one Engine.IO connection. A polling answer
/// carries at most what is queued, and python-engineio's client refuses an
/// answer of more than 16 packets (its `max_decode_packets`), dropping the
/// connection; the pump waits for room instead of queueing more.
const SEND_BUFFER_PACKETS: usize = 16;

/// Engine.IO's own bound on one HTTP body or WebSocket message: a polling
/// POST carries binary as base64 (4/3 of the bytes) and may batch several
/// events, so the envelope is larger than the per-message limit, which the
/// pump enforces with the protocol's `message_too_big`.
fn max_payload(max_message_bytes: usize) -> u64 {
    (max_message_bytes as u64).saturating_mul(2) + 64 * 1024
}

/// Unread input one socket may hold: two Engine.IO payloads. Engine.IO
/// reads on without waiting for the session (there is no back-pressure to
/// the client as on the WebSocket), so past this the client is cut off with
/// `message_too_big`.
fn max_queued_bytes(max_message_bytes: usize) -> usize {
    usize::try_from(max_payload(max_message_bytes).saturating_mul(2)).unwrap_or(usize::MAX)
}

/// The Socket.IO layer for the public router, or `None` when
/// `AUSCULT_SOCKETIO_TRANSPORTS=off`.
pub fn layer(state: &AppState, transports: SocketIoTransports) -> Option<SocketIoLayer> {
    let builder = SocketIo::builder()
        .req_path(PATH)
        .ping_interval(state.keepalive.ping_interval)
        .ping_timeout(state.keepalive.pong_timeout)
        .max_payload(max_payload(state.sessions.settings().max_message_bytes))
        .max_buffer_size(SEND_BUFFER_PACKETS);
    let builder = match (transports.polling, transports.websocket) {
        (true, true) => builder.transports([TransportType::Polling, TransportType::Websocket]),
        (true, false) => builder.transports([TransportType::Polling]),
        (false, true) => builder.transports([TransportType::Websocket]),
        (false, false) => return None,
    };
    let (layer, io) = builder.build_layer();
    tracing::debug!(
        event = "socketio_enabled",
        path = PATH,
        namespace = NAMESPACE,
        transports = %transports.describe()
    );
    let on_connect = {
        let state = state.clone();
        async move |socket: SocketRef| connected(socket, state).await
    };
    let check = {
        let state = state.clone();
        async move |socket: SocketRef, auth: TryData<HandshakeAuth>| {
            admit(socket, state, auth.0.ok().and_then(|a| a.token)).await
        }
    };
    io.ns(NAMESPACE, on_connect.with(check));
    Some(layer)
}

/// Engine.IO's error bodies as its reference server writes them: engineioxide
/// answers an unknown session with `{"code":"1",...}`, the standard (and
/// every other server) with `{"code":1,...}`. Clients reconnect on the 400
/// either way; a body read by a proxy's or a client's logs reads the same.
pub async fn standard_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let ours = request.uri().path().starts_with(PATH);
    let response = next.run(request).await;
    if !ours || response.status() != axum::http::StatusCode::BAD_REQUEST {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1024).await else {
        return axum::response::Response::from_parts(parts, axum::body::Body::empty());
    };
    // Only a JSON object whose `code` is a string of digits is rewritten.
    let numeric = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|mut value| {
            let code = value["code"].as_str()?.parse::<u64>().ok()?;
            value["code"] = code.into();
            Some(value.to_string())
        });
    let body = match numeric {
        Some(text) => {
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            axum::body::Body::from(text)
        }
        None => axum::body::Body::from(bytes),
    };
    axum::response::Response::from_parts(parts, body)
}

/// The handshake's `auth` object; only `token` is read.
#[derive(Debug, serde::Deserialize)]
struct HandshakeAuth {
    token: Option<String>,
}

/// Why a connect was refused: its `Display` is the stable code, which
/// socketioxide sends as the `connect_error`'s `message`.
#[derive(Debug)]
struct Refused(&'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The connect middleware: who is calling, and whether the session entry
/// lets them in. An admitted socket's connection is prepared here (its
/// handlers registered before the client may send) and kept on the socket
/// for [`connected`].
async fn admit(socket: SocketRef, state: AppState, token: Option<String>) -> Result<(), Refused> {
    let caller = match Caller::resolve(socket.req_parts(), &state, token.as_deref()).await {
        Ok(caller) => caller,
        Err(refusal) => {
            crate::telemetry::connection_refused(refusal.code());
            tracing::info!(event = "socketio_refused", sid = %socket.id, code = refusal.code());
            return Err(Refused(refusal.code()));
        }
    };
    if let Err(refusal) = state.sessions.check_entry(&caller.user) {
        tracing::info!(
            event = "socketio_refused",
            sid = %socket.id,
            code = refusal.code().as_str()
        );
        return Err(Refused(refusal.code().as_str()));
    }
    tracing::info!(
        event = "socketio_connected",
        sid = %socket.id,
        transport = ?socket.transport_type(),
        via = caller.via.as_str()
    );
    let prepared = pump::Connection::prepare(&socket, &state, &caller);
    socket
        .extensions
        .insert(Prepared(Arc::new(Mutex::new(Some(prepared)))));
    Ok(())
}

/// The connection the middleware prepared, taken once by [`connected`].
#[derive(Clone)]
struct Prepared(Arc<Mutex<Option<pump::Connection>>>);

/// An admitted socket: opens its client connection on the session layer and
/// runs the pump as a tracked task (shutdown waits for its last messages).
async fn connected(socket: SocketRef, state: AppState) {
    let prepared = socket
        .extensions
        .remove::<Prepared>()
        .and_then(|p| p.0.lock().unwrap_or_else(PoisonError::into_inner).take());
    let Some(connection) = prepared else {
        // The middleware always prepares one; without it there is nobody to serve.
        let _ = socket.disconnect();
        return;
    };
    let slot = socket
        .req_parts()
        .extensions
        .get::<ConnectionSlot>()
        .cloned();
    let sessions = state.sessions.clone();
    // The connection runs until the socket or its session ends; the task is
    // tracked by the session layer, which waits for it at shutdown.
    tokio::spawn(sessions.track_connection(async move {
        let _slot = slot;
        connection.run(socket, state).await;
    }));
}
