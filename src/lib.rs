//! Auscult: a real-time streaming transcription server.
//!
//! Layers, outermost first: [`transport`] (HTTP/WebSocket) → [`session`] (state
//! machine, limits, lifecycle) → [`protocol`] (typed messages) → [`audio`] (PCM,
//! resampling, WAV) → [`engine`] (speech engines) → [`storage`] (objects and
//! metadata). [`accounts`] (users, logins, the audit log) sits beside sessions.
//! [`app`] wires them together; [`config`] and [`telemetry`] serve all;
//! [`export`] renders transcripts for download.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod app;
pub mod audio;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod engine;
pub mod eval;
pub mod events;
pub mod export;
pub mod probe;
pub mod protocol;
pub mod session;
pub mod storage;
pub mod telemetry;
pub mod transport;

pub use app::{App, StartupError};
pub use config::Config;
