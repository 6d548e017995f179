//! The REST API under `/v1` (docs/api.md): engines, a user's session history,
//! its transcript exports and audio, deletion, and the OpenAPI document.
//! Every handler takes [`AuthUser`]; a session that is not the caller's
//! answers exactly like one that does not exist.

mod downloads;
pub mod range;
mod sessions;

pub use downloads::{audio, transcript};
pub use sessions::{decode_cursor, delete_session, encode_cursor, get_session, list_sessions};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::auth::AuthUser;
use super::http::error_response;
use crate::storage::keys::{SessionKeys, validate_id};
use crate::storage::{SessionRow, StorageError};

/// The OpenAPI 3.1 document of every `/v1` route, written by hand.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// Why an API request failed; each has an HTTP status and a stable code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, someone else's, or an id that cannot exist: all look the same.
    #[error("no such session")]
    UnknownSession,
    #[error("the session is still recording or waiting to be stored")]
    SessionLive,
    /// The session ended without this object being stored.
    #[error("the session has no stored {0}")]
    NotStored(&'static str),
    #[error("unknown transcript format: use json, txt, srt or vtt")]
    BadFormat,
    #[error("limit must be a whole number from 1 to 100")]
    BadLimit,
    #[error("the cursor is not one this server gave out")]
    BadCursor,
    #[error("the query string is malformed")]
    BadQuery,
    #[error("the range is outside the object")]
    RangeNotSatisfiable { size: u64 },
    /// Worth retrying: a store is unreachable or failed.
    #[error("storage is unavailable, try again")]
    Storage(#[from] StorageError),
    /// Something stored is not what this server writes (the detail is logged, not sent).
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::UnknownSession | ApiError::NotStored(_) => StatusCode::NOT_FOUND,
            ApiError::SessionLive => StatusCode::CONFLICT,
            ApiError::BadFormat | ApiError::BadLimit | ApiError::BadCursor | ApiError::BadQuery => {
                StatusCode::BAD_REQUEST
            }
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::UnknownSession => "unknown_session",
            ApiError::SessionLive => "session_live",
            ApiError::NotStored(_) => "not_stored",
            ApiError::BadFormat => "bad_format",
            ApiError::BadLimit => "bad_limit",
            ApiError::BadCursor => "bad_cursor",
            ApiError::BadQuery => "bad_query",
            ApiError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ApiError::Storage(_) => "storage_unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The detail goes to the log once; the client gets the code.
        match &self {
            ApiError::Storage(e) => tracing::warn!(event = "api_storage_failed", error = %e),
            ApiError::Internal(detail) => tracing::error!(event = "api_internal_error", detail),
            _ => {}
        }
        let mut resp = error_response(self.status(), self.code(), &self.to_string());
        let headers = resp.headers_mut();
        match self {
            ApiError::RangeNotSatisfiable { size } => {
                if let Ok(v) = HeaderValue::from_str(&range::unsatisfied_range(size)) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
            }
            ApiError::Storage(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        resp
    }
}

/// The caller's session `id` with its object keys; anything else is
/// `UnknownSession` (ids that could not exist are never looked up).
async fn owned_session(
    state: &AppState,
    user: &AuthUser,
    id: &str,
) -> Result<(SessionRow, SessionKeys), ApiError> {
    validate_id(id).map_err(|_| ApiError::UnknownSession)?;
    let row = state
        .metadata
        .get_session(id)
        .await?
        .filter(|row| row.record.user_id == user.0)
        .ok_or(ApiError::UnknownSession)?;
    let keys = SessionKeys::new(&row.record.user_id, id).map_err(|_| ApiError::UnknownSession)?;
    Ok((row, keys))
}

/// `GET /v1/engines`: the engines this server has and whether each is ready.
pub async fn engines(State(state): State<AppState>, _user: AuthUser) -> Response {
    let registry = state.sessions.engines();
    let engines: Vec<_> = registry
        .readiness()
        .await
        .into_iter()
        .map(|(name, r)| json!({ "name": name, "ready": r.ready }))
        .collect();
    Json(json!({ "default": registry.default_name(), "engines": engines })).into_response()
}

/// `GET /v1/openapi.json`: public, like any API description.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// Responses carrying a user's data must not be kept by shared caches or the browser's.
fn private(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
