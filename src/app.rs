//! Wires configuration, stores, engines and sessions into a running server.
//!
//! [`App::build`] does everything that can fail before the listener opens
//! (stores, migrations, crash recovery, engine warm-up); [`App::run`] serves a
//! bound listener until the shutdown future resolves, then drains sessions.

use std::future::Future;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accounts::{Accounts, login_sessions};
use crate::config::Config;
use crate::datadir;
use crate::engine::EngineRegistry;
use std::sync::Arc;

use crate::events::Publisher;
use crate::session::recovery::{Scope, recover_spools, retry_pending};
use crate::session::spool::LiveSpools;
use crate::session::{SessionManager, SessionSettings, Stores, chunks, takeover};
use crate::storage::{meta, object};
use crate::transport::host::{Gate, HostPolicy};
use crate::transport::serve::{self, ServeLimits};
use crate::transport::{self, AppState, auth::Authenticator, ws::Keepalive};

/// Why the server could not start (or stopped abnormally).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    DataDir(#[from] crate::datadir::DataDirError),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("engine: {0}")]
    Engine(#[from] crate::engine::registry::RegistryError),
    #[error("recovering spooled sessions: {0}")]
    Recovery(std::io::Error),
    #[error("admin listener {addr}: {source}")]
    AdminListen {
        addr: String,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(std::io::Error),
}

/// Connections the admin listener keeps open at once (scrapers, probes).
const ADMIN_CONNECTIONS: usize = 64;

/// How often expired login sessions are deleted, at most.
const LOGIN_CLEANUP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

pub struct App {
    config: Config,
    state: AppState,
    /// Bound at build when `AUSCULT_ADMIN_LISTEN` is set.
    admin: Option<TcpListener>,
    /// Held until `run` returns: no other process uses this data directory.
    lock: crate::datadir::DataDirLock,
    stores: Stores,
    live: LiveSpools,
    publisher: Option<Arc<Publisher>>,
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
        let lock = {
            let (data_dir, spool_dir) = (config.data_dir.clone(), config.spool_dir());
            let instance = config.instance_id.clone();
            tokio::task::spawn_blocking(move || datadir::take(&data_dir, &spool_dir, &instance))
                .await
                .map_err(|e| StartupError::Serve(std::io::Error::other(e)))??
        };
        let metadata = meta::open(&config.database_url, &config.database_pool).await?;
        config.validate_for_serve(metadata.has_users().await?)?;
        let objects = object::open(&config.storage_url, &config.s3).await?;
        let publisher = Publisher::open(&config.events).await?.map(Arc::new);
        let stores = Stores {
            objects: objects.clone(),
            metadata: metadata.clone(),
            instance_id: config.instance_id.clone(),
            events: publisher
                .as_ref()
                .map(|_| Arc::new(tokio::sync::Notify::new())),
        };
        tracing::info!(
            event = "stores_opened",
            instance_id = %stores.instance_id,
            metadata = %metadata.describe(),
            objects = %objects.describe(),
            events = %publisher.as_ref().map_or_else(|| "off".to_owned(), |p| p.describe())
        );
        let report = recover_spools(&stores, &config.spool_dir(), Scope::All)
            .await
            .map_err(StartupError::Recovery)?;
        if report.stored + report.failed + report.purged > 0 {
            tracing::info!(
                event = "recovery_done",
                stored = report.stored,
                failed = report.failed,
                purged = report.purged
            );
        }
        let live = LiveSpools::default();
        let sessions = SessionManager::new(
            SessionSettings::from_config(&config),
            engines,
            stores.clone(),
            live.clone(),
        );
        let state = AppState {
            sessions,
            auth: Authenticator::from_config(&config),
            accounts: Accounts::new(metadata.clone(), config.login_idle),
            metadata,
            objects,
            keepalive: Keepalive {
                ping_interval: config.ping_interval,
                pong_timeout: config.pong_timeout,
            },
            gate: Arc::new(Gate {
                trusted_proxies: config.network.trusted_proxies.clone(),
                hosts: HostPolicy::new(config.network.allowed_hosts.clone(), config.listen),
            }),
            probe: Arc::default(),
            admin_listener: config.network.admin_listen.is_some(),
            socketio: config.network.socketio,
        };
        let admin =
            match config.network.admin_listen {
                Some(addr) => Some(TcpListener::bind(addr).await.map_err(|source| {
                    StartupError::AdminListen {
                        addr: addr.to_string(),
                        source,
                    }
                })?),
                None => None,
            };
        Ok(App {
            config,
            state,
            admin,
            lock,
            stores,
            live,
            publisher,
        })
    }

    pub fn sessions(&self) -> &SessionManager {
        &self.state.sessions
    }

    /// Where the admin listener (`/metrics`, detailed `/ready`) is bound, if on.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves on `listener` until `shutdown` resolves; then stops accepting,
    /// closes and stores every session, and returns within the grace period.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let _lock = self.lock;
        let stop_accepting = CancellationToken::new();
        let stop_sync = CancellationToken::new();
        // The admin listener answers until the very end (scrapes during the drain).
        let stop_sync_admin = stop_sync.clone();
        let spool_dir = self.config.spool_dir();
        let mut background = vec![
            tokio::spawn(
                self.live
                    .clone()
                    .run_fsync(self.config.fsync_interval, stop_sync.clone()),
            ),
            tokio::spawn(retry_pending(
                self.stores.clone(),
                spool_dir.clone(),
                self.config.storage_retry_interval,
                stop_sync.clone(),
            )),
            tokio::spawn(chunks::run(
                self.live.clone(),
                self.stores.clone(),
                self.config.chunk_flush_interval,
                stop_sync.clone(),
            )),
            tokio::spawn(takeover::run(
                self.stores.clone(),
                spool_dir,
                self.config.chunk_flush_interval,
                self.config.session_stale_after,
                stop_sync.clone(),
            )),
        ];
        // A user disabled on any instance loses a recording in progress here
        // within one heartbeat interval.
        background.push(tokio::spawn(
            self.state
                .sessions
                .clone()
                .run_revocation(self.config.chunk_flush_interval, stop_sync.clone()),
        ));
        background.push(tokio::spawn(login_sessions::run_cleanup(
            self.stores.metadata.clone(),
            self.config.login_idle.min(LOGIN_CLEANUP_INTERVAL),
            stop_sync.clone(),
        )));
        if let (Some(publisher), Some(wake)) = (&self.publisher, &self.stores.events) {
            background.push(tokio::spawn(crate::events::run(
                Arc::clone(publisher),
                self.stores.metadata.clone(),
                Arc::clone(wake),
                self.config.storage_retry_interval,
                stop_sync.clone(),
            )));
        }
        let limits = ServeLimits {
            max_connections: self.config.network.max_connections,
            header_read_timeout: self.config.network.header_read_timeout,
        };
        if let Some(admin) = self.admin {
            let router = transport::admin_router(self.state.clone());
            let admin_limits = ServeLimits {
                max_connections: ADMIN_CONNECTIONS,
                ..limits
            };
            background.push(tokio::spawn(async move {
                if let Err(e) = serve::serve(admin, router, admin_limits, stop_sync_admin).await {
                    tracing::error!(event = "admin_listener_failed", error = %e);
                }
            }));
        }
        let router = transport::router(self.state.clone());
        let serve = serve::serve(listener, router, limits, stop_accepting.clone());
        tokio::pin!(serve);
        let mut served = tokio::select! {
            result = &mut serve => Some(result),
            () = shutdown => None,
        };
        tracing::info!(
            event = "shutdown_started",
            active_sessions = self.state.sessions.active()
        );
        // The listener goes on serving while the sessions drain: a new
        // session is refused with `server_shutdown` (and `/ready` says
        // `shutting_down`), while a Socket.IO client on long-polling, whose
        // every poll is a new HTTP request, still fetches its `stored` and
        // `closed`. It stops once the sessions are closed.
        let grace = self.config.shutdown_grace;
        let drain = self
            .state
            .sessions
            .shutdown(grace.saturating_sub(std::time::Duration::from_secs(1)));
        tokio::pin!(drain);
        let drained = loop {
            tokio::select! {
                drained = &mut drain => break drained,
                result = &mut serve, if served.is_none() => served = Some(result),
            }
        };
        stop_accepting.cancel();
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
        for task in background {
            let _ = task.await;
        }
        tracing::info!(event = "shutdown_done", drained);
        match served {
            Some(Err(e)) => Err(StartupError::Serve(e)),
            _ => Ok(()),
        }
    }
}
