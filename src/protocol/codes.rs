//! Stable error codes, close reasons and WebSocket close codes.

use serde::{Deserialize, Serialize};

/// Stable machine-readable error codes sent in `error` events. Clients branch on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The text frame is not valid JSON or not a known message.
    BadMessage,
    /// The `start` message is invalid (bad field values).
    BadStart,
    /// A second `start` on a session that is already running.
    AlreadyStarted,
    /// A binary frame arrived before `start`.
    NotStarted,
    /// A binary frame that is empty or not a whole number of samples × channels.
    BadFrame,
    UnsupportedSampleRate,
    UnsupportedEncoding,
    UnsupportedChannels,
    UnknownEngine,
    EngineUnavailable,
    /// Resume of a session that does not exist, is finished, or belongs to someone else.
    UnknownSession,
    MessageTooBig,
    ServerAtCapacity,
    /// The user already holds `AUSCULT_MAX_SESSIONS_PER_USER` sessions.
    UserAtCapacity,
    /// No `start` within `AUSCULT_START_TIMEOUT_SECS` of connecting.
    StartTimeout,
    IdleTimeout,
    MaxDuration,
    BufferLimit,
    EngineError,
    EngineRetrying,
    EngineFailed,
    StorageFailed,
    /// The engine did not transcribe all of the session's audio (it failed
    /// or was still behind when the session closed); the audio is stored
    /// whole and the manifest says `transcript_incomplete`.
    TranscriptIncomplete,
    ServerShutdown,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::BadStart => "bad_start",
            ErrorCode::AlreadyStarted => "already_started",
            ErrorCode::NotStarted => "not_started",
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::UnsupportedSampleRate => "unsupported_sample_rate",
            ErrorCode::UnsupportedEncoding => "unsupported_encoding",
            ErrorCode::UnsupportedChannels => "unsupported_channels",
            ErrorCode::UnknownEngine => "unknown_engine",
            ErrorCode::EngineUnavailable => "engine_unavailable",
            ErrorCode::UnknownSession => "unknown_session",
            ErrorCode::MessageTooBig => "message_too_big",
            ErrorCode::ServerAtCapacity => "server_at_capacity",
            ErrorCode::UserAtCapacity => "user_at_capacity",
            ErrorCode::StartTimeout => "start_timeout",
            ErrorCode::IdleTimeout => "idle_timeout",
            ErrorCode::MaxDuration => "max_duration",
            ErrorCode::BufferLimit => "buffer_limit",
            ErrorCode::EngineError => "engine_error",
            ErrorCode::EngineRetrying => "engine_retrying",
            ErrorCode::EngineFailed => "engine_failed",
            ErrorCode::StorageFailed => "storage_failed",
            ErrorCode::TranscriptIncomplete => "transcript_incomplete",
            ErrorCode::ServerShutdown => "server_shutdown",
            ErrorCode::Internal => "internal",
        }
    }
}

/// Why a session ended; sent in `closed` and stored with the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    ClientStop,
    IdleTimeout,
    MaxDuration,
    BufferLimit,
    ServerShutdown,
    EngineFailed,
    /// Storage failed at close; the session is kept locally and retried in the background.
    StoragePending,
    /// The server process died mid-session; the session was stored from its spool at restart.
    Recovered,
    /// The session's user was disabled while recording; what was sent is stored.
    AccessRevoked,
    /// The login the session was opened with ended (logout); what was sent is stored.
    LoggedOut,
    /// The server's disk failed to keep the audio (a spool write or fsync
    /// failed); what was acknowledged is stored, or kept and retried.
    SpoolFailed,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ClientStop => "client_stop",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::MaxDuration => "max_duration",
            CloseReason::BufferLimit => "buffer_limit",
            CloseReason::ServerShutdown => "server_shutdown",
            CloseReason::EngineFailed => "engine_failed",
            CloseReason::StoragePending => "storage_pending",
            CloseReason::Recovered => "recovered",
            CloseReason::AccessRevoked => "access_revoked",
            CloseReason::LoggedOut => "logged_out",
            CloseReason::SpoolFailed => "spool_failed",
        }
    }

    /// The reason named `text` (as stored or sent), if there is one.
    pub fn parse(text: &str) -> Option<CloseReason> {
        use CloseReason::*;
        [
            ClientStop,
            IdleTimeout,
            MaxDuration,
            BufferLimit,
            ServerShutdown,
            EngineFailed,
            StoragePending,
            Recovered,
            AccessRevoked,
            LoggedOut,
            SpoolFailed,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }

    /// The WebSocket close code that goes with this reason.
    pub fn close_code(self) -> CloseCode {
        match self {
            CloseReason::ClientStop | CloseReason::IdleTimeout | CloseReason::MaxDuration => {
                CloseCode::Normal
            }
            CloseReason::ServerShutdown => CloseCode::GoingAway,
            CloseReason::AccessRevoked | CloseReason::LoggedOut => CloseCode::Policy,
            CloseReason::BufferLimit
            | CloseReason::SpoolFailed
            | CloseReason::EngineFailed
            | CloseReason::StoragePending
            | CloseReason::Recovered => CloseCode::ServerError,
        }
    }
}

/// WebSocket close codes used by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    Normal,
    GoingAway,
    Policy,
    TooBig,
    ServerError,
    TryAgainLater,
    BadStart,
}

impl CloseCode {
    pub fn as_u16(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::Policy => 1008,
            CloseCode::TooBig => 1009,
            CloseCode::ServerError => 1011,
            CloseCode::TryAgainLater => 1013,
            CloseCode::BadStart => 4400,
        }
    }
}
