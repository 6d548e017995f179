//! `auscult config check`: every setting with its value, secrets redacted.

use secrecy::ExposeSecret;

use super::{Config, redact_url};

impl Config {
    /// A human-readable dump with secrets redacted, for `auscult config check`.
    pub fn redacted_summary(&self) -> String {
        let tokens: Vec<String> = self
            .api_tokens
            .iter()
            .map(|t| format!("{}:****", t.user_id))
            .collect();
        let t = &self.transcribe;
        let rows = [
            ("AUSCULT_LISTEN", self.listen.to_string()),
            ("AUSCULT_DATA_DIR", self.data_dir.display().to_string()),
            (
                "AUSCULT_DATABASE_URL",
                redact_url(self.database_url.expose_secret()),
            ),
            (
                "AUSCULT_DATABASE_POOL_SIZE",
                self.database_pool.max_connections.to_string(),
            ),
            (
                "AUSCULT_DATABASE_TIMEOUT_SECS",
                self.database_pool.acquire_timeout.as_secs().to_string(),
            ),
            ("AUSCULT_STORAGE_URL", redact_url(&self.storage_url)),
            (
                "AUSCULT_S3_ENDPOINT",
                self.s3.endpoint.clone().unwrap_or_default(),
            ),
            (
                "AUSCULT_S3_REGION",
                self.s3.region.clone().unwrap_or_default(),
            ),
            ("AUSCULT_S3_SSE", self.s3.sse.header().to_owned()),
            (
                "AUSCULT_S3_KMS_KEY_ID",
                self.s3.sse.kms_key_id().unwrap_or_default().to_owned(),
            ),
            (
                "AUSCULT_S3_TIMEOUT_SECS",
                self.s3.timeout.as_secs().to_string(),
            ),
            ("AUSCULT_S3_MAX_ATTEMPTS", self.s3.max_attempts.to_string()),
            ("AUSCULT_INSTANCE_ID", self.instance_id.clone()),
            (
                "AUSCULT_CHUNK_FLUSH_SECS",
                self.chunk_flush_interval.as_secs().to_string(),
            ),
            (
                "AUSCULT_SESSION_STALE_SECS",
                self.session_stale_after.as_secs().to_string(),
            ),
            (
                "AUSCULT_EVENTS_SQS_URL",
                self.events.sqs_url.clone().unwrap_or_default(),
            ),
            (
                "AUSCULT_EVENTS_SQS_REGION",
                self.events.region.clone().unwrap_or_default(),
            ),
            ("AUSCULT_ENGINE", self.engine.clone()),
            ("AUSCULT_ENGINES", self.engines.join(",")),
            ("AUSCULT_MAX_SESSIONS", self.max_sessions.to_string()),
            (
                "AUSCULT_IDLE_TIMEOUT_SECS",
                self.idle_timeout.as_secs().to_string(),
            ),
            (
                "AUSCULT_MAX_DURATION_SECS",
                self.max_duration.as_secs().to_string(),
            ),
            (
                "AUSCULT_MAX_BUFFER_BYTES",
                self.max_buffer_bytes.to_string(),
            ),
            (
                "AUSCULT_MAX_MESSAGE_BYTES",
                self.max_message_bytes.to_string(),
            ),
            (
                "AUSCULT_SHUTDOWN_GRACE_SECS",
                self.shutdown_grace.as_secs().to_string(),
            ),
            (
                "AUSCULT_API_TOKENS",
                if tokens.is_empty() {
                    "(none)".into()
                } else {
                    tokens.join(",")
                },
            ),
            ("AUSCULT_ALLOWED_ORIGINS", self.allowed_origins.join(",")),
            ("AUSCULT_ALLOWED_HOSTS", join(&self.network.allowed_hosts)),
            (
                "AUSCULT_TRUSTED_PROXIES",
                join(&self.network.trusted_proxies),
            ),
            (
                "AUSCULT_ADMIN_LISTEN",
                self.network
                    .admin_listen
                    .map_or_else(|| "off".to_owned(), |a| a.to_string()),
            ),
            (
                "AUSCULT_MAX_CONNECTIONS",
                self.network.max_connections.to_string(),
            ),
            (
                "AUSCULT_HEADER_READ_TIMEOUT_SECS",
                self.network.header_read_timeout.as_secs().to_string(),
            ),
            (
                "AUSCULT_START_TIMEOUT_SECS",
                self.start_timeout.as_secs().to_string(),
            ),
            (
                "AUSCULT_MAX_SESSIONS_PER_USER",
                self.max_sessions_per_user.to_string(),
            ),
            (
                "AUSCULT_LOGIN_IDLE_SECS",
                self.login_idle.as_secs().to_string(),
            ),
            (
                "AUSCULT_FSYNC_INTERVAL_MS",
                self.fsync_interval.as_millis().to_string(),
            ),
            (
                "AUSCULT_STORAGE_RETRY_SECS",
                self.storage_retry_interval.as_secs().to_string(),
            ),
            (
                "AUSCULT_PING_INTERVAL_SECS",
                self.ping_interval.as_secs().to_string(),
            ),
            (
                "AUSCULT_PONG_TIMEOUT_SECS",
                self.pong_timeout.as_secs().to_string(),
            ),
            (
                "AUSCULT_SOCKETIO_TRANSPORTS",
                self.network.socketio.describe(),
            ),
            (
                "AUSCULT_LOG_FORMAT",
                format!("{:?}", self.log_format).to_lowercase(),
            ),
            (
                "AUSCULT_WHISPER_MODEL_DIR",
                self.whisper.model_dir.display().to_string(),
            ),
            ("AUSCULT_WHISPER_WORKERS", self.whisper.workers.to_string()),
            ("AUSCULT_WHISPER_THREADS", self.whisper.threads.to_string()),
            (
                "AUSCULT_WHISPER_COMPUTE_TYPE",
                self.whisper.compute_type.clone(),
            ),
            (
                "AUSCULT_WHISPER_MAX_STREAMS",
                self.whisper.max_streams.to_string(),
            ),
            (
                "AUSCULT_WHISPER_ENDPOINT_MS",
                self.whisper.endpoint.as_millis().to_string(),
            ),
            ("AUSCULT_WHISPER_PROMPT", self.whisper.prompt.clone()),
            (
                "AUSCULT_TRANSCRIBE_REGION",
                t.region.clone().unwrap_or_default(),
            ),
            (
                "AUSCULT_TRANSCRIBE_ENDPOINT",
                t.endpoint.clone().unwrap_or_default(),
            ),
            ("AUSCULT_TRANSCRIBE_SPECIALTY", t.specialty.clone()),
            ("AUSCULT_TRANSCRIBE_TYPE", t.kind.clone()),
            (
                "AUSCULT_TRANSCRIBE_VOCABULARY",
                t.vocabulary.clone().unwrap_or_default(),
            ),
            (
                "AUSCULT_TRANSCRIBE_SPEAKER_LABELS",
                t.speaker_labels.to_string(),
            ),
            ("AUSCULT_TRANSCRIBE_PHI", t.phi.to_string()),
            (
                "AUSCULT_TRANSCRIBE_STABILITY",
                t.stability.clone().unwrap_or_default(),
            ),
            ("AUSCULT_TRANSCRIBE_PII", t.pii.clone().unwrap_or_default()),
            (
                "AUSCULT_TRANSCRIBE_KEEPALIVE_MS",
                t.keepalive.as_millis().to_string(),
            ),
            (
                "AUSCULT_TRANSCRIBE_MAX_ATTEMPTS",
                t.max_attempts.to_string(),
            ),
            (
                "AUSCULT_TRANSCRIBE_MAX_STREAM_SECS",
                t.max_stream.as_secs().to_string(),
            ),
            ("AUSCULT_RIVA_URL", self.riva.url.clone()),
            (
                "AUSCULT_RIVA_CA_FILE",
                self.riva
                    .ca_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            (
                "AUSCULT_RIVA_FUNCTION_ID",
                self.riva.function_id.clone().unwrap_or_default(),
            ),
            (
                "AUSCULT_RIVA_API_KEY",
                if self.riva.api_key.is_some() {
                    "****".into()
                } else {
                    "(none)".into()
                },
            ),
            (
                "AUSCULT_RIVA_MODEL",
                self.riva.model.clone().unwrap_or_default(),
            ),
            ("AUSCULT_RIVA_PHRASES", self.riva.phrases.join(",")),
            (
                "AUSCULT_RIVA_PHRASE_BOOST",
                self.riva.phrase_boost.to_string(),
            ),
            (
                "AUSCULT_RIVA_DIARIZATION",
                self.riva.diarization.to_string(),
            ),
            (
                "AUSCULT_RIVA_MAX_RETRIES",
                self.riva.max_retries.to_string(),
            ),
            (
                "AUSCULT_RIVA_KEEPALIVE_SECS",
                self.riva.keepalive.as_secs().to_string(),
            ),
        ];
        rows.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
