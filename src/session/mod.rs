//! Sessions: the transport-free state machine of one recording, its limits,
//! its durable spool, and how it is stored at close or recovered after a crash.

mod actor;
pub mod chunks;
mod closing;
pub mod link;
mod manager;
pub mod recovery;
mod revocation;
pub mod spool;
pub mod store;
pub mod takeover;

pub use link::{ClientLink, Inbound, Outbound, TransportEnds};
pub use manager::{EntryRefusal, SessionManager, SessionSettings};

use crate::storage::meta::SharedMetadataStore;
use crate::storage::object::SharedObjectStore;

/// Where sessions are stored, and on whose behalf.
#[derive(Clone)]
pub struct Stores {
    pub objects: SharedObjectStore,
    pub metadata: SharedMetadataStore,
    /// This instance's id: the owner written into the rows of its sessions.
    pub instance_id: String,
    /// Set when stored sessions are announced with a `RecordingFinalized`
    /// event: wakes the publisher after each store.
    pub events: Option<std::sync::Arc<tokio::sync::Notify>>,
}

/// Milliseconds since the Unix epoch, for stored timestamps.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
