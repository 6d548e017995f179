//! Recovery: spools left behind by a process that died, or kept because
//! storage failed at close, are stored at startup (before the listener opens);
//! the ones kept because storage failed are also retried in the background.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::spool::{self, ClosedMarker, SpoolOnDisk};
use super::store::{Ending, store_with_retry};
use super::{Stores, wall_clock_ms};
use crate::protocol::CloseReason;
use crate::storage::{SessionStatus, StorageError};
use crate::telemetry;

/// What recovery did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    pub stored: usize,
    pub failed: usize,
    /// Leftovers of sessions their users had deleted, removed instead.
    pub purged: usize,
}

/// Which spools to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every spool: at startup no session is live, so all were left behind.
    All,
    /// Only sessions that ended but could not be stored (they carry a closed
    /// marker); live sessions' spools are left alone.
    EndedOnly,
}

/// Stores the spools under `spool_dir` in `scope`. Failures are logged and left for the next try.
pub async fn recover_spools(
    stores: &Stores,
    spool_dir: &Path,
    scope: Scope,
) -> std::io::Result<RecoveryReport> {
    let dir = spool_dir.to_path_buf();
    let found = tokio::task::spawn_blocking(move || spool::scan(&dir))
        .await
        .map_err(std::io::Error::other)??;
    let mut report = RecoveryReport::default();
    for entry in found {
        if scope == Scope::EndedOnly && !matches!(&entry, Ok(s) if s.closed.is_some()) {
            continue;
        }
        match entry {
            Ok(spool) => {
                if scope == Scope::All {
                    // This machine holds the fuller copy: make the row ours
                    // before another instance rebuilds it from chunks.
                    let id = &spool.meta.session_id;
                    let claimed = stores
                        .metadata
                        .claim_session(id, &stores.instance_id, wall_clock_ms())
                        .await;
                    if let Err(e) = claimed {
                        telemetry::storage_failure("metadata", id, &e);
                    }
                }
                match recover_one(stores, &spool).await {
                    Outcome::Stored => report.stored += 1,
                    Outcome::Pending => report.failed += 1,
                    Outcome::Deleted => report.purged += 1,
                }
            }
            Err((path, e)) => {
                tracing::warn!(event = "spool_unreadable", path = %path.display(), error = %e);
                report.failed += 1;
                // A spool whose description cannot be trusted is never stored;
                // it is moved aside for an operator instead of failing every start.
                if e.kind() == std::io::ErrorKind::InvalidData {
                    let root = spool_dir.to_path_buf();
                    let moved =
                        tokio::task::spawn_blocking(move || spool::quarantine(&root, &path))
                            .await
                            .map_err(std::io::Error::other)
                            .and_then(|r| r);
                    match moved {
                        Ok(to) => tracing::warn!(event = "spool_quarantined", to = %to.display()),
                        Err(e) => tracing::warn!(event = "spool_quarantine_failed", error = %e),
                    }
                }
            }
        }
    }
    Ok(report)
}

/// Retries the sessions that could not be stored at close, every `interval`,
/// until `stop` is cancelled. `auscult_storage_pending_sessions` shows how many wait.
pub async fn retry_pending(
    stores: Stores,
    spool_dir: std::path::PathBuf,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        match recover_spools(&stores, &spool_dir, Scope::EndedOnly).await {
            Ok(report) => {
                metrics::gauge!(telemetry::STORAGE_PENDING).set(report.failed as f64);
                if report.stored + report.failed + report.purged > 0 {
                    tracing::info!(
                        event = "pending_uploads_retried",
                        stored = report.stored,
                        still_pending = report.failed,
                        purged = report.purged
                    );
                }
            }
            Err(e) => tracing::warn!(event = "pending_uploads_scan_failed", error = %e),
        }
    }
}

/// Whether a recovered session made it to storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    /// Kept (with a closed marker) for the background retry.
    Pending,
    /// Its user deleted it: what was left is removed, nothing is stored.
    Deleted,
}

/// Stores one spool left behind: a session cut off by a crash becomes
/// `recovered`, one that ended normally keeps its reason.
pub(super) async fn recover_one(stores: &Stores, spool: &SpoolOnDisk) -> Outcome {
    let id = &spool.meta.session_id;
    // A session that ended normally keeps its reason; one cut off by a crash is `recovered`.
    let recovered = CloseReason::Recovered.as_str();
    let marker = spool.closed.clone().unwrap_or_else(|| ClosedMarker {
        close_reason: recovered.to_owned(),
        ended_at_ms: wall_clock_ms(),
    });
    let status = if marker.close_reason == recovered {
        SessionStatus::Recovered
    } else {
        SessionStatus::Stored
    };
    let stored = match stores.metadata.segments(id).await {
        Ok(finals) => {
            let ending = Ending {
                status,
                close_reason: &marker.close_reason,
                ended_at_ms: marker.ended_at_ms,
                finals: &finals,
                // The close reason (`recovered`) already says the engine was cut off.
                transcript_incomplete: false,
            };
            match store_with_retry(stores, spool, &ending, 3).await {
                Ok(stored) => Some(stored),
                Err(StorageError::Deleted(_)) => return Outcome::Deleted,
                Err(_) => None,
            }
        }
        Err(e) => {
            telemetry::storage_failure("metadata", id, &e);
            None
        }
    };
    match stored {
        Some(stored) => {
            metrics::counter!(telemetry::RECOVERED_SESSIONS).increment(1);
            tracing::info!(event = "session_recovered", session_id = %id, status = status.as_str(), duration_s = stored.duration_s);
            Outcome::Stored
        }
        None => {
            // Marked as ended, so the background retry picks it up from now on.
            if spool.closed.is_none()
                && let Err(e) = spool.mark_closed(&marker)
            {
                telemetry::storage_failure("spool", id, &e);
            }
            Outcome::Pending
        }
    }
}
