//! Storing a finished session: the sealed spool becomes `audio.wav`, the finals
//! become `transcript.json`, and `manifest.json` describes both; then the
//! session row is completed and the spool removed. Shared by normal closes
//! and crash recovery, so both produce exactly the same result.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::spool::SpoolOnDisk;
use super::{Stores, wall_clock_ms};
use crate::protocol::StoredMsg;
use crate::storage::keys::SessionKeys;
use crate::storage::{FinalSegment, SessionOutcome, SessionRecord, SessionStatus, StorageError};
use crate::telemetry;

/// How a session ended, for its manifest and row.
pub struct Ending<'a> {
    pub status: SessionStatus,
    pub close_reason: &'a str,
    pub ended_at_ms: i64,
    pub finals: &'a [FinalSegment],
    /// The engine did not transcribe all of the audio (see `transcript_incomplete`).
    pub transcript_incomplete: bool,
}

/// Stores the session, retrying transient failures a few times with backoff and jitter.
pub async fn store_with_retry(
    stores: &Stores,
    spool: &SpoolOnDisk,
    ending: &Ending<'_>,
    attempts: u32,
) -> Result<StoredMsg, StorageError> {
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match store(stores, spool, ending).await {
            Ok(stored) => return Ok(stored),
            Err(e) if e.is_retryable() && attempt < attempts => {
                telemetry::storage_failure("session", &spool.meta.session_id, &e);
                let jitter = Duration::from_millis(fastrand::u64(0..=delay.as_millis() as u64 / 2));
                tokio::time::sleep(delay + jitter).await;
                delay *= 3;
                attempt += 1;
            }
            Err(e) => {
                if !matches!(e, StorageError::Deleted(_)) {
                    telemetry::storage_failure("session", &spool.meta.session_id, &e);
                }
                return Err(e);
            }
        }
    }
}

