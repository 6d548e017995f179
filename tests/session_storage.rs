//! The session storage contract: whole sessions through the app, against both
//! storage pairs, `embedded` (SQLite + a folder) and `cloud` (Postgres + S3 on
//! a local moto_server, a fresh database and bucket per test). Each scenario
//! is declared once per pair; the few that only one pair can stage (a
//! database outage needs a networked database) say so.

mod common;

use std::time::Duration;

use auscult::protocol::CloseReason;
use auscult::storage::keys::Chunk;
use common::process::ServerProcess;
use common::*;

/// Declares each scenario once per pair, as `embedded::<name>` and `cloud::<name>`.
macro_rules! both_pairs {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Pair::Embedded).await;
                }
            )*
        }
        mod cloud {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Pair::Cloud).await;
                }
            )*
        }
    };
}

both_pairs!(
    a_session_is_stored_bit_exact_and_encrypted_at_rest,
    a_large_session_is_uploaded_in_parts_and_stored_bit_exact,
    chunks_are_written_while_the_session_is_live_and_removed_once_stored,
    a_session_of_a_killed_instance_is_finished_by_another_from_its_chunks,
    an_instance_never_takes_over_its_own_session_in_progress,
    a_session_closed_while_objects_are_unreachable_lands_once_they_are_back,
    one_recording_finalized_event_is_sent_per_stored_session,
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pair {
    Embedded,
    Cloud,
}

impl Pair {
    /// The pair; `objects_proxy` puts S3 behind a switchable proxy (cloud).
    async fn backend(self, objects_proxy: bool) -> Backend {
        match self {
            Pair::Embedded => Backend::embedded().await,
            Pair::Cloud => Backend::cloud_via(false, objects_proxy).await,
        }
    }
}

fn audio_key(session_id: &str) -> String {
    format!("{}audio.wav", session_prefix("local", session_id))
}

fn chunks_prefix(session_id: &str) -> String {
    format!("{}chunks/", session_prefix("local", session_id))
}

/// Streams `audio` (16 kHz mono s16le) in 100 ms frames and waits until all of it is durable.
async fn send_durably(ws: &mut WsClient, audio: &[u8]) {
    ws.send_audio(audio, bytes_for_ms(Enc::S16, 16_000, 1, 100))
        .await;
    let total = ws.last_durable() + audio.len() as u64;
    ws.wait_durable(total).await;
}

/// The chunks stored for a session, in order, with their bytes.
async fn chunks(backend: &Backend, session_id: &str) -> Vec<(Chunk, Vec<u8>)> {
    let mut out = Vec::new();
    for key in backend.list(&chunks_prefix(session_id)).await {
        let chunk = Chunk::parse(&key).unwrap_or_else(|| panic!("{key} is not a chunk key"));
        let bytes = backend.get_object(&key).await.expect("listed chunk exists");
        out.push((chunk, bytes));
    }
    out.sort_by_key(|(c, _)| c.seq);
    out
}

/// Waits until the session's chunks hold exactly `sent`, and checks they
/// are numbered from 0 without gaps and their times follow each other.
async fn wait_for_chunks_holding(backend: &Backend, session_id: &str, sent: &[u8]) {
    let found = poll_until(|| async {
        let found = chunks(backend, session_id).await;
        let joined: Vec<u8> = found.iter().flat_map(|(_, b)| b.clone()).collect();
        if joined.len() == sent.len() {
            Ok(found)
        } else {
            Err(format!(
                "[{}] chunks of {session_id} hold {} of the {} bytes sent",
                backend.name(),
                joined.len(),
                sent.len()
            ))
        }
    })
    .await;
    let joined: Vec<u8> = found.iter().flat_map(|(_, b)| b.clone()).collect();
    assert!(joined == sent, "the chunks hold exactly the audio sent");
    let mut end_ms = 0;
    for (seq, (chunk, bytes)) in found.iter().enumerate() {
        assert_eq!(chunk.seq as usize, seq, "chunks numbered without gaps");
        assert_eq!(
            chunk.start_ms, end_ms,
            "each chunk starts where the last ended"
        );
        let ms = (bytes.len() as u64 * 1000) / (16_000 * 2);
        assert!(
            chunk.end_ms.abs_diff(chunk.start_ms + ms) <= 1,
            "chunk {seq} names its span: {chunk:?} for {} bytes",
            bytes.len()
        );
        end_ms = chunk.end_ms;
    }
}

async fn a_session_is_stored_bit_exact_and_encrypted_at_rest(pair: Pair) {
    let backend = pair.backend(false).await;
    let app = TestApp::spawn_on(&backend, &[]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(48_000, Enc::F32, 2).await;
    let audio = tone(Enc::F32, 48_000, 2, 1.5);
    ws.send_audio(&audio, bytes_for_ms(Enc::F32, 48_000, 2, 100))
        .await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    assert_eq!(end.stored().audio, audio_key(&ready.session_id));

    let stored = backend.stored("local", &ready.session_id).await;
    stored.assert_audio(&audio, Enc::F32, 48_000, 2);
    stored.assert_status("stored", "client_stop");
    if pair == Pair::Cloud {
        assert!(backend.assert_all_encrypted().await >= 3);
    }
    app.stop().await;
}

async fn a_large_session_is_uploaded_in_parts_and_stored_bit_exact(pair: Pair) {
    let backend = pair.backend(false).await;
    let app = TestApp::spawn_on(&backend, &[("AUSCULT_ENGINE", "loadtest")]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(48_000, Enc::F32, 2).await;
    // 24 s of 48 kHz stereo f32: 9.2 MB, more than one 8 MiB part.
    let audio = tone(Enc::F32, 48_000, 2, 24.0);
    assert!(audio.len() > auscult::storage::object::MULTIPART_PART_SIZE);
    ws.send_audio(&audio, bytes_for_ms(Enc::F32, 48_000, 2, 100))
        .await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);

    let stored = backend.stored("local", &ready.session_id).await;
    stored.assert_audio(&audio, Enc::F32, 48_000, 2);
    if pair == Pair::Cloud {
        let etag = backend
            .etag(&audio_key(&ready.session_id))
            .await
            .expect("audio.wav has an ETag");
        assert!(
            etag.ends_with("-2"),
            "audio.wav went up as a two-part upload: ETag {etag}"
        );
        assert!(backend.assert_all_encrypted().await >= 3);
    }
    app.stop().await;
}

async fn chunks_are_written_while_the_session_is_live_and_removed_once_stored(pair: Pair) {
    let backend = pair.backend(false).await;
    let app = TestApp::spawn_on(&backend, &[("AUSCULT_CHUNK_FLUSH_SECS", "1")]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let id = ready.session_id.clone();
    let audio = tone(Enc::S16, 16_000, 1, 3.0);
    let (first, second) = audio.split_at(audio.len() / 3);

    send_durably(&mut ws, first).await;
    wait_for_chunks_holding(&backend, &id, first).await;
    // The row is updated just after the chunk lands, so wait for it too.
    poll_until(|| async {
        match backend.row(&id).await {
            Some(row) if row.status == "live" && row.received_bytes == first.len() as u64 => Ok(()),
            seen => Err(format!(
                "live row counting the {} chunked bytes: {seen:?}",
                first.len()
            )),
        }
    })
    .await;

    send_durably(&mut ws, second).await;
    wait_for_chunks_holding(&backend, &id, &audio).await;
    assert!(
        chunks(&backend, &id).await.len() >= 2,
        "a chunk per interval"
    );
    if pair == Pair::Cloud {
        assert!(
            backend.assert_all_encrypted().await >= 2,
            "chunks are encrypted"
        );
    }

    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    let stored = backend.stored("local", &id).await;
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    stored.assert_status("stored", "client_stop");
    assert!(
        backend.list(&chunks_prefix(&id)).await.is_empty(),
        "chunks removed once the session is stored"
    );
    app.stop().await;
}

async fn a_session_of_a_killed_instance_is_finished_by_another_from_its_chunks(pair: Pair) {
    let backend = pair.backend(false).await;
    let timing = [
        ("AUSCULT_CHUNK_FLUSH_SECS", "1"),
        ("AUSCULT_SESSION_STALE_SECS", "3"),
    ];
    let mut env = backend.process_env();
    env.extend(
        timing
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let machine = tempfile::tempdir().unwrap();
    let mut first = ServerProcess::start(machine.path(), &str_pairs(&env)).await;
    let mut ws = WsClient::connect(&first.ws_url(), &[])
        .await
        .expect("upgrade");
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let id = ready.session_id.clone();
    let audio = tone(Enc::S16, 16_000, 1, 3.0);
    let (flushed, tail) = audio.split_at(audio.len() * 2 / 3);
    send_durably(&mut ws, flushed).await;
    wait_for_chunks_holding(&backend, &id, flushed).await;
    // More audio, then the machine is lost with its disk before it is all in a chunk.
    ws.send_audio(tail, bytes_for_ms(Enc::S16, 16_000, 1, 100))
        .await;
    first.kill().await;
    drop(machine);
    ws.drop_abruptly();
    let row = backend.row(&id).await.expect("the session has a row");
    assert_eq!(row.status, "live", "nobody finished it yet");

    // Another instance, on another machine, takes the session over once its
    // owner's heartbeat is stale.
    let second = TestApp::spawn_on(&backend, &timing).await;
    let row = backend.wait_for_status(&id, "recovered").await;
    let stored = backend.stored("local", &id).await;
    stored.assert_status("recovered", "recovered");
    let data = &stored.wav.data;
    assert!(
        data.len() >= flushed.len() && data.len() <= audio.len(),
        "at most the last chunk interval is lost: stored {} of {} bytes, {} were in chunks",
        data.len(),
        audio.len(),
        flushed.len()
    );
    assert!(
        data[..] == audio[..data.len()],
        "the stored audio is what was sent, in order"
    );
    assert_eq!(row.received_bytes, data.len() as u64);
    assert_eq!(stored.manifest["received_bytes"], data.len() as u64);
    assert!(
        backend.list(&chunks_prefix(&id)).await.is_empty(),
        "chunks removed once the session is stored"
    );
    if pair == Pair::Cloud {
        backend.assert_all_encrypted().await;
    }
    second.stop().await;
}

async fn an_instance_never_takes_over_its_own_session_in_progress(pair: Pair) {
    let backend = pair.backend(false).await;
    let app = TestApp::spawn_on(
        &backend,
        &[
            ("AUSCULT_CHUNK_FLUSH_SECS", "1"),
            ("AUSCULT_SESSION_STALE_SECS", "2"),
        ],
    )
    .await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let id = ready.session_id.clone();
    let audio = tone(Enc::S16, 16_000, 1, 2.0);
    let (first, second) = audio.split_at(audio.len() / 2);
    send_durably(&mut ws, first).await;
    // As if this instance's heartbeats had not reached the row for long (a
    // database blip): its own takeover rounds must leave the session it is
    // recording alone, never store a spool still in use.
    backend
        .execute(&format!(
            "UPDATE sessions SET instance_id = 'i-unheard', heartbeat_at_ms = 0 WHERE id = '{id}'"
        ))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(backend.row(&id).await.unwrap().status, "live");
    send_durably(&mut ws, second).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    let stored = backend.stored("local", &id).await;
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    stored.assert_status("stored", "client_stop");
    app.stop().await;
}

async fn a_session_closed_while_objects_are_unreachable_lands_once_they_are_back(pair: Pair) {
    let backend = pair.backend(true).await;
    let app = TestApp::spawn_on(&backend, &[("AUSCULT_STORAGE_RETRY_SECS", "1")]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let id = ready.session_id.clone();
    let audio = tone(Enc::S16, 16_000, 1, 1.5);
    send_durably(&mut ws, &audio).await;

    backend.set_objects_reachable(false);
    let end = ws.stop_and_collect().await;
    end.assert_storage_pending();
    let row = backend.wait_for_status(&id, "pending_upload").await;
    assert_eq!(row.close_reason.as_deref(), Some("client_stop"));
    // Still failing while the outage lasts (retried every second).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(backend.row(&id).await.unwrap().status, "pending_upload");

    backend.set_objects_reachable(true);
    let stored = backend.stored("local", &id).await;
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    stored.assert_status("stored", "client_stop");
    if pair == Pair::Cloud {
        assert!(backend.assert_all_encrypted().await >= 3);
    }
    app.stop().await;
}

/// Only a networked database can be unplugged: the cloud pair, with Postgres
/// behind a proxy that goes down before the session closes.
#[tokio::test]
async fn a_session_closed_while_the_database_is_unreachable_lands_once_it_is_back() {
    let backend = Backend::cloud_via(true, false).await;
    let app = TestApp::spawn_on(
        &backend,
        &[
            ("AUSCULT_STORAGE_RETRY_SECS", "1"),
            ("AUSCULT_DATABASE_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let id = ready.session_id.clone();
    let audio = tone(Enc::S16, 16_000, 1, 1.5);
    send_durably(&mut ws, &audio).await;

    backend.db_proxy().set_up(false);
    let end = ws.stop_and_collect().await;
    end.assert_storage_pending();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        backend.row(&id).await.unwrap().status,
        "live",
        "the row could not be finished during the outage"
    );

    backend.db_proxy().set_up(true);
    let stored = backend.stored("local", &id).await;
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    stored.assert_status("stored", "client_stop");
    app.stop().await;
}

async fn one_recording_finalized_event_is_sent_per_stored_session(pair: Pair) {
    let backend = pair.backend(true).await;
    let moto = common::moto::Moto::acquire().await;
    let queue = moto.create_queue().await;
    let app = TestApp::spawn_on(
        &backend,
        &[
            ("AUSCULT_EVENTS_SQS_URL", queue.as_str()),
            ("AUSCULT_EVENTS_SQS_REGION", "us-east-1"),
            ("AUSCULT_STORAGE_RETRY_SECS", "1"),
        ],
    )
    .await;
    // One session stored at once, one only after an outage and retries.
    let mut ids = Vec::new();
    for outage in [false, true] {
        let mut ws = app.connect_ws().await;
        let ready = ws.start(16_000, Enc::S16, 1).await;
        send_durably(&mut ws, &tone(Enc::S16, 16_000, 1, 1.0)).await;
        if outage {
            backend.set_objects_reachable(false);
        }
        let end = ws.stop_and_collect().await;
        if outage {
            assert_eq!(end.closed_reason(), CloseReason::StoragePending);
            tokio::time::sleep(Duration::from_secs(2)).await;
            backend.set_objects_reachable(true);
        } else {
            assert_eq!(end.closed_reason(), CloseReason::ClientStop);
        }
        backend.stored("local", &ready.session_id).await;
        ids.push(ready.session_id);
    }

    let sqs = moto.sqs();
    let mut events: Vec<serde_json::Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    // Until both arrived, then one more quiet poll: no duplicate follows.
    let mut quiet_polls = 0;
    while quiet_polls < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "[{}] events received: {events:?}",
            backend.name()
        );
        let got = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from moto");
        let messages = got.messages();
        for m in messages {
            events.push(serde_json::from_str(m.body().unwrap()).expect("event is JSON"));
            sqs.delete_message()
                .queue_url(&queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .expect("delete from moto");
        }
        if events.len() >= ids.len() && messages.is_empty() {
            quiet_polls += 1;
        }
    }
    assert_eq!(events.len(), ids.len(), "one event per session: {events:?}");
    for id in &ids {
        let event = events
            .iter()
            .find(|e| e["session_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no event for {id}: {events:?}"));
        let row = backend.row(id).await.unwrap();
        assert_eq!(event["type"], "RecordingFinalized");
        assert_eq!(event["user_id"], "local");
        assert_eq!(event["status"], "stored");
        assert_eq!(event["engine"], "scripted");
        assert_eq!(event["received_bytes"], row.received_bytes);
        assert_eq!(event["keys"]["audio"], audio_key(id).as_str());
        assert!(event["duration_s"].as_f64().unwrap() > 0.9);
    }
    app.stop().await;
}
