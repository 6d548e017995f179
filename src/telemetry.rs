//! Telemetry: structured logs (text or JSON) and Prometheus metrics.
//!
//! Metric names carry units; labels are low-cardinality (never a session id).
//! Each named event below logs and counts together. Transcript text and audio
//! never appear in logs: only ids, sizes and codes.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::LogFormat;
use crate::protocol::{CloseReason, ErrorCode};

pub const SESSIONS_ACTIVE: &str = "auscult_sessions_active";
pub const SESSIONS_STARTED: &str = "auscult_sessions_started_total";
pub const SESSIONS_CLOSED: &str = "auscult_sessions_closed_total";
pub const SESSION_DURATION: &str = "auscult_session_duration_seconds";
pub const AUDIO_BYTES: &str = "auscult_audio_received_bytes_total";
pub const AUDIO_FRAMES: &str = "auscult_audio_frames_total";
pub const ENGINE_RESULT_LATENCY: &str = "auscult_engine_result_latency_seconds";
pub const ENGINE_BACKLOG_BYTES: &str = "auscult_engine_backlog_bytes";
pub const ENGINE_LAG: &str = "auscult_engine_lag_seconds";
pub const STORAGE_FAILURES: &str = "auscult_storage_failures_total";
pub const STORAGE_PENDING: &str = "auscult_storage_pending_sessions";
pub const ERRORS: &str = "auscult_errors_total";
pub const UPGRADES_REFUSED: &str = "auscult_upgrades_refused_total";
pub const RECOVERED_SESSIONS: &str = "auscult_sessions_recovered_total";
pub const CHUNKS_WRITTEN: &str = "auscult_chunks_written_total";
pub const CHUNK_BYTES: &str = "auscult_chunk_bytes_total";
pub const SESSIONS_TAKEN_OVER: &str = "auscult_sessions_taken_over_total";
pub const EVENTS_SENT: &str = "auscult_events_sent_total";
pub const EVENTS_PENDING: &str = "auscult_events_pending";
pub const SESSIONS_DELETED: &str = "auscult_sessions_deleted_total";
pub const LOGINS: &str = "auscult_logins_total";
/// Connections closed at once because `AUSCULT_MAX_CONNECTIONS` were open.
pub const CONNECTIONS_REFUSED: &str = "auscult_connections_refused_total";
/// Requests refused before any handler ran (e.g. `bad_host`), by code.
pub const REQUESTS_REFUSED: &str = "auscult_requests_refused_total";

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide metrics recorder once (several apps in one test
/// process share it) and returns the handle `/metrics` renders.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(SESSION_DURATION.to_owned()),
                    &[1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Suffix("_latency_seconds".to_owned()),
                        &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(ENGINE_LAG.to_owned()),
                        &[0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0],
                    )
                })
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

