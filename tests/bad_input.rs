//! Bad client input is answered with a stable error code; the non-fatal ones
//! never end a running session, and everything valid is still stored.

mod common;

use auscult::protocol::{CloseReason, ErrorCode, ServerMsg};
use common::*;

/// Starts a 16 kHz s16le mono session and sends its first 0.5 s of audio.
async fn running_session(app: &TestApp) -> (WsClient, String, Vec<u8>) {
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 1.0);
    ws.send_audio(&audio[..16_000], 3200).await;
    (ws, ready.session_id, audio)
}

/// Sends the second half, stops, and checks that all of the valid audio was stored.
async fn finish_and_check(app: &TestApp, mut ws: WsClient, id: &str, audio: &[u8]) {
    ws.send_audio(&audio[16_000..], 3200).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    assert_eq!(end.close_code, Some(1000));
    let stored = app.stored("local", id).await;
    stored.assert_audio(audio, Enc::S16, 16_000, 1);
    stored.assert_status("stored", "client_stop");
}

/// Asserts the error is non-fatal and the connection is still open.
fn assert_non_fatal(e: &auscult::protocol::ErrorMsg) {
    assert!(!e.fatal, "{e:?} should not be fatal");
    assert!(!e.message.is_empty());
}

#[tokio::test]
async fn malformed_json_mid_session_is_bad_message_and_the_session_goes_on() {
    let app = TestApp::spawn().await;
    let (mut ws, id, audio) = running_session(&app).await;
    ws.send_text("{not json").await;
    assert_non_fatal(&ws.expect_error(ErrorCode::BadMessage).await);
    finish_and_check(&app, ws, &id, &audio).await;
    app.stop().await;
}

#[tokio::test]
async fn unknown_message_type_mid_session_is_bad_message() {
    let app = TestApp::spawn().await;
    let (mut ws, id, audio) = running_session(&app).await;
    ws.send_text(r#"{"type":"pause"}"#).await;
    assert_non_fatal(&ws.expect_error(ErrorCode::BadMessage).await);
    finish_and_check(&app, ws, &id, &audio).await;
    app.stop().await;
}

#[tokio::test]
async fn malformed_json_before_start_is_bad_message_and_start_still_works() {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    ws.send_text("hello").await;
    assert_non_fatal(&ws.expect_error(ErrorCode::BadMessage).await);
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 0.5);
    ws.send_audio(&audio, 3200).await;
    ws.stop_and_collect().await;
    app.stored("local", &ready.session_id)
        .await
        .assert_audio(&audio, Enc::S16, 16_000, 1);
    app.stop().await;
}

#[tokio::test]
async fn audio_before_start_is_not_started_and_is_not_stored() {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    ws.send_binary(&tone(Enc::S16, 16_000, 1, 0.1)).await;
    assert_non_fatal(&ws.expect_error(ErrorCode::NotStarted).await);
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 0.5);
    ws.send_audio(&audio, 3200).await;
    ws.stop_and_collect().await;
    app.stored("local", &ready.session_id)
        .await
        .assert_audio(&audio, Enc::S16, 16_000, 1);
    app.stop().await;
}

#[tokio::test]
async fn stop_before_start_is_not_started() {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    ws.stop().await;
    assert_non_fatal(&ws.expect_error(ErrorCode::NotStarted).await);
    ws.start(16_000, Enc::S16, 1).await;
    ws.stop_and_collect().await;
    app.stop().await;
}

#[tokio::test]
async fn a_second_start_is_already_started_and_the_session_goes_on() {
    let app = TestApp::spawn().await;
    let (mut ws, id, audio) = running_session(&app).await;
    ws.send_json(&start_json(8_000, "pcm_f32le", 2)).await;
    assert_non_fatal(&ws.expect_error(ErrorCode::AlreadyStarted).await);
    finish_and_check(&app, ws, &id, &audio).await;
    app.stop().await;
}

#[tokio::test]
async fn an_odd_sized_frame_is_bad_frame_and_is_not_stored() {
    let app = TestApp::spawn().await;
    let (mut ws, id, audio) = running_session(&app).await;
    ws.send_binary(&[1, 2, 3]).await;
    assert_non_fatal(&ws.expect_error(ErrorCode::BadFrame).await);
    finish_and_check(&app, ws, &id, &audio).await;
    app.stop().await;
}

