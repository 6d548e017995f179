//! Plain HTTP endpoints: liveness, readiness, Prometheus metrics, and the JSON
//! error body every refusal uses.
//!
//! Readiness comes in two forms: the public one says only ready or not (the
//! load balancer needs no more, and anyone can call it); the admin
//! listener's names each check and its error, which can carry hosts, paths
//! and user names. The storage probe writes and deletes an object, so its
//! result is kept for [`PROBE_TTL`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

/// `{"error":{"code":...,"message":...}}` with a stable code.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

pub async fn health() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// How long one storage probe's answer is reused.
pub const PROBE_TTL: Duration = Duration::from_secs(5);

/// The last storage probe's answer and when it was taken.
#[derive(Default)]
pub struct StorageProbe {
    last: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl StorageProbe {
    /// Whether object storage takes writes, probing at most once per [`PROBE_TTL`].
    pub async fn check(&self, state: &AppState) -> Result<(), String> {
        let mut last = self.last.lock().await;
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < PROBE_TTL
        {
            return result.clone();
        }
        let result = state
            .objects
            .check_writable()
            .await
            .map_err(|e| e.to_string());
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

/// Whether the readiness verdict changed since the last call, so a change
/// is logged once (with its reasons) rather than on every probe.
static LAST_VERDICT: Mutex<Option<bool>> = Mutex::new(None);

/// `GET /ready` on the public listener: `{"ready": bool}`, 503 when not.
pub async fn ready(State(state): State<AppState>) -> Response {
    let (ready, _) = readiness(&state).await;
    (ready_status(ready), Json(json!({ "ready": ready }))).into_response()
}

/// `GET /ready` on the admin listener: every check with its detail.
pub async fn ready_detail(State(state): State<AppState>) -> Response {
    let (ready, body) = readiness(&state).await;
    (ready_status(ready), Json(body)).into_response()
}

fn ready_status(ready: bool) -> StatusCode {
    if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn readiness(state: &AppState) -> (bool, serde_json::Value) {
    let database = state.metadata.ping().await;
    let migrations = state.metadata.migrations().await;
    let storage = state.probe.check(state).await;
    let engines = state.sessions.engines().readiness().await;
    let default_engine = state.sessions.engines().default_name().to_owned();
    let engine_ready = engines.get(&default_engine).is_some_and(|r| r.ready);
    let pending = migrations.as_ref().map(|m| m.pending).unwrap_or(usize::MAX);
    let shutting_down = state.sessions.is_shutting_down();
    let ready =
        database.is_ok() && pending == 0 && storage.is_ok() && engine_ready && !shutting_down;
    let body = json!({
        "ready": ready,
        "shutting_down": shutting_down,
        "database": {
            "ok": database.is_ok(),
            "detail": database.err().map_or_else(|| state.metadata.describe(), |e| e.to_string()),
        },
        "migrations": match &migrations {
            Ok(m) => json!({ "applied": m.applied, "pending": m.pending }),
            Err(e) => json!({ "error": e.to_string() }),
        },
        "storage": {
            "ok": storage.is_ok(),
            "detail": storage.err().unwrap_or_else(|| state.objects.describe()),
        },
        "engine": { "default": default_engine, "ready": engine_ready },
        "engines": engines,
        "sessions": { "active": state.sessions.active(), "max": state.sessions.settings().max_sessions },
    });
    let changed = {
        let mut last = LAST_VERDICT.lock().unwrap_or_else(|e| e.into_inner());
        last.replace(ready) != Some(ready)
    };
    if changed && !ready {
        tracing::warn!(event = "not_ready", checks = %body, "readiness check failing");
    } else if changed {
        tracing::info!(event = "ready");
    }
    (ready, body)
}

pub async fn metrics() -> Response {
    match crate::telemetry::metrics_handle() {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_unavailable",
            "metrics recorder not installed",
        ),
    }
}

pub async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}
