//! Storage outages at close that outlast the process: the session kept as
//! `storage_pending` is stored by the next process. (Outages the running
//! process rides out, for both storage pairs, are in `session_storage.rs`.)

mod common;

use std::path::Path;

use common::{Enc, TestApp, default_engines, tone};

/// Makes the folder object store fail: its root becomes a regular file.
fn break_storage(data_dir: &Path) {
    let objects = data_dir.join("objects");
    std::fs::rename(&objects, data_dir.join("objects.away")).unwrap();
    std::fs::write(&objects, b"not a folder").unwrap();
}

fn repair_storage(data_dir: &Path) {
    let objects = data_dir.join("objects");
    std::fs::remove_file(&objects).unwrap();
    std::fs::rename(data_dir.join("objects.away"), &objects).unwrap();
}

/// Streams `audio`, stops, and checks the session ended `storage_pending` with no `stored`.
async fn stream_into_an_outage(app: &TestApp, audio: &[u8]) -> String {
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    ws.send_audio(audio, 3200).await;
    ws.wait_durable(audio.len() as u64).await;
    let end = ws.stop_and_collect().await;
    end.assert_storage_pending();
    assert_eq!(end.close_code, Some(1011));
    let spool = app.data_path().join("spool").join(&ready.session_id);
    assert!(spool.join("audio.wav.part").is_file(), "the spool is kept");
    ready.session_id
}

#[tokio::test]
async fn a_pending_session_survives_a_restart_and_is_stored_by_the_next_process() {
    // A long retry interval: only the restart can store it.
    let app = TestApp::spawn_env(&[("AUSCULT_STORAGE_RETRY_SECS", "3600")]).await;
    break_storage(app.data_path());
    let audio = tone(Enc::S16, 16_000, 1, 1.0);
    let session_id = stream_into_an_outage(&app, &audio).await;
    let data_dir = app.stop().await;

    repair_storage(data_dir.path());
    let app = TestApp::spawn_in(data_dir, &[], default_engines()).await;
    let stored = app.stored("local", &session_id).await;
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    stored.assert_status("stored", "client_stop");
    app.stop().await;
}
