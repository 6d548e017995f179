//! The embedded metadata store: SQLite through sqlx, migrations at open.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::storage::{StorageError, private_fs};

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
        let file = path.clone();
        // Made 0600 before SQLite opens it: its -wal and -shm files take the
        // database file's permissions.
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if file.as_os_str().is_empty() || file.as_os_str() == ":memory:" {
                return Ok(());
            }
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                private_fs::create_dir_all(dir)?;
            }
            match private_fs::create_new(&file) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    private_fs::restrict(&file)
                }
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|e| StorageError::Unavailable(e.to_string()))??;
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

impl SqliteMetadataStore {
    fn label(&self) -> String {
        format!("sqlite {}", self.path)
    }
}

super::sql::sql_store!(SqliteMetadataStore, i64);
super::accounts::account_store!(SqliteMetadataStore);
