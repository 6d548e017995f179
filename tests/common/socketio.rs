//! Real Socket.IO clients nobody here wrote, driven by a plan: python-socketio
//! (`tests/socketio/client.py`) and the npm socket.io-client
//! (`e2e/socketio.mjs`). Each prints what happened as JSON lines.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use auscult::protocol::ServerMsg;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

const SETUP_HINT: &str = "run scripts/test.sh, which installs python-socketio[asyncio_client] \
     and e2e/node_modules (socket.io-client)";

/// One thing a client saw: `event` is a Socket.IO event name or one of the
/// script's own (`connected`, `connect_error`, `connect_failed`,
/// `start_ack`, `sent`, `dropping`, `disconnect`, `timeout`).
#[derive(Debug, Clone)]
pub struct Seen {
    pub event: String,
    pub data: Value,
}

/// What one client run saw, in order.
#[derive(Debug, Clone)]
pub struct Run(pub Vec<Seen>);

impl Run {
    pub fn first(&self, event: &str) -> Option<&Value> {
        self.0.iter().find(|s| s.event == event).map(|s| &s.data)
    }

    pub fn all(&self, event: &str) -> Vec<&Value> {
        self.0
            .iter()
            .filter(|s| s.event == event)
            .map(|s| &s.data)
            .collect()
    }

    /// The server's messages (events whose data is a protocol message), in order.
    pub fn messages(&self) -> Vec<ServerMsg> {
        self.0
            .iter()
            .filter(|s| {
                matches!(
                    s.event.as_str(),
                    "ready" | "transcript" | "ack" | "error" | "stored" | "closed" | "start_ack"
                )
            })
            .filter_map(|s| serde_json::from_value(s.data.clone()).ok())
            .collect()
    }

    /// The `start` acknowledgement, which must be there.
    pub fn start_ack(&self) -> &Value {
        self.first("start_ack")
            .unwrap_or_else(|| panic!("no start acknowledgement in {:#?}", self.0))
    }

    pub fn session_id(&self) -> String {
        let ack = self.start_ack();
        assert_eq!(
            ack["type"], "ready",
            "start was not answered with ready: {ack}"
        );
        ack["session_id"].as_str().expect("session_id").to_owned()
    }

    pub fn error_codes(&self) -> Vec<String> {
        let mut codes: Vec<String> = self
            .all("error")
            .into_iter()
            .filter_map(|e| e["code"].as_str().map(str::to_owned))
            .collect();
        if let Some(ack) = self.first("start_ack")
            && ack["type"] == "error"
        {
            codes.push(ack["code"].as_str().unwrap_or_default().to_owned());
        }
        codes
    }

    pub fn last_durable(&self) -> u64 {
        self.all("ack")
            .iter()
            .filter_map(|a| a["durable_bytes"].as_u64())
            .max()
            .unwrap_or(0)
    }

    pub fn closed_reason(&self) -> Option<String> {
        self.first("closed")
            .and_then(|c| c["reason"].as_str())
            .map(str::to_owned)
    }
}

/// Which client library runs the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Library {
    /// python-socketio's asyncio client.
    Python,
    /// The npm socket.io-client in Node.
    Node,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails the test loudly when a client library is missing.
pub fn require(library: Library) {
    match library {
        Library::Python => {
            let ok = std::process::Command::new("python3")
                .args(["-c", "import socketio, aiohttp"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "python-socketio (asyncio client) is not installed: {SETUP_HINT}"
            );
        }
        Library::Node => {
            let lib = root().join("e2e/node_modules/socket.io-client/package.json");
            assert!(
                lib.exists(),
                "socket.io-client is not installed: {SETUP_HINT}"
            );
        }
    }
}

/// Writes `audio` to a file in `dir` for a client to send.
pub fn audio_file(dir: &Path, name: &str, audio: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, audio).expect("write audio file");
    path.display().to_string()
}

/// Runs `plan` with `library` and returns what it saw. Panics with the
/// client's output when it fails.
pub async fn run(library: Library, plan: Value) -> Run {
    require(library);
    let mut command = match library {
        Library::Python => {
            let mut c = tokio::process::Command::new("python3");
            c.arg(root().join("tests/socketio/client.py"));
            c
        }
        Library::Node => {
            let mut c = tokio::process::Command::new("node");
            c.arg(root().join("e2e/socketio.mjs"));
            c
        }
    };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run the {library:?} client: {e}; {SETUP_HINT}"));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(plan.to_string().as_bytes())
        .await
        .expect("write plan");
    drop(stdin);
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("the client finishes within 120 s")
    .expect("client output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{library:?} client failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let seen = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("client printed {line:?}: {e}\n{stderr}"));
            Seen {
                event: v["event"].as_str().unwrap_or_default().to_owned(),
                data: v["data"].clone(),
            }
        })
        .collect();
    Run(seen)
}
