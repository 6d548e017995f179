//! A session's stored transcript (as JSON, text, SRT or WebVTT) and its
//! audio (whole or one byte range, streamed from the object store).

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;

use super::range::{self, RangeRequest};
use super::{ApiError, owned_session, private};
use crate::export::{self, Format, StoredTranscript};
use crate::transport::AppState;
use crate::transport::auth::AuthUser;

#[derive(Debug, Deserialize)]
pub struct TranscriptQuery {
    format: Option<String>,
}

/// `GET /v1/sessions/{id}/transcript?format=json|txt|srt|vtt`, as a download.
pub async fn transcript(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    query: Result<Query<TranscriptQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (row, keys) = owned_session(&state, &user, &id).await?;
    let Query(query) = query.map_err(|_| ApiError::BadQuery)?;
    let format = match query.format.as_deref() {
        None => Format::Json,
        Some(name) => Format::parse(name).ok_or(ApiError::BadFormat)?,
    };
    if row.status.is_unfinished() {
        return Err(ApiError::SessionLive);
    }
    let stored = state
        .objects
        .get(&keys.transcript())
        .await?
        .ok_or(ApiError::NotStored("transcript"))?;
    let body = match format {
        Format::Json => stored,
        Format::Txt | Format::Srt | Format::Vtt => {
            // Where it failed, not serde's message: that can quote the text.
            let doc: StoredTranscript = serde_json::from_slice(&stored).map_err(|e| {
                ApiError::Internal(format!(
                    "stored transcript of {id} does not parse ({:?} error at line {} column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ))
            })?;
            let text = match format {
                Format::Srt => export::srt(&doc.segments),
                Format::Vtt => export::vtt(&doc.segments),
                _ => export::txt(&doc.segments),
            };
            Bytes::from(text)
        }
    };
    let disposition = format!("attachment; filename=\"{id}.{}\"", format.extension());
    Ok(private(
        (
            [
                (header::CONTENT_TYPE, format.content_type().to_owned()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            body,
        )
            .into_response(),
    ))
}

/// `GET /v1/sessions/{id}/audio`: `audio/wav`, whole (200) or one range
/// (206); streamed, so a long recording is never held in memory.
pub async fn audio(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (row, keys) = owned_session(&state, &user, &id).await?;
    if row.status.is_unfinished() {
        return Err(ApiError::SessionLive);
    }
    let key = keys.audio();
    let size = state
        .objects
        .head(&key)
        .await?
        .ok_or(ApiError::NotStored("audio"))?;
    let requested = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, span) = match range::resolve(requested, size) {
        RangeRequest::Whole => (StatusCode::OK, 0..size),
        RangeRequest::Partial(span) => (StatusCode::PARTIAL_CONTENT, span),
        RangeRequest::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { size }),
    };
    let stream = state
        .objects
        .get_range(&key, span.clone())
        .await?
        .ok_or(ApiError::NotStored("audio"))?;
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(span.end - span.start),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&range::content_range(&span, size))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{id}.wav\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(private(resp))
}
