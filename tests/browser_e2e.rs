//! Issue 6 in a real browser: the `auscult` binary with the Whisper engine and
//! one user (`auscult users add … --password-stdin`), driven by headless
//! Chromium (playwright-core, `e2e/`) whose fake microphone plays espeak-ng
//! speech. The scripts in `e2e/` do the clicking and checking; each test here
//! starts a server for one of them and fails with its output when it fails.
//! A third test runs the page's stream logic against a scripted WebSocket.
//!
//! Needs Debian's `chromium`, `node` with `e2e/node_modules` (`npm ci` in
//! `e2e/`), `espeak-ng`, `sox` and the Whisper model: `scripts/test.sh`
//! installs them all. A missing one fails the test with that hint; it never
//! skips.
#![cfg(feature = "embedded-whisper")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::process::{ServerProcess, command};
use common::speech::whisper_model_dir;
use tokio::io::AsyncWriteExt;

const USER: &str = "dr-lee";
const PASSWORD: &str = "stethoscope-e2e-7";
/// One browser script's time limit (the scripts have their own watchdog).
const SCRIPT_LIMIT: Duration = Duration::from_secs(360);
const SETUP_HINT: &str = "run scripts/test.sh (it installs everything), or: \
     apt-get install chromium nodejs npm espeak-ng sox && (cd e2e && npm ci)";

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e")
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("AUSCULT_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "no Chromium at {} (Debian package chromium; or set AUSCULT_CHROMIUM): {SETUP_HINT}",
        path.display()
    );
    path
}

/// Fails, with the hint, unless everything the browser tests need is here.
fn assert_prerequisites() {
    for (tool, arg) in [("node", "--version"), ("espeak-ng", "--version")] {
        let ok = std::process::Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "`{tool}` is not installed: {SETUP_HINT}");
    }
    let ok = std::process::Command::new("sox")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "`sox` is not installed: {SETUP_HINT}");
    let playwright = e2e_dir().join("node_modules/playwright-core/package.json");
    assert!(
        playwright.is_file(),
        "{} is missing: {SETUP_HINT}",
        playwright.display()
    );
    chromium();
}

/// `auscult users add USER --password-stdin` on `data_dir`, before the server starts.
async fn add_user(data_dir: &Path) {
    let data = data_dir.display().to_string();
    let mut child = command(&[("AUSCULT_DATA_DIR", data.as_str())])
        .args(["users", "add", USER, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn auscult users add");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.expect("auscult users add");
    assert!(
        out.status.success(),
        "auscult users add failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The real binary with the Whisper engine and one user who signs in with a
/// password (with an account, a loopback server is not in local mode: the
/// page must show its login form).
async fn server(data_dir: &Path) -> ServerProcess {
    assert_prerequisites();
    add_user(data_dir).await;
    let model = whisper_model_dir().display().to_string();
    ServerProcess::start(
        data_dir,
        &[
            ("AUSCULT_ENGINE", "whisper"),
            ("AUSCULT_WHISPER_MODEL_DIR", model.as_str()),
        ],
    )
    .await
}

/// Runs `node e2e/<script>` against `server`; panics with its output (and the
/// server's log) unless it exits 0. Returns its output.
async fn run_script(script: &str, server: &ServerProcess, scratch: &Path) -> String {
    let url = format!("http://127.0.0.1:{}", server.port);
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    let run = tokio::process::Command::new("node")
        .arg(e2e_dir().join(script))
        .current_dir(e2e_dir())
        .env("AUSCULT_URL", &url)
        .env("AUSCULT_USER", USER)
        .env("AUSCULT_PASSWORD", PASSWORD)
        .env("AUSCULT_CHROMIUM", chromium())
        .env("AUSCULT_SCREENSHOTS", screenshots)
        .env("AUSCULT_E2E_TMP", scratch)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(SCRIPT_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("{script} ran longer than {SCRIPT_LIMIT:?}"))
        .expect("run node");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{output}\n--- server log ---\n{}",
        out.status,
        server.log_text()
    );
    eprintln!("{output}");
    output
}

/// The server logs ids and sizes, never what was said.
fn assert_no_transcript_in_log(server: &ServerProcess, phrases: &[&str]) {
    let log = server.log_text().to_lowercase();
    for phrase in phrases {
        assert!(
            !log.contains(phrase),
            "the server log contains transcript text {phrase:?}"
        );
    }
}

/// The page's stream logic (buffering, resume offsets, stop after the buffered
/// audio, refusals) against a scripted WebSocket: `node --test`, no browser.
#[tokio::test]
async fn the_pages_stream_logic_passes_its_unit_tests() {
    let ok = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "`node` is not installed: {SETUP_HINT}");
    let out = tokio::process::Command::new("node")
        .args(["--test", "stream.test.mjs"])
        .current_dir(e2e_dir())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run node --test");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "node --test failed:\n{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_signs_in_records_at_48_and_8_khz_and_finds_both_in_the_history() {
    let data = tempfile::tempdir().unwrap();
    let mut server = server(data.path()).await;
    run_script("record.mjs", &server, data.path()).await;
    assert_no_transcript_in_log(&server, &["blood pressure", "chest pain", "shortness"]);
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_recording_is_resumed_and_the_stored_audio_has_no_gap() {
    let data = tempfile::tempdir().unwrap();
    let mut server = server(data.path()).await;
    run_script("reconnect.mjs", &server, data.path()).await;
    assert!(
        server.log_text().contains("session_resumed"),
        "the server never saw a resume:\n{}",
        server.log_text()
    );
    assert_no_transcript_in_log(&server, &["wound", "infection"]);
    server.kill().await;
}
