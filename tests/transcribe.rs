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
use common::process::ServerProcess;
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

/// Every `result_id` the client saw ends in exactly one final, and that
/// final is the result's last event.
fn assert_every_result_finalized_once(msgs: &[ServerMsg]) {
    let all = transcripts(msgs);
    for t in &all {
        let of_id: Vec<_> = all.iter().filter(|o| o.result_id == t.result_id).collect();
        let finals = of_id.iter().filter(|o| !o.is_partial).count();
        assert_eq!(
            finals, 1,
            "result {} has {finals} finals: {of_id:?}",
            t.result_id
        );
        assert!(
            !of_id.last().unwrap().is_partial,
            "result {} ends on a partial: {of_id:?}",
            t.result_id
        );
    }
}

/// All the words of all finals, in order.
fn final_words(msgs: &[ServerMsg]) -> Vec<auscult::protocol::Word> {
    finals(msgs)
        .iter()
        .flat_map(|f| f.words.iter().cloned())
        .collect()
}

/// Sends `audio` at 16 kHz in 100 ms frames, each when it would have been spoken.
async fn send_16k_live(ws: &mut WsClient, audio: &[u8]) {
    for frame in audio.chunks(bytes_for_ms(Enc::S16, 16_000, 1, 100)) {
        ws.send_binary(frame).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stored_text(stored: &StoredSession) -> String {
    stored.transcript["text"].as_str().unwrap().to_owned()
}

/// Streams `words` at `rate` through a medical session and checks what the
/// fake received and what the client and the store got back.
async fn medical_session_at(rate: u32, h2c: bool) {
    let fake = FakeTranscribe::start().await;
    let settings = TranscribeSettings {
        http_client: h2c.then(common::h2c::client),
        ..settings(&fake)
    };
    let app = TestApp::spawn_with(&[], engine(Variant::Medical, settings)).await;
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
    assert_eq!(s.version, if h2c { "HTTP/2.0" } else { "HTTP/1.1" });
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
    medical_session_at(48_000, false).await;
}

#[tokio::test]
async fn a_medical_session_at_8k_is_upsampled_to_16k_for_the_service() {
    medical_session_at(8_000, false).await;
}

#[tokio::test]
async fn a_medical_session_over_http2_reaches_the_service_the_same() {
    // The service speaks HTTP/2 (over TLS in production); here over h2c.
    medical_session_at(48_000, true).await;
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
    // The partial of w4 shown before the failure is continued, not abandoned.
    assert_every_result_finalized_once(&end.msgs);
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
            (ErrorCode::EngineFailed, true),
            // The engine never transcribed the audio after its failure.
            (ErrorCode::TranscriptIncomplete, false),
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
        pii: Some("identify".into()),
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
    assert_eq!(
        s.header("x-amzn-transcribe-enable-partial-results-stabilization"),
        Some("true")
    );
    assert_eq!(
        s.header("x-amzn-transcribe-content-identification-type"),
        Some("PII")
    );
    assert_eq!(s.header("x-amzn-transcribe-content-redaction-type"), None);
    assert_eq!(s.audio, audio, "8 kHz PCM reaches the service unchanged");
    assert_eq!(final_texts(&end.msgs), ["w1 w2 w3"]);
    app.stop().await;
}

#[tokio::test]
async fn ready_reports_the_engine_ready_when_its_credentials_resolve() {
    let fake = FakeTranscribe::start().await;
    let app = TestApp::spawn_with(&[], engine(Variant::Medical, settings(&fake))).await;
    let body: serde_json::Value = reqwest::get(app.admin_url("/ready"))
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

#[tokio::test]
async fn a_partial_open_when_the_engine_fails_for_good_is_finalized_as_last_shown() {
    // The stream breaks after w1 and w2 were shown as a partial; the next
    // attempt is refused and the session ends `engine_failed`.
    let fake = FakeTranscribe::start_with(vec![Plan::FailAfter(0.9), Plan::LimitExceeded]).await;
    let settings = TranscribeSettings {
        max_attempts: 2,
        ..settings(&fake)
    };
    let app = TestApp::spawn_with(&[], engine(Variant::Medical, settings)).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    send_16k(&mut ws, &speech(16_000, &[1, 2, 3, 4])).await;
    let end = ws.collect_until_close().await;
    assert_eq!(end.closed_reason(), CloseReason::EngineFailed);
    let shown = transcripts(&end.msgs)
        .into_iter()
        .rfind(|t| t.is_partial)
        .expect("a partial was shown before the failure")
        .clone();
    assert_every_result_finalized_once(&end.msgs);
    let last = finals(&end.msgs).last().copied().unwrap().clone();
    assert_eq!(last.result_id, shown.result_id);
    assert_eq!(last.text, shown.text);
    let stored = app.stored("local", &ready.session_id).await;
    stored.assert_status("stored", "engine_failed");
    assert_eq!(stored_text(&stored), shown.text);
    app.stop().await;
}

#[tokio::test]
async fn a_stream_at_its_age_limit_is_rotated_at_a_pause_without_lost_or_doubled_words() {
    // Streams of about 1 s stand in for the service's 4-hour limit. The
    // first reaches its limit in the middle of w3 (1.0–1.3 s): it must run on
    // to the pause after it, or the next stream would hear half a word.
    let fake = FakeTranscribe::start().await;
    let settings = TranscribeSettings {
        max_stream: Duration::from_millis(1_100),
        ..settings(&fake)
    };
    let app = TestApp::spawn_with(&[], engine(Variant::Medical, settings)).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let words: Vec<i16> = (1..=9).collect();
    send_16k_live(&mut ws, &speech(16_000, &words)).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    assert!(
        end.errors().is_empty(),
        "rotation is silent: {:?}",
        end.errors()
    );
    let streams = fake.streams();
    assert!(streams.len() >= 3, "{} streams for 4.5 s", streams.len());
    assert!(
        streams.iter().all(|s| s.status == 200 && s.ended),
        "every stream was ended by the engine, none failed"
    );
    let heard = final_words(&end.msgs);
    let texts: Vec<&str> = heard.iter().map(|w| w.word.as_str()).collect();
    let expected: Vec<String> = words.iter().map(|k| format!("w{k}")).collect();
    assert_eq!(texts, expected, "each word once, in order");
    for (k, w) in heard.iter().enumerate() {
        let start = k as f64 * 0.5;
        assert!(
            (w.start - start).abs() < 0.11 && (w.end - (start + 0.3)).abs() < 0.11,
            "{} at {}–{} s in the client's audio, expected {start} s",
            w.word,
            w.start,
            w.end
        );
    }
    assert_every_result_finalized_once(&end.msgs);
    let stored = app.stored("local", &ready.session_id).await;
    assert_eq!(stored_text(&stored), expected.join(" "));
    app.stop().await;
}

#[tokio::test]
async fn acks_report_the_audio_waiting_for_the_service_as_engine_lag() {
    // The first stream is refused and the retry waits 2–3 s; the client
    // speaks on in real time meanwhile.
    let fake = FakeTranscribe::start_with(vec![Plan::LimitExceeded, Plan::Normal]).await;
    let settings = TranscribeSettings {
        backoff: Duration::from_secs(2),
        ..settings(&fake)
    };
    let app = TestApp::spawn_with(&[], engine(Variant::Medical, settings)).await;
    let mut ws = app.connect_ws().await;
    ws.start(16_000, Enc::S16, 1).await;
    send_16k_live(&mut ws, &speech(16_000, &[1, 2, 3, 4, 5, 6])).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    let lags: Vec<u64> = acks(&end.msgs)
        .iter()
        .filter_map(|a| a.engine_lag_ms)
        .collect();
    let max = lags.iter().copied().max().unwrap_or(0);
    assert!(
        max >= 1_000,
        "while the service refused, acks showed the audio waiting: {lags:?}"
    );
    assert_eq!(final_texts(&end.msgs), ["w1 w2 w3", "w4 w5 w6"]);
    app.stop().await;
}

#[tokio::test]
async fn ready_reports_the_engine_not_ready_until_the_default_chain_has_credentials() {
    // The real binary with a clean environment: no keys, no profile, no
    // instance metadata, so the default AWS chain finds nothing.
    let base = [
        ("AUSCULT_ENGINE", "transcribe-medical"),
        ("AUSCULT_TRANSCRIBE_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut bare = ServerProcess::start(dir.path(), &base).await;
    let ready = reqwest::get(format!("http://127.0.0.1:{}/ready", bare.admin_port))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    let engine = &body["engines"]["transcribe-medical"];
    assert_eq!(engine["ready"], false, "{body}");
    assert!(
        engine["detail"].as_str().unwrap().contains("credentials"),
        "{body}"
    );
    bare.kill().await;

    let mut with_keys = base.to_vec();
    with_keys.extend([
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut keyed = ServerProcess::start(dir.path(), &with_keys).await;
    let ready = reqwest::get(format!("http://127.0.0.1:{}/ready", keyed.admin_port))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        body["engines"]["transcribe-medical"]["ready"], true,
        "{body}"
    );
    keyed.kill().await;
}

#[tokio::test]
async fn phi_entities_survive_a_takeover_that_rebuilds_the_transcript_from_the_database() {
    let fake = FakeTranscribe::start().await;
    fake.set_phi_words(&["w2"]);
    let backend = Backend::embedded().await;
    let timing = [
        ("AUSCULT_CHUNK_FLUSH_SECS", "1"),
        ("AUSCULT_SESSION_STALE_SECS", "3"),
    ];
    let endpoint = fake.endpoint();
    let mut env = backend.process_env();
    for (k, v) in timing.iter().chain(&[
        ("AUSCULT_ENGINE", "transcribe-medical"),
        ("AUSCULT_TRANSCRIBE_ENDPOINT", endpoint.as_str()),
        ("AUSCULT_TRANSCRIBE_REGION", "us-east-1"),
        ("AUSCULT_TRANSCRIBE_PHI", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]) {
        env.push(((*k).to_owned(), (*v).to_owned()));
    }
    let machine = tempfile::tempdir().unwrap();
    let mut first = ServerProcess::start(machine.path(), &str_pairs(&env)).await;
    let mut ws = WsClient::connect(&first.ws_url(), &[])
        .await
        .expect("upgrade");
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let id = ready.session_id.clone();
    send_16k(&mut ws, &speech(16_000, &[1, 2, 3])).await;
    let heard = ws.expect_final().await;
    assert_eq!(heard.text, "w1 w2 w3");
    let chunks = format!("users/local/audio/sessions/{id}/chunks/");
    poll_until(|| async {
        match backend.list(&chunks).await.is_empty() {
            true => Err(format!("no chunk of {id} written")),
            false => Ok(()),
        }
    })
    .await;
    // The instance is lost; the transcript exists only as database rows.
    first.kill().await;
    drop(machine);
    ws.drop_abruptly();

    let second = TestApp::spawn_on(&backend, &timing).await;
    backend.wait_for_status(&id, "recovered").await;
    let stored = backend.stored("local", &id).await;
    let t = &stored.transcript;
    assert_eq!(t["text"], "w1 w2 w3");
    assert_eq!(t["redacted_text"], "w1 [PHI] w3");
    let segment = &t["segments"][0];
    assert_eq!(segment["redacted_text"], "w1 [PHI] w3");
    assert_eq!(segment["entities"][0]["content"], "w2");
    assert!(
        (segment["entities"][0]["start"].as_f64().unwrap() - 0.5).abs() < 0.11,
        "{segment}"
    );
    second.stop().await;
}

#[tokio::test]
async fn configured_options_reach_the_service_as_its_request_headers() {
    let fake = FakeTranscribe::start().await;
    let medical = TranscribeSettings {
        speaker_labels: true,
        vocabulary: Some("cardiology-terms".into()),
        ..settings(&fake)
    };
    let standard = TranscribeSettings {
        pii: Some("redact".into()),
        ..settings(&fake)
    };
    let engines: Vec<SharedEngine> = vec![
        Arc::new(TranscribeEngine::new(Variant::Medical, medical)),
        Arc::new(TranscribeEngine::new(Variant::Standard, standard)),
    ];
    let app = TestApp::spawn_with(&[], engines).await;
    for name in ["transcribe-medical", "transcribe"] {
        let mut ws = app.connect_ws().await;
        let mut start = start_json(16_000, Enc::S16.name(), 1);
        start["engine"] = name.into();
        ws.send_json(&start).await;
        ws.expect_ready().await;
        send_16k(&mut ws, &speech(16_000, &[1])).await;
        let end = ws.stop_and_collect().await;
        assert_eq!(final_texts(&end.msgs), ["w1"], "{name}");
    }
    let streams = fake.streams();
    let (medical, standard) = (&streams[0], &streams[1]);
    assert_eq!(medical.path, "/medical-stream-transcription");
    assert_eq!(
        medical.header("x-amzn-transcribe-show-speaker-label"),
        Some("true")
    );
    assert_eq!(
        medical.header("x-amzn-transcribe-vocabulary-name"),
        Some("cardiology-terms")
    );
    assert_eq!(standard.path, "/stream-transcription");
    assert_eq!(
        standard.header("x-amzn-transcribe-content-redaction-type"),
        Some("PII")
    );
    assert_eq!(
        standard.header("x-amzn-transcribe-show-speaker-label"),
        Some("false")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_service_that_never_answers_is_given_up_on_after_the_send_timeout_and_retried() {
    let fake = FakeTranscribe::start_with(vec![Plan::NoAnswer, Plan::Normal]).await;
    let settings = TranscribeSettings {
        send_timeout: Duration::from_secs(1),
        ..settings(&fake)
    };
    let app = TestApp::spawn_with(&[], engine(Variant::Medical, settings)).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = speech(16_000, &[1, 2, 3, 4]);
    send_16k(&mut ws, &audio).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    let codes: Vec<_> = end.errors().iter().map(|e| (e.code, e.fatal)).collect();
    assert_eq!(codes, [(ErrorCode::EngineRetrying, false)]);
    let statuses: Vec<u16> = fake.streams().iter().map(|s| s.status).collect();
    assert_eq!(statuses, [0, 200]);
    assert_eq!(final_texts(&end.msgs), ["w1 w2 w3", "w4"]);
    assert_eq!(
        fake.streams()[1].audio.len(),
        audio.len(),
        "the second stream got all the audio that waited"
    );
    let stored = app.stored("local", &ready.session_id).await;
    assert_eq!(stored_text(&stored), "w1 w2 w3 w4");
    app.stop().await;
}
