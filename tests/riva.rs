//! The `riva` engine through `/v1/stream` against a fake Riva server (tonic,
//! the same protos): what Riva receives, how its results reach the client and
//! the stored transcript, recovery, missing finals, auth metadata and TLS.

mod common;

use auscult::protocol::{CloseReason, ErrorCode, ReadyMsg, ServerMsg};
use common::fake_riva::{FakeRiva, Script, linear_pcm, word_audio};
use common::*;

/// The app with `riva` as its engine, pointed at `url`, plus `extra`.
async fn riva_app(url: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("AUSCULT_ENGINE", "riva"), ("AUSCULT_RIVA_URL", url)];
    env.extend_from_slice(extra);
    TestApp::spawn_configured(&env).await
}

fn final_words(msgs: &[ServerMsg]) -> Vec<String> {
    finals(msgs)
        .iter()
        .flat_map(|f| f.text.split_whitespace().map(str::to_owned))
        .collect()
}

fn expected_words(n: i32) -> Vec<String> {
    (0..n).map(|i| format!("w{i}")).collect()
}

/// Streams `secs` of tone at `rate` and checks Riva got the config first,
/// then 16 kHz LINEAR_PCM of the right length in 100 ms requests.
async fn assert_riva_gets_16k_pcm(rate: u32) {
    let fake = FakeRiva::start(Script::default()).await;
    let app = riva_app(
        &fake.url(),
        &[
            ("AUSCULT_RIVA_MODEL", "parakeet-ctc-1.1b-en-us"),
            ("AUSCULT_RIVA_PHRASES", "metoprolol,lisinopril"),
            ("AUSCULT_RIVA_PHRASE_BOOST", "20"),
            ("AUSCULT_RIVA_DIARIZATION", "true"),
        ],
    )
    .await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(rate, Enc::S16, 1).await;
    assert_eq!(ready.engine, "riva");
    assert_eq!(ready.engine_rate, 16_000);
    let audio = tone(Enc::S16, rate, 1, 2.0);
    ws.send_audio(&audio, bytes_for_ms(Enc::S16, rate, 1, 100))
        .await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    assert!(end.errors().is_empty(), "errors: {:?}", end.errors());

    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "one call per session: {calls:?}");
    let call = &calls[0];
    assert!(
        call.protocol_errors.is_empty(),
        "{:?}",
        call.protocol_errors
    );
    assert!(call.half_closed, "the request stream is closed at stop");
    let streaming = call.config.as_ref().expect("config sent");
    assert!(streaming.interim_results);
    let config = streaming.config.as_ref().expect("recognition config");
    assert_eq!(config.encoding, linear_pcm());
    assert_eq!(config.sample_rate_hertz, 16_000);
    assert_eq!(config.language_code, "en-US");
    assert_eq!(config.audio_channel_count, 1);
    assert!(config.enable_word_time_offsets);
    assert!(config.enable_automatic_punctuation);
    assert_eq!(config.model, "parakeet-ctc-1.1b-en-us");
    assert_eq!(config.speech_contexts.len(), 1);
    assert_eq!(
        config.speech_contexts[0].phrases,
        ["metoprolol", "lisinopril"]
    );
    assert_eq!(config.speech_contexts[0].boost, 20.0);
    assert!(
        config
            .diarization_config
            .as_ref()
            .is_some_and(|d| d.enable_speaker_diarization)
    );
    // 2 s at 16 kHz, 16-bit: 64000 bytes (the resampler may trim a few ms).
    let samples = call.audio.len() / 2;
    assert_eq!(call.audio.len() % 2, 0);
    assert!(
        (31_680..=32_000).contains(&samples),
        "Riva received {samples} samples for 2 s of audio"
    );
    // 100 ms (3200-byte) requests, the last one possibly shorter.
    assert_eq!(call.audio_messages, samples.div_ceil(1600));
    // The session's own audio is stored unchanged.
    let stored = app.stored("local", &ready.session_id).await;
    stored.assert_audio(&audio, Enc::S16, rate, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_48k_session_reaches_riva_as_16k_linear_pcm_after_the_config() {
    assert_riva_gets_16k_pcm(48_000).await;
}

#[tokio::test]
async fn an_8k_session_reaches_riva_as_16k_linear_pcm_after_the_config() {
    assert_riva_gets_16k_pcm(8_000).await;
}

#[tokio::test]
async fn interims_are_partials_of_one_result_and_is_final_closes_it_with_word_times() {
    let fake = FakeRiva::start(Script::default()).await;
    let app = riva_app(&fake.url(), &[]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    ws.send_audio(&word_audio(0..8, 16_000), 3200).await;
    let end = ws.stop_and_collect().await;
    assert!(end.errors().is_empty(), "errors: {:?}", end.errors());

    let fin = finals(&end.msgs);
    assert_eq!(fin.len(), 2, "{fin:?}");
    assert_eq!(fin[0].text, "w0 w1 w2 w3");
    assert_eq!(fin[1].text, "w4 w5 w6 w7");
    assert_ne!(fin[0].result_id, fin[1].result_id);
    for (n, f) in fin.iter().enumerate() {
        // Every partial before the final carries its result_id and a prefix of its text.
        let partials: Vec<_> = transcripts(&end.msgs)
            .into_iter()
            .filter(|t| t.is_partial && t.result_id == f.result_id)
            .collect();
        assert_eq!(partials.len(), 3, "interims of utterance {n}: {partials:?}");
        assert_eq!(partials[0].text, format!("w{}", 4 * n));
        assert!(partials.iter().all(|p| f.text.starts_with(&p.text)));
        // Riva's ms become seconds; confidence passes through.
        assert_eq!(f.words.len(), 4);
        for (k, w) in f.words.iter().enumerate() {
            let i = 4 * n + k;
            assert_eq!(w.word, format!("w{i}"));
            assert!((w.start - i as f64 * 0.25).abs() < 1e-6, "{w:?}");
            assert!((w.end - (i + 1) as f64 * 0.25).abs() < 1e-6, "{w:?}");
            assert!((w.confidence.unwrap() - 0.9).abs() < 1e-6);
        }
        assert!((f.start - n as f64).abs() < 1e-6 && (f.end - (n + 1) as f64).abs() < 1e-6);
    }
    // No partial arrives for a result after its final.
    for f in &fin {
        let final_at = end.msgs.iter().position(|m| matches!(m, ServerMsg::Transcript(t) if !t.is_partial && t.result_id == f.result_id)).unwrap();
        assert!(!end.msgs[final_at..].iter().any(
            |m| matches!(m, ServerMsg::Transcript(t) if t.is_partial && t.result_id == f.result_id)
        ));
    }
    let stored = app.stored("local", &ready.session_id).await;
    assert_eq!(
        stored.transcript_segments(),
        vec![
            (fin[0].result_id.clone(), "w0 w1 w2 w3".to_owned()),
            (fin[1].result_id.clone(), "w4 w5 w6 w7".to_owned()),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn the_hosted_endpoint_gets_function_id_and_bearer_metadata() {
    let fake = FakeRiva::start(Script {
        require_auth: Some(("fn-5f1c".into(), "nvapi-test-key".into())),
        ..Script::default()
    })
    .await;
    let app = riva_app(
        &fake.url(),
        &[
            ("AUSCULT_RIVA_FUNCTION_ID", "fn-5f1c"),
            ("AUSCULT_RIVA_API_KEY", "nvapi-test-key"),
        ],
    )
    .await;
    let mut ws = app.connect_ws().await;
    ws.start(16_000, Enc::S16, 1).await;
    ws.send_audio(&word_audio(0..4, 16_000), 3200).await;
    let end = ws.stop_and_collect().await;
    assert!(end.errors().is_empty(), "errors: {:?}", end.errors());
    assert_eq!(final_words(&end.msgs), expected_words(4));
    let calls = fake.calls();
    assert_eq!(calls[0].function_id.as_deref(), Some("fn-5f1c"));
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some("Bearer nvapi-test-key")
    );
    assert!(!calls[0].rejected);
    app.stop().await;
}

#[tokio::test]
async fn a_call_rejected_for_missing_auth_ends_engine_failed_with_the_audio_stored() {
    let fake = FakeRiva::start(Script {
        require_auth: Some(("fn-5f1c".into(), "nvapi-test-key".into())),
        ..Script::default()
    })
    .await;
    let app = riva_app(&fake.url(), &[]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = word_audio(0..4, 16_000);
    for frame in audio.chunks(3200) {
        if !ws.try_send_binary(frame).await {
            break;
        }
    }
    let e = ws.expect_error(ErrorCode::EngineFailed).await;
    assert!(e.fatal);
    let end = ws.collect_until_close().await;
    assert_eq!(end.closed_reason(), CloseReason::EngineFailed);
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "an auth failure is not retried");
    assert!(calls[0].rejected && calls[0].function_id.is_none());
    let stored = app.stored("local", &ready.session_id).await;
    stored.assert_status("stored", "engine_failed");
    app.stop().await;
}

#[tokio::test]
async fn a_mid_stream_failure_reconnects_and_resends_from_the_last_final_without_lost_or_doubled_words()
 {
    reconnects_after_a_mid_stream_failure(tonic::Code::Unavailable).await;
}

#[tokio::test]
async fn an_invalid_argument_mid_stream_is_recovered_the_same_way() {
    reconnects_after_a_mid_stream_failure(tonic::Code::InvalidArgument).await;
}

/// Streams words w0..w11 (3 s at 16 kHz) against a fake whose first call
/// breaks off after 1.6 s: 2 s of audio, then the client hears the engine
/// reconnect (a non-fatal `engine_retrying`), then the rest, then `stop`.
async fn stream_across_a_reconnect(
    script: Script,
) -> (FakeRiva, TestApp, WsClient, ReadyMsg, Vec<u8>) {
    let fake = FakeRiva::start(script).await;
    let app = riva_app(&fake.url(), &[]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = word_audio(0..12, 16_000);
    ws.send_audio(&audio[..64_000], 3200).await;
    let warning = ws.expect_error(ErrorCode::EngineRetrying).await;
    assert!(!warning.fatal);
    ws.send_audio(&audio[64_000..], 3200).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    (fake, app, ws, ready, audio)
}

async fn reconnects_after_a_mid_stream_failure(code: tonic::Code) {
    // The first call fails after 1.6 s: the final for w0..w3 (at 1 s) is in,
    // w4 and w5 were only interims.
    let (fake, app, ws, ready, audio) = stream_across_a_reconnect(Script {
        fail_calls: vec![(0, 1_600)],
        fail_code: code,
        ..Script::default()
    })
    .await;
    let warnings = errors(&ws.log);
    assert_eq!(warnings.len(), 1, "{warnings:?}");

    assert_eq!(final_words(&ws.log), expected_words(12));
    // Times continue across the reconnect: word i is at [i/4, (i+1)/4] s.
    let words: Vec<_> = finals(&ws.log)
        .iter()
        .flat_map(|f| f.words.clone())
        .collect();
    assert_eq!(words.len(), 12);
    for (i, w) in words.iter().enumerate() {
        assert!((w.start - i as f64 * 0.25).abs() < 1e-6, "{w:?}");
        assert!((w.end - (i + 1) as f64 * 0.25).abs() < 1e-6, "{w:?}");
    }
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    // The second call got the audio from the last final (1 s) on.
    assert_eq!(calls[1].audio, audio[32_000..]);
    assert!(calls[1].config.is_some() && calls[1].protocol_errors.is_empty());
    let stored = app.stored("local", &ready.session_id).await;
    let text: Vec<String> = stored
        .transcript_segments()
        .into_iter()
        .flat_map(|(_, t)| t.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    assert_eq!(text, expected_words(12));
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    app.stop().await;
}

#[tokio::test]
async fn pending_text_is_finalized_when_the_server_never_sends_is_final() {
    let fake = FakeRiva::start(Script {
        never_final: true,
        ..Script::default()
    })
    .await;
    let app = riva_app(&fake.url(), &[]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    ws.send_audio(&word_audio(0..6, 16_000), 3200).await;
    let end = ws.stop_and_collect().await;
    assert!(end.errors().is_empty(), "errors: {:?}", end.errors());
    let fin = finals(&end.msgs);
    assert_eq!(fin.len(), 1, "{fin:?}");
    assert_eq!(fin[0].text, "w0 w1 w2 w3 w4 w5");
    assert!(
        transcripts(&end.msgs)
            .iter()
            .all(|t| t.result_id == fin[0].result_id)
    );
    assert!((fin[0].end - 1.5).abs() < 1e-6, "{:?}", fin[0]);
    let stored = app.stored("local", &ready.session_id).await;
    assert_eq!(
        stored.transcript_segments(),
        vec![(fin[0].result_id.clone(), "w0 w1 w2 w3 w4 w5".to_owned())]
    );
    app.stop().await;
}

#[tokio::test]
async fn retries_are_bounded_then_engine_failed_with_the_audio_stored() {
    let fake = FakeRiva::start(Script {
        fail_calls: (0..10).map(|c| (c, 0)).collect(),
        ..Script::default()
    })
    .await;
    let app = riva_app(&fake.url(), &[("AUSCULT_RIVA_MAX_RETRIES", "2")]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = word_audio(0..8, 16_000);
    for frame in audio.chunks(3200) {
        if !ws.try_send_binary(frame).await {
            break;
        }
    }
    // engine_retrying warnings, then engine_failed.
    let e = loop {
        if let ServerMsg::Error(e) = ws.recv().await {
            if e.code == ErrorCode::EngineFailed {
                break e;
            }
            assert_eq!(e.code, ErrorCode::EngineRetrying, "{e:?}");
        }
    };
    assert!(e.fatal);
    let end = ws.collect_until_close().await;
    assert_eq!(end.closed_reason(), CloseReason::EngineFailed);
    let retrying = ws
        .log
        .iter()
        .filter(|m| matches!(m, ServerMsg::Error(e) if e.code == ErrorCode::EngineRetrying))
        .count();
    assert_eq!(retrying, 2);
    assert_eq!(fake.calls().len(), 3, "the first call and two retries");
    let stored = app.stored("local", &ready.session_id).await;
    stored.assert_status("stored", "engine_failed");
    assert!(!stored.wav.data.is_empty());
    app.stop().await;
}

/// A self-signed CA (PEM) and a `localhost` certificate chain and key it signed.
fn test_ca_and_localhost_cert() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}

#[tokio::test]
async fn tls_to_a_server_whose_certificate_the_ca_file_vouches_for() {
    let (ca_pem, cert_pem, key_pem) = test_ca_and_localhost_cert();
    let fake = FakeRiva::start_tls(Script::default(), &cert_pem, &key_pem).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("riva-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let url = format!("https://localhost:{}", fake.addr.port());
    let app = riva_app(&url, &[("AUSCULT_RIVA_CA_FILE", ca_file.to_str().unwrap())]).await;
    let mut ws = app.connect_ws().await;
    ws.start(16_000, Enc::S16, 1).await;
    ws.send_audio(&word_audio(0..4, 16_000), 3200).await;
    let end = ws.stop_and_collect().await;
    assert!(end.errors().is_empty(), "errors: {:?}", end.errors());
    assert_eq!(final_words(&end.msgs), expected_words(4));
    assert_eq!(fake.calls().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn ready_shows_whether_the_riva_endpoint_answers() {
    let fake = FakeRiva::start(Script::default()).await;
    let app = riva_app(&fake.url(), &[]).await;
    let body = ApiClient::admin(&app).get_json("/ready").await;
    assert_eq!(body["engine"]["default"], "riva");
    assert_eq!(body["engines"]["riva"]["ready"], true, "{body}");
    app.stop().await;

    // Nothing listens on this port any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = riva_app(&url, &[]).await;
    let answer = ApiClient::admin(&app).get("/ready").await;
    let body = answer.json();
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["engines"]["riva"]["ready"], false, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_client_pause_sends_keepalive_silence_and_word_times_still_follow_the_session() {
    let fake = FakeRiva::start(Script::default()).await;
    let app = riva_app(&fake.url(), &[("AUSCULT_RIVA_KEEPALIVE_SECS", "1")]).await;
    let mut ws = app.connect_ws().await;
    ws.start(16_000, Enc::S16, 1).await;
    let audio = word_audio(0..8, 16_000);
    ws.send_audio(&audio[..32_000], 3200).await;
    // A 2.6 s pause: at least two keepalives.
    ws.drain_for(std::time::Duration::from_millis(2_600)).await;
    ws.send_audio(&audio[32_000..], 3200).await;
    let end = ws.stop_and_collect().await;
    assert!(end.errors().is_empty(), "errors: {:?}", ws.log);
    assert_eq!(final_words(&ws.log), expected_words(8));
    let words: Vec<_> = finals(&ws.log)
        .iter()
        .flat_map(|f| f.words.clone())
        .collect();
    for (i, w) in words.iter().enumerate() {
        assert!((w.start - i as f64 * 0.25).abs() < 1e-6, "{w:?}");
        assert!((w.end - (i + 1) as f64 * 0.25).abs() < 1e-6, "{w:?}");
    }
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "the call stayed open");
    let silence = calls[0].audio.len() - audio.len();
    assert!(
        silence >= 2 * 3200 && silence % 3200 == 0,
        "{silence} bytes of keepalive silence"
    );
    // The silence sits in the pause: the call is the first second, zeros, the rest.
    assert_eq!(calls[0].audio[..32_000], audio[..32_000]);
    assert!(
        calls[0].audio[32_000..32_000 + silence]
            .iter()
            .all(|b| *b == 0)
    );
    assert_eq!(calls[0].audio[32_000 + silence..], audio[32_000..]);
    app.stop().await;
}

#[tokio::test]
async fn a_call_that_ends_without_a_final_mid_session_is_resumed_from_the_last_final() {
    // The first call ends quietly after 1.6 s: w4 and w5 were only interims.
    let (fake, app, ws, ready, audio) = stream_across_a_reconnect(Script {
        end_calls: vec![(0, 1_600)],
        ..Script::default()
    })
    .await;
    assert_eq!(final_words(&ws.log), expected_words(12));
    // The interims of w4.. and their final share one result_id across calls.
    let fin = finals(&ws.log);
    assert_eq!(fin[1].text, "w4 w5 w6 w7");
    let w4_partial = transcripts(&ws.log)
        .into_iter()
        .find(|t| t.is_partial && t.text == "w4")
        .expect("w4 interim")
        .result_id
        .clone();
    assert_eq!(w4_partial, fin[1].result_id);
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].audio, audio[32_000..]);
    let stored = app.stored("local", &ready.session_id).await;
    assert_eq!(stored.transcript_segments().len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn audio_held_back_by_a_stalled_riva_counts_toward_the_buffer_limit() {
    // Riva stops reading after a second; HTTP/2 flow control then holds the
    // engine's audio inside the engine, where the limit must still see it.
    let fake = FakeRiva::start(Script {
        stall_after_ms: Some(1_000),
        ..Script::default()
    })
    .await;
    let app = riva_app(&fake.url(), &[("AUSCULT_MAX_BUFFER_BYTES", "320000")]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = word_audio((0..1_200).map(|i| i % 60), 16_000);
    for frame in audio.chunks(3200) {
        if !ws.try_send_binary(frame).await {
            break;
        }
    }
    let e = ws.expect_error(ErrorCode::BufferLimit).await;
    assert!(e.fatal);
    let end = ws.collect_until_close().await;
    assert_eq!(end.closed_reason(), CloseReason::BufferLimit);
    let stored = app.stored("local", &ready.session_id).await;
    assert_stored_prefix(&stored, &audio, ws.last_durable());
    stored.assert_status("stored", "buffer_limit");
    app.stop().await;
}