/// Describes the core series and gives them a value, so `/metrics` shows them
/// from the first scrape (the exporter omits series that were never written).
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(SESSIONS_ACTIVE, "Sessions admitted and not yet stored");
    describe_counter!(SESSIONS_STARTED, "Sessions started");
    describe_counter!(SESSIONS_CLOSED, "Sessions closed, by reason");
    describe_histogram!(
        SESSION_DURATION,
        Unit::Seconds,
        "Wall-clock length of sessions"
    );
    describe_counter!(AUDIO_BYTES, Unit::Bytes, "Audio bytes received and spooled");
    describe_counter!(AUDIO_FRAMES, "Audio frames received");
    describe_histogram!(
        ENGINE_RESULT_LATENCY,
        Unit::Seconds,
        "From receiving audio to the engine's result for it"
    );
    describe_gauge!(
        ENGINE_BACKLOG_BYTES,
        Unit::Bytes,
        "Audio queued for engines that are behind"
    );
    describe_histogram!(
        ENGINE_LAG,
        Unit::Seconds,
        "How far engines trail the audio, sampled per session each second"
    );
    describe_counter!(STORAGE_FAILURES, "Storage operations that failed, by store");
    describe_gauge!(
        STORAGE_PENDING,
        "Ended sessions waiting for storage to come back"
    );
    describe_counter!(ERRORS, "Error events sent to clients, by code");
    describe_counter!(
        UPGRADES_REFUSED,
        "Streaming connections refused (WebSocket upgrades, Socket.IO connects), by code"
    );
    describe_counter!(
        RECOVERED_SESSIONS,
        "Sessions cut off by a crash and stored afterwards (from a spool or from chunks)"
    );
    describe_counter!(
        CHUNKS_WRITTEN,
        "Chunks of live sessions written to object storage"
    );
    describe_counter!(CHUNK_BYTES, Unit::Bytes, "Audio bytes written as chunks");
    describe_counter!(
        SESSIONS_TAKEN_OVER,
        "Sessions of instances that stopped heartbeating, taken over by this one"
    );
    describe_counter!(EVENTS_SENT, "RecordingFinalized events sent");
    describe_gauge!(
        EVENTS_PENDING,
        "RecordingFinalized events waiting to be sent"
    );
    describe_counter!(
        SESSIONS_DELETED,
        "Sessions deleted by their users, objects and rows"
    );
    describe_counter!(
        LOGINS,
        "Login attempts, by outcome (ok, bad_password, unknown_user, disabled, rate_limited)"
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections refused because AUSCULT_MAX_CONNECTIONS were open"
    );
    describe_counter!(
        REQUESTS_REFUSED,
        "Requests refused before reaching a handler, by code (bad_host)"
    );
    metrics::gauge!(SESSIONS_ACTIVE).set(0.0);
    metrics::gauge!(ENGINE_BACKLOG_BYTES).set(0.0);
    metrics::gauge!(STORAGE_PENDING).set(0.0);
    metrics::gauge!(EVENTS_PENDING).set(0.0);
    metrics::counter!(CHUNKS_WRITTEN).absolute(0);
    metrics::counter!(SESSIONS_STARTED).absolute(0);
    metrics::counter!(AUDIO_BYTES).absolute(0);
    metrics::counter!(AUDIO_FRAMES).absolute(0);
}

/// Sets up logging for the binary. `RUST_LOG` overrides the default level.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// An `error` event sent to a client.
/// A streaming connection (WebSocket upgrade, Socket.IO connect) refused with `code`.
pub fn connection_refused(code: &str) {
    metrics::counter!(UPGRADES_REFUSED, "code" => code.to_owned()).increment(1);
}

pub fn client_error(code: ErrorCode) {
    metrics::counter!(ERRORS, "code" => code.as_str()).increment(1);
}

pub fn session_started(
    session_id: &str,
    user_id: &str,
    engine: &str,
    rate: u32,
    encoding: &str,
    channels: u16,
) {
    metrics::counter!(SESSIONS_STARTED).increment(1);
    tracing::info!(
        event = "session_started",
        session_id,
        user_id,
        engine,
        rate,
        encoding,
        channels
    );
}

pub fn session_closed(
    session_id: &str,
    reason: CloseReason,
    duration_s: f64,
    bytes: u64,
    finals: usize,
) {
    metrics::counter!(SESSIONS_CLOSED, "reason" => reason.as_str()).increment(1);
    metrics::histogram!(SESSION_DURATION).record(duration_s);
    tracing::info!(
        event = "session_closed",
        session_id,
        reason = reason.as_str(),
        duration_s,
        bytes,
        finals
    );
}

/// A user deleted one of their sessions (ids and counts only).
pub fn session_deleted(session_id: &str, user_id: &str, objects: usize) {
    metrics::counter!(SESSIONS_DELETED).increment(1);
    tracing::info!(event = "session_deleted", session_id, user_id, objects);
}

pub fn storage_failure(store: &'static str, session_id: &str, error: &dyn std::fmt::Display) {
    metrics::counter!(STORAGE_FAILURES, "store" => store).increment(1);
    tracing::warn!(event = "storage_failed", store, session_id, error = %error);
}