#[tokio::test]
async fn an_empty_frame_is_bad_frame() {
    let app = TestApp::spawn().await;
    let (mut ws, id, audio) = running_session(&app).await;
    ws.send_binary(&[]).await;
    assert_non_fatal(&ws.expect_error(ErrorCode::BadFrame).await);
    finish_and_check(&app, ws, &id, &audio).await;
    app.stop().await;
}

#[tokio::test]
async fn half_a_stereo_frame_is_bad_frame() {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::F32, 2).await;
    let audio = tone(Enc::F32, 16_000, 2, 0.5);
    ws.send_audio(&audio[..32_000], 6400).await;
    // 4 bytes is one f32 sample, but a stereo frame is 8.
    ws.send_binary(&[0, 0, 0, 0]).await;
    assert_non_fatal(&ws.expect_error(ErrorCode::BadFrame).await);
    ws.send_audio(&audio[32_000..], 6400).await;
    ws.stop_and_collect().await;
    app.stored("local", &ready.session_id)
        .await
        .assert_audio(&audio, Enc::F32, 16_000, 2);
    app.stop().await;
}

/// Sends a bad `start`, expects a fatal `code` and close 4400, and no session.
async fn assert_start_refused(start: serde_json::Value, code: ErrorCode) {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    ws.send_json(&start).await;
    let e = ws.expect_error(code).await;
    assert!(e.fatal, "{e:?}");
    let end = ws.collect_until_close().await;
    assert_eq!(end.close_code, Some(4400));
    assert!(
        !ws.log.iter().any(|m| matches!(m, ServerMsg::Ready(_))),
        "no session: {:?}",
        ws.log
    );
    assert!(stored_session_ids(app.data_path(), "local").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_encoding_is_refused_with_4400() {
    assert_start_refused(
        start_json(16_000, "opus", 1),
        ErrorCode::UnsupportedEncoding,
    )
    .await;
}

#[tokio::test]
async fn a_sample_rate_below_8000_is_refused_with_4400() {
    assert_start_refused(
        start_json(7_999, "pcm_s16le", 1),
        ErrorCode::UnsupportedSampleRate,
    )
    .await;
}

#[tokio::test]
async fn a_sample_rate_above_48000_is_refused_with_4400() {
    assert_start_refused(
        start_json(48_001, "pcm_s16le", 1),
        ErrorCode::UnsupportedSampleRate,
    )
    .await;
}

#[tokio::test]
async fn three_channels_are_refused_with_4400() {
    assert_start_refused(
        start_json(16_000, "pcm_s16le", 3),
        ErrorCode::UnsupportedChannels,
    )
    .await;
}

#[tokio::test]
async fn an_unknown_engine_is_refused_with_4400() {
    let mut start = start_json(16_000, "pcm_s16le", 1);
    start["engine"] = "no-such-engine".into();
    assert_start_refused(start, ErrorCode::UnknownEngine).await;
}

#[tokio::test]
async fn resuming_an_unknown_session_is_refused_with_4400() {
    let mut start = start_json(16_000, "pcm_s16le", 1);
    start["resume"] = serde_json::json!({"session_id": "0193-nope", "offset_bytes": 0});
    assert_start_refused(start, ErrorCode::UnknownSession).await;
}

#[tokio::test]
async fn a_refused_start_does_not_disturb_a_running_session() {
    let app = TestApp::spawn().await;
    let (ws, id, audio) = running_session(&app).await;
    let mut other = app.connect_ws().await;
    other.send_json(&start_json(16_000, "opus", 1)).await;
    other.expect_error(ErrorCode::UnsupportedEncoding).await;
    assert_eq!(other.collect_until_close().await.close_code, Some(4400));
    finish_and_check(&app, ws, &id, &audio).await;
    app.stop().await;
}

#[tokio::test]
async fn every_bad_input_in_a_row_leaves_the_session_storing_all_valid_audio() {
    let app = TestApp::spawn().await;
    let (mut ws, id, audio) = running_session(&app).await;
    ws.send_text("[").await;
    ws.send_binary(&[7]).await;
    ws.send_binary(&[]).await;
    ws.send_json(&start_json(16_000, "pcm_s16le", 1)).await;
    ws.expect_error(ErrorCode::BadMessage).await;
    ws.expect_error(ErrorCode::BadFrame).await;
    ws.expect_error(ErrorCode::BadFrame).await;
    ws.expect_error(ErrorCode::AlreadyStarted).await;
    finish_and_check(&app, ws, &id, &audio).await;
    app.stop().await;
}
