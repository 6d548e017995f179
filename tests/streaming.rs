//! A session from start to stored: the audio is stored bit-exact in every
//! tested format, acks track it, and transcripts follow the partial→final rules.

mod common;

use std::collections::{HashMap, HashSet};

use auscult::protocol::{CloseReason, ServerMsg};
use common::*;

/// Streams 1.5 s of audio in 100 ms frames, stops, and checks what was stored.
async fn assert_stored_bit_exact(rate: u32, enc: Enc, channels: u16) {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(rate, enc, channels).await;
    assert_eq!(ready.input_rate, rate);
    let audio = tone(enc, rate, channels, 1.5);
    ws.send_audio(&audio, bytes_for_ms(enc, rate, channels, 100))
        .await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    assert_eq!(end.close_code, Some(1000));
    assert!(end.errors().is_empty(), "errors: {:?}", end.errors());
    let stored = app.stored("local", &ready.session_id).await;
    stored.assert_audio(&audio, enc, rate, channels);
    stored.assert_status("stored", "client_stop");
    app.stop().await;
}

#[tokio::test]
async fn s16le_at_8k_is_stored_bit_exact() {
    assert_stored_bit_exact(8_000, Enc::S16, 1).await;
}

#[tokio::test]
async fn s16le_at_16k_is_stored_bit_exact() {
    assert_stored_bit_exact(16_000, Enc::S16, 1).await;
}

#[tokio::test]
async fn s16le_at_48k_is_stored_bit_exact() {
    assert_stored_bit_exact(48_000, Enc::S16, 1).await;
}

#[tokio::test]
async fn f32le_at_8k_is_stored_bit_exact() {
    assert_stored_bit_exact(8_000, Enc::F32, 1).await;
}

#[tokio::test]
async fn f32le_at_16k_is_stored_bit_exact() {
    assert_stored_bit_exact(16_000, Enc::F32, 1).await;
}

#[tokio::test]
async fn f32le_at_48k_is_stored_bit_exact() {
    assert_stored_bit_exact(48_000, Enc::F32, 1).await;
}

#[tokio::test]
async fn stereo_s16le_at_16k_is_stored_bit_exact_with_both_channels() {
    assert_stored_bit_exact(16_000, Enc::S16, 2).await;
}

#[tokio::test]
async fn stereo_f32le_at_48k_is_stored_bit_exact_with_both_channels() {
    assert_stored_bit_exact(48_000, Enc::F32, 2).await;
}

#[tokio::test]
async fn an_uncommon_rate_inside_the_range_is_accepted_and_stored() {
    assert_stored_bit_exact(22_050, Enc::S16, 1).await;
}

#[tokio::test]
async fn ready_names_the_engine_rates_and_limits() {
    let app = TestApp::spawn_env(&[
        ("AUSCULT_IDLE_TIMEOUT_SECS", "7"),
        ("AUSCULT_MAX_DURATION_SECS", "9"),
        ("AUSCULT_MAX_MESSAGE_BYTES", "4096"),
    ])
    .await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(48_000, Enc::S16, 1).await;
    assert_eq!(ready.engine, "scripted");
    assert_eq!(ready.input_rate, 48_000);
    assert_eq!(ready.engine_rate, 16_000);
    assert_eq!(ready.limits.idle_timeout_s, 7);
    assert_eq!(ready.limits.max_duration_s, 9);
    assert_eq!(ready.limits.max_message_bytes, 4096);
    assert_eq!(ready.resume_from_bytes, None);
    ws.stop_and_collect().await;
    app.stop().await;
}

#[tokio::test]
async fn acks_are_monotonic_and_durable_bytes_reach_the_total_sent() {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 2.0);
    let total = audio.len() as u64;
    ws.send_audio(&audio, 3200).await;
    let last = ws.wait_durable(total).await;
    assert_eq!(last.durable_bytes, total, "never more than was sent");
    ws.stop_and_collect().await;
    let acks = acks(&ws.log);
    assert!(!acks.is_empty());
    for pair in acks.windows(2) {
        assert!(
            pair[1].durable_bytes >= pair[0].durable_bytes
                && pair[1].received_bytes >= pair[0].received_bytes,
            "acks went backwards: {pair:?}"
        );
    }
    for ack in &acks {
        assert!(ack.durable_bytes <= ack.received_bytes && ack.received_bytes <= total);
    }
    app.stop().await;
}

