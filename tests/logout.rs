//! Ending a login ends what it opened: a logout ends the recordings opened
//! with that cookie (audio stored, `closed` `logged_out`), on this instance
//! at once and on another within a heartbeat; and a disabled user's API
//! tokens are refused like its logins. Every test runs against SQLite and
//! against Postgres.

mod common;

use auscult::protocol::CloseReason;
use common::login::*;
use common::*;

on_both_databases!(
    a_logout_ends_the_recording_opened_with_that_login_and_stores_it,
    a_logout_on_another_instance_ends_the_recording_within_a_heartbeat,
    a_recording_opened_with_another_login_of_the_same_user_goes_on,
    a_disabled_users_tokens_are_refused_on_the_api_and_the_upgrade,
);

/// Opens a recording with `cookie` and sends half a second of audio.
async fn record(app: &TestApp, cookie: &LoginCookie) -> (WsClient, String, Vec<u8>) {
    let mut ws = WsClient::connect(&app.ws_url(), &[("cookie", &cookie.header())])
        .await
        .expect("upgrade with the login cookie");
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 0.5);
    ws.send_audio(&audio, 3200).await;
    ws.wait_durable(audio.len() as u64).await;
    (ws, ready.session_id, audio)
}

async fn assert_logged_out_and_stored(
    app: &TestApp,
    ws: &mut WsClient,
    session_id: &str,
    audio: &[u8],
) {
    let end = ws.collect_until_close().await;
    assert_eq!(end.closed_reason(), CloseReason::LoggedOut);
    assert_eq!(end.close_code, Some(1008));
    assert_eq!(end.stored().session_id, session_id);
    assert_stored_objects(app, "alice", session_id, audio, "logged_out");
}

async fn a_logout_ends_the_recording_opened_with_that_login_and_stores_it(db: AccountsDb) {
    db.add_user("alice").await;
    let app = db.spawn_app(&[]).await;
    let cookie = logged_in(&app, "alice").await;
    let (mut ws, session_id, audio) = record(&app, &cookie).await;
    assert_eq!(logout(&app, &cookie).await.status, 204);
    assert_logged_out_and_stored(&app, &mut ws, &session_id, &audio).await;
    app.stop().await;
}

async fn a_logout_on_another_instance_ends_the_recording_within_a_heartbeat(db: AccountsDb) {
    db.add_user("alice").await;
    let fast = [
        ("AUSCULT_CHUNK_FLUSH_SECS", "1"),
        ("AUSCULT_SESSION_STALE_SECS", "30"),
    ];
    let recording = db.spawn_app(&fast).await;
    let other = db.spawn_app(&fast).await;
    let cookie = logged_in(&recording, "alice").await;
    let (mut ws, session_id, audio) = record(&recording, &cookie).await;
    assert_eq!(logout(&other, &cookie).await.status, 204);
    assert_logged_out_and_stored(&recording, &mut ws, &session_id, &audio).await;
    other.stop().await;
    recording.stop().await;
}

async fn a_recording_opened_with_another_login_of_the_same_user_goes_on(db: AccountsDb) {
    db.add_user("alice").await;
    let app = db
        .spawn_app(&[
            ("AUSCULT_CHUNK_FLUSH_SECS", "1"),
            ("AUSCULT_SESSION_STALE_SECS", "30"),
        ])
        .await;
    let workstation = logged_in(&app, "alice").await;
    let phone = logged_in(&app, "alice").await;
    let (mut ws, session_id, audio) = record(&app, &workstation).await;
    assert_eq!(logout(&app, &phone).await.status, 204);
    // Two heartbeats later the workstation's recording is still live.
    ws.drain_for(std::time::Duration::from_secs(3)).await;
    let more = tone(Enc::S16, 16_000, 1, 0.5);
    ws.send_audio(&more, 3200).await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    assert_stored_objects(
        &app,
        "alice",
        &session_id,
        &[audio, more].concat(),
        "client_stop",
    );
    app.stop().await;
}

async fn a_disabled_users_tokens_are_refused_on_the_api_and_the_upgrade(db: AccountsDb) {
    db.add_user("alice").await;
    let app = db
        .spawn_app(&[(
            "AUSCULT_API_TOKENS",
            "alice:alice-token-0001,svc:svc-token-00002",
        )])
        .await;
    let alice = ApiClient::new(&app, "alice-token-0001");
    assert_eq!(alice.get("/v1/sessions").await.status, 200);
    db.accounts()
        .await
        .disable_user("alice", "test")
        .await
        .unwrap();
    let refused = alice.get("/v1/sessions").await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.error_code(), "user_disabled");
    let upgrade = WsClient::connect(
        &app.ws_url(),
        &[("authorization", "Bearer alice-token-0001")],
    )
    .await;
    assert_eq!(upgrade.err().as_ref().and_then(refused_status), Some(403));
    // A token whose user has no account is not affected.
    assert_eq!(
        ApiClient::new(&app, "svc-token-00002")
            .get("/v1/sessions")
            .await
            .status,
        200
    );
    app.stop().await;
}
