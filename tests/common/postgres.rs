//! A fresh Postgres database per test, and a reader for the rows the app wrote
//! there. The server comes from `AUSCULT_TEST_POSTGRES_URL` (default: the
//! local one scripts/test.sh starts); an unreachable server fails the test.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, Row};

use super::stored::SessionRow;

pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server tests connect to, through an existing database on it.
pub fn admin_url() -> String {
    std::env::var("AUSCULT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_owned())
}

/// `url` with its database replaced by `database` (query options kept).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").expect("postgres URL has a scheme");
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    match query {
        Some(q) => format!("{scheme}://{authority}/{database}?{q}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

async fn admin_connection() -> PgConnection {
    let url = admin_url();
    let connect = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&url));
    match connect.await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "Postgres is not reachable at {} ({e}): these tests need it. Run scripts/test.sh \
             (it starts the local server) or point AUSCULT_TEST_POSTGRES_URL at one.",
            auscult::config::redact_url(&url)
        ),
        Err(_) => panic!(
            "Postgres at {} did not answer within 10 s: these tests need it. Run scripts/test.sh \
             (it starts the local server) or point AUSCULT_TEST_POSTGRES_URL at one.",
            auscult::config::redact_url(&url)
        ),
    }
}

/// A database created for one test and dropped (best effort) when it goes out
/// of scope, even if the test panicked.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let name = format!("auscult_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = admin_connection().await;
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let _ = admin.close().await;
        TestDatabase {
            url: with_database(&admin_url(), &name),
            name,
        }
    }

    /// A small pool on the test database, for reading what the app wrote.
    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on; a
        // thread of its own with its own runtime can. FORCE ends the
        // connections a store under test may still hold.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin_url()).await.ok()?;
                conn.execute(AssertSqlSafe(sql)).await.ok()?;
                conn.close().await.ok()
            })
        })
        .join();
    }
}

/// Reads one session row (and its segments) from a Postgres metadata database.
pub async fn pg_session_row(pool: &PgPool, session_id: &str) -> Option<SessionRow> {
    let row = sqlx::query(
        "SELECT user_id, status, close_reason, received_bytes, encoding, channels, input_rate \
         FROM sessions WHERE id = $1",
    )
    .bind(session_id)
    .fetch_optional(pool)
    .await
    .expect("query sessions");
    let segments =
        sqlx::query("SELECT seq, result_id, text FROM segments WHERE session_id = $1 ORDER BY seq")
            .bind(session_id)
            .fetch_all(pool)
            .await
            .expect("query segments")
            .iter()
            .map(|r| (r.get("seq"), r.get("result_id"), r.get("text")))
            .collect();
    row.map(|r| SessionRow {
        user_id: r.get("user_id"),
        status: r.get("status"),
        close_reason: r.get("close_reason"),
        received_bytes: r.get::<i64, _>("received_bytes") as u64,
        encoding: r.get("encoding"),
        channels: r.get::<i32, _>("channels") as u16,
        input_rate: r.get::<i32, _>("input_rate") as u32,
        segments,
    })
}

/// Polls the Postgres database until the session's row has `status`.
pub async fn wait_for_pg_status(pool: &PgPool, session_id: &str, status: &str) -> SessionRow {
    super::poll_until(|| async {
        let row = pg_session_row(pool, session_id).await;
        match row {
            Some(row) if row.status == status => Ok(row),
            seen => Err(format!(
                "session {session_id} did not reach status {status:?}: {seen:?}"
            )),
        }
    })
    .await
}
