//! Typed configuration: defaults, then an optional TOML file, then `AUSCULT_*`
//! environment variables. Unknown file keys are rejected; secrets are redacted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

mod keys;
mod network;
mod summary;
#[cfg(test)]
mod tests;
mod transcribe;

use keys::{ENV_KEYS, file_values};
pub use network::{NetworkConfig, SocketIoTransports};
use transcribe::transcribe_settings;

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
    /// Sessions one user may hold at once (live or awaiting resume).
    pub max_sessions_per_user: usize,
    pub idle_timeout: Duration,
    /// How long a new connection may take to send its `start`.
    pub start_timeout: Duration,
    pub max_duration: Duration,
    /// Audio accepted but not yet handed on (engine backlog) per session, in bytes.
    pub max_buffer_bytes: u64,
    pub max_message_bytes: usize,
    pub shutdown_grace: Duration,
    /// Bearer token → user id.
    pub api_tokens: Vec<ApiToken>,
    pub allowed_origins: Vec<String>,
    /// Hosts, proxies, connection limits and the admin listener.
    pub network: NetworkConfig,
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
    /// Decode workers, each with its own model replica (0 = one per core).
    pub workers: usize,
    /// Intra-op threads of each worker (0 = the cores shared out among the workers).
    pub threads: usize,
    pub compute_type: String,
    /// Live streams the engine admits; past it `open` refuses (`engine_unavailable`).
    pub max_streams: usize,
    /// Trailing silence that ends an utterance into a final.
    pub endpoint: Duration,
    /// Initial prompt given to the decoder (empty: none).
    pub prompt: String,
}

/// The decoder prompt when `AUSCULT_WHISPER_PROMPT` is not set: a short
/// clinical sentence that steers spelling and punctuation.
pub const DEFAULT_WHISPER_PROMPT: &str = "";

impl WhisperConfig {
    /// The defaults, with the model in `model_dir`.
    pub fn new(model_dir: PathBuf) -> Self {
        WhisperConfig {
            model_dir,
            workers: 0,
            threads: 0,
            compute_type: "int8".into(),
            max_streams: DEFAULT_WHISPER_MAX_STREAMS,
            endpoint: Duration::from_millis(500),
            prompt: DEFAULT_WHISPER_PROMPT.into(),
        }
    }
}

/// What `scripts/bench-asr.sh` shows a 2-core machine holds with tiny.en in
/// every run (8 met the latency target in some runs, not all).
pub const DEFAULT_WHISPER_MAX_STREAMS: usize = 6;

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
        let network = network::network_settings(&get, max_sessions)?;
        let max_sessions_per_user: usize = parse(
            get("max_sessions_per_user"),
            "AUSCULT_MAX_SESSIONS_PER_USER",
            "10",
        )?;
        if max_sessions_per_user == 0 {
            return Err(invalid(
                "AUSCULT_MAX_SESSIONS_PER_USER",
                "must be at least 1",
            ));
        }
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
            max_sessions_per_user,
            idle_timeout: secs("idle_timeout_secs", "AUSCULT_IDLE_TIMEOUT_SECS", 300)?,
            start_timeout: secs("start_timeout_secs", "AUSCULT_START_TIMEOUT_SECS", 10)?,
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
            network,
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
                workers: parse(get("whisper_workers"), "AUSCULT_WHISPER_WORKERS", "0")?,
                threads: parse(get("whisper_threads"), "AUSCULT_WHISPER_THREADS", "0")?,
                compute_type: get("whisper_compute_type").unwrap_or("int8").to_owned(),
                max_streams: positive(
                    parse(
                        get("whisper_max_streams"),
                        "AUSCULT_WHISPER_MAX_STREAMS",
                        &DEFAULT_WHISPER_MAX_STREAMS.to_string(),
                    )?,
                    "AUSCULT_WHISPER_MAX_STREAMS",
                )?,
                endpoint: Duration::from_millis(whisper_endpoint_ms(get("whisper_endpoint_ms"))?),
                prompt: get("whisper_prompt")
                    .unwrap_or(DEFAULT_WHISPER_PROMPT)
                    .trim()
                    .to_owned(),
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
}

fn positive(value: usize, name: &'static str) -> Result<usize, ConfigError> {
    if value == 0 {
        return Err(invalid(name, "must be at least 1"));
    }
    Ok(value)
}

/// 100 ms to 5 s: shorter splits words at every breath, longer makes finals wait.
fn whisper_endpoint_ms(value: Option<&str>) -> Result<u64, ConfigError> {
    const NAME: &str = "AUSCULT_WHISPER_ENDPOINT_MS";
    let ms: u64 = parse(value, NAME, "500")?;
    if !(100..=5000).contains(&ms) {
        return Err(invalid(NAME, format!("{ms}: expected 100 to 5000 ms")));
    }
    Ok(ms)
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

/// Query parameters whose values are secrets wherever they appear in a URL
/// (libpq takes `?password=`, S3-style URLs may carry keys).
const SECRET_PARAMS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "secret",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "key",
    "sslpassword",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
];

/// Masks the secrets of a URL with `****`: the password in
/// `scheme://user:password@host/...` and the value of any query parameter
/// named like a secret (`?password=`, `?token=`, ...).
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = redact_userinfo(base);
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret_param(name) => format!("{name}=****"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.contains(&name.as_str()) || name.ends_with("password") || name.ends_with("secret")
}

fn redact_userinfo(url: &str) -> String {
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
