//! The Transcribe engines against a fake Transcribe streaming service: what the
//! service receives (rate, encoding, PCM length), how its cumulative results
//! reach the client and the stored transcript, and how the stream is kept
//! alive and whole through pauses and failures.

mod common;

use std::sync::Arc;
use std::time::Duration;

use auscult::engine::SharedEngine;
use auscult::engine::transcribe::{TranscribeEngine, TranscribeSettings, Variant};
use auscult::protocol::{CloseReason, ErrorCode, ServerMsg};
use common::fake_transcribe::{FakeTranscribe, Plan};
use common::*;

fn settings(fake: &FakeTranscribe) -> TranscribeSettings {
    TranscribeSettings {
        region: Some("us-east-1".into()),
        endpoint: Some(fake.endpoint()),
        credentials: Some(moto::credentials()),
        backoff: Duration::from_millis(50),
        ..TranscribeSettings::default()
    }
}

fn engine(variant: Variant, settings: TranscribeSettings) -> Vec<SharedEngine> {
    vec![Arc::new(TranscribeEngine::new(variant, settings))]
}

/// The fake's toy speech: word `k` is 300 ms of the level `k * 1000`, then
/// 200 ms of silence (see `fake_transcribe`), as s16le at `rate`.
fn speech(rate: u32, words: &[i16]) -> Vec<u8> {
    let per_ms = rate as usize / 1000;
    let mut out = Vec::new();
    for &k in words {
        for _ in 0..300 * per_ms {
            out.extend_from_slice(&(k * 1000).to_le_bytes());
        }
        out.extend(std::iter::repeat_n(0u8, 200 * per_ms * 2));
    }
    out
}

fn final_texts(msgs: &[ServerMsg]) -> Vec<String> {
    finals(msgs).iter().map(|f| f.text.clone()).collect()
}

fn stored_text(stored: &StoredSession) -> String {
    stored.transcript["text"].as_str().unwrap().to_owned()
}

