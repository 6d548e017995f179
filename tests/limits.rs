//! Limits end or refuse sessions cleanly: idle timeout, max duration,
//! capacity, message size, engine backlog, engine failure. Whatever audio was
//! accepted before the limit is stored.

mod common;

use std::time::Duration;

use auscult::protocol::{CloseReason, ErrorCode, ServerMsg};
use common::*;

#[tokio::test]
async fn a_connected_but_silent_session_is_closed_and_stored_at_the_idle_timeout() {
    let app = TestApp::spawn_env(&[("AUSCULT_IDLE_TIMEOUT_SECS", "1")]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 0.5);
    ws.send_audio(&audio, 3200).await;
    let end = ws.collect_until_close().await;
    assert_eq!(end.closed_reason(), CloseReason::IdleTimeout);
    assert_eq!(end.close_code, Some(1000));
    let stored = app.stored("local", &ready.session_id).await;
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    stored.assert_status("stored", "idle_timeout");
    app.stop().await;
}

#[tokio::test]
async fn a_dropped_session_is_stored_with_reason_idle_timeout_once_the_timeout_passes() {
    let app = TestApp::spawn_env(&[("AUSCULT_IDLE_TIMEOUT_SECS", "1")]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::F32, 1).await;
    let audio = tone(Enc::F32, 16_000, 1, 0.5);
    ws.send_audio(&audio, 6400).await;
    ws.wait_durable(audio.len() as u64).await;
    ws.drop_abruptly();
    wait_for_status(app.data_path(), &ready.session_id, "stored").await;
    let stored = app.stored("local", &ready.session_id).await;
    stored.assert_audio(&audio, Enc::F32, 16_000, 1);
    stored.assert_status("stored", "idle_timeout");
    app.stop().await;
}

