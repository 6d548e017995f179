//! Typed configuration: defaults, then an optional TOML file, then `AUSCULT_*`
//! environment variables. Unknown file keys are rejected; secrets are redacted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The fully resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: SecretString,
    pub database_pool: crate::storage::meta::PoolSettings,
    pub storage_url: String,
    /// S3 settings, used when `storage_url` is `s3://…`.
    pub s3: crate::storage::object::S3Settings,
    /// This process's id in session rows (`AUSCULT_INSTANCE_ID`, default a
    /// fresh random id per process): the owner whose heartbeat keeps its live
    /// sessions from being recovered by another instance.
    pub instance_id: String,
    /// How often each live session's new audio is written to object storage as
    /// a chunk, and the owner's heartbeat refreshed.
    pub chunk_flush_interval: Duration,
    /// A live session whose owner has not heartbeaten for this long is
    /// finished from its chunks by another instance.
    pub session_stale_after: Duration,
    /// The `RecordingFinalized` event queue (optional).
    pub events: crate::events::EventSettings,
    /// The default engine for sessions that do not name one.
    pub engine: String,
    /// More engines to run beside the default, for sessions that name them
    /// in `start.engine` (`AUSCULT_ENGINES=whisper,transcribe-medical`).
    pub engines: Vec<String>,
    pub max_sessions: usize,
    pub idle_timeout: Duration,
    pub max_duration: Duration,
    /// Audio accepted but not yet handed on (engine backlog) per session, in bytes.
    pub max_buffer_bytes: u64,
    pub max_message_bytes: usize,
    pub shutdown_grace: Duration,
    /// Bearer token → user id.
    pub api_tokens: Vec<ApiToken>,
    pub allowed_origins: Vec<String>,
    /// A cookie login ends after this long without a request (automatic logoff).
    pub login_idle: Duration,
    pub fsync_interval: Duration,
    /// How often sessions that could not be stored at close are retried.
    pub storage_retry_interval: Duration,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub log_format: LogFormat,
    pub whisper: WhisperConfig,
    /// Settings of the `transcribe-medical` and `transcribe` engines.
    pub transcribe: crate::engine::transcribe::TranscribeSettings,
    pub riva: RivaConfig,
}

#[derive(Clone)]
pub struct ApiToken {
    pub user_id: String,
    pub token: SecretString,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:[REDACTED]", self.user_id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings of the embedded Whisper engine.
#[derive(Debug, Clone)]
pub struct WhisperConfig {
    pub model_dir: PathBuf,
    /// Inference threads (0 = one per core).
    pub threads: usize,
    pub compute_type: String,
}

/// Settings of the `riva` engine (NVIDIA Riva over gRPC).
#[derive(Debug, Clone)]
pub struct RivaConfig {
    /// `http://host:50051` (plaintext) or `https://host:443` (TLS).
    pub url: String,
    /// PEM file of a private CA to trust (TLS only).
    pub ca_file: Option<PathBuf>,
    /// The hosted (NVCF) function id, sent as `function-id` metadata.
    pub function_id: Option<String>,
    /// The hosted API key, sent as `authorization: Bearer …`. Never logged.
    pub api_key: Option<SecretString>,
    /// The Riva model name (empty: the server's default for the language).
    pub model: Option<String>,
    /// Boosted phrases (speech context).
    pub phrases: Vec<String>,
    pub phrase_boost: f32,
    /// Speaker diarization on.
    pub diarization: bool,
    /// Reconnects per session after a stream failure before `engine_failed`.
    pub max_retries: u32,
    /// Silence goes to Riva after this long without client audio.
    pub keepalive: Duration,
}

/// Each file key and the environment variable that overrides it. The
/// environment names are a contract with deployments.
const ENV_KEYS: &[(&str, &str)] = &[
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
    ("login_idle_secs", "AUSCULT_LOGIN_IDLE_SECS"),
    ("fsync_interval_ms", "AUSCULT_FSYNC_INTERVAL_MS"),
    ("storage_retry_secs", "AUSCULT_STORAGE_RETRY_SECS"),
    ("ping_interval_secs", "AUSCULT_PING_INTERVAL_SECS"),
    ("pong_timeout_secs", "AUSCULT_PONG_TIMEOUT_SECS"),
    ("log_format", "AUSCULT_LOG_FORMAT"),
    ("whisper_model_dir", "AUSCULT_WHISPER_MODEL_DIR"),
    ("whisper_threads", "AUSCULT_WHISPER_THREADS"),
    ("whisper_compute_type", "AUSCULT_WHISPER_COMPUTE_TYPE"),
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("invalid value for {name}: {message}")]
    Invalid { name: &'static str, message: String },
}

fn invalid(name: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        message: message.into(),
    }
}

