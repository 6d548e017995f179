//! One client or one user cannot take more than its share: a user's sessions
//! are capped, and a client that stops reading is dropped (its session waits
//! for a resume) instead of the server holding its messages.

mod common;

use std::time::Duration;

use auscult::protocol::ErrorCode;
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const TOKENS: &str = "alice:alice-token-0001,bob:bob-token-00002";

#[tokio::test]
async fn one_user_cannot_take_every_slot_and_others_are_unaffected() {
    let app = TestApp::spawn_env(&[
        ("AUSCULT_MAX_SESSIONS_PER_USER", "2"),
        ("AUSCULT_API_TOKENS", TOKENS),
    ])
    .await;
    let mut first = app.connect_ws_as("alice-token-0001").await;
    let first_ready = first.start(16_000, Enc::S16, 1).await;
    let mut second = app.connect_ws_as("alice-token-0001").await;
    second.start(16_000, Enc::S16, 1).await;
    // A session whose client is gone still counts: it awaits a resume.
    second.drop_abruptly();
    let mut third = app.connect_ws_as("alice-token-0001").await;
    third.send_json(&start_json(16_000, "pcm_s16le", 1)).await;
    let e = third.expect_error(ErrorCode::UserAtCapacity).await;
    assert!(e.fatal);
    assert_eq!(third.collect_until_close().await.close_code, Some(1008));
    // Another user still gets in.
    let mut bob = app.connect_ws_as("bob-token-00002").await;
    bob.start(16_000, Enc::S16, 1).await;
    // A resume takes no new slot, so alice can still resume at her limit.
    let mut back = app.connect_ws_as("alice-token-0001").await;
    let resumed = back
        .resume(16_000, Enc::S16, 1, &first_ready.session_id, 0)
        .await;
    assert_eq!(resumed.session_id, first_ready.session_id);
    // Once one of hers ends, she can start a new one.
    back.stop_and_collect().await;
    let mut fourth = poll_until(|| async {
        let mut ws = app.connect_ws_as("alice-token-0001").await;
        ws.send_json(&start_json(16_000, "pcm_s16le", 1)).await;
        match ws.recv().await {
            auscult::protocol::ServerMsg::Ready(_) => Ok(ws),
            other => Err(format!("a freed slot still refused: {other:?}")),
        }
    })
    .await;
    fourth.stop_and_collect().await;
    bob.stop_and_collect().await;
    app.stop().await;
}

#[tokio::test]
async fn parallel_starts_of_one_user_never_pass_the_cap() {
    let app = TestApp::spawn_env(&[
        ("AUSCULT_MAX_SESSIONS_PER_USER", "3"),
        ("AUSCULT_API_TOKENS", TOKENS),
    ])
    .await;
    let attempts = (0..12).map(|_| async {
        let mut ws = app.connect_ws_as("alice-token-0001").await;
        ws.send_json(&start_json(16_000, "pcm_s16le", 1)).await;
        let ready = matches!(ws.recv().await, auscult::protocol::ServerMsg::Ready(_));
        (ready, ws)
    });
    let mut results = futures_util::future::join_all(attempts).await;
    let admitted = results.iter().filter(|(ready, _)| *ready).count();
    assert_eq!(admitted, 3);
    for (ready, ws) in results.iter_mut() {
        if *ready {
            ws.stop_and_collect().await;
        }
    }
    app.stop().await;
}

/// A WebSocket client with a tiny receive buffer, so that not reading
/// fills the path from the server quickly.
async fn tight_client(app: &TestApp) -> WsStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(app.addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(app.ws_url(), tcp)
        .await
        .expect("upgrade");
    ws
}

type WsStream = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_resumes_without_losing_audio() {
    // A chatty engine: a transcript message for every 5 ms of audio.
    let app = TestApp::spawn_with(&[], vec![ScriptedEngine::new().word_ms(5).shared()]).await;
    let mut ws = tight_client(&app).await;
    let start = start_json(16_000, "pcm_s16le", 1).to_string();
    ws.send(Message::Text(start.into())).await.unwrap();
    let session_id = loop {
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("no ready")
        };
        let msg: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        if msg["type"] == "ready" {
            break msg["session_id"].as_str().unwrap().to_owned();
        }
    };
    // Keep sending audio and never read an answer: the server's messages
    // pile up until it gives up on this connection (within its write timeout).
    let audio = tone(Enc::S16, 16_000, 1, 600.0);
    let started = std::time::Instant::now();
    let sending = tokio::time::timeout(Duration::from_secs(60), async {
        // Ten times real time: fast, but no faster than the engine keeps up with.
        for frame in audio.chunks(3200).cycle() {
            if ws
                .send(Message::Binary(frame.to_vec().into()))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    assert!(
        sending.await.is_ok(),
        "a client that never reads was still connected after a minute"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    drop(ws);

    // The session waits: a resume carries on from what the server holds.
    let mut again = app.connect_ws().await;
    let ready = again.resume(16_000, Enc::S16, 1, &session_id, 0).await;
    let from = ready.resume_from_bytes.expect("resume_from_bytes") as usize;
    assert!(from > 0 && from < audio.len(), "held {from}");
    let end = from + 32_000;
    again.send_audio(&audio[from..end], 3200).await;
    let ending = again.stop_and_collect().await;
    assert_eq!(ending.stored().session_id, session_id);
    let stored = app.stored("local", &session_id).await;
    stored.assert_audio(&audio[..end], Enc::S16, 16_000, 1);
    app.stop().await;
}

/// This process's resident memory, in bytes (each test runs in its own
/// process under nextest, the app included).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

#[tokio::test]
async fn what_waits_for_a_busy_session_is_bounded_in_bytes_not_messages() {
    // A closing session waits for its (stalled) engine and reads nothing
    // meanwhile; clients that keep sending maximum-size messages must not
    // make the server queue them (64 of 1 MiB each would be 64 MiB per client).
    let app = TestApp::spawn_with(&[], vec![ScriptedEngine::new().stalled().shared()]).await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        let mut ws = app.connect_ws().await;
        ws.start(16_000, Enc::S16, 1).await;
        ws.stop().await;
        clients.push(ws);
    }
    let before = resident_bytes();
    let frame = vec![0u8; 1024 * 1024 - 64];
    let floods = clients.iter_mut().map(|ws| {
        let frame = &frame;
        async move {
            // Sends stall once the server stops reading; that is the point.
            let _ = tokio::time::timeout(Duration::from_secs(4), async {
                for _ in 0..64 {
                    if !ws.try_send_binary(frame).await {
                        return;
                    }
                }
            })
            .await;
        }
    });
    futures_util::future::join_all(floods).await;
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown < 160 * 1024 * 1024,
        "the server holds {} MiB for 8 clients it is not reading",
        grown / 1024 / 1024
    );
    for ws in clients.iter_mut() {
        ws.collect_until_close().await;
    }
    app.stop().await;
}