#[tokio::test]
async fn transcripts_end_each_result_with_one_final_and_the_stored_transcript_is_the_finals() {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    // 2.6 s: two full segments and a remainder that only the stop flushes.
    let audio = tone(Enc::S16, 16_000, 1, 2.6);
    ws.send_audio(&audio, 3200).await;
    let first = ws.expect_final().await;
    assert_eq!(first.result_id, "seg-0");
    let end = ws.stop_and_collect().await;

    let mut finalized: HashSet<String> = HashSet::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in transcripts(&ws.log) {
        assert!(
            !finalized.contains(&t.result_id),
            "event for {} after its final: {t:?}",
            t.result_id
        );
        assert!(t.start <= t.end, "{t:?}");
        *seen.entry(t.result_id.clone()).or_default() += 1;
        if !t.is_partial {
            finalized.insert(t.result_id.clone());
        }
    }
    let unfinished: Vec<_> = seen.keys().filter(|id| !finalized.contains(*id)).collect();
    assert!(
        unfinished.is_empty(),
        "results without a final: {unfinished:?}"
    );
    assert!(
        transcripts(&ws.log).iter().any(|t| t.is_partial),
        "partials seen"
    );

    let received: Vec<(String, String)> = finals(&ws.log)
        .iter()
        .map(|t| (t.result_id.clone(), t.text.clone()))
        .collect();
    assert_eq!(received.len(), 3, "two segments and the flushed remainder");
    let stored_pos = end.position(|m| matches!(m, ServerMsg::Stored(_))).unwrap();
    let last_final = end
        .position(
            |m| matches!(m, ServerMsg::Transcript(t) if !t.is_partial && t.result_id == "seg-2"),
        )
        .expect("the remainder's final arrives after stop");
    assert!(last_final < stored_pos, "finals come before stored");

    let stored = app.stored("local", &ready.session_id).await;
    assert_eq!(stored.transcript_segments(), received);
    let joined: Vec<&str> = received.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(stored.transcript["text"], joined.join(" "));
    let rows: Vec<(String, String)> = stored
        .row
        .segments
        .iter()
        .map(|(_, id, text)| (id.clone(), text.clone()))
        .collect();
    assert_eq!(rows, received, "segments table holds the finals in order");
    app.stop().await;
}

#[tokio::test]
async fn stop_sends_remaining_finals_then_stored_then_closed_then_close_1000() {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(8_000, Enc::S16, 1).await;
    ws.send_audio(&tone(Enc::S16, 8_000, 1, 0.6), 1600).await;
    let end = ws.stop_and_collect().await;
    let kinds: Vec<&str> = end
        .msgs
        .iter()
        .filter(|m| !matches!(m, ServerMsg::Ack(_)))
        .map(|m| match m {
            ServerMsg::Transcript(t) if t.is_partial => "partial",
            ServerMsg::Transcript(_) => "final",
            ServerMsg::Stored(_) => "stored",
            ServerMsg::Closed(_) => "closed",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds.iter().rev().take(2).collect::<Vec<_>>(),
        [&"closed", &"stored"]
    );
    assert!(
        kinds.contains(&"final"),
        "the partial segment is flushed: {kinds:?}"
    );
    let stored = end.stored();
    assert_eq!(stored.session_id, ready.session_id);
    assert_eq!(
        stored.audio,
        format!("users/local/audio/sessions/{}/audio.wav", ready.session_id)
    );
    assert!(app.object_path(&stored.transcript).exists());
    assert!(
        (stored.duration_s - 0.6).abs() < 1e-6,
        "{}",
        stored.duration_s
    );
    assert_eq!(end.close_code, Some(1000));
    app.stop().await;
}

#[tokio::test]
async fn a_session_with_no_audio_is_stored_empty() {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    let stored = app.stored("local", &ready.session_id).await;
    stored.assert_audio(&[], Enc::S16, 16_000, 1);
    app.stop().await;
}

#[tokio::test]
async fn loadtest_engine_reports_a_final_per_second_of_audio() {
    let app = TestApp::spawn().await;
    let mut ws = app.connect_ws().await;
    let mut start = start_json(16_000, "pcm_s16le", 1);
    start["engine"] = "loadtest".into();
    ws.send_json(&start).await;
    let ready = ws.expect_ready().await;
    assert_eq!(ready.engine, "loadtest");
    ws.send_audio(&tone(Enc::S16, 16_000, 1, 2.5), 3200).await;
    ws.stop_and_collect().await;
    let ids: Vec<String> = finals(&ws.log)
        .iter()
        .map(|t| t.result_id.clone())
        .collect();
    assert_eq!(ids, ["r-1", "r-2", "r-3"]);
    app.stop().await;
}

#[tokio::test]
async fn two_sessions_at_once_are_stored_separately() {
    let app = TestApp::spawn().await;
    let mut a = app.connect_ws().await;
    let mut b = app.connect_ws().await;
    let ra = a.start(16_000, Enc::S16, 1).await;
    let rb = b.start(8_000, Enc::F32, 2).await;
    assert_ne!(ra.session_id, rb.session_id);
    let audio_a = tone(Enc::S16, 16_000, 1, 1.0);
    let audio_b = tone(Enc::F32, 8_000, 2, 1.0);
    a.send_audio(&audio_a, 3200).await;
    b.send_audio(&audio_b, 6400).await;
    a.stop_and_collect().await;
    b.stop_and_collect().await;
    app.stored("local", &ra.session_id)
        .await
        .assert_audio(&audio_a, Enc::S16, 16_000, 1);
    app.stored("local", &rb.session_id)
        .await
        .assert_audio(&audio_b, Enc::F32, 8_000, 2);
    app.stop().await;
}
