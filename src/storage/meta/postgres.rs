//! The production metadata store: Postgres through sqlx, migrations at open.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{
    FinalSegment, MetadataStore, MigrationStatus, PoolSettings, SessionOutcome, SessionRecord,
    SessionRow, rows,
};
use crate::storage::StorageError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PostgresMetadataStore {
    pool: PgPool,
    /// The URL with its password (and query options, which may carry one) removed.
    redacted: String,
}

impl PostgresMetadataStore {
    /// The pool every instance uses: small, since each session writes a handful
    /// of rows, and a bounded wait so an exhausted pool surfaces as a retryable
    /// `Unavailable` rather than a hang.
    pub fn pool_options(settings: &PoolSettings) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
    }

    pub async fn open(url: &str, pool: PgPoolOptions) -> Result<Self, StorageError> {
        let redacted = redact(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StorageError::Config(format!("invalid postgres URL {redacted}: {e}")))?;
        let pool = pool
            .connect_with(options)
            .await
            .map_err(|e| StorageError::Unavailable(format!("connect to {redacted}: {e}")))?;
        // sqlx's Postgres migrator holds an advisory lock while it runs, so
        // several instances starting together against one database apply each
        // migration once and the others wait, then see it applied.
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StorageError::Unavailable(format!("migrations failed: {e}")))?;
        Ok(PostgresMetadataStore { pool, redacted })
    }
}

/// `redact_url` masks `user:password@`; libpq-style URLs may also carry the
/// password as `?password=`, so the query is dropped as well.
fn redact(url: &str) -> String {
    let without_query = url.split_once('?').map_or(url, |(base, _)| base);
    crate::config::redact_url(without_query)
}

fn int(name: &str, value: u32) -> Result<i32, StorageError> {
    i32::try_from(value).map_err(|_| StorageError::Invalid(format!("{name} {value} out of range")))
}

#[async_trait]
impl MetadataStore for PostgresMetadataStore {
    async fn create_session(&self, r: &SessionRecord) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, engine, language, encoding, channels, input_rate, engine_rate, \
             status, started_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'live', $9)",
        )
        .bind(&r.id)
        .bind(&r.user_id)
        .bind(&r.engine)
        .bind(&r.language)
        .bind(&r.encoding)
        .bind(i32::from(r.channels))
        .bind(int("input_rate", r.input_rate)?)
        .bind(int("engine_rate", r.engine_rate)?)
        .bind(r.started_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn add_segment(&self, session_id: &str, s: &FinalSegment) -> Result<(), StorageError> {
        let words =
            serde_json::to_string(&s.words).map_err(|e| StorageError::Invalid(e.to_string()))?;
        sqlx::query(
            "INSERT INTO segments (session_id, seq, result_id, start_s, end_s, text, words_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (session_id, seq) DO NOTHING",
        )
        .bind(session_id)
        .bind(i64::from(s.seq))
        .bind(&s.result_id)
        .bind(s.start)
        .bind(s.end)
        .bind(&s.text)
        .bind(words)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn segments(&self, session_id: &str) -> Result<Vec<FinalSegment>, StorageError> {
        let rows = sqlx::query(
            "SELECT seq, result_id, start_s, end_s, text, words_json FROM segments WHERE session_id = $1 ORDER BY seq",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::segment).collect()
    }

    async fn get_session(&self, session_id: &str) -> Result<Option<SessionRow>, StorageError> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id = $1")
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::session::<_, i32>).transpose()
    }

    async fn update_received(
        &self,
        session_id: &str,
        received_bytes: u64,
    ) -> Result<(), StorageError> {
        sqlx::query("UPDATE sessions SET received_bytes = $1 WHERE id = $2")
            .bind(received_bytes as i64)
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn finish_session(
        &self,
        session_id: &str,
        o: &SessionOutcome,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE sessions SET status = $1, close_reason = $2, ended_at_ms = $3, received_bytes = $4, \
             duration_s = $5, audio_key = $6, transcript_key = $7, manifest_key = $8 WHERE id = $9",
        )
        .bind(o.status.as_str())
        .bind(&o.close_reason)
        .bind(o.ended_at_ms)
        .bind(o.received_bytes as i64)
        .bind(o.duration_s)
        .bind(&o.audio_key)
        .bind(&o.transcript_key)
        .bind(&o.manifest_key)
        .bind(session_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn migrations(&self) -> Result<MigrationStatus, StorageError> {
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        let total = MIGRATOR.iter().count();
        let applied = applied as usize;
        Ok(MigrationStatus {
            applied,
            pending: total.saturating_sub(applied),
        })
    }

    fn describe(&self) -> String {
        format!("postgres {}", self.redacted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_never_carries_a_password() {
        assert_eq!(
            redact("postgres://app:hunter2@db:5432/auscult"),
            "postgres://app:****@db:5432/auscult"
        );
        assert_eq!(
            redact("postgresql://app@db/auscult?password=hunter2&sslmode=require"),
            "postgresql://app@db/auscult"
        );
    }
}
