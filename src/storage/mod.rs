//! Storage: where finished sessions live. Two small traits, [`ObjectStore`]
//! (audio, transcript, manifest) and [`MetadataStore`] (session rows and final
//! segments, plus the [`AccountStore`] of users, logins and the audit log),
//! each with an embedded implementation (a folder, SQLite).

pub mod keys;
pub mod meta;
pub mod object;
pub mod private_fs;

pub use meta::{
    AccountStore, AuditAction, AuditEntry, FinalSegment, MetadataStore, MigrationStatus,
    SessionCursor, SessionOutcome, SessionRecord, SessionRow, SessionStatus,
};
pub use object::ObjectStore;

/// A storage failure. `Unavailable` is worth retrying; the others are not.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("invalid storage request: {0}")]
    Invalid(String),
    #[error("storage configuration: {0}")]
    Config(String),
    /// The session was deleted by its user: it must not be stored again.
    #[error("session {0} was deleted")]
    Deleted(String),
}

impl StorageError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StorageError::Unavailable(_))
    }
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        StorageError::Unavailable(e.to_string())
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        StorageError::Unavailable(e.to_string())
    }
}
