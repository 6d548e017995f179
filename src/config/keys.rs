//! The setting names: each file key and the `AUSCULT_*` variable that
//! overrides it, and the TOML file reader that accepts only those keys.

use std::collections::BTreeMap;
use std::path::Path;

use super::ConfigError;

/// Each file key and the environment variable that overrides it. The
/// environment names are a contract with deployments.
pub(super) const ENV_KEYS: &[(&str, &str)] = &[
    ("listen", "AUSCULT_LISTEN"),
    ("data_dir", "AUSCULT_DATA_DIR"),
    ("database_url", "AUSCULT_DATABASE_URL"),
    ("database_pool_size", "AUSCULT_DATABASE_POOL_SIZE"),
    ("database_timeout_secs", "AUSCULT_DATABASE_TIMEOUT_SECS"),
    ("storage_url", "AUSCULT_STORAGE_URL"),
    ("s3_endpoint", "AUSCULT_S3_ENDPOINT"),
    ("s3_region", "AUSCULT_S3_REGION"),
    ("s3_sse", "AUSCULT_S3_SSE"),
    ("s3_kms_key_id", "AUSCULT_S3_KMS_KEY_ID"),
    ("s3_timeout_secs", "AUSCULT_S3_TIMEOUT_SECS"),
    ("s3_max_attempts", "AUSCULT_S3_MAX_ATTEMPTS"),
    ("instance_id", "AUSCULT_INSTANCE_ID"),
    ("chunk_flush_secs", "AUSCULT_CHUNK_FLUSH_SECS"),
    ("session_stale_secs", "AUSCULT_SESSION_STALE_SECS"),
    ("events_sqs_url", "AUSCULT_EVENTS_SQS_URL"),
    ("events_sqs_region", "AUSCULT_EVENTS_SQS_REGION"),
    ("engine", "AUSCULT_ENGINE"),
    ("engines", "AUSCULT_ENGINES"),
    ("max_sessions", "AUSCULT_MAX_SESSIONS"),
    ("idle_timeout_secs", "AUSCULT_IDLE_TIMEOUT_SECS"),
    ("max_duration_secs", "AUSCULT_MAX_DURATION_SECS"),
    ("max_buffer_bytes", "AUSCULT_MAX_BUFFER_BYTES"),
    ("max_message_bytes", "AUSCULT_MAX_MESSAGE_BYTES"),
    ("shutdown_grace_secs", "AUSCULT_SHUTDOWN_GRACE_SECS"),
    ("api_tokens", "AUSCULT_API_TOKENS"),
    ("allowed_origins", "AUSCULT_ALLOWED_ORIGINS"),
    ("allowed_hosts", "AUSCULT_ALLOWED_HOSTS"),
    ("trusted_proxies", "AUSCULT_TRUSTED_PROXIES"),
    ("admin_listen", "AUSCULT_ADMIN_LISTEN"),
    ("max_connections", "AUSCULT_MAX_CONNECTIONS"),
    (
        "header_read_timeout_secs",
        "AUSCULT_HEADER_READ_TIMEOUT_SECS",
    ),
    ("start_timeout_secs", "AUSCULT_START_TIMEOUT_SECS"),
    ("max_sessions_per_user", "AUSCULT_MAX_SESSIONS_PER_USER"),
    ("login_idle_secs", "AUSCULT_LOGIN_IDLE_SECS"),
    ("fsync_interval_ms", "AUSCULT_FSYNC_INTERVAL_MS"),
    ("storage_retry_secs", "AUSCULT_STORAGE_RETRY_SECS"),
    ("ping_interval_secs", "AUSCULT_PING_INTERVAL_SECS"),
    ("pong_timeout_secs", "AUSCULT_PONG_TIMEOUT_SECS"),
    ("socketio_transports", "AUSCULT_SOCKETIO_TRANSPORTS"),
    ("log_format", "AUSCULT_LOG_FORMAT"),
    ("whisper_model_dir", "AUSCULT_WHISPER_MODEL_DIR"),
    ("whisper_workers", "AUSCULT_WHISPER_WORKERS"),
    ("whisper_threads", "AUSCULT_WHISPER_THREADS"),
    ("whisper_compute_type", "AUSCULT_WHISPER_COMPUTE_TYPE"),
    ("whisper_max_streams", "AUSCULT_WHISPER_MAX_STREAMS"),
    ("whisper_endpoint_ms", "AUSCULT_WHISPER_ENDPOINT_MS"),
    ("whisper_prompt", "AUSCULT_WHISPER_PROMPT"),
    ("transcribe_region", "AUSCULT_TRANSCRIBE_REGION"),
    ("transcribe_endpoint", "AUSCULT_TRANSCRIBE_ENDPOINT"),
    ("transcribe_specialty", "AUSCULT_TRANSCRIBE_SPECIALTY"),
    ("transcribe_type", "AUSCULT_TRANSCRIBE_TYPE"),
    ("transcribe_vocabulary", "AUSCULT_TRANSCRIBE_VOCABULARY"),
    (
        "transcribe_speaker_labels",
        "AUSCULT_TRANSCRIBE_SPEAKER_LABELS",
    ),
    ("transcribe_phi", "AUSCULT_TRANSCRIBE_PHI"),
    ("transcribe_stability", "AUSCULT_TRANSCRIBE_STABILITY"),
    ("transcribe_pii", "AUSCULT_TRANSCRIBE_PII"),
    ("transcribe_keepalive_ms", "AUSCULT_TRANSCRIBE_KEEPALIVE_MS"),
    ("transcribe_max_attempts", "AUSCULT_TRANSCRIBE_MAX_ATTEMPTS"),
    (
        "transcribe_max_stream_secs",
        "AUSCULT_TRANSCRIBE_MAX_STREAM_SECS",
    ),
    ("riva_url", "AUSCULT_RIVA_URL"),
    ("riva_ca_file", "AUSCULT_RIVA_CA_FILE"),
    ("riva_function_id", "AUSCULT_RIVA_FUNCTION_ID"),
    ("riva_api_key", "AUSCULT_RIVA_API_KEY"),
    ("riva_model", "AUSCULT_RIVA_MODEL"),
    ("riva_phrases", "AUSCULT_RIVA_PHRASES"),
    ("riva_phrase_boost", "AUSCULT_RIVA_PHRASE_BOOST"),
    ("riva_diarization", "AUSCULT_RIVA_DIARIZATION"),
    ("riva_max_retries", "AUSCULT_RIVA_MAX_RETRIES"),
    ("riva_keepalive_secs", "AUSCULT_RIVA_KEEPALIVE_SECS"),
];

/// Reads a TOML file of `key = value` lines. Keys are the lower-case setting
/// names of [`ENV_KEYS`] (unknown ones are rejected, so typos do not pass
/// silently); values are strings, numbers or booleans.
pub(super) fn file_values(path: &Path) -> Result<BTreeMap<&'static str, String>, ConfigError> {
    let parse_error = |message: String| ConfigError::ParseFile {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
    let mut values = BTreeMap::new();
    for (key, value) in table {
        let Some((known, _)) = ENV_KEYS.iter().find(|(k, _)| *k == key) else {
            return Err(parse_error(format!("unknown key {key:?}")));
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(parse_error(format!(
                    "{key}: expected a string, number or boolean, not {}",
                    other.type_str()
                )));
            }
        };
        values.insert(*known, value);
    }
    Ok(values)
}
