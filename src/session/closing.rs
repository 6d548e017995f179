//! The end of a session, whatever the reason: flush the engine, store
//! everything, and only then tell the client `stored` (or, when storage
//! failed, keep the spool and say so instead of a false `stored`).

use super::actor::Actor;
use super::spool::{ClosedMarker, SpoolOnDisk};
use super::store::{Ending, store_with_retry};
use super::wall_clock_ms;
use crate::protocol::{CloseCode, CloseReason, ClosedMsg, ErrorCode, ServerMsg};
use crate::storage::SessionStatus;
use crate::telemetry;

/// Store attempts at close before the session is left for background recovery.
const STORE_ATTEMPTS: u32 = 3;

pub(super) async fn close(mut actor: Actor, reason: CloseReason) {
    actor.close_attach();
    let shared = std::sync::Arc::clone(actor.shared());
    let deadline = tokio::time::Instant::now() + shared.settings.engine_flush_timeout;
    actor.drain_engine(deadline).await;
    let transcript_incomplete = actor.check_transcript().await;
    if let Some(live) = shared.live.unregister(&actor.meta.session_id) {
        super::chunks::close(&live).await;
    }

    let spool = SpoolOnDisk {
        dir: actor.spool.dir().to_path_buf(),
        meta: actor.meta.clone(),
        closed: None,
    };
    let ended_at_ms = wall_clock_ms();
    let ending = Ending {
        status: SessionStatus::Stored,
        close_reason: reason.as_str(),
        ended_at_ms,
        finals: &actor.finals,
        transcript_incomplete,
    };
    let bytes = actor.spool.data_len();
    let result = store_with_retry(&shared.stores, &spool, &ending, STORE_ATTEMPTS).await;
    let final_reason = match result {
        Ok(stored) => {
            actor.send_last(ServerMsg::Stored(stored)).await;
            actor
                .send_last(ServerMsg::Closed(ClosedMsg { reason }))
                .await;
            if let Some(link) = actor.link() {
                link.close(reason.close_code(), reason.as_str()).await;
            }
            reason
        }
        Err(_) => {
            let marker = ClosedMarker {
                close_reason: reason.as_str().to_owned(),
                ended_at_ms,
            };
            if let Err(e) = spool.mark_closed(&marker) {
                telemetry::storage_failure("spool", &actor.meta.session_id, &e);
            }
            // Best effort: the database may be what is down.
            let pending = shared
                .stores
                .metadata
                .mark_pending(&actor.meta.session_id, reason.as_str(), ended_at_ms)
                .await;
            if let Err(e) = pending {
                telemetry::storage_failure("metadata", &actor.meta.session_id, &e);
            }
            metrics::gauge!(telemetry::STORAGE_PENDING).increment(1.0);
            actor
                .send_error(
                    ErrorCode::StorageFailed,
                    "the session could not be stored yet; it is kept and retried",
                    true,
                )
                .await;
            actor
                .send_last(ServerMsg::Closed(ClosedMsg {
                    reason: CloseReason::StoragePending,
                }))
                .await;
            if let Some(link) = actor.link() {
                link.close(CloseCode::ServerError, "storage_pending").await;
            }
            CloseReason::StoragePending
        }
    };
    telemetry::session_closed(
        &actor.meta.session_id,
        final_reason,
        actor.elapsed().as_secs_f64(),
        bytes,
        actor.finals.len(),
    );
}
