//! Resume: a client that loses its connection reconnects within the idle
//! timeout and continues from the server's byte count; the stored audio has
//! no gap and no duplicate.

mod common;

use auscult::protocol::{CloseReason, ErrorCode};
use common::*;

const RATE: u32 = 16_000;

#[tokio::test]
async fn resume_after_an_abrupt_drop_stores_the_audio_without_gap_or_duplicate() {
    let app = TestApp::spawn().await;
    let audio = tone(Enc::S16, RATE, 1, 2.0);
    let cut = 38_400; // 1.2 s
    let mut ws = app.connect_ws().await;
    let ready = ws.start(RATE, Enc::S16, 1).await;
    ws.send_audio(&audio[..cut], 3200).await;
    ws.wait_durable(cut as u64 / 2).await;
    let acked = ws.last_durable();
    ws.drop_abruptly();

    let mut again = app.connect_ws().await;
    let resumed = again
        .resume(RATE, Enc::S16, 1, &ready.session_id, acked)
        .await;
    assert_eq!(resumed.session_id, ready.session_id);
    let from = resumed.resume_from_bytes.expect("resume_from_bytes");
    assert!(
        acked <= from && from <= cut as u64,
        "resume_from_bytes {from} outside acked {acked}..=sent {cut}"
    );
    again.send_audio(&audio[from as usize..], 3200).await;
    let end = again.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    assert_eq!(end.stored().session_id, ready.session_id);
    let stored = app.stored("local", &ready.session_id).await;
    stored.assert_audio(&audio, Enc::S16, RATE, 1);
    stored.assert_status("stored", "client_stop");
    app.stop().await;
}

#[tokio::test]
async fn a_session_can_be_resumed_more_than_once() {
    let app = TestApp::spawn().await;
    let audio = tone(Enc::F32, 48_000, 2, 1.5);
    let third = audio.len() / 3 / 8 * 8;
    let mut ws = app.connect_ws().await;
    let id = ws.start(48_000, Enc::F32, 2).await.session_id;
    let mut sent = 0;
    for _ in 0..2 {
        ws.send_audio(&audio[sent..sent + third], 9600).await;
        ws.wait_durable((sent + third) as u64).await;
        ws.drop_abruptly();
        ws = app.connect_ws().await;
        let ready = ws
            .resume(48_000, Enc::F32, 2, &id, (sent + third) as u64)
            .await;
        sent = ready.resume_from_bytes.unwrap() as usize;
    }
    ws.send_audio(&audio[sent..], 9600).await;
    ws.stop_and_collect().await;
    app.stored("local", &id)
        .await
        .assert_audio(&audio, Enc::F32, 48_000, 2);
    app.stop().await;
}

#[tokio::test]
async fn resume_with_an_offset_behind_the_server_is_answered_with_the_servers_byte_count() {
    let app = TestApp::spawn().await;
    let audio = tone(Enc::S16, RATE, 1, 1.0);
    let mut ws = app.connect_ws().await;
    let id = ws.start(RATE, Enc::S16, 1).await.session_id;
    ws.send_audio(&audio[..20_000], 4000).await;
    ws.wait_durable(20_000).await;
    ws.drop_abruptly();

    let mut again = app.connect_ws().await;
    let ready = again.resume(RATE, Enc::S16, 1, &id, 0).await;
    assert_eq!(ready.resume_from_bytes, Some(20_000));
    again.send_audio(&audio[20_000..], 4000).await;
    again.stop_and_collect().await;
    app.stored("local", &id)
        .await
        .assert_audio(&audio, Enc::S16, RATE, 1);
    app.stop().await;
}

#[tokio::test]
async fn resume_takes_the_session_over_from_a_connection_that_is_still_open() {
    let app = TestApp::spawn().await;
    let audio = tone(Enc::S16, RATE, 1, 1.0);
    let mut old = app.connect_ws().await;
    let id = old.start(RATE, Enc::S16, 1).await.session_id;
    old.send_audio(&audio[..16_000], 3200).await;
    old.wait_durable(16_000).await;

    let mut new = app.connect_ws().await;
    let ready = new.resume(RATE, Enc::S16, 1, &id, 16_000).await;
    assert_eq!(ready.resume_from_bytes, Some(16_000));
    let old_end = old.collect_until_close().await;
    assert_eq!(
        old_end.close_code,
        Some(1000),
        "the old connection is closed"
    );
    new.send_audio(&audio[16_000..], 3200).await;
    let end = new.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    app.stored("local", &id)
        .await
        .assert_audio(&audio, Enc::S16, RATE, 1);
    app.stop().await;
}

