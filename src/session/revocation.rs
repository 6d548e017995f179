//! Ending live sessions from outside, on any instance: a user who was
//! disabled (`auscult users disable` only writes the database) loses the
//! recordings in progress (`access_revoked`), and a recording opened with a
//! cookie login ends when that login does (`logged_out`, at logout on any
//! instance). The audio so far is stored as for any close. Every instance
//! looks once per heartbeat interval; the instance that handles a logout
//! ends its own sessions at once.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::manager::SessionManager;
use super::wall_clock_ms;
use crate::protocol::CloseReason;
use crate::storage::StorageError;

/// Ends one live session from outside, once, with the first reason given.
#[derive(Clone, Default)]
pub(super) struct Revocation {
    token: CancellationToken,
    reason: Arc<OnceLock<CloseReason>>,
}

impl Revocation {
    /// Asks the session to end with `reason`; `false` when it was asked already.
    pub fn revoke(&self, reason: CloseReason) -> bool {
        let first = self.reason.set(reason).is_ok();
        if first {
            self.token.cancel();
        }
        first
    }

    /// Resolves with the reason once the session is asked to end.
    pub async fn revoked(&self) -> CloseReason {
        self.token.cancelled().await;
        self.reason
            .get()
            .copied()
            .unwrap_or(CloseReason::AccessRevoked)
    }
}

impl SessionManager {
    /// Ends the live sessions of users who were disabled; returns how many.
    pub async fn revoke_disabled_users(&self) -> Result<usize, StorageError> {
        let shared = self.shared();
        let recording: HashSet<String> =
            shared.sessions.iter().map(|s| s.user_id.clone()).collect();
        if recording.is_empty() {
            return Ok(0);
        }
        let disabled: HashSet<String> = shared
            .stores
            .metadata
            .list_users()
            .await?
            .into_iter()
            .filter(|u| u.disabled && recording.contains(&u.username))
            .map(|u| u.username)
            .collect();
        let mut ended = 0;
        for session in shared.sessions.iter() {
            if disabled.contains(&session.user_id)
                && session.revoke.revoke(CloseReason::AccessRevoked)
            {
                tracing::warn!(event = "session_access_revoked", session_id = %session.key(), user_id = %session.user_id);
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Ends the live sessions opened with the cookie login `id_hash` (it was
    /// logged out here); returns how many.
    pub fn end_login(&self, id_hash: &str) -> usize {
        self.end_sessions_of_logins(|login| login == id_hash)
    }

    /// Ends the live sessions whose cookie login no longer exists (logged out
    /// on another instance, or expired); returns how many.
    pub async fn revoke_ended_logins(&self) -> Result<usize, StorageError> {
        let logins: Vec<String> = self
            .shared()
            .sessions
            .iter()
            .filter_map(|s| s.login.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        if logins.is_empty() {
            return Ok(0);
        }
        let live: HashSet<String> = self
            .shared()
            .stores
            .metadata
            .live_web_sessions(&logins, wall_clock_ms())
            .await?
            .into_iter()
            .collect();
        Ok(self.end_sessions_of_logins(|login| !live.contains(login)))
    }

    fn end_sessions_of_logins(&self, ended: impl Fn(&str) -> bool) -> usize {
        let mut count = 0;
        for session in self.shared().sessions.iter() {
            let login = session
                .login
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if login.as_deref().is_some_and(&ended) && session.revoke.revoke(CloseReason::LoggedOut)
            {
                tracing::info!(event = "session_logged_out", session_id = %session.key(), user_id = %session.user_id);
                count += 1;
            }
        }
        count
    }

    /// Every `interval` until `stop`: both checks above.
    pub async fn run_revocation(self, interval: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.revoke_disabled_users().await {
                crate::telemetry::storage_failure("metadata", "revocation", &e);
            }
            if let Err(e) = self.revoke_ended_logins().await {
                crate::telemetry::storage_failure("metadata", "revocation", &e);
            }
        }
    }
}
