//! A user's sessions: the newest-first list with keyset paging, one session,
//! and deleting one (its objects, then its rows).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiError, owned_session, private};
use crate::storage::keys::validate_id;
use crate::storage::{AuditAction, AuditEntry, SessionCursor, SessionRow};
use crate::telemetry;
use crate::transport::AppState;
use crate::transport::auth::AuthUser;
use crate::transport::forwarded::ClientIp;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// A session as the API shows it (docs/api.md `Session`).
#[derive(Debug, Serialize)]
struct SessionView<'a> {
    id: &'a str,
    status: &'static str,
    close_reason: Option<&'a str>,
    engine: &'a str,
    language: &'a str,
    encoding: &'a str,
    channels: u16,
    input_rate: u32,
    started_at_ms: i64,
    ended_at_ms: Option<i64>,
    duration_s: Option<f64>,
    received_bytes: u64,
}

impl<'a> From<&'a SessionRow> for SessionView<'a> {
    fn from(row: &'a SessionRow) -> Self {
        let r = &row.record;
        SessionView {
            id: &r.id,
            status: row.status.as_str(),
            close_reason: row.close_reason.as_deref(),
            engine: &r.engine,
            language: &r.language,
            encoding: &r.encoding,
            channels: r.channels,
            input_rate: r.input_rate,
            started_at_ms: r.started_at_ms,
            ended_at_ms: row.ended_at_ms,
            duration_s: row.duration_s,
            received_bytes: row.received_bytes,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    before: Option<String>,
}

/// `GET /v1/sessions?limit=&before=`: the caller's sessions, newest first.
pub async fn list_sessions(
    State(state): State<AppState>,
    user: AuthUser,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::BadQuery)?;
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or(ApiError::BadLimit)?,
    };
    let before = query.before.as_deref().map(decode_cursor).transpose()?;
    // One row more than asked says whether there is a next page.
    let mut rows = state
        .metadata
        .list_sessions(&user.0, limit + 1, before.as_ref())
        .await?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last()
            .map(|row| encode_cursor(&SessionCursor::after(row)))
    } else {
        None
    };
    let sessions: Vec<SessionView> = rows.iter().map(SessionView::from).collect();
    Ok(private(
        Json(json!({ "sessions": sessions, "next": next })).into_response(),
    ))
}

/// `GET /v1/sessions/{id}`.
pub async fn get_session(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (row, _) = owned_session(&state, &user, &id).await?;
    Ok(private(Json(SessionView::from(&row)).into_response()))
}

/// `DELETE /v1/sessions/{id}`: every object under the session's prefix
/// (audio, transcript, manifest, any chunk left behind), then its rows. A
/// failure part-way leaves the row, so the delete can simply be repeated.
pub async fn delete_session(
    State(state): State<AppState>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (row, keys) = owned_session(&state, &user, &id).await?;
    if row.status.is_unfinished() {
        return Err(ApiError::SessionLive);
    }
    let objects = state.objects.list(keys.prefix()).await?;
    for key in &objects {
        state.objects.delete(key).await?;
    }
    state
        .metadata
        .delete_session(&id, crate::session::wall_clock_ms())
        .await?;
    let entry = AuditEntry::new(AuditAction::SessionDeleted, Some(&user.0))
        .with_ip(ip.as_deref())
        .with_detail(&id);
    if let Err(e) = state.metadata.audit(&entry).await {
        // Deleted already; the missing audit row is logged (ids only).
        telemetry::storage_failure("audit", &id, &e);
    }
    telemetry::session_deleted(&id, &user.0, objects.len());
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The opaque `before`/`next` value: the hex of `<started_at_ms>:<id>`.
/// Public for the fuzz targets and property tests.
pub fn encode_cursor(cursor: &SessionCursor) -> String {
    hex::encode(format!("{}:{}", cursor.started_at_ms, cursor.id))
}

/// Reads a cursor [`encode_cursor`] gave out; anything else is `BadCursor`.
pub fn decode_cursor(text: &str) -> Result<SessionCursor, ApiError> {
    let bytes = hex::decode(text).map_err(|_| ApiError::BadCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| ApiError::BadCursor)?;
    let (ms, id) = text.split_once(':').ok_or(ApiError::BadCursor)?;
    let started_at_ms = ms.parse().map_err(|_| ApiError::BadCursor)?;
    validate_id(id).map_err(|_| ApiError::BadCursor)?;
    Ok(SessionCursor {
        started_at_ms,
        id: id.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_anything_else_is_refused() {
        let cursor = SessionCursor {
            started_at_ms: 1_763_700_000_123,
            id: "0193-abc".to_owned(),
        };
        let text = encode_cursor(&cursor);
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
        assert_eq!(decode_cursor(&text).unwrap(), cursor);
        for bad in [
            "",
            "zz",
            "abc",
            &hex::encode("no-colon"),
            &hex::encode("x:id"),
            &hex::encode("1:../etc"),
            &hex::encode("1:"),
        ] {
            assert!(
                matches!(decode_cursor(bad), Err(ApiError::BadCursor)),
                "{bad}"
            );
        }
    }
}
