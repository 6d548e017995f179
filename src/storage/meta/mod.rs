//! Session metadata: one row per session (who, which engine, formats, timings,
//! byte counts, keys, status) and its final transcript segments; and, in the
//! same database, the accounts ([`AccountStore`]: users, login sessions, audit log).

mod accounts;
mod postgres;
mod rows;
mod sql;
mod sqlite;

pub use accounts::{
    AccountStore, AuditAction, AuditEntry, Credentials, LimitScope, RATE_LIMITED, Reservation,
    User, WebSessionRow,
};
pub use postgres::PostgresMetadataStore;
pub use sqlite::SqliteMetadataStore;

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::StorageError;
use crate::protocol::Word;

/// A session as created at `start`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    pub engine: String,
    pub language: String,
    pub encoding: String,
    pub channels: u16,
    pub input_rate: u32,
    pub engine_rate: u32,
    pub started_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Live,
    Stored,
    Recovered,
    PendingUpload,
    Failed,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Live => "live",
            SessionStatus::Stored => "stored",
            SessionStatus::Recovered => "recovered",
            SessionStatus::PendingUpload => "pending_upload",
            SessionStatus::Failed => "failed",
        }
    }

    /// Still recording, or ended but not stored yet: its objects are not final.
    pub fn is_unfinished(self) -> bool {
        matches!(self, SessionStatus::Live | SessionStatus::PendingUpload)
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "live" => SessionStatus::Live,
            "stored" => SessionStatus::Stored,
            "recovered" => SessionStatus::Recovered,
            "pending_upload" => SessionStatus::PendingUpload,
            "failed" => SessionStatus::Failed,
            _ => return None,
        })
    }
}

/// How a session ended and where it was stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionOutcome {
    pub status: SessionStatus,
    pub close_reason: String,
    pub ended_at_ms: i64,
    pub received_bytes: u64,
    pub duration_s: f64,
    pub audio_key: String,
    pub transcript_key: String,
    pub manifest_key: String,
    /// Announce the stored session with a `RecordingFinalized` event (once per session).
    pub notify: bool,
}

/// A session row as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub record: SessionRecord,
    pub status: SessionStatus,
    pub close_reason: Option<String>,
    pub ended_at_ms: Option<i64>,
    pub received_bytes: u64,
    pub duration_s: Option<f64>,
    pub audio_key: Option<String>,
    pub transcript_key: Option<String>,
    pub manifest_key: Option<String>,
}

/// One final transcript result, in session order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalSegment {
    pub seq: u32,
    pub result_id: String,
    pub start: f64,
    pub end: f64,
    pub text: String,
    #[serde(default)]
    pub words: Vec<Word>,
    /// PHI/PII entities, with their times (in `transcript.json` and the segment row).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<crate::protocol::Entity>,
    /// `text` with the entities replaced by `[PHI]` (when there are entities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_text: Option<String>,
}

/// Where a page of a user's sessions ended: the last session's start time
/// and id (ties in start time are ordered by id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    pub started_at_ms: i64,
    pub id: String,
}

