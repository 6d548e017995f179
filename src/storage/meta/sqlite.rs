//! The embedded metadata store: SQLite through sqlx, migrations at open.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{
    FinalSegment, MetadataStore, MigrationStatus, SessionOutcome, SessionRecord, SessionRow, rows,
};
use crate::storage::StorageError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteMetadataStore {
    pool: SqlitePool,
    path: String,
}

impl SqliteMetadataStore {
    pub async fn open(url: &str) -> Result<Self, StorageError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StorageError::Config(format!("invalid sqlite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let path = options.get_filename().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StorageError::Unavailable(format!("migrations failed: {e}")))?;
        Ok(SqliteMetadataStore {
            pool,
            path: display(&path),
        })
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

#[async_trait]
impl MetadataStore for SqliteMetadataStore {
    async fn create_session(&self, r: &SessionRecord) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, engine, language, encoding, channels, input_rate, engine_rate, \
             status, started_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'live', ?)",
        )
        .bind(&r.id)
        .bind(&r.user_id)
        .bind(&r.engine)
        .bind(&r.language)
        .bind(&r.encoding)
        .bind(i64::from(r.channels))
        .bind(i64::from(r.input_rate))
        .bind(i64::from(r.engine_rate))
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
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, seq) DO NOTHING",
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
            "SELECT seq, result_id, start_s, end_s, text, words_json FROM segments WHERE session_id = ? ORDER BY seq",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::segment).collect()
    }

    async fn get_session(&self, session_id: &str) -> Result<Option<SessionRow>, StorageError> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id = ?")
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::session::<_, i64>).transpose()
    }

    async fn update_received(
        &self,
        session_id: &str,
        received_bytes: u64,
    ) -> Result<(), StorageError> {
        sqlx::query("UPDATE sessions SET received_bytes = ? WHERE id = ?")
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
            "UPDATE sessions SET status = ?, close_reason = ?, ended_at_ms = ?, received_bytes = ?, duration_s = ?, \
             audio_key = ?, transcript_key = ?, manifest_key = ? WHERE id = ?",
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
        format!("sqlite {}", self.path)
    }
}
