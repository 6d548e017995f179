//! The Socket.IO transport (`/socket.io/`, namespace `/transcribe`) with real
//! clients: python-socketio's asyncio client and the npm socket.io-client,
//! over Engine.IO WebSocket and long-polling. What is stored must be exactly
//! what was sent, whichever transport carried it.

mod common;

use common::socketio::{Library, Run, audio_file, run};
use common::*;
use serde_json::{Value, json};

const TRANSPORTS: [&str; 2] = ["websocket", "polling"];

fn start(rate: u32, enc: Enc) -> Value {
    json!({"sample_rate": rate, "encoding": enc.name(), "channels": 1, "language": "en-US"})
}

fn plan(app: &TestApp, transport: &str) -> Value {
    json!({"url": app.http_url(""), "transports": [transport]})
}

/// The run's stored session, checked against `audio`, after `closed`
/// `client_stop` and a `stored` event naming the same session.
async fn assert_stored(app: &TestApp, run: &Run, audio: &[u8], enc: Enc, rate: u32) {
    let id = run.session_id();
    assert_eq!(
        run.closed_reason().as_deref(),
        Some("client_stop"),
        "{run:#?}"
    );
    let stored = run.first("stored").expect("a stored event");
    assert_eq!(stored["session_id"], id.as_str());
    let session = app.stored("local", &id).await;
    session.assert_audio(audio, enc, rate, 1);
    session.assert_status("stored", "client_stop");
}

