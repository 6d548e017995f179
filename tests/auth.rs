//! Authentication and origin checks happen on the upgrade request: refusals
//! are HTTP 401/403 before any WebSocket exists, and a session belongs to the
//! user whose token opened it.

mod common;

use auscult::protocol::ErrorCode;
use common::*;

const ALICE: &str = "alice-token-0001";
const BOB: &str = "bob-token-00002";

async fn app_with_tokens() -> TestApp {
    let tokens = format!("alice:{ALICE},bob:{BOB}");
    TestApp::spawn_env(&[
        ("AUSCULT_API_TOKENS", tokens.as_str()),
        ("AUSCULT_ALLOWED_ORIGINS", "https://app.example.org"),
    ])
    .await
}

async fn upgrade_status(app: &TestApp, url: &str, headers: &[(&str, &str)]) -> Option<u16> {
    let _ = app;
    match WsClient::connect(url, headers).await {
        Ok(_) => Some(101),
        Err(e) => refused_status(&e),
    }
}

#[tokio::test]
async fn an_upgrade_without_a_token_is_refused_with_401() {
    let app = app_with_tokens().await;
    assert_eq!(upgrade_status(&app, &app.ws_url(), &[]).await, Some(401));
    app.stop().await;
}

#[tokio::test]
async fn an_upgrade_with_a_wrong_token_is_refused_with_401() {
    let app = app_with_tokens().await;
    let headers = [("authorization", "Bearer not-a-real-token")];
    assert_eq!(
        upgrade_status(&app, &app.ws_url(), &headers).await,
        Some(401)
    );
    let url = format!("{}?access_token=not-a-real-token", app.ws_url());
    assert_eq!(upgrade_status(&app, &url, &[]).await, Some(401));
    app.stop().await;
}

#[tokio::test]
async fn an_upgrade_from_a_foreign_origin_is_refused_with_403() {
    let app = app_with_tokens().await;
    let auth = format!("Bearer {ALICE}");
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", "https://evil.example"),
    ];
    assert_eq!(
        upgrade_status(&app, &app.ws_url(), &headers).await,
        Some(403)
    );
    app.stop().await;
}

#[tokio::test]
async fn an_upgrade_from_an_allowed_origin_is_accepted() {
    let app = app_with_tokens().await;
    let auth = format!("Bearer {ALICE}");
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", "https://app.example.org"),
    ];
    let mut ws = WsClient::connect(&app.ws_url(), &headers).await.unwrap();
    ws.start(16_000, Enc::S16, 1).await;
    ws.stop_and_collect().await;
    app.stop().await;
}

#[tokio::test]
async fn the_access_token_query_parameter_authenticates() {
    let app = app_with_tokens().await;
    let url = format!("{}?access_token={ALICE}", app.ws_url());
    let mut ws = WsClient::connect(&url, &[]).await.expect("upgrade");
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 0.3);
    ws.send_audio(&audio, 3200).await;
    ws.stop_and_collect().await;
    let stored = app.stored("alice", &ready.session_id).await;
    assert_eq!(stored.row.user_id, "alice");
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_session_is_stored_under_the_user_whose_bearer_token_opened_it() {
    let app = app_with_tokens().await;
    let mut ws = app.connect_ws_as(BOB).await;
    let ready = ws.start(8_000, Enc::S16, 1).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(
        end.stored().audio,
        format!("users/bob/audio/sessions/{}/audio.wav", ready.session_id)
    );
    let stored = app.stored("bob", &ready.session_id).await;
    assert_eq!(stored.row.user_id, "bob");
    assert_eq!(stored.manifest["user_id"], "bob");
    assert!(stored_session_ids(app.data_path(), "alice").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn alice_cannot_resume_bobs_session() {
    let app = app_with_tokens().await;
    let audio = tone(Enc::S16, 16_000, 1, 1.0);
    let mut bob = app.connect_ws_as(BOB).await;
    let id = bob.start(16_000, Enc::S16, 1).await.session_id;
    bob.send_audio(&audio[..16_000], 3200).await;
    bob.wait_durable(16_000).await;
    bob.drop_abruptly();

    let mut alice = app.connect_ws_as(ALICE).await;
    alice.send_resume(16_000, Enc::S16, 1, &id, 16_000).await;
    let e = alice.expect_error(ErrorCode::UnknownSession).await;
    assert!(e.fatal);
    assert_eq!(alice.collect_until_close().await.close_code, Some(4400));

    // Bob's session is untouched and still his to finish.
    let mut bob = app.connect_ws_as(BOB).await;
    let ready = bob.resume(16_000, Enc::S16, 1, &id, 16_000).await;
    let from = ready.resume_from_bytes.unwrap() as usize;
    bob.send_audio(&audio[from..], 3200).await;
    bob.stop_and_collect().await;
    let stored = app.stored("bob", &id).await;
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    assert!(stored_session_ids(app.data_path(), "alice").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn health_needs_no_token() {
    let app = app_with_tokens().await;
    let resp = reqwest::get(app.http_url("/health")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_refused_upgrade_has_a_json_error_body_with_a_stable_code() {
    let app = app_with_tokens().await;
    let resp = reqwest::Client::new()
        .get(app.http_url("/v1/stream"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_credentials");
    app.stop().await;
}
