//! Sessions: the transport-free state machine of one recording, its limits,
//! its durable spool, and how it is stored at close or recovered after a crash.

pub mod spool;