#[tokio::test]
async fn a_connection_that_never_starts_is_closed_at_the_start_timeout() {
    let app = TestApp::spawn_env(&[("AUSCULT_START_TIMEOUT_SECS", "1")]).await;
    let mut ws = app.connect_ws().await;
    let opened = std::time::Instant::now();
    // Talking without starting does not buy time: the deadline runs from the connection.
    for _ in 0..3 {
        assert!(ws.try_send_binary(&[0u8; 320]).await);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let e = loop {
        match ws.recv().await {
            ServerMsg::Error(e) if e.code == ErrorCode::NotStarted => continue,
            ServerMsg::Error(e) => break e,
            other => panic!("expected errors only, got {other:?}"),
        }
    };
    assert_eq!(e.code, ErrorCode::StartTimeout);
    assert!(e.fatal);
    assert!(
        opened.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        opened.elapsed()
    );
    let end = ws.collect_until_close().await;
    assert_eq!(end.close_code, Some(1008));
    assert!(stored_session_ids(app.data_path(), "local").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_silent_session_is_closed_and_stored_at_max_duration() {
    let app = TestApp::spawn_env(&[("AUSCULT_MAX_DURATION_SECS", "2")]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(8_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 8_000, 1, 1.0);
    ws.send_audio(&audio, 1600).await;
    let end = ws.collect_until_close().await;
    assert_eq!(end.closed_reason(), CloseReason::MaxDuration);
    assert_eq!(end.close_code, Some(1000));
    let stored = app.stored("local", &ready.session_id).await;
    stored.assert_audio(&audio, Enc::S16, 8_000, 1);
    stored.assert_status("stored", "max_duration");
    app.stop().await;
}

#[tokio::test]
async fn a_session_streaming_past_max_duration_is_cut_there_and_what_it_accepted_is_stored() {
    let app = TestApp::spawn_env(&[("AUSCULT_MAX_DURATION_SECS", "2")]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(8_000, Enc::S16, 1).await;
    // Far more than two seconds, paced so the limit hits mid-stream.
    let audio = tone(Enc::S16, 8_000, 1, 30.0);
    for frame in audio.chunks(1600) {
        if ws.ended || ws.log.iter().any(|m| matches!(m, ServerMsg::Closed(_))) {
            break;
        }
        if !ws.try_send_binary(frame).await {
            break;
        }
        ws.drain_for(Duration::from_millis(100)).await;
    }
    let end = ws.collect_until_close().await;
    assert!(
        ws.log
            .iter()
            .any(|m| matches!(m, ServerMsg::Closed(c) if c.reason == CloseReason::MaxDuration)),
        "closed max_duration: {:?}",
        end.msgs
    );
    let stored = app.stored("local", &ready.session_id).await;
    assert_stored_prefix(&stored, &audio, ws.last_durable());
    assert!(
        stored.wav.data.len() < audio.len(),
        "the session was cut short"
    );
    stored.assert_status("stored", "max_duration");
    app.stop().await;
}

#[tokio::test]
async fn an_upgrade_at_capacity_is_refused_with_http_503() {
    let app = TestApp::spawn_env(&[
        ("AUSCULT_MAX_SESSIONS", "1"),
        (
            "AUSCULT_API_TOKENS",
            "alice:alice-token-0001,bob:bob-token-00002",
        ),
    ])
    .await;
    let mut first = app.connect_ws_as("alice-token-0001").await;
    first.start(16_000, Enc::S16, 1).await;
    let refused = WsClient::connect(
        &app.ws_url(),
        &[("authorization", "Bearer bob-token-00002")],
    )
    .await;
    let err = refused.err().expect("second upgrade is refused");
    assert_eq!(refused_status(&err), Some(503), "{err:?}");
    first.stop_and_collect().await;
    app.stop().await;
}

#[tokio::test]
async fn a_new_session_from_the_owner_of_the_only_slot_is_refused_with_1013() {
    // The owner of a live session passes the upgrade (it may be a resume), but a
    // new session still finds no free slot.
    let app = TestApp::spawn_env(&[("AUSCULT_MAX_SESSIONS", "1")]).await;
    let mut first = app.connect_ws().await;
    first.start(16_000, Enc::S16, 1).await;
    let mut second = app.connect_ws().await;
    second.send_json(&start_json(16_000, "pcm_s16le", 1)).await;
    let e = second.expect_error(ErrorCode::ServerAtCapacity).await;
    assert!(e.fatal);
    assert_eq!(second.collect_until_close().await.close_code, Some(1013));
    first.stop_and_collect().await;
    app.stop().await;
}

#[tokio::test]
async fn capacity_is_freed_when_a_session_ends() {
    let app = TestApp::spawn_env(&[("AUSCULT_MAX_SESSIONS", "1")]).await;
    let mut first = app.connect_ws().await;
    first.start(16_000, Enc::S16, 1).await;
    first.stop_and_collect().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut second = loop {
        match WsClient::connect(&app.ws_url(), &[]).await {
            Ok(ws) => break ws,
            Err(e) => {
                assert_eq!(refused_status(&e), Some(503), "{e:?}");
                assert!(tokio::time::Instant::now() < deadline, "slot never freed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    second.start(16_000, Enc::S16, 1).await;
    second.stop_and_collect().await;
    app.stop().await;
}

#[tokio::test]
async fn a_start_racing_past_the_capacity_check_gets_server_at_capacity_and_1013() {
    let app = TestApp::spawn_env(&[("AUSCULT_MAX_SESSIONS", "1")]).await;
    // Both upgrades pass while no session is admitted yet.
    let mut first = app.connect_ws().await;
    let mut second = app.connect_ws().await;
    first.start(16_000, Enc::S16, 1).await;
    second.send_json(&start_json(16_000, "pcm_s16le", 1)).await;
    let e = second.expect_error(ErrorCode::ServerAtCapacity).await;
    assert!(e.fatal);
    assert_eq!(second.collect_until_close().await.close_code, Some(1013));
    first.stop_and_collect().await;
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009_and_the_audio_before_it_is_stored() {
    let app = TestApp::spawn_env(&[
        ("AUSCULT_MAX_MESSAGE_BYTES", "4096"),
        ("AUSCULT_IDLE_TIMEOUT_SECS", "1"),
    ])
    .await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 0.5);
    ws.send_audio(&audio, 4000).await;
    ws.wait_durable(audio.len() as u64).await;
    ws.send_binary(&tone(Enc::S16, 16_000, 1, 0.5)).await;
    let e = ws.expect_error(ErrorCode::MessageTooBig).await;
    assert!(e.fatal);
    assert_eq!(ws.collect_until_close().await.close_code, Some(1009));
    // Detached, then stored when nobody resumes it.
    wait_for_status(app.data_path(), &ready.session_id, "stored").await;
    let stored = app.stored("local", &ready.session_id).await;
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_session_cut_by_an_oversized_message_can_be_resumed_and_finished() {
    let app = TestApp::spawn_env(&[("AUSCULT_MAX_MESSAGE_BYTES", "4096")]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 1.0);
    ws.send_audio(&audio[..16_000], 4000).await;
    ws.wait_durable(16_000).await;
    ws.send_text(&"x".repeat(5000)).await;
    ws.expect_error(ErrorCode::MessageTooBig).await;
    assert_eq!(ws.collect_until_close().await.close_code, Some(1009));

    let mut again = app.connect_ws().await;
    let resumed = again
        .resume(16_000, Enc::S16, 1, &ready.session_id, 16_000)
        .await;
    assert_eq!(resumed.session_id, ready.session_id);
    let from = resumed.resume_from_bytes.expect("resume_from_bytes") as usize;
    assert_eq!(from, 16_000);
    again.send_audio(&audio[from..], 4000).await;
    let end = again.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    let stored = app.stored("local", &ready.session_id).await;
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_message_before_start_is_refused_with_1009() {
    let app = TestApp::spawn_env(&[("AUSCULT_MAX_MESSAGE_BYTES", "4096")]).await;
    let mut ws = app.connect_ws().await;
    ws.send_binary(&[0u8; 8192]).await;
    ws.expect_error(ErrorCode::MessageTooBig).await;
    assert_eq!(ws.collect_until_close().await.close_code, Some(1009));
    app.stop().await;
}

#[tokio::test]
async fn a_stalled_engine_ends_the_session_at_the_buffer_limit_and_the_audio_is_stored() {
    let app = TestApp::spawn_with(
        &[
            ("AUSCULT_MAX_BUFFER_BYTES", "65536"),
            ("AUSCULT_SHUTDOWN_GRACE_SECS", "2"),
        ],
        vec![ScriptedEngine::new().stalled().shared()],
    )
    .await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(8_000, Enc::S16, 1).await;
    // 64 chunks fill the engine channel; the backlog passes 64 KiB soon after.
    let audio = tone(Enc::S16, 8_000, 1, 12.0);
    for frame in audio.chunks(1600) {
        if !ws.try_send_binary(frame).await {
            break;
        }
    }
    let e = ws.expect_error(ErrorCode::BufferLimit).await;
    assert!(e.fatal);
    let end = ws.collect_until_close().await;
    assert_eq!(end.closed_reason(), CloseReason::BufferLimit);
    assert_eq!(end.close_code, Some(1011));
    let stored = app.stored("local", &ready.session_id).await;
    assert_stored_prefix(&stored, &audio, ws.last_durable());
    stored.assert_status("stored", "buffer_limit");
    app.stop().await;
}

#[tokio::test]
async fn a_failing_engine_ends_the_session_with_engine_failed_and_the_audio_is_stored() {
    let app = TestApp::spawn_with(
        &[],
        vec![ScriptedEngine::new().failing_after_ms(500).shared()],
    )
    .await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 1.0);
    for frame in audio.chunks(3200) {
        if !ws.try_send_binary(frame).await {
            break;
        }
    }
    let e = ws.expect_error(ErrorCode::EngineFailed).await;
    assert!(e.fatal);
    let end = ws.collect_until_close().await;
    assert_eq!(end.closed_reason(), CloseReason::EngineFailed);
    assert_eq!(end.close_code, Some(1011));
    let stored = app.stored("local", &ready.session_id).await;
    assert_stored_prefix(&stored, &audio, ws.last_durable());
    stored.assert_status("stored", "engine_failed");
    app.stop().await;
}
