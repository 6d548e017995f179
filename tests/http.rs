//! The plain HTTP endpoints: liveness, readiness, metrics, and the JSON 404.

mod common;

use common::*;

async fn get(app: &TestApp, path: &str) -> (u16, String) {
    let resp = reqwest::get(app.http_url(path)).await.expect("GET");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

#[tokio::test]
async fn health_is_200() {
    let app = TestApp::spawn().await;
    let (status, _) = get(&app, "/health").await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn ready_is_200_with_all_migrations_applied_and_none_pending() {
    let app = TestApp::spawn().await;
    let (status, body) = get(&app, "/ready").await;
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
    let (status, body) = get(&app, "/metrics").await;
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
    let (_, body) = get(&app, "/metrics").await;
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
