//! Plain HTTP endpoints: liveness, readiness, Prometheus metrics, and the JSON
//! error body every refusal uses.

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

pub async fn ready(State(state): State<AppState>) -> Response {
    let database = state.metadata.ping().await;
    let migrations = state.metadata.migrations().await;
    let storage = state.objects.check_writable().await;
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
            "detail": storage.err().map_or_else(|| state.objects.describe(), |e| e.to_string()),
        },
        "engine": { "default": default_engine, "ready": engine_ready },
        "engines": engines,
        "sessions": { "active": state.sessions.active(), "max": state.sessions.settings().max_sessions },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
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
