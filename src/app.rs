//! Wires configuration, stores, engines and sessions into a running server.
//!
//! [`App::build`] does everything that can fail before the listener opens
//! (stores, migrations, crash recovery, engine warm-up); [`App::run`] serves a
//! bound listener until the shutdown future resolves, then drains sessions.

use std::future::Future;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::engine::EngineRegistry;
use crate::session::recovery::{Scope, recover_spools, retry_pending};
use crate::session::spool::SpoolSyncer;
use crate::session::{SessionManager, SessionSettings};
use crate::storage::{meta, object};
use crate::transport::{self, AppState, auth::Authenticator, ws::Keepalive};

/// Why the server could not start (or stopped abnormally).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("engine: {0}")]
    Engine(#[from] crate::engine::registry::RegistryError),
    #[error("recovering spooled sessions: {0}")]
    Recovery(std::io::Error),
    #[error("server: {0}")]
    Serve(std::io::Error),
}

pub struct App {
    config: Config,
    state: AppState,
    syncer: SpoolSyncer,
}

impl App {
    /// Builds the app with the engines named in the configuration.
    pub async fn build(config: Config) -> Result<App, StartupError> {
        let engines = EngineRegistry::from_config(&config).await?;
        Self::build_with_engines(config, engines).await
    }

    /// Builds the app with the given engines (tests bring scripted ones).
    pub async fn build_with_engines(
        config: Config,
        engines: EngineRegistry,
    ) -> Result<App, StartupError> {
        crate::telemetry::metrics_handle();
        let data_dir = config.data_dir.clone();
        tokio::fs::create_dir_all(config.spool_dir())
            .await
            .map_err(|source| StartupError::DataDir {
                path: data_dir.display().to_string(),
                source,
            })?;
        let metadata = meta::open(&config.database_url, &config.database_pool).await?;
        let objects = object::open(&config.storage_url).await?;
        let report = recover_spools(&objects, &metadata, &config.spool_dir(), Scope::All)
            .await
            .map_err(StartupError::Recovery)?;
        if report.stored + report.failed > 0 {
            tracing::info!(
                event = "recovery_done",
                stored = report.stored,
                failed = report.failed
            );
        }
        let syncer = SpoolSyncer::default();
        let sessions = SessionManager::new(
            SessionSettings::from_config(&config),
            engines,
            objects.clone(),
            metadata.clone(),
            syncer.clone(),
        );
        let state = AppState {
            sessions,
            auth: Authenticator::from_config(&config),
            metadata,
            objects,
            keepalive: Keepalive {
                ping_interval: config.ping_interval,
                pong_timeout: config.pong_timeout,
            },
        };
        Ok(App {
            config,
            state,
            syncer,
        })
    }

    pub fn sessions(&self) -> &SessionManager {
        &self.state.sessions
    }

    /// Serves on `listener` until `shutdown` resolves; then stops accepting,
    /// closes and stores every session, and returns within the grace period.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let stop_accepting = CancellationToken::new();
        let stop_sync = CancellationToken::new();
        let syncer = tokio::spawn(
            self.syncer
                .clone()
                .run(self.config.fsync_interval, stop_sync.clone()),
        );
        let retry = tokio::spawn(retry_pending(
            self.state.objects.clone(),
            self.state.metadata.clone(),
            self.config.spool_dir(),
            self.config.storage_retry_interval,
            stop_sync.clone(),
        ));
        let router = transport::router(self.state.clone());
        let serve = axum::serve(listener, router)
            .with_graceful_shutdown(stop_accepting.clone().cancelled_owned())
            .into_future();
        tokio::pin!(serve);
        let served = tokio::select! {
            result = &mut serve => Some(result),
            () = shutdown => None,
        };
        tracing::info!(
            event = "shutdown_started",
            active_sessions = self.state.sessions.active()
        );
        stop_accepting.cancel();
        let grace = self.config.shutdown_grace;
        let drained = self
            .state
            .sessions
            .shutdown(grace.saturating_sub(std::time::Duration::from_secs(1)))
            .await;
        if !drained {
            tracing::warn!(
                event = "shutdown_grace_exceeded",
                "sessions still open after the grace period; their spools are recovered at next start"
            );
        }
        if served.is_none() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), &mut serve).await;
        }
        stop_sync.cancel();
        let _ = syncer.await;
        let _ = retry.await;
        tracing::info!(event = "shutdown_done", drained);
        match served {
            Some(Err(e)) => Err(StartupError::Serve(e)),
            _ => Ok(()),
        }
    }
}
