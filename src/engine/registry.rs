//! The engine factory: builds the engines named in the configuration and
//! resolves a session's requested engine by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Engine, LoadTestEngine, Readiness, SharedEngine};
use crate::config::Config;

/// Names of every engine this build knows, whether or not it is configured.
pub const KNOWN_ENGINES: &[&str] = &[
    "whisper",
    "transcribe-medical",
    "transcribe",
    "riva",
    "loadtest",
];

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("unknown engine {0:?} (known: {known})", known = KNOWN_ENGINES.join(", "))]
    Unknown(String),
    #[error("engine {name:?} is not available in this build: {why}")]
    NotBuilt { name: String, why: &'static str },
    #[error("engine {name:?} failed to start: {message}")]
    Startup { name: String, message: String },
}

/// The engines this server runs, by name, and the default one.
#[derive(Clone)]
pub struct EngineRegistry {
    engines: BTreeMap<String, SharedEngine>,
    default: String,
}

impl EngineRegistry {
    /// Builds the default engine named in the configuration, the extra ones
    /// of `AUSCULT_ENGINES` (plus the always available `loadtest` engine). Local models are loaded and warmed here,
    /// before the listener opens.
    pub async fn from_config(config: &Config) -> Result<Self, RegistryError> {
        let mut registry = EngineRegistry {
            engines: BTreeMap::new(),
            default: config.engine.clone(),
        };
        registry.insert(Arc::new(LoadTestEngine::new()));
        let wanted = std::iter::once(&config.engine).chain(&config.engines);
        for name in wanted {
            if !registry.engines.contains_key(name) {
                let engine = build_engine(name, config).await?;
                registry.insert(engine);
            }
        }
        Ok(registry)
    }

    /// A registry over the given engines; the first is the default. Used by tests
    /// and embedders that bring their own engine.
    pub fn with_engines(engines: Vec<SharedEngine>) -> Self {
        let default = engines
            .first()
            .map(|e| e.name().to_owned())
            .unwrap_or_default();
        let mut registry = EngineRegistry {
            engines: BTreeMap::new(),
            default,
        };
        for engine in engines {
            registry.insert(engine);
        }
        registry
    }

    pub fn insert(&mut self, engine: SharedEngine) {
        self.engines.insert(engine.name().to_owned(), engine);
    }

    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// Resolves a session's requested engine (or the default).
    pub fn get(&self, requested: Option<&str>) -> Option<SharedEngine> {
        self.engines
            .get(requested.unwrap_or(&self.default))
            .cloned()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.engines.keys().map(String::as_str)
    }

    /// Readiness of every engine, by name.
    pub async fn readiness(&self) -> BTreeMap<String, Readiness> {
        let mut out = BTreeMap::new();
        for (name, engine) in &self.engines {
            out.insert(name.clone(), engine.readiness().await);
        }
        out
    }
}

async fn build_engine(name: &str, config: &Config) -> Result<Arc<dyn Engine>, RegistryError> {
    match name {
        "loadtest" => Ok(Arc::new(LoadTestEngine::new())),
        "whisper" => build_whisper(config).await,
        super::transcribe::MEDICAL => Ok(Arc::new(super::transcribe::TranscribeEngine::new(
            super::transcribe::Variant::Medical,
            config.transcribe.clone(),
        ))),
        super::transcribe::STANDARD => Ok(Arc::new(super::transcribe::TranscribeEngine::new(
            super::transcribe::Variant::Standard,
            config.transcribe.clone(),
        ))),
        "riva" => super::riva::RivaEngine::new(&config.riva)
            .map(|e| Arc::new(e) as Arc<dyn Engine>)
            .map_err(|e| RegistryError::Startup {
                name: "riva".to_owned(),
                message: e.to_string(),
            }),
        other => Err(RegistryError::Unknown(other.to_owned())),
    }
}

/// Loads and warms the model on a blocking thread; the server awaits this
/// before it opens the listener.
#[cfg(feature = "embedded-whisper")]
async fn build_whisper(config: &Config) -> Result<Arc<dyn Engine>, RegistryError> {
    let settings = config.whisper.clone();
    let startup = |message: String| RegistryError::Startup {
        name: "whisper".to_owned(),
        message,
    };
    let engine =
        tokio::task::spawn_blocking(move || super::whisper::WhisperEngine::load(&settings))
            .await
            .map_err(|e| startup(format!("model loading panicked: {e}")))?
            .map_err(|e| startup(e.to_string()))?;
    Ok(Arc::new(engine))
}

#[cfg(not(feature = "embedded-whisper"))]
async fn build_whisper(_config: &Config) -> Result<Arc<dyn Engine>, RegistryError> {
    Err(RegistryError::NotBuilt {
        name: "whisper".to_owned(),
        why: "built without the `whisper` cargo feature",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn extra_engines_run_beside_the_default() {
        let env: std::collections::BTreeMap<String, String> = [
            ("AUSCULT_ENGINE", "transcribe-medical"),
            ("AUSCULT_ENGINES", "transcribe, loadtest"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let config = Config::load_from(None, &env).unwrap();
        let registry = EngineRegistry::from_config(&config).await.unwrap();
        assert_eq!(registry.default_name(), "transcribe-medical");
        let names: Vec<&str> = registry.names().collect();
        assert_eq!(names, ["loadtest", "transcribe", "transcribe-medical"]);
        assert_eq!(
            registry.get(Some("transcribe")).unwrap().name(),
            "transcribe"
        );
    }
}