impl SessionCursor {
    /// The cursor that continues after `row`.
    pub fn after(row: &SessionRow) -> Self {
        SessionCursor {
            started_at_ms: row.record.started_at_ms,
            id: row.record.id.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MigrationStatus {
    pub applied: usize,
    pub pending: usize,
}

/// Session rows and their final segments (every write is idempotent, so a
/// retry after a lost reply is safe), and the accounts kept beside them.
#[async_trait]
pub trait MetadataStore: AccountStore + Send + Sync + 'static {
    /// Creates the row of a new live session, owned by instance `owner`;
    /// [`StorageError::Deleted`] for a session that was deleted.
    async fn create_session(
        &self,
        record: &SessionRecord,
        owner: &str,
        now_ms: i64,
    ) -> Result<(), StorageError>;
    /// Adds a final segment; adding the same `seq` again keeps the first.
    async fn add_segment(
        &self,
        session_id: &str,
        segment: &FinalSegment,
    ) -> Result<(), StorageError>;
    async fn segments(&self, session_id: &str) -> Result<Vec<FinalSegment>, StorageError>;
    async fn get_session(&self, session_id: &str) -> Result<Option<SessionRow>, StorageError>;
    /// `user_id`'s sessions, newest first (by start time, then by id), at most
    /// `limit`, continuing after `before` when given.
    async fn list_sessions(
        &self,
        user_id: &str,
        limit: u32,
        before: Option<&SessionCursor>,
    ) -> Result<Vec<SessionRow>, StorageError>;
    /// Deletes a session's row and its segments together and leaves a
    /// tombstone, so the session can never be created again; `false` when
    /// there was no such session.
    async fn delete_session(
        &self,
        session_id: &str,
        deleted_at_ms: i64,
    ) -> Result<bool, StorageError>;
    /// Whether the session was deleted (it has a tombstone).
    async fn is_deleted(&self, session_id: &str) -> Result<bool, StorageError>;
    /// Records how much audio is safe in object storage so far (chunk flushes).
    async fn update_received(
        &self,
        session_id: &str,
        received_bytes: u64,
    ) -> Result<(), StorageError>;
    /// Completes the row once everything is stored.
    async fn finish_session(
        &self,
        session_id: &str,
        outcome: &SessionOutcome,
    ) -> Result<(), StorageError>;
    /// Marks a live session that ended but could not be stored yet.
    async fn mark_pending(
        &self,
        session_id: &str,
        close_reason: &str,
        ended_at_ms: i64,
    ) -> Result<(), StorageError>;
    /// Refreshes the heartbeat of every unfinished session `owner` holds; returns how many.
    async fn heartbeat(&self, owner: &str, now_ms: i64) -> Result<u64, StorageError>;
    /// Makes `owner` the session's owner, whoever held it (its local spool is the fuller copy).
    async fn claim_session(
        &self,
        session_id: &str,
        owner: &str,
        now_ms: i64,
    ) -> Result<(), StorageError>;
    /// Unfinished sessions whose owner has not heartbeaten since `cutoff_ms`, oldest first.
    async fn stale_sessions(&self, cutoff_ms: i64, limit: u32)
    -> Result<Vec<String>, StorageError>;
    /// Takes a stale session over for `owner`; `false` when it is not stale
    /// (any more) or another instance took it first.
    async fn take_over(
        &self,
        session_id: &str,
        owner: &str,
        cutoff_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StorageError>;
    /// Stored sessions whose `RecordingFinalized` event is still to be sent.
    async fn pending_events(&self, limit: u32) -> Result<Vec<SessionRow>, StorageError>;
    async fn mark_event_sent(&self, session_id: &str) -> Result<(), StorageError>;
    async fn ping(&self) -> Result<(), StorageError>;
    async fn migrations(&self) -> Result<MigrationStatus, StorageError>;
    fn describe(&self) -> String;
}

pub type SharedMetadataStore = Arc<dyn MetadataStore>;

/// Connection pool settings for a networked database (`AUSCULT_DATABASE_POOL_SIZE`,
/// `AUSCULT_DATABASE_TIMEOUT_SECS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a query waits for a free connection (or a new one) before failing.
    pub acquire_timeout: std::time::Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            acquire_timeout: std::time::Duration::from_secs(5),
        }
    }
}

/// Opens the metadata store named by `AUSCULT_DATABASE_URL` (SQLite or
/// Postgres) and runs its migrations.
pub async fn open(
    url: &SecretString,
    pool: &PoolSettings,
) -> Result<SharedMetadataStore, StorageError> {
    let raw = url.expose_secret();
    if raw.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteMetadataStore::open(raw).await?));
    }
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        return Ok(Arc::new(
            PostgresMetadataStore::open(raw, PostgresMetadataStore::pool_options(pool)).await?,
        ));
    }
    Err(StorageError::Config(format!(
        "unsupported database URL {}: expected sqlite://, postgres:// or postgresql://",
        crate::config::redact_url(raw)
    )))
}
