//! The black-box harness: the real app on port 0 with its own temp data
//! directory, a WebSocket client that speaks the protocol, test audio, and
//! readers for what ended up stored (objects and database rows).
#![allow(dead_code)]

pub mod api;
pub mod audio;
pub mod backend;
pub mod client;
pub mod engine;
pub mod fake_riva;
pub mod fake_transcribe;
pub mod faultfs;
pub mod h2c;
pub mod login;
pub mod moto;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod socketio;
#[cfg(feature = "embedded-whisper")]
pub mod speech;
pub mod stored;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use auscult::engine::{EngineRegistry, LoadTestEngine, SharedEngine};
use auscult::{App, Config, StartupError};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// Not every test binary uses the API client.
#[allow(unused_imports)]
pub use api::{Answer, ApiClient};
// Not every test binary uses the audio helpers (object_store_contract does not).
#[allow(unused_imports)]
pub use audio::*;
pub use backend::{Backend, str_pairs};
pub use client::*;
pub use engine::ScriptedEngine;
pub use proxy::Proxy;
pub use stored::*;

/// How long any wait for the server may take before the test fails. Generous:
/// the test machine is small and busy.
pub const WAIT: Duration = Duration::from_secs(20);

/// Calls `probe` every 100 ms until it returns `Ok`, failing the test after
/// [`WAIT`] with the last `Err` (which says what was awaited and what was seen).
pub async fn poll_until<T, F, Fut>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(why) => assert!(
                tokio::time::Instant::now() < deadline,
                "{why} within {WAIT:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The app's config from `AUSCULT_*` pairs, as the in-process TestApp gets it
/// (the process environment is not read).
pub fn test_config(vars: &BTreeMap<String, String>) -> Config {
    let mut config = Config::load_from(None, vars).expect("test config");
    // The in-process app has no AWS credentials in its environment: pointed
    // at moto (S3 or SQS), it gets moto's static ones.
    if vars.contains_key("AUSCULT_S3_ENDPOINT") || vars.contains_key("AUSCULT_EVENTS_SQS_URL") {
        config.s3.credentials = Some(moto::credentials());
        config.events.credentials = Some(moto::credentials());
    }
    // Pointed at the fake Transcribe service, the engines get static ones too.
    if vars.contains_key("AUSCULT_TRANSCRIBE_ENDPOINT") {
        config.transcribe.credentials = Some(moto::credentials());
    }
    config
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`, detailed `/ready`): on in every test
    /// app unless the test sets `AUSCULT_ADMIN_LISTEN` itself.
    pub admin: Option<SocketAddr>,
    pub data_dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), StartupError>>>,
}

/// The scripted engine (default) plus the built-in load-test engine.
pub fn default_engines() -> Vec<SharedEngine> {
    vec![
        ScriptedEngine::new().shared(),
        std::sync::Arc::new(LoadTestEngine::new()),
    ]
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[], default_engines()).await
    }

    pub async fn spawn_env(env: &[(&str, &str)]) -> TestApp {
        Self::spawn_with(env, default_engines()).await
    }

    /// Builds the app from `AUSCULT_*` pairs over a fresh data directory and serves it on port 0.
    pub async fn spawn_with(env: &[(&str, &str)], engines: Vec<SharedEngine>) -> TestApp {
        Self::spawn_in(tempfile::tempdir().expect("temp data dir"), env, engines).await
    }

    /// The app with the engines its configuration names (`AUSCULT_ENGINE`),
    /// built by the server's own factory, as `auscult serve` builds them.
    pub async fn spawn_configured(env: &[(&str, &str)]) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp data dir");
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        vars.insert(
            "AUSCULT_DATA_DIR".into(),
            data_dir.path().display().to_string(),
        );
        for (k, v) in env {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let registry = EngineRegistry::from_config(&test_config(&vars))
            .await
            .expect("configured engines build");
        let engines = registry
            .names()
            .filter_map(|n| registry.get(Some(n)))
            .collect::<Vec<_>>();
        let default = registry.get(None).expect("default engine");
        let mut ordered = vec![default.clone()];
        ordered.extend(engines.into_iter().filter(|e| e.name() != default.name()));
        Self::spawn_in(data_dir, env, ordered).await
    }

    /// The app (scripted engines) on `backend`'s storage pair, plus `env`.
    pub async fn spawn_on(backend: &Backend, env: &[(&str, &str)]) -> TestApp {
        let pairs = backend.env();
        let mut all = str_pairs(&pairs);
        all.extend_from_slice(env);
        Self::spawn_with(&all, default_engines()).await
    }

    /// Like [`TestApp::spawn_with`] over an existing data directory (a restart).
    pub async fn spawn_in(
        data_dir: TempDir,
        env: &[(&str, &str)],
        engines: Vec<SharedEngine>,
    ) -> TestApp {
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        vars.insert(
            "AUSCULT_DATA_DIR".into(),
            data_dir.path().display().to_string(),
        );
        vars.insert("AUSCULT_ADMIN_LISTEN".into(), "127.0.0.1:0".into());
        for (k, v) in env {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = test_config(&vars);
        let app = App::build_with_engines(config, EngineRegistry::with_engines(engines))
            .await
            .expect("app builds");
        let admin = app.admin_addr();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(listener, async move {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            admin,
            data_dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn data_path(&self) -> &Path {
        self.data_dir.path()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/stream", self.addr)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self.admin.expect("this test app has an admin listener");
        format!("http://{admin}{path}")
    }

    /// Opens `/v1/stream` with no credentials (the loopback `local` user).
    pub async fn connect_ws(&self) -> WsClient {
        WsClient::connect(&self.ws_url(), &[])
            .await
            .expect("websocket upgrade")
    }

    /// Opens `/v1/stream` with a bearer token.
    pub async fn connect_ws_as(&self, token: &str) -> WsClient {
        let auth = format!("Bearer {token}");
        WsClient::connect(&self.ws_url(), &[("authorization", auth.as_str())])
            .await
            .expect("websocket upgrade")
    }

    /// What the session's objects and database row say, once stored.
    pub async fn stored(&self, user: &str, session_id: &str) -> StoredSession {
        StoredSession::read(self.data_path(), user, session_id).await
    }

    pub fn object_path(&self, key: &str) -> PathBuf {
        self.data_path().join("objects").join(key)
    }

    /// Triggers shutdown and waits for the app to drain and return. Hands back
    /// the data directory for tests that inspect it afterwards.
    pub async fn stop(mut self) -> TempDir {
        self.shutdown_and_wait().await;
        let empty = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.data_dir, empty)
    }

    async fn shutdown_and_wait(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(40), task)
                .await
                .expect("app stops within its grace period")
                .expect("app task does not panic");
            result.expect("app run returns Ok");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