#[tokio::test]
async fn resume_with_a_different_format_is_refused_and_the_session_survives() {
    let app = TestApp::spawn().await;
    let audio = tone(Enc::S16, RATE, 1, 1.0);
    let mut ws = app.connect_ws().await;
    let id = ws.start(RATE, Enc::S16, 1).await.session_id;
    ws.send_audio(&audio[..16_000], 3200).await;
    ws.wait_durable(16_000).await;
    ws.drop_abruptly();

    let mut wrong = app.connect_ws().await;
    wrong.send_resume(8_000, Enc::S16, 1, &id, 16_000).await;
    let e = wrong.expect_error(ErrorCode::BadStart).await;
    assert!(e.fatal);
    assert_eq!(wrong.collect_until_close().await.close_code, Some(4400));

    let mut right = app.connect_ws().await;
    let ready = right.resume(RATE, Enc::S16, 1, &id, 16_000).await;
    let from = ready.resume_from_bytes.unwrap() as usize;
    right.send_audio(&audio[from..], 3200).await;
    right.stop_and_collect().await;
    app.stored("local", &id)
        .await
        .assert_audio(&audio, Enc::S16, RATE, 1);
    app.stop().await;
}

#[tokio::test]
async fn resume_of_a_session_that_was_already_stored_is_unknown_session() {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    let id = ws.start(RATE, Enc::S16, 1).await.session_id;
    ws.send_audio(&tone(Enc::S16, RATE, 1, 0.2), 3200).await;
    ws.stop_and_collect().await;

    let mut again = app.connect_ws().await;
    again.send_resume(RATE, Enc::S16, 1, &id, 0).await;
    let e = again.expect_error(ErrorCode::UnknownSession).await;
    assert!(e.fatal);
    assert_eq!(again.collect_until_close().await.close_code, Some(4400));
    app.stop().await;
}

#[tokio::test]
async fn transcripts_continue_on_the_resumed_connection() {
    let app = TestApp::spawn().await;
    let audio = tone(Enc::S16, RATE, 1, 2.0);
    let mut ws = app.connect_ws().await;
    let id = ws.start(RATE, Enc::S16, 1).await.session_id;
    ws.send_audio(&audio[..16_000], 3200).await;
    ws.wait_durable(16_000).await;
    ws.drop_abruptly();

    let mut again = app.connect_ws().await;
    let from = again
        .resume(RATE, Enc::S16, 1, &id, 16_000)
        .await
        .resume_from_bytes
        .unwrap() as usize;
    again.send_audio(&audio[from..], 3200).await;
    let end = again.stop_and_collect().await;
    let after: Vec<String> = finals(&end.msgs)
        .iter()
        .map(|t| t.result_id.clone())
        .collect();
    assert!(
        after.contains(&"seg-1".to_owned()),
        "finals after resume: {after:?}"
    );
    let stored = app.stored("local", &id).await;
    let ids: Vec<String> = stored
        .transcript_segments()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["seg-0", "seg-1"], "one final per segment, in order");
    app.stop().await;
}

#[tokio::test]
async fn a_dropped_session_can_be_resumed_while_the_server_is_at_capacity() {
    // The detached session still holds its slot; resuming it must not need a second one.
    let app = TestApp::spawn_env(&[("AUSCULT_MAX_SESSIONS", "1")]).await;
    let audio = tone(Enc::S16, RATE, 1, 1.0);
    let mut ws = app.connect_ws().await;
    let id = ws.start(RATE, Enc::S16, 1).await.session_id;
    ws.send_audio(&audio[..16_000], 3200).await;
    ws.wait_durable(16_000).await;
    ws.drop_abruptly();

    let mut again = WsClient::connect(&app.ws_url(), &[])
        .await
        .unwrap_or_else(|e| panic!("the owner's resume upgrade was refused: {e:?}"));
    let from = again
        .resume(RATE, Enc::S16, 1, &id, 16_000)
        .await
        .resume_from_bytes
        .unwrap() as usize;
    again.send_audio(&audio[from..], 3200).await;
    again.stop_and_collect().await;
    app.stored("local", &id)
        .await
        .assert_audio(&audio, Enc::S16, RATE, 1);
    app.stop().await;
}
