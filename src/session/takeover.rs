//! Finishing other instances' sessions. A live session whose owner stopped
//! heartbeating (its machine is gone, with its local spool) is taken over by
//! whichever instance claims its row first, rebuilt from its chunks in object
//! storage and stored with status `recovered`. Runs at startup and then on
//! every chunk interval.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::recovery::{self, Outcome};
use super::spool::{self, ClosedMarker, Spool, SpoolMeta};
use super::{Stores, wall_clock_ms};
use crate::audio::AudioFormat;
use crate::protocol::CloseReason;
use crate::storage::StorageError;
use crate::storage::keys::{Chunk, SessionKeys};
use crate::telemetry;

/// Sessions looked at per round.
const BATCH: u32 = 50;
/// Where spools are rebuilt before they are moved into the spool folder, so a
/// crash mid-rebuild never leaves a partial spool that looks complete.
const REBUILD_DIR: &str = ".takeover";

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TakeoverReport {
    pub taken_over: usize,
    pub stored: usize,
    pub failed: usize,
}

/// Runs a round now, then every `interval` until `stop`.
pub async fn run(
    stores: Stores,
    spool_dir: PathBuf,
    interval: Duration,
    stale_after: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let report = take_over_stale(&stores, &spool_dir, stale_after).await;
        if report.taken_over > 0 {
            tracing::info!(
                event = "takeover_done",
                taken_over = report.taken_over,
                stored = report.stored,
                failed = report.failed
            );
        }
    }
}

/// Takes over and stores every session whose owner has not heartbeaten for `stale_after`.
pub async fn take_over_stale(
    stores: &Stores,
    spool_dir: &Path,
    stale_after: Duration,
) -> TakeoverReport {
    let mut report = TakeoverReport::default();
    let now = wall_clock_ms();
    let cutoff = now - stale_after.as_millis() as i64;
    let stale = match stores.metadata.stale_sessions(cutoff, BATCH).await {
        Ok(stale) => stale,
        Err(e) => {
            telemetry::storage_failure("metadata", "", &e);
            return report;
        }
    };
    for session_id in stale {
        if is_in_progress_here(spool_dir, &session_id) {
            // Ours and still recording or closing: our heartbeat only missed a
            // beat (the database was away). Never store a spool in use.
            continue;
        }
        match stores
            .metadata
            .take_over(&session_id, &stores.instance_id, cutoff, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue, // another instance was first, or the owner came back
            Err(e) => {
                telemetry::storage_failure("metadata", &session_id, &e);
                continue;
            }
        }
        report.taken_over += 1;
        metrics::counter!(telemetry::SESSIONS_TAKEN_OVER).increment(1);
        tracing::info!(event = "session_taken_over", session_id = %session_id);
        match finish(stores, spool_dir, &session_id).await {
            Ok(Outcome::Stored | Outcome::Deleted) => report.stored += 1,
            Ok(Outcome::Pending) => report.failed += 1,
            Err(e) => {
                telemetry::storage_failure("takeover", &session_id, &e);
                report.failed += 1;
            }
        }
    }
    report
}

/// Whether this process holds the session's spool without a closed marker:
/// a session it is recording or closing right now (spools left by a crash were
/// all stored at start, before this task began).
fn is_in_progress_here(spool_dir: &Path, session_id: &str) -> bool {
    spool::load(&spool_dir.join(session_id)).is_ok_and(|s| s.closed.is_none())
}

/// Stores a taken-over session: from this machine's spool when it has one
/// (kept because storage failed; it is the fuller copy), otherwise from the
/// session's chunks.
async fn finish(
    stores: &Stores,
    spool_dir: &Path,
    session_id: &str,
) -> Result<Outcome, StorageError> {
    let local = spool_dir.join(session_id);
    if local.join("meta.json").is_file() {
        let spool = tokio::task::spawn_blocking(move || spool::load(&local))
            .await
            .map_err(|e| StorageError::Unavailable(e.to_string()))??;
        return Ok(recovery::recover_one(stores, &spool).await);
    }
    let Some(row) = stores.metadata.get_session(session_id).await? else {
        return Ok(Outcome::Stored); // gone meanwhile: nothing to finish
    };
    let r = &row.record;
    let format = AudioFormat::new(&r.encoding, r.input_rate, r.channels)
        .map_err(|e| StorageError::Invalid(e.message))?;
    let keys =
        SessionKeys::new(&r.user_id, &r.id).map_err(|e| StorageError::Invalid(e.to_string()))?;
    let mut chunks: Vec<(Chunk, String)> = stores
        .objects
        .list(&keys.chunks())
        .await?
        .into_iter()
        .filter_map(|key| Chunk::parse(&key).map(|c| (c, key)))
        .collect();
    chunks.sort_by_key(|(c, _)| c.seq);
    let meta = SpoolMeta {
        session_id: r.id.clone(),
        user_id: r.user_id.clone(),
        engine: r.engine.clone(),
        language: r.language.clone(),
        format,
        engine_rate: r.engine_rate,
        started_at_ms: r.started_at_ms,
    };
    let rebuild_root = spool_dir.join(REBUILD_DIR);
    let rebuild = rebuild_root.join(session_id);
    let _ = tokio::fs::remove_dir_all(&rebuild).await; // an earlier attempt's leftovers
    let spool_meta = meta.clone();
    let root = rebuild_root.clone();
    let mut spool = tokio::task::spawn_blocking(move || Spool::create(&root, &spool_meta))
        .await
        .map_err(|e| StorageError::Unavailable(e.to_string()))??;
    let mut used = 0u32;
    for (chunk, key) in &chunks {
        if chunk.seq != used {
            // A chunk whose upload never finished: what follows it cannot be placed.
            tracing::warn!(
                event = "chunk_missing",
                session_id,
                seq = used,
                found = chunk.seq
            );
            break;
        }
        let Some(bytes) = stores.objects.get(key).await? else {
            tracing::warn!(event = "chunk_vanished", session_id, seq = chunk.seq);
            break;
        };
        spool.append(&bytes)?;
        used += 1;
    }
    let audio_bytes = spool.data_len();
    spool.sync()?;
    drop(spool);
    let marker = ClosedMarker {
        close_reason: CloseReason::Recovered.as_str().to_owned(),
        ended_at_ms: r.started_at_ms + (format.duration_secs(audio_bytes) * 1000.0) as i64,
    };
    let rebuilt = spool::SpoolOnDisk {
        dir: rebuild.clone(),
        meta,
        closed: None,
    };
    rebuilt.mark_closed(&marker)?;
    tokio::fs::rename(&rebuild, spool_dir.join(session_id)).await?;
    let root = spool_dir.to_path_buf();
    tokio::task::spawn_blocking(move || crate::storage::private_fs::sync_dir(&root))
        .await
        .map_err(|e| StorageError::Unavailable(e.to_string()))??;
    let spool = spool::SpoolOnDisk {
        dir: spool_dir.join(session_id),
        meta: rebuilt.meta,
        closed: Some(marker),
    };
    tracing::info!(
        event = "session_rebuilt_from_chunks",
        session_id,
        chunks = used,
        bytes = audio_bytes
    );
    Ok(recovery::recover_one(stores, &spool).await)
}