#[tokio::test]
async fn both_clients_over_both_transports_store_what_they_sent_at_8_16_and_48_khz() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    for library in [Library::Python, Library::Node] {
        for transport in TRANSPORTS {
            for (rate, enc) in [(8_000, Enc::S16), (16_000, Enc::S16), (48_000, Enc::F32)] {
                let audio = tone(enc, rate, 1, 1.2);
                let file = audio_file(dir.path(), &format!("{rate}.pcm"), &audio);
                let frame = bytes_for_ms(enc, rate, 1, 100);
                let mut p = plan(&app, transport);
                p["start"] = start(rate, enc);
                p["audio_file"] = file.into();
                p["frame_bytes"] = frame.into();
                let seen = run(library, p).await;
                assert_eq!(
                    seen.first("connected").and_then(Value::as_str),
                    Some(transport),
                    "{library:?} over {transport}"
                );
                let ready = seen.start_ack();
                assert_eq!(ready["input_rate"], rate, "{ready}");
                assert!(seen.error_codes().is_empty(), "{:?}", seen.error_codes());
                assert_eq!(seen.last_durable(), audio.len() as u64);
                assert!(
                    !seen.all("transcript").is_empty(),
                    "{library:?}/{transport}/{rate}: no transcript events"
                );
                assert_stored(&app, &seen, &audio, enc, rate).await;
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn an_unpaced_burst_over_polling_is_stored_whole() {
    // python-engineio refuses a poll answer of more than 16 packets; a burst
    // of 200 audio events makes the server answer with many acks.
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let audio = tone(Enc::S16, 16_000, 1, 20.0);
    let mut p = plan(&app, "polling");
    p["start"] = start(16_000, Enc::S16);
    p["audio_file"] = audio_file(dir.path(), "burst.pcm", &audio).into();
    p["frame_bytes"] = 3200.into();
    let seen = run(Library::Python, p).await;
    assert!(seen.first("disconnect").is_none() || seen.first("closed").is_some());
    assert_eq!(seen.last_durable(), audio.len() as u64);
    assert_stored(&app, &seen, &audio, Enc::S16, 16_000).await;
    app.stop().await;
}

#[tokio::test]
async fn bad_events_get_their_codes_and_the_session_goes_on_intact() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let audio = tone(Enc::S16, 16_000, 1, 0.6);
    for library in [Library::Python, Library::Node] {
        let mut p = plan(&app, "websocket");
        p["start"] = start(16_000, Enc::S16);
        p["raw_events"] = json!([
            ["audio", "not binary"],
            ["audio", {"__bytes__": [1, 2, 3]}],
            ["dictate", {"x": 1}],
            ["start", start(16_000, Enc::S16)],
        ]);
        p["audio_file"] = audio_file(dir.path(), "a.pcm", &audio).into();
        let seen = run(library, p).await;
        let codes = seen.error_codes();
        for code in ["bad_frame", "bad_message", "already_started"] {
            assert!(
                codes.iter().any(|c| c == code),
                "{library:?}: {code} in {codes:?}"
            );
        }
        assert_eq!(
            codes.iter().filter(|c| *c == "bad_frame").count(),
            2,
            "{codes:?}"
        );
        assert_stored(&app, &seen, &audio, Enc::S16, 16_000).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_bad_start_is_answered_through_the_acknowledgement() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"sample_rate": 7000, "encoding": "pcm_s16le", "channels": 1}),
            "unsupported_sample_rate",
        ),
        (
            json!({"sample_rate": 16000, "encoding": "mp3", "channels": 1}),
            "unsupported_encoding",
        ),
        (
            json!({"sample_rate": 16000, "encoding": "pcm_s16le", "channels": 1, "engine": "nope"}),
            "unknown_engine",
        ),
        (json!("not an object"), "bad_message"),
        (
            json!({"sample_rate": 16000, "encoding": "pcm_s16le", "channels": 1,
                   "resume": {"session_id": "0190a0a0-0000-7000-8000-000000000000", "offset_bytes": 0}}),
            "unknown_session",
        ),
    ];
    for library in [Library::Python, Library::Node] {
        for transport in TRANSPORTS {
            for (body, code) in &cases {
                let mut p = plan(&app, transport);
                p["start"] = body.clone();
                p["wait_secs"] = 3.into();
                let seen = run(library, p).await;
                let ack = seen.start_ack();
                assert_eq!(ack["type"], "error", "{library:?}/{transport}: {ack}");
                assert_eq!(ack["code"], *code, "{library:?}/{transport}: {ack}");
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_audio_event_is_message_too_big_and_the_session_resumes() {
    let app = TestApp::spawn_env(&[("AUSCULT_MAX_MESSAGE_BYTES", "4096")]).await;
    let dir = tempfile::tempdir().unwrap();
    let audio = tone(Enc::S16, 16_000, 1, 1.0);
    for transport in TRANSPORTS {
        let mut p = plan(&app, transport);
        p["start"] = start(16_000, Enc::S16);
        // 3200-byte frames, then one of 8000 bytes.
        p["audio_file"] = audio_file(dir.path(), "a.pcm", &audio[..9600]).into();
        p["frame_bytes"] = 3200.into();
        p["raw_events"] = json!([]);
        p["stop"] = false.into();
        p["wait_secs"] = 3.into();
        let first = run(Library::Python, p).await;
        let id = first.session_id();
        let mut big = plan(&app, transport);
        big["start"] = json!({"sample_rate": 16000, "encoding": "pcm_s16le", "channels": 1,
                             "resume": {"session_id": id, "offset_bytes": 0}});
        big["raw_events"] = json!([["audio", {"__bytes__": vec![0u8; 8000]}]]);
        big["stop"] = false.into();
        big["wait_secs"] = 5.into();
        let refused = run(Library::Python, big).await;
        assert!(
            refused.error_codes().iter().any(|c| c == "message_too_big"),
            "{transport}: {refused:#?}"
        );
        // The session is intact and resumable: the rest completes it.
        let mut rest = plan(&app, transport);
        rest["start"] = json!({"sample_rate": 16000, "encoding": "pcm_s16le", "channels": 1,
                              "resume": {"session_id": id, "offset_bytes": 9600}});
        rest["audio_file"] = audio_file(dir.path(), "all.pcm", &audio).into();
        rest["offset"] = "resume".into();
        rest["frame_bytes"] = 3200.into();
        let done = run(Library::Python, rest).await;
        assert_eq!(done.session_id(), id);
        assert_stored(&app, &done, &audio, Enc::S16, 16_000).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn connects_are_authenticated_and_origin_checked_with_stable_codes() {
    let app = TestApp::spawn_env(&[("AUSCULT_API_TOKENS", "alice:token-alice")]).await;
    let url = app.http_url("");
    let refused = |seen: &Run| -> String {
        let err = seen
            .first("connect_error")
            .unwrap_or_else(|| panic!("not refused: {seen:#?}"));
        err["message"].as_str().unwrap_or_default().to_owned()
    };
    for library in [Library::Python, Library::Node] {
        for transport in TRANSPORTS {
            let base =
                json!({"url": url, "transports": [transport], "stop": false, "wait_secs": 2});
            let mut none = base.clone();
            none["start"] = Value::Null;
            assert_eq!(refused(&run(library, none).await), "missing_credentials");
            let mut bad = base.clone();
            bad["auth"] = json!({"token": "token-eve"});
            assert_eq!(refused(&run(library, bad).await), "invalid_token");
            let mut evil = base.clone();
            evil["auth"] = json!({"token": "token-alice"});
            evil["headers"] = json!({"Origin": "https://evil.example"});
            assert_eq!(refused(&run(library, evil).await), "origin_not_allowed");
            // Each accepted way of presenting the token.
            let mut via_auth = base.clone();
            via_auth["auth"] = json!({"token": "token-alice"});
            let mut via_header = base.clone();
            via_header["headers"] = json!({"Authorization": "Bearer token-alice"});
            let mut via_query = base.clone();
            via_query["url"] = format!("{url}?access_token=token-alice").into();
            for ok in [via_auth, via_header, via_query] {
                let mut ok = ok;
                ok["start"] = start(16_000, Enc::S16);
                ok["stop"] = true.into();
                let seen = run(library, ok.clone()).await;
                assert!(seen.first("connect_error").is_none(), "{ok}: {seen:#?}");
                let id = seen.session_id();
                assert_eq!(seen.closed_reason().as_deref(), Some("client_stop"));
                app.stored("alice", &id)
                    .await
                    .assert_status("stored", "client_stop");
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_full_server_refuses_a_connect_with_server_at_capacity() {
    let app = TestApp::spawn_env(&[
        ("AUSCULT_MAX_SESSIONS", "1"),
        ("AUSCULT_API_TOKENS", "alice:token-alice,bob:token-bob"),
    ])
    .await;
    let mut alice = app.connect_ws_as("token-alice").await;
    alice.start(16_000, Enc::S16, 1).await;
    for library in [Library::Python, Library::Node] {
        let p = json!({"url": app.http_url(""), "transports": ["websocket"],
                       "auth": {"token": "token-bob"}, "stop": false, "wait_secs": 2});
        let seen = run(library, p).await;
        let err = seen.first("connect_error").expect("refused");
        assert_eq!(err["message"], "server_at_capacity", "{library:?}");
    }
    alice.stop_and_collect().await;
    app.stop().await;
}

#[tokio::test]
async fn a_session_dropped_on_one_transport_resumes_on_the_other_without_gap_or_duplicate() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let audio = tone(Enc::S16, 16_000, 1, 2.0);
    let file = audio_file(dir.path(), "a.pcm", &audio);

    // Socket.IO (both transports) drops, the native WebSocket resumes.
    for transport in TRANSPORTS {
        let mut p = plan(&app, transport);
        p["start"] = start(16_000, Enc::S16);
        p["audio_file"] = file.clone().into();
        p["frame_bytes"] = 3200.into();
        p["bytes_per_sec"] = 64_000.into();
        p["drop_after"] = 32_000.into();
        let first = run(Library::Python, p).await;
        assert!(first.first("dropping").is_some(), "{first:#?}");
        let id = first.session_id();
        let mut ws = app.connect_ws().await;
        let resumed = ws
            .resume(16_000, Enc::S16, 1, &id, first.last_durable())
            .await;
        let from = resumed.resume_from_bytes.expect("resume_from_bytes") as usize;
        assert!(from <= 32_000, "{from}");
        ws.send_audio(&audio[from..], 3200).await;
        let end = ws.stop_and_collect().await;
        assert_eq!(end.stored().session_id, id);
        app.stored("local", &id)
            .await
            .assert_audio(&audio, Enc::S16, 16_000, 1);
    }

    // The native WebSocket drops, Socket.IO resumes (each client, each transport).
    for library in [Library::Python, Library::Node] {
        for transport in TRANSPORTS {
            let mut ws = app.connect_ws().await;
            let id = ws.start(16_000, Enc::S16, 1).await.session_id;
            ws.send_audio(&audio[..25_600], 3200).await;
            ws.wait_durable(25_600).await;
            ws.drop_abruptly();
            let mut p = plan(&app, transport);
            p["start"] = json!({"sample_rate": 16000, "encoding": "pcm_s16le", "channels": 1,
                               "resume": {"session_id": id, "offset_bytes": 25_600}});
            p["audio_file"] = file.clone().into();
            p["offset"] = "resume".into();
            p["frame_bytes"] = 3200.into();
            let seen = run(library, p).await;
            assert_eq!(seen.session_id(), id);
            assert_eq!(seen.start_ack()["resume_from_bytes"], 25_600);
            assert_stored(&app, &seen, &audio, Enc::S16, 16_000).await;
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_polling_request_for_an_unknown_engineio_session_gets_the_standard_error() {
    let app = TestApp::spawn().await;
    let url = app.http_url("/socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAAAA");
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "Session ID unknown", "{body}");
    // The reference server's body: the code is the number 1.
    assert_eq!(body["code"], 1, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn sigterm_drains_socketio_sessions_like_websocket_ones() {
    use common::process::ServerProcess;
    use nix::sys::signal::Signal;
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let audio = tone(Enc::S16, 16_000, 1, 8.0);
    let file = audio_file(dir.path(), "a.pcm", &audio);
    // Both transports: a long-polling client fetches its `stored` and
    // `closed` with new HTTP requests while the server drains.
    let clients: Vec<_> = [
        (Library::Python, "websocket"),
        (Library::Node, "websocket"),
        (Library::Python, "polling"),
        (Library::Node, "polling"),
    ]
    .into_iter()
    .map(|(library, transport)| {
        let p = json!({"url": format!("http://127.0.0.1:{}", server.port),
                           "transports": [transport], "start": start(16_000, Enc::S16),
                           "audio_file": file, "frame_bytes": 3200, "bytes_per_sec": 32_000});
        tokio::spawn(run(library, p))
    })
    .collect();
    // Every client streaming (a cold Node.js takes a while to start), then
    // a little audio more.
    server.wait_log("\"session_started\"", clients.len()).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    server.signal(Signal::SIGTERM);
    let mut ids = Vec::new();
    for client in clients {
        let seen = client.await.unwrap();
        assert_eq!(
            seen.closed_reason().as_deref(),
            Some("server_shutdown"),
            "{seen:#?}\n{}",
            server.log_text()
        );
        let stored = seen.first("stored").expect("stored before closed");
        ids.push((
            seen.session_id(),
            seen.last_durable(),
            stored["session_id"].clone(),
        ));
    }
    assert!(server.wait().await.success(), "{}", server.log_text());
    for (id, durable, stored_id) in ids {
        assert_eq!(stored_id, id.as_str());
        let stored = StoredSession::read(data.path(), "local", &id).await;
        assert_stored_prefix(&stored, &audio, durable);
        stored.assert_status("stored", "server_shutdown");
    }
}

/// Live transcripts from the Whisper engine over Socket.IO: real speech,
/// paced in real time, with each client and transport.
#[cfg(feature = "whisper")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_transcribes_live_over_socketio_at_8_16_and_48_khz() {
    use auscult::eval::word_error_rate;
    use common::speech::{checked_finals, joined_text, offline_text, shared_whisper, speech_s16};
    let engine = shared_whisper();
    let app = TestApp::spawn_with(&[], vec![engine.clone()]).await;
    let dir = tempfile::tempdir().unwrap();
    let text = "the patient reports chest pain radiating to the left arm";
    for (library, transport, rate) in [
        (Library::Python, "polling", 16_000),
        (Library::Node, "websocket", 48_000),
        (Library::Python, "websocket", 8_000),
    ] {
        let audio = speech_s16(text, rate, 0.5, 1.5);
        let mut p = plan(&app, transport);
        p["start"] = start(rate, Enc::S16);
        p["audio_file"] = audio_file(dir.path(), &format!("{rate}.pcm"), &audio).into();
        p["frame_bytes"] = bytes_for_ms(Enc::S16, rate, 1, 100).into();
        p["bytes_per_sec"] = (rate * 2).into();
        let seen = run(library, p).await;
        let secs = audio.len() as f64 / f64::from(rate * 2);
        let finals = checked_finals(&seen.messages(), secs);
        let heard = joined_text(&finals);
        assert!(
            seen.all("transcript")
                .iter()
                .any(|t| t["is_partial"] == true),
            "{library:?}/{transport}: live partials"
        );
        // The model's own reading of the clip is the bar (8 kHz audio is
        // band-limited: the model hears it less well, streamed or not).
        let alone = offline_text(&engine, &audio, rate).await;
        let wer = word_error_rate(&alone, &heard);
        assert!(
            wer <= 0.15,
            "{library:?}/{transport}/{rate}: heard {heard:?}, offline {alone:?}"
        );
        if rate >= 16_000 {
            assert!(word_error_rate(text, &heard) <= 0.15, "heard {heard:?}");
        }
        assert_stored(&app, &seen, &audio, Enc::S16, rate).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_login_cookie_opens_a_socketio_recording_and_its_logout_ends_it() {
    use common::login::{AccountsDb, logged_in, logout};
    let db = AccountsDb::sqlite().await;
    db.add_user("alice").await;
    let app = db.spawn_app(&[]).await;
    let cookie = logged_in(&app, "alice").await;
    let dir = tempfile::tempdir().unwrap();
    let audio = tone(Enc::S16, 16_000, 1, 6.0);
    let mut p = plan(&app, "polling");
    p["headers"] = json!({"Cookie": cookie.header()});
    p["start"] = start(16_000, Enc::S16);
    p["audio_file"] = audio_file(dir.path(), "a.pcm", &audio).into();
    p["frame_bytes"] = 3200.into();
    p["bytes_per_sec"] = 32_000.into();
    let client = tokio::spawn(run(Library::Python, p));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(logout(&app, &cookie).await.status, 204);
    let seen = client.await.unwrap();
    assert_eq!(
        seen.closed_reason().as_deref(),
        Some("logged_out"),
        "{seen:#?}"
    );
    let id = seen.session_id();
    let stored = seen.first("stored").expect("stored before closed");
    assert_eq!(stored["session_id"], id.as_str());
    assert!(
        stored["audio"]
            .as_str()
            .unwrap()
            .starts_with("users/alice/"),
        "{stored}"
    );
    app.stop().await;
}