impl Config {
    /// Loads defaults → `file` (or `AUSCULT_CONFIG`) → process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let path = file
            .map(Path::to_path_buf)
            .or_else(|| env.get("AUSCULT_CONFIG").map(PathBuf::from));
        let mut values = match &path {
            Some(path) => file_values(path)?,
            None => BTreeMap::new(),
        };
        for (key, env_name) in ENV_KEYS {
            if let Some(value) = env.get(*env_name) {
                values.insert(key, value.clone());
            }
        }
        Self::resolve(&values)
    }

    fn resolve(values: &BTreeMap<&'static str, String>) -> Result<Self, ConfigError> {
        let get = |key: &str| values.get(key).map(String::as_str);
        let listen: SocketAddr = parse(get("listen"), "AUSCULT_LISTEN", "127.0.0.1:8080")?;
        let data_dir = PathBuf::from(get("data_dir").unwrap_or("./data"));
        let database_url = get("database_url")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("sqlite://{}/auscult.db", data_dir.display()));
        let storage_url = get("storage_url")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("file://{}/objects", data_dir.display()));
        let engine = get("engine").unwrap_or("whisper").to_owned();
        let engines: Vec<String> = get("engines")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(unknown) = engines
            .iter()
            .find(|e| !crate::engine::registry::KNOWN_ENGINES.contains(&e.as_str()))
        {
            return Err(invalid(
                "AUSCULT_ENGINES",
                format!("unknown engine {unknown:?}"),
            ));
        }
        let riva_url = get("riva_url")
            .unwrap_or("http://127.0.0.1:50051")
            .trim_end_matches('/')
            .to_owned();
        if !(riva_url.starts_with("http://") || riva_url.starts_with("https://")) {
            return Err(invalid(
                "AUSCULT_RIVA_URL",
                "must start with http:// (plaintext) or https:// (TLS)",
            ));
        }
        let secs = |key: &str, env: &'static str, default: u64| -> Result<Duration, ConfigError> {
            let v: u64 = parse(get(key), env, &default.to_string())?;
            if v == 0 {
                return Err(invalid(env, "must be at least 1"));
            }
            Ok(Duration::from_secs(v))
        };
        let max_message_bytes: usize = parse(
            get("max_message_bytes"),
            "AUSCULT_MAX_MESSAGE_BYTES",
            "1048576",
        )?;
        if max_message_bytes < 1024 {
            return Err(invalid(
                "AUSCULT_MAX_MESSAGE_BYTES",
                "must be at least 1024",
            ));
        }
        let max_sessions: usize = parse(get("max_sessions"), "AUSCULT_MAX_SESSIONS", "100")?;
        let fsync_ms: u64 = parse(
            get("fsync_interval_ms"),
            "AUSCULT_FSYNC_INTERVAL_MS",
            "1000",
        )?;
        let nonempty = |key: &str| {
            get(key)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let s3_max_attempts: u32 = parse(get("s3_max_attempts"), "AUSCULT_S3_MAX_ATTEMPTS", "3")?;
        if s3_max_attempts == 0 {
            return Err(invalid("AUSCULT_S3_MAX_ATTEMPTS", "must be at least 1"));
        }
        let s3 = crate::storage::object::S3Settings {
            endpoint: nonempty("s3_endpoint"),
            region: nonempty("s3_region"),
            sse: crate::storage::object::Sse::parse(
                nonempty("s3_sse").as_deref(),
                nonempty("s3_kms_key_id"),
            )
            .map_err(|message| invalid("AUSCULT_S3_SSE", message))?,
            timeout: secs("s3_timeout_secs", "AUSCULT_S3_TIMEOUT_SECS", 30)?,
            max_attempts: s3_max_attempts,
            credentials: None,
        };
        let instance_id = match nonempty("instance_id") {
            Some(id) => crate::storage::keys::validate_id(&id)
                .map(str::to_owned)
                .map_err(|e| invalid("AUSCULT_INSTANCE_ID", e.to_string()))?,
            None => format!("i-{}", uuid::Uuid::now_v7().simple()),
        };
        let chunk_flush_interval = secs("chunk_flush_secs", "AUSCULT_CHUNK_FLUSH_SECS", 10)?;
        let session_stale_after = secs("session_stale_secs", "AUSCULT_SESSION_STALE_SECS", 60)?;
        if session_stale_after <= chunk_flush_interval {
            return Err(invalid(
                "AUSCULT_SESSION_STALE_SECS",
                "must be longer than AUSCULT_CHUNK_FLUSH_SECS (the heartbeat interval)",
            ));
        }
        let events = crate::events::EventSettings {
            sqs_url: nonempty("events_sqs_url"),
            region: nonempty("events_sqs_region"),
            credentials: None,
        };
        let log_format = match get("log_format").unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "AUSCULT_LOG_FORMAT",
                    format!("{other:?} is not text or json"),
                ));
            }
        };
        let transcribe = transcribe_settings(&get)?;
        Ok(Config {
            listen,
            database_url: SecretString::from(database_url),
            database_pool: crate::storage::meta::PoolSettings {
                max_connections: {
                    let n: u32 = parse(
                        get("database_pool_size"),
                        "AUSCULT_DATABASE_POOL_SIZE",
                        "10",
                    )?;
                    if n == 0 {
                        return Err(invalid("AUSCULT_DATABASE_POOL_SIZE", "must be at least 1"));
                    }
                    n
                },
                acquire_timeout: secs("database_timeout_secs", "AUSCULT_DATABASE_TIMEOUT_SECS", 5)?,
            },
            storage_url,
            s3,
            instance_id,
            chunk_flush_interval,
            session_stale_after,
            events,
            engine,
            engines,
            max_sessions,
            idle_timeout: secs("idle_timeout_secs", "AUSCULT_IDLE_TIMEOUT_SECS", 300)?,
            max_duration: secs("max_duration_secs", "AUSCULT_MAX_DURATION_SECS", 1800)?,
            max_buffer_bytes: parse(
                get("max_buffer_bytes"),
                "AUSCULT_MAX_BUFFER_BYTES",
                "62914560",
            )?,
            max_message_bytes,
            shutdown_grace: secs("shutdown_grace_secs", "AUSCULT_SHUTDOWN_GRACE_SECS", 25)?,
            api_tokens: parse_tokens(get("api_tokens").unwrap_or(""))?,
            allowed_origins: get("allowed_origins")
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim().trim_end_matches('/').to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            login_idle: secs("login_idle_secs", "AUSCULT_LOGIN_IDLE_SECS", 900)?,
            fsync_interval: Duration::from_millis(fsync_ms.max(10)),
            storage_retry_interval: secs("storage_retry_secs", "AUSCULT_STORAGE_RETRY_SECS", 30)?,
            ping_interval: secs("ping_interval_secs", "AUSCULT_PING_INTERVAL_SECS", 25)?,
            pong_timeout: secs("pong_timeout_secs", "AUSCULT_PONG_TIMEOUT_SECS", 60)?,
            log_format,
            whisper: WhisperConfig {
                model_dir: PathBuf::from(
                    get("whisper_model_dir").unwrap_or("models/whisper-tiny.en"),
                ),
                threads: parse(get("whisper_threads"), "AUSCULT_WHISPER_THREADS", "0")?,
                compute_type: get("whisper_compute_type").unwrap_or("int8").to_owned(),
            },
            transcribe,
            riva: RivaConfig {
                url: riva_url,
                ca_file: non_empty(get("riva_ca_file")).map(PathBuf::from),
                function_id: non_empty(get("riva_function_id")).map(str::to_owned),
                api_key: non_empty(get("riva_api_key")).map(|k| SecretString::from(k.to_owned())),
                model: non_empty(get("riva_model")).map(str::to_owned),
                phrases: get("riva_phrases")
                    .unwrap_or("")
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
                phrase_boost: parse(get("riva_phrase_boost"), "AUSCULT_RIVA_PHRASE_BOOST", "10")?,
                diarization: parse(get("riva_diarization"), "AUSCULT_RIVA_DIARIZATION", "false")?,
                max_retries: parse(get("riva_max_retries"), "AUSCULT_RIVA_MAX_RETRIES", "3")?,
                keepalive: secs("riva_keepalive_secs", "AUSCULT_RIVA_KEEPALIVE_SECS", 5)?,
            },
            data_dir,
        })
    }

    /// Directory of per-session spool files (audio not yet in object storage).
    pub fn spool_dir(&self) -> PathBuf {
        self.data_dir.join("spool")
    }

    /// Whether the server may run without API tokens (loopback only).
    pub fn allows_local_user(&self) -> bool {
        self.api_tokens.is_empty() && self.listen.ip().is_loopback()
    }

    /// Refuses configurations that must not start (e.g. no auth on a public address).
    pub fn validate_for_serve(&self, has_accounts: bool) -> Result<(), ConfigError> {
        if self.needs_accounts() && !has_accounts {
            return Err(invalid(
                "AUSCULT_API_TOKENS",
                format!(
                    "no API tokens, no user accounts, and {} is not a loopback address; \
                     refusing to start without authentication (set AUSCULT_API_TOKENS or add \
                     a user with `auscult users add NAME`)",
                    self.listen
                ),
            ));
        }
        Ok(())
    }

    /// Whether, without API tokens on a public address, only login accounts
    /// can authenticate (the server refuses to start if there are none).
    pub fn needs_accounts(&self) -> bool {
        self.api_tokens.is_empty() && !self.listen.ip().is_loopback()
    }

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
                "AUSCULT_LOG_FORMAT",
                format!("{:?}", self.log_format).to_lowercase(),
            ),
            (
                "AUSCULT_WHISPER_MODEL_DIR",
                self.whisper.model_dir.display().to_string(),
            ),
            ("AUSCULT_WHISPER_THREADS", self.whisper.threads.to_string()),
            (
                "AUSCULT_WHISPER_COMPUTE_TYPE",
                self.whisper.compute_type.clone(),
            ),
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

