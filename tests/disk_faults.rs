//! The local disk failing or lying: a spool whose fsync fails stops being
//! acknowledged (acks mean durable) and its session ends keeping what was
//! acknowledged; a spool's `meta.json` read back after a crash is checked
//! like client input. The fsync failures are real ones, from a FUSE file
//! system that fails them on demand (`tests/faultfs`).

mod common;

use std::time::Duration;

use auscult::protocol::{CloseReason, ErrorCode, ServerMsg};
use common::faultfs::FaultFs;
use common::*;

#[tokio::test]
async fn a_failed_spool_fsync_stops_the_acks_and_keeps_what_was_acknowledged() {
    let fs = FaultFs::mount();
    let data_dir = tempfile::tempdir_in(&fs.mountpoint).unwrap();
    let app = TestApp::spawn_in(
        data_dir,
        &[
            ("AUSCULT_FSYNC_INTERVAL_MS", "100"),
            ("AUSCULT_STORAGE_RETRY_SECS", "1"),
        ],
        default_engines(),
    )
    .await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 3.0);
    let (before, after) = audio.split_at(32_000);
    ws.send_audio(before, 3200).await;
    ws.wait_durable(before.len() as u64).await;

    // The disk starts failing the spool's fsyncs (only the spool's: the
    // database and the object store beside it keep working).
    fs.fail_fsync_matching("audio.wav.part");
    let mut sent = before.len();
    let error = loop {
        match ws.next_event().await {
            Event::Msg(ServerMsg::Error(e)) => break e,
            Event::Msg(_) => {}
            other => panic!("the session ended without a word: {other:?}"),
        }
        if sent < audio.len()
            && ws
                .try_send_binary(&after[sent - before.len()..][..3200])
                .await
        {
            sent += 3200;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(error.code, ErrorCode::StorageFailed, "{error:?}");
    assert!(error.fatal);
    let acked_at_error = ws.last_durable();
    let end = ws.collect_until_close().await;
    assert!(
        end.msgs.iter().all(|m| !matches!(m, ServerMsg::Ack(_))),
        "acks after the fsync failure: {:?}",
        end.msgs
    );
    // Storing needs an fsync of the same file: it cannot land yet, so the
    // session is kept (not falsely `stored`) and retried.
    end.assert_storage_pending();

    // The disk recovers: the retry stores everything that was acknowledged.
    fs.fail_fsync(false);
    wait_for_status(app.data_path(), &ready.session_id, "stored").await;
    let stored = app.stored("local", &ready.session_id).await;
    let n = stored.wav.data.len();
    assert!(
        n as u64 >= acked_at_error,
        "stored {n} < acknowledged {acked_at_error}"
    );
    assert!(
        stored.wav.data == audio[..n],
        "the stored audio is not what was sent"
    );
    stored.assert_status("stored", CloseReason::SpoolFailed.as_str());
    app.stop().await;
}

#[tokio::test]
async fn a_spool_whose_meta_json_cannot_be_trusted_is_set_aside_not_stored() {
    let app = TestApp::spawn().await;
    let data_dir = app.stop().await;
    let spool = data_dir.path().join("spool");
    let bad = [
        (
            "zero-channels",
            r#""encoding":"pcm_s16le","sample_rate":16000,"channels":0"#,
        ),
        (
            "odd-rate",
            r#""encoding":"pcm_s16le","sample_rate":7,"channels":1"#,
        ),
        (
            "what-encoding",
            r#""encoding":"mp3","sample_rate":16000,"channels":1"#,
        ),
    ];
    for (id, format) in bad {
        let dir = spool.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let meta = format!(
            r#"{{"session_id":"{id}","user_id":"local","engine":"scripted","language":"en-US","format":{{{format}}},"engine_rate":16000,"started_at_ms":1}}"#
        );
        std::fs::write(dir.join("meta.json"), meta).unwrap();
        std::fs::write(dir.join("audio.wav.part"), vec![0u8; 44 + 3]).unwrap();
    }
    // One that names another folder's session, and one whose user id escapes its prefix.
    for (dir_name, session, user) in [
        ("elsewhere", "other-id", "local"),
        ("escape", "escape", "../x"),
    ] {
        let dir = spool.join(dir_name);
        std::fs::create_dir_all(&dir).unwrap();
        let meta = format!(
            r#"{{"session_id":"{session}","user_id":"{user}","engine":"scripted","language":"en-US","format":{{"encoding":"pcm_s16le","sample_rate":16000,"channels":1}},"engine_rate":16000,"started_at_ms":1}}"#
        );
        std::fs::write(dir.join("meta.json"), meta).unwrap();
        std::fs::write(dir.join("audio.wav.part"), vec![0u8; 48]).unwrap();
    }
    // The server starts (no panic, no division by zero) and stores none of them.
    let app = TestApp::spawn_in(data_dir, &[], default_engines()).await;
    let list = ApiClient::anonymous(&app).get_json("/v1/sessions").await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 0, "{list}");
    for id in [
        "zero-channels",
        "odd-rate",
        "what-encoding",
        "elsewhere",
        "escape",
    ] {
        assert!(!spool.join(id).exists(), "{id} left in the spool folder");
    }
    let kept = std::fs::read_dir(spool.join(".unreadable"))
        .unwrap()
        .count();
    assert_eq!(
        kept, 5,
        "every untrusted spool is kept aside for an operator"
    );
    assert!(!app.data_path().join("objects/users").exists());
    // And the server works as usual.
    let mut ws = app.connect_ws().await;
    ws.start(16_000, Enc::S16, 1).await;
    ws.stop_and_collect().await.stored();
    app.stop().await;
}
