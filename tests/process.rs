//! The real binary: crash recovery after SIGKILL, the SIGTERM drain, refusing
//! unsafe configurations, one process per data directory, private files on
//! disk, and `auscult config check`.

mod common;

use std::time::Duration;

use auscult::protocol::{CloseReason, ServerMsg};
use common::process::{ServerProcess, command, free_port};
use common::*;
use nix::sys::signal::Signal;

async fn connect(server: &ServerProcess) -> WsClient {
    WsClient::connect(&server.ws_url(), &[])
        .await
        .expect("upgrade")
}

#[tokio::test]
async fn a_killed_server_stores_exactly_the_acked_audio_as_recovered_at_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), &[]).await;
    let mut ws = connect(&server).await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 2.2);
    ws.send_audio(&audio, 3200).await;
    let ack = ws.wait_durable(audio.len() as u64).await;
    assert_eq!(ack.durable_bytes, audio.len() as u64);
    let finals_seen: Vec<(String, String)> = finals(&ws.log)
        .iter()
        .map(|t| (t.result_id.clone(), t.text.clone()))
        .collect();
    server.kill().await;
    drop(ws);
    let row = session_row(data.path(), &ready.session_id).await;
    assert_eq!(
        row.map(|r| r.status).as_deref(),
        Some("live"),
        "not stored before restart"
    );

    let mut restarted = ServerProcess::start(data.path(), &[]).await;
    let stored = StoredSession::read(data.path(), "local", &ready.session_id).await;
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    stored.assert_status("recovered", "recovered");
    let segments = stored.transcript_segments();
    assert!(
        segments.starts_with(&finals_seen),
        "finals the client saw {finals_seen:?} are kept in order: {segments:?}"
    );
    assert!(
        !data.path().join("spool").join(&ready.session_id).exists(),
        "the spool is removed once stored"
    );
    restarted.signal(Signal::SIGTERM);
    assert!(restarted.wait().await.success());
}

#[tokio::test]
async fn sigterm_drains_a_live_session_stored_then_closed_and_exits_zero() {
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), &[]).await;
    let mut ws = connect(&server).await;
    let ready = ws.start(48_000, Enc::F32, 2).await;
    let audio = tone(Enc::F32, 48_000, 2, 1.0);
    ws.send_audio(&audio, 38_400).await;
    ws.wait_durable(audio.len() as u64).await;
    server.signal(Signal::SIGTERM);
    let end = ws.collect_until_close().await;
    let stored_at = end
        .position(|m| matches!(m, ServerMsg::Stored(_)))
        .unwrap_or_else(|| {
            panic!(
                "no stored: {:?} close {:?}; server log:\n{}",
                end.msgs,
                end.close_code,
                server.log_text()
            )
        });
    let closed_at = end
        .position(|m| matches!(m, ServerMsg::Closed(c) if c.reason == CloseReason::ServerShutdown))
        .unwrap_or_else(|| panic!("no closed server_shutdown: {:?}", end.msgs));
    assert!(stored_at < closed_at, "stored comes before closed");
    assert_eq!(end.close_code, Some(1001));
    let status = server.wait().await;
    assert!(status.success(), "exit {status}: {}", server.log_text());
    let stored = StoredSession::read(data.path(), "local", &ready.session_id).await;
    stored.assert_audio(&audio, Enc::F32, 48_000, 2);
    stored.assert_status("stored", "server_shutdown");
}

#[tokio::test]
async fn sigterm_with_no_sessions_exits_zero() {
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), &[]).await;
    server.signal(Signal::SIGTERM);
    let status = server.wait().await;
    assert!(status.success(), "exit {status}: {}", server.log_text());
}

/// Runs the binary to completion with `args` and a clean environment plus `env`.
async fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = command(env);
    cmd.args(args);
    tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("auscult exits")
        .expect("run auscult")
}

#[tokio::test]
async fn the_server_refuses_to_start_on_a_public_address_without_tokens() {
    let data = tempfile::tempdir().unwrap();
    let listen = format!("0.0.0.0:{}", free_port());
    let out = run(
        &[],
        &[
            ("AUSCULT_ENGINE", "loadtest"),
            ("AUSCULT_LISTEN", &listen),
            ("AUSCULT_DATA_DIR", data.path().to_str().unwrap()),
        ],
    )
    .await;
    assert!(!out.status.success(), "must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AUSCULT_API_TOKENS"), "{stderr}");
}