/// Reads a TOML file of `key = value` lines. Keys are the lower-case setting
/// names of [`ENV_KEYS`] (unknown ones are rejected, so typos do not pass
/// silently); values are strings, numbers or booleans.
fn file_values(path: &Path) -> Result<BTreeMap<&'static str, String>, ConfigError> {
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

/// The `AUSCULT_TRANSCRIBE_*` settings, checked against what the service accepts.
fn transcribe_settings<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<crate::engine::transcribe::TranscribeSettings, ConfigError> {
    let defaults = crate::engine::transcribe::TranscribeSettings::default();
    let text = |key: &str| {
        get(key)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let one_of = |key: &str, env: &'static str, allowed: &[&str], default: &str| {
        let v = text(key).unwrap_or_else(|| default.to_owned());
        let upper = v.to_uppercase();
        if allowed.contains(&upper.as_str()) {
            Ok(upper)
        } else {
            Err(invalid(
                env,
                format!("{v:?} is not one of {}", allowed.join(", ")),
            ))
        }
    };
    let specialty = one_of(
        "transcribe_specialty",
        "AUSCULT_TRANSCRIBE_SPECIALTY",
        crate::engine::transcribe::SPECIALTIES,
        &defaults.specialty,
    )?;
    let kind = one_of(
        "transcribe_type",
        "AUSCULT_TRANSCRIBE_TYPE",
        crate::engine::transcribe::TYPES,
        &defaults.kind,
    )?;
    let stability = match text("transcribe_stability") {
        None => None,
        Some(_) => Some(
            one_of(
                "transcribe_stability",
                "AUSCULT_TRANSCRIBE_STABILITY",
                &["LOW", "MEDIUM", "HIGH"],
                "",
            )?
            .to_lowercase(),
        ),
    };
    let pii = match text("transcribe_pii") {
        None => None,
        Some(_) => Some(
            one_of(
                "transcribe_pii",
                "AUSCULT_TRANSCRIBE_PII",
                &["IDENTIFY", "REDACT"],
                "",
            )?
            .to_lowercase(),
        ),
    };
    let keepalive_ms: u64 = parse(
        get("transcribe_keepalive_ms"),
        "AUSCULT_TRANSCRIBE_KEEPALIVE_MS",
        &defaults.keepalive.as_millis().to_string(),
    )?;
    if !(100..=10_000).contains(&keepalive_ms) {
        return Err(invalid(
            "AUSCULT_TRANSCRIBE_KEEPALIVE_MS",
            "must be 100–10000 (the service fails a stream after 15 s without audio)",
        ));
    }
    let max_attempts: u32 = parse(
        get("transcribe_max_attempts"),
        "AUSCULT_TRANSCRIBE_MAX_ATTEMPTS",
        &defaults.max_attempts.to_string(),
    )?;
    if max_attempts == 0 {
        return Err(invalid(
            "AUSCULT_TRANSCRIBE_MAX_ATTEMPTS",
            "must be at least 1",
        ));
    }
    Ok(crate::engine::transcribe::TranscribeSettings {
        region: text("transcribe_region"),
        endpoint: text("transcribe_endpoint"),
        specialty,
        kind,
        vocabulary: text("transcribe_vocabulary"),
        speaker_labels: parse(
            get("transcribe_speaker_labels"),
            "AUSCULT_TRANSCRIBE_SPEAKER_LABELS",
            "false",
        )?,
        phi: parse(get("transcribe_phi"), "AUSCULT_TRANSCRIBE_PHI", "false")?,
        stability,
        pii,
        keepalive: Duration::from_millis(keepalive_ms),
        max_attempts,
        ..defaults
    })
}

