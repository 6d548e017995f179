//! Sessions: the transport-free state machine of one recording, its limits,
//! its durable spool, and how it is stored at close or recovered after a crash.

mod actor;
mod closing;
pub mod link;
mod manager;
pub mod recovery;
pub mod spool;
pub mod store;

pub use link::{ClientLink, Inbound, Outbound, TransportEnds};
pub use manager::{SessionManager, SessionSettings};

/// Milliseconds since the Unix epoch, for stored timestamps.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