#[tokio::test]
async fn config_check_prints_the_configuration_without_token_values() {
    let secret = "very-secret-token-42";
    let tokens = format!("alice:{secret}");
    let out = run(
        &["config", "check"],
        &[
            ("AUSCULT_API_TOKENS", &tokens),
            (
                "AUSCULT_DATABASE_URL",
                "postgres://app:db-password-77@db:5432/auscult",
            ),
            ("AUSCULT_MAX_SESSIONS", "17"),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("AUSCULT_MAX_SESSIONS=17"), "{stdout}");
    assert!(stdout.contains("alice"), "{stdout}");
    for leaked in [secret, "db-password-77"] {
        assert!(
            !stdout.contains(leaked) && !stderr.contains(leaked),
            "{leaked} leaked: {stdout}{stderr}"
        );
    }
}

#[tokio::test]
async fn config_check_warns_that_a_public_address_without_tokens_needs_accounts() {
    let out = run(&["config", "check"], &[("AUSCULT_LISTEN", "0.0.0.0:8080")]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("AUSCULT_API_TOKENS"), "{stderr}");
    assert!(stderr.contains("users add"), "{stderr}");
}

#[tokio::test]
async fn an_invalid_setting_is_named_and_the_server_does_not_start() {
    let out = run(&[], &[("AUSCULT_MAX_SESSIONS", "many")]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AUSCULT_MAX_SESSIONS"), "{stderr}");
}

#[tokio::test]
async fn config_check_redacts_a_password_given_in_the_url_query() {
    let out = run(
        &["config", "check"],
        &[(
            "AUSCULT_DATABASE_URL",
            "postgresql://app@db/auscult?sslmode=require&password=query-pass-91",
        )],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        !stdout.contains("query-pass-91") && !stderr.contains("query-pass-91"),
        "{stdout}{stderr}"
    );
    assert!(stdout.contains("password=****"), "{stdout}");
    assert!(stdout.contains("sslmode=require"), "{stdout}");
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_refuses_to_start_and_names_the_first() {
    let data = tempfile::tempdir().unwrap();
    let mut first = ServerProcess::start(data.path(), &[]).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let out = run(
        &[],
        &[
            ("AUSCULT_ENGINE", "loadtest"),
            ("AUSCULT_LISTEN", &listen),
            ("AUSCULT_DATA_DIR", data.path().to_str().unwrap()),
        ],
    )
    .await;
    assert!(
        !out.status.success(),
        "a second server started on the same folder"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first_pid = first.child.id().unwrap();
    assert!(
        stderr.contains("in use by another auscult process"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("pid {first_pid}")), "{stderr}");
    // The first one still serves, and once it is gone the folder is free.
    connect(&first).await.start(16_000, Enc::S16, 1).await;
    first.kill().await;
    let mut second = ServerProcess::start(data.path(), &[]).await;
    second.signal(Signal::SIGTERM);
    assert!(second.wait().await.success());
}

#[tokio::test]
async fn patient_data_on_disk_is_readable_by_the_server_user_only() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    // A folder made with a loose umask: the server tightens it.
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut server = ServerProcess::start(&data, &[]).await;
    let mut ws = connect(&server).await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    ws.send_audio(&tone(Enc::S16, 16_000, 1, 0.5), 3200).await;
    ws.wait_durable(16_000).await;
    // Mid-recording: the spool is there; then stored: objects and the database.
    let mut seen_spool = false;
    let mut check = |dir: &std::path::Path| {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(path) = stack.pop() {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                assert_eq!(mode, 0o700, "{}", path.display());
                stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if !path.ends_with(format!("server-{}.log", server.port)) {
                assert_eq!(mode, 0o600, "{}", path.display());
                seen_spool |= path.to_string_lossy().contains("audio.wav.part");
            }
        }
    };
    check(&data);
    ws.stop_and_collect().await.stored();
    check(&data);
    assert!(seen_spool, "the spool was checked while recording");
    assert!(data.join("auscult.db").exists());
    assert_eq!(
        std::fs::metadata(data.join(format!(
            "objects/users/local/audio/sessions/{}/audio.wav",
            ready.session_id
        )))
        .unwrap()
        .permissions()
        .mode()
            & 0o777,
        0o600
    );
    server.signal(Signal::SIGTERM);
    assert!(server.wait().await.success());
}

#[tokio::test]
async fn new_spools_objects_and_renames_fsync_the_folders_that_hold_their_names() {
    // The real binary under strace (Debian's `strace`, installed by
    // scripts/test.sh): which folders it fsyncs, by path.
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let trace = root.path().join("fsyncs.trace");
    let trace_arg = trace.display().to_string();
    let wrapper = [
        "strace",
        "-f",
        "-qq",
        "-y",
        "-e",
        "trace=fsync",
        "-o",
        trace_arg.as_str(),
    ];
    let mut server = ServerProcess::start_under(&data, &[], &wrapper).await;
    let mut ws = connect(&server).await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    ws.send_audio(&tone(Enc::S16, 16_000, 1, 0.5), 3200).await;
    ws.stop_and_collect().await.stored();
    // SIGTERM to the server itself (strace's child), which drains and exits; strace follows.
    let strace_pid = server.child.id().unwrap();
    let children =
        std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children")).unwrap();
    let auscult: i32 = children
        .split_whitespace()
        .next()
        .expect("strace runs auscult")
        .parse()
        .unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(auscult), Signal::SIGTERM).unwrap();
    assert!(server.wait().await.success());
    let text =
        std::fs::read_to_string(&trace).expect("strace wrote its trace (is strace installed?)");
    let synced = |path: &std::path::Path| text.contains(&format!("<{}>)", path.display()));
    let id = &ready.session_id;
    let session_objects = data.join(format!("objects/users/local/audio/sessions/{id}"));
    for folder in [
        data.join("spool"),                       // the new spool folder's name
        data.join("spool").join(id),              // its audio file, meta.json's rename
        session_objects.clone(),                  // each object's rename
        session_objects.parent().unwrap().into(), // the new session folder
        data.join("objects/users"),               // the new user folder
    ] {
        assert!(
            synced(&folder),
            "{} never fsynced:\n{text}",
            folder.display()
        );
    }
}