fn parse<T: std::str::FromStr>(
    value: Option<&str>,
    name: &'static str,
    default: &str,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let raw = value.unwrap_or(default).trim();
    raw.parse::<T>()
        .map_err(|e| invalid(name, format!("{raw:?}: {e}")))
}

/// A setting's value, or `None` when unset or blank.
fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn parse_tokens(raw: &str) -> Result<Vec<ApiToken>, ConfigError> {
    let mut out = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (user, token) = pair.split_once(':').ok_or_else(|| {
            invalid(
                "AUSCULT_API_TOKENS",
                "expected user:token pairs separated by commas",
            )
        })?;
        let user = user.trim();
        if crate::storage::keys::validate_id(user).is_err() {
            return Err(invalid(
                "AUSCULT_API_TOKENS",
                format!("user id {user:?} is not a valid id"),
            ));
        }
        if token.trim().len() < 8 {
            return Err(invalid(
                "AUSCULT_API_TOKENS",
                format!("token for {user:?} is shorter than 8 characters"),
            ));
        }
        out.push(ApiToken {
            user_id: user.to_owned(),
            token: SecretString::from(token.trim().to_owned()),
        });
    }
    Ok(out)
}

/// Replaces the password in `scheme://user:password@host/...` with `****`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, None), |(a, p)| (a, Some(p)));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:****@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    match path {
        Some(p) => format!("{scheme}://{authority}/{p}"),
        None => format!("{scheme}://{authority}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_embedded() {
        let c = Config::load_from(None, &env(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url.expose_secret(), "sqlite://./data/auscult.db");
        assert_eq!(c.storage_url, "file://./data/objects");
        assert_eq!(c.engine, "whisper");
        assert_eq!(c.max_sessions, 100);
        assert_eq!(c.max_buffer_bytes, 60 * 1024 * 1024);
        assert_eq!(c.max_message_bytes, 1024 * 1024);
        assert_eq!(c.database_pool.max_connections, 10);
        assert_eq!(c.database_pool.acquire_timeout, Duration::from_secs(5));
        assert_eq!(c.login_idle, Duration::from_secs(15 * 60));
        assert!(c.allows_local_user());
    }

    #[test]
    fn env_overrides_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(&path, "max_sessions = 7\nidle_timeout_secs = 9\n").unwrap();
        let c = Config::load_from(
            Some(&path),
            &env(&[
                ("AUSCULT_MAX_SESSIONS", "11"),
                ("AUSCULT_DATABASE_POOL_SIZE", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(c.max_sessions, 11);
        assert_eq!(c.database_pool.max_connections, 3);
        assert_eq!(c.idle_timeout, Duration::from_secs(9));
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(&path, "max_sesions = 7\n").unwrap();
        let err = Config::load_from(Some(&path), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("max_sesions"), "{err}");
    }

    #[test]
    fn public_listener_without_tokens_refuses_to_start() {
        let c = Config::load_from(None, &env(&[("AUSCULT_LISTEN", "0.0.0.0:8080")])).unwrap();
        assert!(c.validate_for_serve(false).is_err());
        assert!(c.validate_for_serve(true).is_ok(), "accounts authenticate");
        let c = Config::load_from(
            None,
            &env(&[
                ("AUSCULT_LISTEN", "0.0.0.0:8080"),
                ("AUSCULT_API_TOKENS", "u1:secret-token"),
            ]),
        )
        .unwrap();
        assert!(c.validate_for_serve(false).is_ok());
    }

    #[test]
    fn secrets_are_redacted_in_summary_and_debug() {
        let c = Config::load_from(
            None,
            &env(&[
                ("AUSCULT_API_TOKENS", "alice:supersecret1"),
                ("AUSCULT_DATABASE_URL", "postgres://app:hunter22@db:5432/x"),
            ]),
        )
        .unwrap();
        let summary = c.redacted_summary();
        assert!(!summary.contains("supersecret1"));
        assert!(!summary.contains("hunter22"));
        assert!(summary.contains("postgres://app:****@db:5432/x"));
        let debug = format!("{c:?}");
        assert!(!debug.contains("supersecret1") && !debug.contains("hunter22"));
    }

    #[test]
    fn riva_api_key_is_redacted_and_url_checked() {
        let c = Config::load_from(
            None,
            &env(&[
                ("AUSCULT_RIVA_URL", "https://grpc.example.com:443/"),
                ("AUSCULT_RIVA_API_KEY", "nvapi-topsecret"),
                ("AUSCULT_RIVA_PHRASES", "metoprolol, lisinopril"),
            ]),
        )
        .unwrap();
        assert_eq!(c.riva.url, "https://grpc.example.com:443");
        assert_eq!(c.riva.phrases, ["metoprolol", "lisinopril"]);
        let summary = c.redacted_summary();
        assert!(summary.contains("AUSCULT_RIVA_API_KEY=****"));
        assert!(!summary.contains("topsecret") && !format!("{c:?}").contains("topsecret"));
        assert!(Config::load_from(None, &env(&[("AUSCULT_RIVA_URL", "grpc://x:1")])).is_err());
    }

    #[test]
    fn config_check_shows_every_setting() {
        let summary = Config::load_from(None, &env(&[]))
            .unwrap()
            .redacted_summary();
        for (_, name) in ENV_KEYS {
            assert!(
                summary.lines().any(|l| l.starts_with(&format!("{name}="))),
                "{name} missing from config check"
            );
        }
    }

    #[test]
    fn file_values_of_every_type_are_read_and_nested_tables_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(
            &path,
            "max_sessions = 7\nstorage_url = \"s3://b/p\"\ns3_sse = \"aws:kms\"\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&path), &env(&[])).unwrap();
        assert_eq!(c.max_sessions, 7);
        assert_eq!(c.storage_url, "s3://b/p");
        assert_eq!(c.s3.sse, crate::storage::object::Sse::Kms { key_id: None });
        std::fs::write(&path, "[s3]\nregion = \"x\"\n").unwrap();
        assert!(Config::load_from(Some(&path), &env(&[])).is_err());
    }

    #[test]
    fn the_session_stale_time_must_exceed_the_heartbeat_interval() {
        let err = Config::load_from(
            None,
            &env(&[
                ("AUSCULT_CHUNK_FLUSH_SECS", "10"),
                ("AUSCULT_SESSION_STALE_SECS", "10"),
            ]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("AUSCULT_SESSION_STALE_SECS"),
            "{err}"
        );
    }

    #[test]
    fn kms_settings_are_checked() {
        let kms = Config::load_from(
            None,
            &env(&[
                ("AUSCULT_S3_SSE", "aws:kms"),
                ("AUSCULT_S3_KMS_KEY_ID", "alias/auscult"),
            ]),
        )
        .unwrap();
        assert_eq!(
            kms.s3.sse,
            crate::storage::object::Sse::Kms {
                key_id: Some("alias/auscult".into())
            }
        );
        assert!(Config::load_from(None, &env(&[("AUSCULT_S3_SSE", "rot13")])).is_err());
        assert!(
            Config::load_from(
                None,
                &env(&[("AUSCULT_S3_SSE", "AES256"), ("AUSCULT_S3_KMS_KEY_ID", "k")])
            )
            .is_err()
        );
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        assert!(Config::load_from(None, &env(&[("AUSCULT_API_TOKENS", "nocolon")])).is_err());
        assert!(
            Config::load_from(None, &env(&[("AUSCULT_API_TOKENS", "../x:longenough")])).is_err()
        );
    }

    #[test]
    fn transcribe_settings_are_checked_against_what_the_service_accepts() {
        let c = Config::load_from(
            None,
            &env(&[
                ("AUSCULT_TRANSCRIBE_SPECIALTY", "cardiology"),
                ("AUSCULT_TRANSCRIBE_TYPE", "conversation"),
                ("AUSCULT_TRANSCRIBE_PHI", "true"),
                ("AUSCULT_TRANSCRIBE_STABILITY", "High"),
            ]),
        )
        .unwrap();
        assert_eq!(c.transcribe.specialty, "CARDIOLOGY");
        assert_eq!(c.transcribe.kind, "CONVERSATION");
        assert!(c.transcribe.phi);
        assert_eq!(c.transcribe.stability.as_deref(), Some("high"));
        assert_eq!(c.transcribe.keepalive, Duration::from_secs(5));
        for bad in [
            ("AUSCULT_TRANSCRIBE_SPECIALTY", "DENTISTRY"),
            ("AUSCULT_TRANSCRIBE_TYPE", "SONG"),
            ("AUSCULT_TRANSCRIBE_PII", "hide"),
            ("AUSCULT_TRANSCRIBE_KEEPALIVE_MS", "15000"),
            ("AUSCULT_TRANSCRIBE_MAX_ATTEMPTS", "0"),
        ] {
            assert!(Config::load_from(None, &env(&[bad])).is_err(), "{bad:?}");
        }
    }
}