/// Streams `words` at `rate` through a medical session and checks what the
/// fake received and what the client and the store got back.
async fn medical_session_at(rate: u32) {
    let fake = FakeTranscribe::start().await;
    let app = TestApp::spawn_with(&[], engine(Variant::Medical, settings(&fake))).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(rate, Enc::S16, 1).await;
    assert_eq!(ready.engine, "transcribe-medical");
    assert_eq!(ready.engine_rate, 16_000);
    let audio = speech(rate, &[1, 2, 3, 4, 5, 6, 7]);
    ws.send_audio(&audio, bytes_for_ms(Enc::S16, rate, 1, 100))
        .await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    assert!(end.errors().is_empty(), "errors: {:?}", end.errors());

    let streams = fake.streams();
    assert_eq!(streams.len(), 1);
    let s = &streams[0];
    assert_eq!(s.path, "/medical-stream-transcription");
    assert_eq!(s.sample_rate, 16_000);
    assert_eq!(s.media_encoding, "pcm");
    assert_eq!(s.header("x-amzn-transcribe-language-code"), Some("en-US"));
    assert_eq!(s.header("x-amzn-transcribe-specialty"), Some("PRIMARYCARE"));
    assert_eq!(s.header("x-amzn-transcribe-type"), Some("DICTATION"));
    assert!(s.ended, "the client's end frame reached the service");
    let expected = 3.5;
    assert!(
        (s.audio_secs() - expected).abs() < 0.05,
        "the service got {} s of 16 kHz PCM, expected {expected}",
        s.audio_secs()
    );

    assert_eq!(final_texts(&end.msgs), ["w1 w2 w3", "w4 w5 w6", "w7"]);
    let first = finals(&end.msgs)[0].clone();
    let partials: Vec<_> = transcripts(&end.msgs)
        .into_iter()
        .filter(|t| t.is_partial && t.result_id == first.result_id)
        .collect();
    assert!(
        partials.iter().any(|p| p.text == "w1 w2"),
        "cumulative partials of one result id precede its final"
    );
    assert!(
        partials
            .iter()
            .all(|p| p.words.iter().all(|w| w.confidence.is_none()))
    );
    assert_eq!(first.words.len(), 3);
    assert_eq!(first.words[1].word, "w2");
    assert!(
        (first.words[1].start - 0.5).abs() < 0.11,
        "{:?}",
        first.words
    );
    assert_eq!(first.words[1].confidence, Some(0.9));

    let stored = app.stored("local", &ready.session_id).await;
    assert_eq!(stored_text(&stored), "w1 w2 w3 w4 w5 w6 w7");
    stored.assert_audio(&audio, Enc::S16, rate, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_medical_session_at_48k_reaches_the_service_as_16k_pcm_and_its_words_come_back() {
    medical_session_at(48_000).await;
}

#[tokio::test]
async fn a_medical_session_at_8k_is_upsampled_to_16k_for_the_service() {
    medical_session_at(8_000).await;
}

/// Sends `audio` in 100 ms frames at 16 kHz.
async fn send_16k(ws: &mut WsClient, audio: &[u8]) {
    ws.send_audio(audio, bytes_for_ms(Enc::S16, 16_000, 1, 100))
        .await;
}

#[tokio::test]
async fn a_20_second_client_pause_does_not_let_the_service_time_the_stream_out() {
    // The fake fails a stream after 15 s without audio, as the service does;
    // the engine runs with its default keepalive.
    let fake = FakeTranscribe::start().await;
    let app = TestApp::spawn_with(&[], engine(Variant::Medical, settings(&fake))).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    send_16k(&mut ws, &speech(16_000, &[1, 2, 3])).await;
    ws.expect_final().await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    send_16k(&mut ws, &speech(16_000, &[4, 5, 6])).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    assert!(end.errors().is_empty(), "errors: {:?}", end.errors());
    assert_eq!(
        fake.timeouts(),
        0,
        "the service never saw 15 s without audio"
    );
    assert_eq!(
        fake.streams().len(),
        1,
        "one stream carried the whole session"
    );
    let mut texts = vec!["w1 w2 w3".to_owned()];
    texts.extend(final_texts(&end.msgs));
    assert_eq!(texts, ["w1 w2 w3", "w4 w5 w6"]);
    // The keepalive silence exists only on the service's side: times are the client's.
    let second = finals(&end.msgs)[0].clone();
    assert!(
        (second.words[0].start - 1.5).abs() < 0.11,
        "w4 starts 1.5 s into the client's audio: {:?}",
        second.words
    );
    let stored = app.stored("local", &ready.session_id).await;
    assert_eq!(stored_text(&stored), "w1 w2 w3 w4 w5 w6");
    app.stop().await;
}

#[tokio::test]
async fn an_in_stream_failure_is_recovered_on_a_new_stream_without_lost_or_doubled_words() {
    recovered_after(Plan::FailAfter(2.0)).await;
}

#[tokio::test]
async fn a_stream_the_service_ends_early_is_continued_on_a_new_one() {
    // As when a stream reaches the service's 4-hour limit.
    recovered_after(Plan::HangUpAfter(2.0)).await;
}

/// The first stream breaks after 2 s of audio (`plan`); the session goes on.
async fn recovered_after(plan: Plan) {
    let fake = FakeTranscribe::start_with(vec![plan, Plan::Normal]).await;
    let app = TestApp::spawn_with(&[], engine(Variant::Medical, settings(&fake))).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = speech(16_000, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    send_16k(&mut ws, &audio).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    let errors = end.errors();
    assert!(
        errors
            .iter()
            .all(|e| e.code == ErrorCode::EngineRetrying && !e.fatal),
        "only non-fatal retry notices: {errors:?}"
    );
    let streams = fake.streams();
    assert_eq!(errors.len(), 1);
    assert_eq!(streams.len(), 2);
    // The second stream got the audio from the end of the last final (w3 at 1.3 s) on.
    assert!(
        (streams[1].audio_secs() - (4.5 - 1.3)).abs() < 0.05,
        "resent {} s",
        streams[1].audio_secs()
    );
    assert_eq!(final_texts(&end.msgs), ["w1 w2 w3", "w4 w5 w6", "w7 w8 w9"]);
    let f = finals(&end.msgs);
    assert!((f[1].words[0].start - 1.5).abs() < 0.11, "{:?}", f[1].words);
    assert!((f[2].words[2].end - 4.3).abs() < 0.11, "{:?}", f[2].words);
    let stored = app.stored("local", &ready.session_id).await;
    assert_eq!(stored_text(&stored), "w1 w2 w3 w4 w5 w6 w7 w8 w9");
    app.stop().await;
}

#[tokio::test]
async fn limit_exceeded_is_retried_with_a_non_fatal_notice_then_succeeds() {
    let fake = FakeTranscribe::start_with(vec![Plan::LimitExceeded, Plan::Normal]).await;
    let app = TestApp::spawn_with(&[], engine(Variant::Medical, settings(&fake))).await;
    let mut ws = app.connect_ws().await;
    ws.start(16_000, Enc::S16, 1).await;
    send_16k(&mut ws, &speech(16_000, &[1, 2, 3, 4])).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    let errors = end.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].code, ErrorCode::EngineRetrying);
    assert!(!errors[0].fatal);
    let statuses: Vec<u16> = fake.streams().iter().map(|s| s.status).collect();
    assert_eq!(statuses, [429, 200]);
    assert_eq!(final_texts(&end.msgs), ["w1 w2 w3", "w4"]);
    app.stop().await;
}

#[tokio::test]
async fn repeated_failures_end_the_session_engine_failed_with_its_audio_stored() {
    let fake = FakeTranscribe::start_with(vec![Plan::LimitExceeded]).await;
    let settings = TranscribeSettings {
        max_attempts: 3,
        ..settings(&fake)
    };
    let app = TestApp::spawn_with(&[], engine(Variant::Medical, settings)).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = speech(16_000, &[1, 2]);
    send_16k(&mut ws, &audio).await;
    let end = ws.collect_until_close().await;
    assert_eq!(end.closed_reason(), CloseReason::EngineFailed);
    let codes: Vec<_> = end.errors().iter().map(|e| (e.code, e.fatal)).collect();
    assert_eq!(
        codes,
        [
            (ErrorCode::EngineRetrying, false),
            (ErrorCode::EngineRetrying, false),
            (ErrorCode::EngineFailed, true)
        ]
    );
    assert_eq!(fake.streams().len(), 3);
    let stored = app.stored("local", &ready.session_id).await;
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    stored.assert_status("stored", "engine_failed");
    app.stop().await;
}

#[tokio::test]
async fn phi_entities_and_a_redacted_variant_are_stored_in_the_transcript() {
    let fake = FakeTranscribe::start().await;
    fake.set_phi_words(&["w2", "w5"]);
    let settings = TranscribeSettings {
        phi: true,
        ..settings(&fake)
    };
    let app = TestApp::spawn_with(&[], engine(Variant::Medical, settings)).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    send_16k(&mut ws, &speech(16_000, &[1, 2, 3, 4, 5])).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    assert_eq!(
        fake.streams()[0].header("x-amzn-transcribe-content-identification-type"),
        Some("PHI")
    );
    // The client gets the plain text, as the protocol has it.
    assert_eq!(final_texts(&end.msgs), ["w1 w2 w3", "w4 w5"]);
    let stored = app.stored("local", &ready.session_id).await;
    let t = &stored.transcript;
    assert_eq!(t["text"], "w1 w2 w3 w4 w5");
    assert_eq!(t["redacted_text"], "w1 [PHI] w3 w4 [PHI]");
    let first = &t["segments"][0];
    assert_eq!(first["redacted_text"], "w1 [PHI] w3");
    let entity = &first["entities"][0];
    assert_eq!(entity["category"], "PHI");
    assert_eq!(entity["content"], "w2");
    assert!(
        (entity["start"].as_f64().unwrap() - 0.5).abs() < 0.11,
        "{entity}"
    );
    assert!(
        (entity["end"].as_f64().unwrap() - 0.8).abs() < 0.11,
        "{entity}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_standard_engine_keeps_8k_audio_at_8k_in_the_sessions_language() {
    let fake = FakeTranscribe::start().await;
    let settings = TranscribeSettings {
        stability: Some("high".into()),
        ..settings(&fake)
    };
    let app = TestApp::spawn_with(&[], engine(Variant::Standard, settings)).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(8_000, Enc::S16, 1).await;
    assert_eq!(
        (ready.engine.as_str(), ready.engine_rate),
        ("transcribe", 8_000)
    );
    let audio = speech(8_000, &[1, 2, 3]);
    ws.send_audio(&audio, bytes_for_ms(Enc::S16, 8_000, 1, 100))
        .await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    let s = &fake.streams()[0];
    assert_eq!(s.path, "/stream-transcription");
    assert_eq!(s.sample_rate, 8_000);
    assert_eq!(s.header("x-amzn-transcribe-language-code"), Some("en-US"));
    assert_eq!(
        s.header("x-amzn-transcribe-partial-results-stability"),
        Some("high")
    );
    assert_eq!(s.audio, audio, "8 kHz PCM reaches the service unchanged");
    assert_eq!(final_texts(&end.msgs), ["w1 w2 w3"]);
    app.stop().await;
}

#[tokio::test]
async fn ready_reports_the_engine_ready_when_its_credentials_resolve() {
    let fake = FakeTranscribe::start().await;
    let app = TestApp::spawn_with(&[], engine(Variant::Medical, settings(&fake))).await;
    let body: serde_json::Value = reqwest::get(app.http_url("/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["engine"]["default"], "transcribe-medical");
    assert_eq!(
        body["engines"]["transcribe-medical"]["ready"], true,
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_start_messages_specialty_and_mode_reach_the_service() {
    let fake = FakeTranscribe::start().await;
    let app = TestApp::spawn_with(&[], engine(Variant::Medical, settings(&fake))).await;
    let mut ws = app.connect_ws().await;
    let mut start = start_json(16_000, Enc::S16.name(), 1);
    start["specialty"] = "cardiology".into();
    start["mode"] = "conversation".into();
    ws.send_json(&start).await;
    ws.expect_ready().await;
    send_16k(&mut ws, &speech(16_000, &[1])).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(final_texts(&end.msgs), ["w1"]);
    let s = &fake.streams()[0];
    assert_eq!(s.header("x-amzn-transcribe-specialty"), Some("CARDIOLOGY"));
    assert_eq!(s.header("x-amzn-transcribe-type"), Some("CONVERSATION"));
    app.stop().await;
}

#[tokio::test]
async fn a_stream_the_service_times_out_for_lack_of_audio_is_reopened_without_losing_words() {
    // A fake with a 1 s no-audio limit, shorter than the engine's keepalive.
    let fake = FakeTranscribe::start().await;
    fake.set_no_audio_timeout(Duration::from_secs(1));
    let app = TestApp::spawn_with(&[], engine(Variant::Medical, settings(&fake))).await;
    let mut ws = app.connect_ws().await;
    ws.start(16_000, Enc::S16, 1).await;
    send_16k(&mut ws, &speech(16_000, &[1, 2, 3])).await;
    ws.expect_final().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send_16k(&mut ws, &speech(16_000, &[4, 5, 6])).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    assert!(fake.timeouts() >= 1, "the fake timed the idle stream out");
    assert!(
        end.errors()
            .iter()
            .all(|e| e.code == ErrorCode::EngineRetrying && !e.fatal),
        "{:?}",
        end.errors()
    );
    let after = finals(&end.msgs);
    assert_eq!(after.last().unwrap().text, "w4 w5 w6");
    assert!(
        (after.last().unwrap().words[0].start - 1.5).abs() < 0.11,
        "{:?}",
        after.last().unwrap().words
    );
    app.stop().await;
}
