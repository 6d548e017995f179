//! In-process shutdown: every session, attached or detached, is stored
//! before the app returns, and clients hear `stored` then `closed`.

mod common;

use auscult::protocol::{CloseReason, ErrorCode, ServerMsg};
use common::*;

#[tokio::test]
async fn shutdown_stores_a_live_session_then_closes_it_with_server_shutdown() {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 0.5);
    ws.send_audio(&audio, 3200).await;
    ws.wait_durable(audio.len() as u64).await;
    let url = app.ws_url();
    let stopping = tokio::spawn(app.stop());
    let end = ws.collect_until_close().await;
    assert_eq!(end.closed_reason(), CloseReason::ServerShutdown);
    let stored_at = end
        .position(|m| matches!(m, ServerMsg::Stored(_)))
        .expect("stored before closed");
    let closed_at = end.position(|m| matches!(m, ServerMsg::Closed(_))).unwrap();
    assert!(stored_at < closed_at);
    assert_eq!(end.close_code, Some(1001), "going away");
    assert!(
        WsClient::connect(&url, &[]).await.is_err(),
        "no new sessions"
    );
    let data = stopping.await.unwrap();
    let stored = StoredSession::read(data.path(), "local", &ready.session_id).await;
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    stored.assert_status("stored", "server_shutdown");
}

#[tokio::test]
async fn shutdown_stores_a_detached_session_with_reason_server_shutdown() {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(8_000, Enc::F32, 1).await;
    let audio = tone(Enc::F32, 8_000, 1, 0.8);
    ws.send_audio(&audio, 3200).await;
    ws.wait_durable(audio.len() as u64).await;
    ws.drop_abruptly();
    let data = app.stop().await;
    let stored = StoredSession::read(data.path(), "local", &ready.session_id).await;
    stored.assert_audio(&audio, Enc::F32, 8_000, 1);
    stored.assert_status("stored", "server_shutdown");
}

#[tokio::test]
async fn shutdown_refuses_a_connection_still_waiting_for_its_start() {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    // Make sure the connection reached the session layer before shutting down.
    ws.send_text("{").await;
    ws.expect_error(ErrorCode::BadMessage).await;
    let stopping = tokio::spawn(app.stop());
    let e = ws.expect_error(ErrorCode::ServerShutdown).await;
    assert!(e.fatal);
    assert_eq!(ws.collect_until_close().await.close_code, Some(1001));
    let data = stopping.await.unwrap();
    assert!(stored_session_ids(data.path(), "local").is_empty());
}

#[tokio::test]
async fn shutdown_with_several_live_sessions_stores_them_all() {
    let app = TestApp::spawn().await;
    let mut clients = Vec::new();
    for (i, rate) in [8_000u32, 16_000, 48_000].into_iter().enumerate() {
        let mut ws = app.connect_ws().await;
        let id = ws.start(rate, Enc::S16, 1).await.session_id;
        let audio = tone(Enc::S16, rate, 1, 0.3 + 0.1 * i as f64);
        ws.send_audio(&audio, bytes_for_ms(Enc::S16, rate, 1, 100))
            .await;
        ws.wait_durable(audio.len() as u64).await;
        clients.push((ws, id, rate, audio));
    }
    let stopping = tokio::spawn(app.stop());
    for (ws, ..) in clients.iter_mut() {
        let end = ws.collect_until_close().await;
        assert_eq!(end.closed_reason(), CloseReason::ServerShutdown);
    }
    let data = stopping.await.unwrap();
    for (_, id, rate, audio) in &clients {
        let stored = StoredSession::read(data.path(), "local", id).await;
        stored.assert_audio(audio, Enc::S16, *rate, 1);
        stored.assert_status("stored", "server_shutdown");
    }
}
