//! The plain HTTP endpoints: liveness, readiness (terse on the public port,
//! detailed on the admin listener), metrics, and the JSON 404.

mod common;

use common::*;

async fn get(app: &TestApp, path: &str) -> (u16, String) {
    get_url(&app.http_url(path)).await
}

async fn get_url(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.expect("GET");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

async fn admin(app: &TestApp, path: &str) -> (u16, String) {
    get_url(&app.admin_url(path)).await
}

#[tokio::test]
async fn health_is_200() {
    let app = TestApp::spawn().await;
    let (status, _) = get(&app, "/health").await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn the_public_ready_says_only_ready_or_not() {
    let app = TestApp::spawn().await;
    let (status, body) = get(&app, "/ready").await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body, serde_json::json!({ "ready": true }));
    app.stop().await;
}

#[tokio::test]
async fn the_public_ready_is_503_without_a_word_of_why_when_storage_is_gone() {
    let app = TestApp::spawn().await;
    // The folder store cannot write once its root is a file.
    let objects = app.data_path().join("objects");
    std::fs::remove_dir_all(&objects).unwrap();
    std::fs::write(&objects, b"not a folder").unwrap();
    let (status, body) = poll_until(|| async {
        let (status, body) = get(&app, "/ready").await;
        if status == 503 {
            Ok((status, body))
        } else {
            Err(format!("/ready still {status} {body}"))
        }
    })
    .await;
    assert_eq!(status, 503);
    assert_eq!(body, r#"{"ready":false}"#);
    let (_, detail) = admin(&app, "/ready").await;
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["storage"]["ok"], false, "{detail}");
    std::fs::remove_file(&objects).unwrap();
    std::fs::create_dir(&objects).unwrap();
    app.stop().await;
}

#[tokio::test]
async fn the_storage_probe_is_cached_for_a_few_seconds() {
    let app = TestApp::spawn().await;
    let (status, _) = admin(&app, "/ready").await;
    assert_eq!(status, 200);
    // Storage breaks right after a probe: the next few seconds still report
    // the cached answer, so a flood of /ready calls writes no objects.
    let objects = app.data_path().join("objects");
    std::fs::remove_dir_all(&objects).unwrap();
    std::fs::write(&objects, b"not a folder").unwrap();
    let started = std::time::Instant::now();
    for _ in 0..20 {
        let (status, body) = admin(&app, "/ready").await;
        if started.elapsed() < std::time::Duration::from_secs(4) {
            assert_eq!(status, 200, "within the cache period: {body}");
        }
    }
    let (status, body) = poll_until(|| async {
        let (status, body) = admin(&app, "/ready").await;
        if status == 503 {
            Ok((status, body))
        } else {
            Err("the broken store still reads as writable".to_owned())
        }
    })
    .await;
    assert_eq!(status, 503);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(4),
        "the probe ran again after {:?}: {body}",
        started.elapsed()
    );
    std::fs::remove_file(&objects).unwrap();
    std::fs::create_dir(&objects).unwrap();
    app.stop().await;
}

#[tokio::test]
async fn metrics_move_to_the_admin_listener_when_it_is_on() {
    let app = TestApp::spawn().await;
    let (status, _) = get(&app, "/metrics").await;
    assert_eq!(status, 404, "no metrics on the public port");
    let (status, body) = admin(&app, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("auscult_sessions_active"));
    app.stop().await;
    let app = TestApp::spawn_env(&[("AUSCULT_ADMIN_LISTEN", "")]).await;
    assert!(app.admin.is_none());
    let (status, body) = get(&app, "/metrics").await;
    assert_eq!(
        status, 200,
        "without an admin listener, metrics stay public"
    );
    assert!(body.contains("auscult_sessions_active"));
    app.stop().await;
}

#[tokio::test]
async fn admin_ready_is_200_with_all_migrations_applied_and_none_pending() {
    let app = TestApp::spawn().await;
    let (status, body) = admin(&app, "/ready").await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["ready"], true);
    assert_eq!(body["migrations"]["pending"], 0, "{body}");
    assert!(
        body["migrations"]["applied"].as_u64().unwrap_or(0) >= 1,
        "{body}"
    );
    assert_eq!(body["database"]["ok"], true);
    assert_eq!(body["storage"]["ok"], true);
    assert_eq!(body["engine"]["default"], "scripted");
    app.stop().await;
}

#[tokio::test]
async fn metrics_expose_active_sessions_on_a_fresh_server() {
    let app = TestApp::spawn().await;
    let (status, body) = admin(&app, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("auscult_sessions_active"),
        "no auscult_sessions_active in:\n{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_a_live_session() {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    ws.start(16_000, Enc::S16, 1).await;
    let (_, body) = admin(&app, "/metrics").await;
    let line = body
        .lines()
        .find(|l| l.starts_with("auscult_sessions_active"))
        .unwrap_or_else(|| panic!("no auscult_sessions_active in:\n{body}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value >= 1.0, "{line}");
    ws.stop_and_collect().await;
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_path_is_a_json_404() {
    let app = TestApp::spawn().await;
    let (status, body) = get(&app, "/nope").await;
    assert_eq!(status, 404);
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn the_server_pings_an_open_connection() {
    let app = TestApp::spawn_env(&[("AUSCULT_PING_INTERVAL_SECS", "1")]).await;
    let mut ws = app.connect_ws().await;
    ws.start(16_000, Enc::S16, 1).await;
    ws.wait_ping().await;
    // The client's automatic pong keeps the session alive.
    let audio = tone(Enc::S16, 16_000, 1, 0.2);
    ws.send_audio(&audio, 3200).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.close_code, Some(1000));
    app.stop().await;
}
