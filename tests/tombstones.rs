//! A deleted recording never comes back: not from a spool left behind by a
//! crash (restored at the next start), nor from a pending retry of one.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use reqwest::Method;

/// Copies a folder's files (a spool is one flat folder).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Records a session, keeping a copy of its spool from mid-recording (what
/// a crash between storing and removing the spool leaves), then deletes it.
async fn record_copy_and_delete(app: &TestApp, keep: &Path) -> String {
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 1.0);
    ws.send_audio(&audio, 3200).await;
    ws.wait_durable(audio.len() as u64).await;
    copy_dir(&app.data_path().join("spool").join(&ready.session_id), keep);
    ws.stop_and_collect().await.stored();
    let deleted = ApiClient::anonymous(app)
        .send(
            Method::DELETE,
            &format!("/v1/sessions/{}", ready.session_id),
            &[],
        )
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    ready.session_id
}

fn session_objects(app: &TestApp, id: &str) -> PathBuf {
    app.object_path(&format!("users/local/audio/sessions/{id}"))
}

async fn assert_gone(app: &TestApp, id: &str) {
    let answer = ApiClient::anonymous(app)
        .get(&format!("/v1/sessions/{id}"))
        .await;
    assert_eq!(
        answer.status, 404,
        "the deleted session is back: {answer:?}"
    );
    assert!(
        !session_objects(app, id).exists(),
        "objects of the deleted session were uploaded again"
    );
    let list = ApiClient::anonymous(app).get_json("/v1/sessions").await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 0, "{list}");
}

#[tokio::test]
async fn a_leftover_spool_of_a_deleted_session_is_removed_at_start_not_stored() {
    let keep = tempfile::tempdir().unwrap();
    let app = TestApp::spawn().await;
    let id = record_copy_and_delete(&app, keep.path()).await;
    let data_dir = app.stop().await;
    let spool = data_dir.path().join("spool").join(&id);
    copy_dir(keep.path(), &spool);

    let app = TestApp::spawn_in(data_dir, &[], default_engines()).await;
    assert!(!spool.exists(), "the leftover spool is still there");
    assert_gone(&app, &id).await;
    app.stop().await;
}

#[tokio::test]
async fn a_pending_retry_of_a_deleted_session_removes_it_instead() {
    let keep = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_env(&[("AUSCULT_STORAGE_RETRY_SECS", "1")]).await;
    let id = record_copy_and_delete(&app, keep.path()).await;
    // A spool whose store "failed" earlier: marked closed, retried in the background.
    let spool = app.data_path().join("spool").join(&id);
    copy_dir(keep.path(), &spool);
    std::fs::write(
        spool.join("closed.json"),
        r#"{"close_reason":"client_stop","ended_at_ms":1763700000000}"#,
    )
    .unwrap();
    poll_until(|| async {
        match spool.exists() {
            false => Ok(()),
            true => Err("the retry has not dealt with the spool".to_owned()),
        }
    })
    .await;
    assert_gone(&app, &id).await;
    app.stop().await;
}
