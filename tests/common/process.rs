//! The real `auscult` binary as a child process, for signals and crashes.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use super::WAIT;

pub const BIN: &str = env!("CARGO_BIN_EXE_auscult");

/// A free loopback port (bound and released; the child binds it next).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().unwrap().port()
}

/// A command for the binary with a clean environment plus `env`.
pub fn command(env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
    /// The admin listener (`/metrics`, detailed `/ready`).
    pub admin_port: u16,
    pub log: PathBuf,
}

impl ServerProcess {
    /// Starts `auscult` with the load-test engine on `data_dir` and waits until `/health` answers.
    pub async fn start(data_dir: &Path, extra: &[(&str, &str)]) -> ServerProcess {
        Self::start_under(data_dir, extra, &[]).await
    }

    /// Like [`ServerProcess::start`], with the binary run by `wrapper`
    /// (e.g. `["strace", "-f", "-o", "trace"]`): the wrapper's arguments,
    /// then the binary's path.
    pub async fn start_under(
        data_dir: &Path,
        extra: &[(&str, &str)],
        wrapper: &[&str],
    ) -> ServerProcess {
        let port = free_port();
        let admin_port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let admin = format!("127.0.0.1:{admin_port}");
        let data = data_dir.display().to_string();
        let mut env = vec![
            ("AUSCULT_ENGINE", "loadtest"),
            ("AUSCULT_LISTEN", listen.as_str()),
            ("AUSCULT_ADMIN_LISTEN", admin.as_str()),
            ("AUSCULT_DATA_DIR", data.as_str()),
        ];
        env.extend_from_slice(extra);
        let log = data_dir.join(format!("server-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("server log file");
        let mut cmd = command(&env);
        if let Some((program, args)) = wrapper.split_first() {
            let inner = cmd.as_std();
            let mut wrapped = Command::new(program);
            wrapped
                .args(args)
                .arg(BIN)
                .env_clear()
                .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
                .stdin(Stdio::null())
                .kill_on_drop(true);
            cmd = wrapped;
        }
        let child = cmd
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("spawn auscult");
        let mut server = ServerProcess {
            child,
            port,
            admin_port,
            log,
        };
        server.wait_healthy().await;
        server
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1/stream", self.port)
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id().expect("child is running") as i32)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle` at least `count` times (e.g. every
    /// client's `session_started`), and fails the test after [`WAIT`].
    pub async fn wait_log(&self, needle: &str, count: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.log_text().matches(needle).count() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{count} × {needle:?} not logged within {WAIT:?}: {}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_healthy(&mut self) {
        let url = format!("http://127.0.0.1:{}/health", self.port);
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("auscult exited early ({status}): {}", self.log_text());
            }
            if let Ok(resp) = client.get(&url).send().await
                && resp.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "auscult not healthy within {WAIT:?}: {}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).expect("send signal");
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self) -> ExitStatus {
        tokio::time::timeout(Duration::from_secs(40), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("auscult did not exit: {}", self.log_text()))
            .expect("wait for auscult")
    }

    /// SIGKILL, then reap.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL auscult");
        self.wait().await;
    }
}
