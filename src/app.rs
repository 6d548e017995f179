//! Wires configuration, stores, engines and sessions into a running server.

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(String),
}

pub struct App;
