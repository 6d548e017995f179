//! The production metadata store: Postgres through sqlx, migrations at open.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::PoolSettings;
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

/// The URL as logs and `/ready` may show it: `user:password@` and libpq's
/// `?password=` masked.
fn redact(url: &str) -> String {
    crate::config::redact_url(url)
}

impl PostgresMetadataStore {
    fn label(&self) -> String {
        format!("postgres {}", self.redacted)
    }
}

super::sql::sql_store!(PostgresMetadataStore, i32);
super::accounts::account_store!(PostgresMetadataStore);

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
            "postgresql://app@db/auscult?password=****&sslmode=require"
        );
    }
}
