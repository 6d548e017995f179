//! Crash recovery: spools left behind by a process that died (or kept because
//! storage failed at close) are stored at startup, before the listener opens.

use std::path::Path;

use super::spool::{self, SpoolOnDisk};
use super::store::{Ending, store_with_retry};
use super::wall_clock_ms;
use crate::storage::SessionStatus;
use crate::storage::meta::SharedMetadataStore;
use crate::storage::object::SharedObjectStore;
use crate::telemetry;

/// What recovery did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    pub stored: usize,
    pub failed: usize,
}

/// Stores every spool under `spool_dir`. Failures are logged and left for the next start.
pub async fn recover_spools(
    objects: &SharedObjectStore,
    metadata: &SharedMetadataStore,
    spool_dir: &Path,
) -> std::io::Result<RecoveryReport> {
    let dir = spool_dir.to_path_buf();
    let found = tokio::task::spawn_blocking(move || spool::scan(&dir))
        .await
        .map_err(std::io::Error::other)??;
    let mut report = RecoveryReport::default();
    for entry in found {
        match entry {
            Ok(spool) => match recover_one(objects, metadata, &spool).await {
                Ok(()) => report.stored += 1,
                Err(()) => report.failed += 1,
            },
            Err((path, e)) => {
                tracing::warn!(event = "spool_unreadable", path = %path.display(), error = %e);
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

async fn recover_one(
    objects: &SharedObjectStore,
    metadata: &SharedMetadataStore,
    spool: &SpoolOnDisk,
) -> Result<(), ()> {
    let id = &spool.meta.session_id;
    let finals = match metadata.segments(id).await {
        Ok(f) => f,
        Err(e) => {
            telemetry::storage_failure("metadata", id, &e);
            return Err(());
        }
    };
    // A session that ended normally keeps its reason; one cut off by a crash is `recovered`.
    let (status, reason, ended_at_ms) = match &spool.closed {
        Some(m) => (SessionStatus::Stored, m.close_reason.clone(), m.ended_at_ms),
        None => (
            SessionStatus::Recovered,
            "recovered".to_owned(),
            wall_clock_ms(),
        ),
    };
    let ending = Ending {
        status,
        close_reason: &reason,
        ended_at_ms,
        finals: &finals,
    };
    match store_with_retry(objects, metadata, spool, &ending, 3).await {
        Ok(stored) => {
            metrics::counter!(telemetry::RECOVERED_SESSIONS).increment(1);
            tracing::info!(event = "session_recovered", session_id = %id, status = status.as_str(), duration_s = stored.duration_s);
            Ok(())
        }
        Err(_) => Err(()),
    }
}