/// Stores one session from its spool.
pub async fn store(
    stores: &Stores,
    spool: &SpoolOnDisk,
    ending: &Ending<'_>,
) -> Result<StoredMsg, StorageError> {
    let (objects, metadata) = (&stores.objects, &stores.metadata);
    let meta = &spool.meta;
    let keys = SessionKeys::new(&meta.user_id, &meta.session_id)
        .map_err(|e| StorageError::Invalid(e.to_string()))?;
    if metadata.is_deleted(&meta.session_id).await? {
        purge_deleted(stores, spool, &keys).await;
        return Err(StorageError::Deleted(meta.session_id.clone()));
    }
    let audio_path = spool.audio_path();
    let (data_len, file_len, sha256) = {
        let sealed = SpoolOnDisk {
            dir: spool.dir.clone(),
            meta: spool.meta.clone(),
            closed: None,
        };
        tokio::task::spawn_blocking(move || -> std::io::Result<(u64, u64, String)> {
            let data_len = sealed.seal()?;
            let (file_len, sha) = sha256_file(&sealed.audio_path())?;
            Ok((data_len, file_len, sha))
        })
        .await
        .map_err(|e| StorageError::Unavailable(e.to_string()))??
    };
    let duration_s = meta.format.duration_secs(data_len);
    objects
        .put_file(&keys.audio(), &audio_path, "audio/wav")
        .await?;

    let text = ending
        .finals
        .iter()
        .map(|f| f.text.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let redacted_text = ending
        .finals
        .iter()
        .any(|f| f.redacted_text.is_some())
        .then(|| {
            ending
                .finals
                .iter()
                .map(|f| f.redacted_text.as_deref().unwrap_or(&f.text).trim())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        });
    let mut transcript = json!({
        "session_id": meta.session_id,
        "engine": meta.engine,
        "language": meta.language,
        "duration_s": duration_s,
        "text": text,
        "segments": ending.finals,
    });
    if let Some(redacted) = redacted_text {
        transcript["redacted_text"] = json!(redacted);
    }
    if ending.transcript_incomplete {
        transcript["transcript_incomplete"] = json!(true);
    }
    objects
        .put_bytes(
            &keys.transcript(),
            to_bytes(&transcript),
            "application/json",
        )
        .await?;

    let manifest = json!({
        "session_id": meta.session_id,
        "user_id": meta.user_id,
        "status": ending.status.as_str(),
        "close_reason": ending.close_reason,
        "engine": meta.engine,
        "language": meta.language,
        "encoding": meta.format.encoding.as_str(),
        "channels": meta.format.channels,
        "input_rate": meta.format.sample_rate,
        "engine_rate": meta.engine_rate,
        "received_bytes": data_len,
        "audio_bytes": file_len,
        "duration_s": duration_s,
        "audio_sha256": sha256,
        "started_at_ms": meta.started_at_ms,
        "ended_at_ms": ending.ended_at_ms,
        "stored_at_ms": wall_clock_ms(),
        "final_segments": ending.finals.len(),
        "transcript_incomplete": ending.transcript_incomplete,
        "keys": { "audio": keys.audio(), "transcript": keys.transcript() },
    });
    objects
        .put_bytes(&keys.manifest(), to_bytes(&manifest), "application/json")
        .await?;

    if metadata.get_session(&meta.session_id).await?.is_none() {
        // The database was unreachable when the session started.
        metadata
            .create_session(
                &SessionRecord {
                    id: meta.session_id.clone(),
                    user_id: meta.user_id.clone(),
                    engine: meta.engine.clone(),
                    language: meta.language.clone(),
                    encoding: meta.format.encoding.as_str().to_owned(),
                    channels: meta.format.channels,
                    input_rate: meta.format.sample_rate,
                    engine_rate: meta.engine_rate,
                    started_at_ms: meta.started_at_ms,
                },
                &stores.instance_id,
                wall_clock_ms(),
            )
            .await?;
    }
    // Idempotent: finals whose write failed during the session land now.
    for segment in ending.finals {
        metadata.add_segment(&meta.session_id, segment).await?;
    }
    let outcome = SessionOutcome {
        status: ending.status,
        close_reason: ending.close_reason.to_owned(),
        ended_at_ms: ending.ended_at_ms,
        received_bytes: data_len,
        duration_s,
        audio_key: keys.audio(),
        transcript_key: keys.transcript(),
        manifest_key: keys.manifest(),
        notify: stores.events.is_some(),
    };
    metadata.finish_session(&meta.session_id, &outcome).await?;
    if let Some(events) = &stores.events {
        events.notify_one();
    }
    super::chunks::delete_chunks(objects, &keys, &meta.session_id).await;

    let dir = spool.dir.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir))
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
    {
        // Stored already; a leftover spool is re-stored idempotently at the next start.
        tracing::warn!(event = "spool_remove_failed", session_id = %meta.session_id, error = %e);
    }
    Ok(StoredMsg {
        session_id: meta.session_id.clone(),
        audio: keys.audio(),
        transcript: keys.transcript(),
        duration_s,
    })
}

/// Removes what a deleted session left behind (its spool, and any object
/// under its prefix: chunks, a half-finished upload), so it never returns.
/// Best effort: what fails is tried again at the next start or retry.
async fn purge_deleted(stores: &Stores, spool: &SpoolOnDisk, keys: &SessionKeys) {
    let id = &spool.meta.session_id;
    match stores.objects.list(keys.prefix()).await {
        Ok(keys) => {
            for key in keys {
                if let Err(e) = stores.objects.delete(&key).await {
                    telemetry::storage_failure("objects", id, &e);
                }
            }
        }
        Err(e) => telemetry::storage_failure("objects", id, &e),
    }
    let dir = spool.dir.clone();
    let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir))
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
    if let Err(e) = removed {
        telemetry::storage_failure("spool", id, &e);
    }
    tracing::info!(event = "deleted_session_purged", session_id = %id);
}

fn to_bytes(value: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(value).unwrap_or_default())
}

fn sha256_file(path: &std::path::Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}
