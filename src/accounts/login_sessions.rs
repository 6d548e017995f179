//! Cookie login sessions in the metadata database, as a `tower-sessions`
//! store. Only the SHA-256 of a cookie's id is stored. Every save moves the
//! expiry to now + the idle time, so a login ends after that long without a
//! request (the cookie itself carries no Max-Age: the server decides).

use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use crate::session::wall_clock_ms;
use crate::storage::meta::{SharedMetadataStore, WebSessionRow};

/// The session data key holding the logged-in username.
pub const USER_KEY: &str = "user";
/// The session data key holding the time of the last request (saving it is
/// what pushes the idle expiry back).
pub const SEEN_KEY: &str = "seen_at_ms";

/// Ids tried when a new session's random id is taken (practically never).
const CREATE_ATTEMPTS: usize = 4;

#[derive(Clone)]
pub struct LoginSessionStore {
    store: SharedMetadataStore,
    idle: Duration,
}

impl std::fmt::Debug for LoginSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginSessionStore")
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

/// The key a session is stored under: the hex SHA-256 of its cookie value.
pub fn id_hash(id: &Id) -> String {
    hex::encode(Sha256::digest(id.to_string().as_bytes()))
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

impl LoginSessionStore {
    pub fn new(store: SharedMetadataStore, idle: Duration) -> Self {
        LoginSessionStore { store, idle }
    }

    fn row(&self, record: &Record, now_ms: i64) -> session_store::Result<WebSessionRow> {
        let data = serde_json::to_string(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        Ok(WebSessionRow {
            id_hash: id_hash(&record.id),
            user_id: record
                .data
                .get(USER_KEY)
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            data,
            expires_at_ms: now_ms + self.idle.as_millis() as i64,
        })
    }
}

#[async_trait]
impl SessionStore for LoginSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..CREATE_ATTEMPTS {
            let row = self.row(record, wall_clock_ms())?;
            if self.store.create_web_session(&row).await.map_err(backend)? {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(backend("no free session id"))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let now = wall_clock_ms();
        let row = self.row(record, now)?;
        self.store
            .save_web_session(&row, now)
            .await
            .map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some(row) = self
            .store
            .load_web_session(&id_hash(id), wall_clock_ms())
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let data = serde_json::from_str(&row.data)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        let expiry_date =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(row.expires_at_ms) * 1_000_000)
                .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.store
            .delete_web_session(&id_hash(id))
            .await
            .map_err(backend)
    }
}

/// Deletes expired login sessions and rate-limit windows every `every` until `stop`.
pub async fn run_cleanup(store: SharedMetadataStore, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        match store.delete_expired_web_sessions(wall_clock_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(event = "login_sessions_expired", count = n),
            Err(e) => tracing::warn!(event = "login_cleanup_failed", error = %e),
        }
        if let Err(e) = store.delete_expired_login_limits(wall_clock_ms()).await {
            tracing::warn!(event = "login_cleanup_failed", error = %e);
        }
    }
}

/// Keeps a login alive while a WebSocket it opened is connected: recording is
/// activity, and the page must be able to resume after a long recording.
/// Never returns; drop it with the connection. Stops touching once the login
/// has ended (logout, user disabled).
pub async fn keep_alive(store: SharedMetadataStore, id: Id, idle: Duration) {
    let hash = id_hash(&id);
    let every = (idle / 3).max(Duration::from_millis(200));
    loop {
        tokio::time::sleep(every).await;
        let now = wall_clock_ms();
        let expires = now + idle.as_millis() as i64;
        match store.touch_web_session(&hash, expires, now).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => tracing::warn!(event = "login_keepalive_failed", error = %e),
        }
    }
    std::future::pending::<()>().await;
}
