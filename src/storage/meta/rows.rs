//! Decoding rows into session and account types, shared by the SQLite and Postgres stores
//! (their SQL differs in placeholders; the columns and their meaning do not).

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{
    AuditAction, AuditEntry, FinalSegment, SessionRecord, SessionRow, SessionStatus, User,
};
use crate::storage::StorageError;

/// Decodes a `sessions` row. `Int` is the column type of channels and rates
/// (`i64` in SQLite, `i32` for Postgres `INTEGER`).
pub(super) fn session<'r, R, Int>(row: &'r R) -> Result<SessionRow, StorageError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    Int: Decode<'r, R::Database> + Type<R::Database> + Into<i64>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    Option<f64>: Decode<'r, R::Database> + Type<R::Database>,
{
    let small =
        |name: &'r str| -> Result<i64, sqlx::Error> { Ok(row.try_get::<Int, _>(name)?.into()) };
    let status: String = row.try_get("status")?;
    Ok(SessionRow {
        record: SessionRecord {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            engine: row.try_get("engine")?,
            language: row.try_get("language")?,
            encoding: row.try_get("encoding")?,
            channels: small("channels")? as u16,
            input_rate: small("input_rate")? as u32,
            engine_rate: small("engine_rate")? as u32,
            started_at_ms: row.try_get("started_at_ms")?,
        },
        status: SessionStatus::parse(&status).unwrap_or(SessionStatus::Failed),
        close_reason: row.try_get("close_reason")?,
        ended_at_ms: row.try_get("ended_at_ms")?,
        received_bytes: row.try_get::<i64, _>("received_bytes")? as u64,
        duration_s: row.try_get("duration_s")?,
        audio_key: row.try_get("audio_key")?,
        transcript_key: row.try_get("transcript_key")?,
        manifest_key: row.try_get("manifest_key")?,
    })
}

/// Decodes a `segments` row.
pub(super) fn segment<'r, R>(row: &'r R) -> Result<FinalSegment, StorageError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
{
    let words: String = row.try_get("words_json")?;
    let entities: Option<String> = row.try_get("entities_json")?;
    let entities: Vec<crate::protocol::Entity> = entities
        .map(|json| serde_json::from_str(&json))
        .transpose()
        .map_err(|e| StorageError::Invalid(format!("segment entities: {e}")))?
        .unwrap_or_default();
    let text: String = row.try_get("text")?;
    Ok(FinalSegment {
        seq: row.try_get::<i64, _>("seq")? as u32,
        result_id: row.try_get("result_id")?,
        start: row.try_get("start_s")?,
        end: row.try_get("end_s")?,
        redacted_text: crate::protocol::Entity::redacted_variant(&text, &entities),
        text,
        words: serde_json::from_str(&words).unwrap_or_default(),
        entities,
    })
}

/// Decodes the `username, disabled, created_at_ms` of a `users` row.
pub(super) fn user<'r, R>(row: &'r R) -> Result<User, StorageError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(User {
        username: row.try_get("username")?,
        disabled: row.try_get("disabled")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

/// Decodes an `audit_log` row.
pub(super) fn audit_entry<'r, R>(row: &'r R) -> Result<AuditEntry, StorageError>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    let action: String = row.try_get("action")?;
    Ok(AuditEntry {
        at_ms: row.try_get("at_ms")?,
        user_id: row.try_get("user_id")?,
        action: AuditAction::parse(&action)
            .ok_or_else(|| StorageError::Invalid(format!("unknown audit action {action:?}")))?,
        ip: row.try_get("ip")?,
        detail: row.try_get("detail")?,
    })
}
