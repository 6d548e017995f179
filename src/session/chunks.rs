//! Durable while recording, not only on close: every chunk interval, the audio
//! each live session received since its last chunk is written to object
//! storage as `chunks/{seq}-{start_ms}-{end_ms}.pcm`, and this instance's
//! heartbeat on its sessions' rows is refreshed. If the whole machine is lost,
//! another instance finishes the session from its chunks ([`super::takeover`]),
//! losing at most the last interval.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::spool::{LiveSpool, LiveSpools};
use super::{Stores, wall_clock_ms};
use crate::storage::StorageError;
use crate::storage::keys::{Chunk, SessionKeys};
use crate::storage::object::SharedObjectStore;
use crate::telemetry;

/// Chunk uploads in flight at once.
const CONCURRENT_UPLOADS: usize = 16;

/// Every `interval` until `stop`: heartbeat, then one chunk per live session
/// with new audio. No final round at shutdown: the draining sessions are
/// stored whole.
pub async fn run(live: LiveSpools, stores: Stores, interval: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        heartbeat(&stores).await;
        flush_all(&live, &stores).await;
    }
}

/// Refreshes the heartbeat on every unfinished session this instance owns.
pub async fn heartbeat(stores: &Stores) {
    if let Err(e) = stores
        .metadata
        .heartbeat(&stores.instance_id, wall_clock_ms())
        .await
    {
        telemetry::storage_failure("heartbeat", &stores.instance_id, &e);
    }
}

/// Writes one chunk for every live session with audio not yet in a chunk.
pub async fn flush_all(live: &LiveSpools, stores: &Stores) {
    futures_util::stream::iter(live.snapshot())
        .for_each_concurrent(CONCURRENT_UPLOADS, |spool| async move {
            if let Err(e) = flush_one(stores, &spool).await {
                // Not advanced: the next round writes this audio in a larger chunk.
                telemetry::storage_failure("chunk", &spool.meta.session_id, &e);
            }
        })
        .await;
}

/// Writes the audio appended since the session's last chunk as its next
/// chunk. Returns whether a chunk was written.
pub async fn flush_one(stores: &Stores, spool: &Arc<LiveSpool>) -> Result<bool, StorageError> {
    let mut cursor = spool.chunks.lock().await;
    let (start, end) = (cursor.flushed, spool.data_len());
    if cursor.closed || end <= start {
        return Ok(false);
    }
    let meta = &spool.meta;
    let keys = SessionKeys::new(&meta.user_id, &meta.session_id)
        .map_err(|e| StorageError::Invalid(e.to_string()))?;
    let reader = Arc::clone(spool);
    let audio = tokio::task::spawn_blocking(move || reader.read_audio(start, end))
        .await
        .map_err(|e| StorageError::Unavailable(e.to_string()))??;
    let millis = |bytes: u64| (meta.format.duration_secs(bytes) * 1000.0).floor() as u64;
    let chunk = Chunk {
        seq: cursor.seq,
        start_ms: millis(start),
        end_ms: millis(end),
    };
    stores
        .objects
        .put_bytes(
            &keys.chunk(&chunk),
            Bytes::from(audio),
            "application/octet-stream",
        )
        .await?;
    cursor.seq += 1;
    cursor.flushed = end;
    drop(cursor);
    metrics::counter!(telemetry::CHUNKS_WRITTEN).increment(1);
    metrics::counter!(telemetry::CHUNK_BYTES).increment(end - start);
    tracing::debug!(event = "chunk_written", session_id = %meta.session_id, seq = chunk.seq, bytes = end - start);
    if let Err(e) = stores.metadata.update_received(&meta.session_id, end).await {
        telemetry::storage_failure("metadata", &meta.session_id, &e);
    }
    Ok(true)
}

/// Stops a closing session's chunks: waits for an upload in flight, then
/// refuses further ones (so none lands after the chunks are deleted).
pub async fn close(spool: &LiveSpool) {
    spool.chunks.lock().await.closed = true;
}

/// Removes a stored session's chunks (best effort: leftovers are only garbage,
/// the session is complete without them).
pub async fn delete_chunks(objects: &SharedObjectStore, keys: &SessionKeys, session_id: &str) {
    let listed = match objects.list(&keys.chunks()).await {
        Ok(listed) => listed,
        Err(e) => {
            telemetry::storage_failure("chunk", session_id, &e);
            return;
        }
    };
    for key in listed.iter().filter(|k| Chunk::parse(k).is_some()) {
        if let Err(e) = objects.delete(key).await {
            telemetry::storage_failure("chunk", session_id, &e);
        }
    }
}
