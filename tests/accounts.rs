//! Accounts and login (docs/api.md "Accounts and login"): the login cookie and
//! its attributes, id rotation, logout, idle logoff (the rate limits are in
//! `tests/login_limits.rs`), disabled users, the audit log, the cookie on the
//! WebSocket upgrade, and the loopback `local` user giving way once an account
//! exists. Every test runs against SQLite and against Postgres.

mod common;

use std::time::Duration;

use auscult::protocol::CloseReason;
use common::login::*;
use common::*;
use secrecy::SecretString;

on_both_databases!(
    a_login_sets_an_http_only_strict_cookie_that_authenticates_the_caller,
    a_login_behind_tls_gets_a_secure_cookie,
    a_form_login_works_like_a_json_one,
    a_malformed_login_is_a_400,
    logging_in_gives_a_fresh_session_id_and_the_old_one_stops_working,
    logout_ends_the_cookie_session,
    a_login_ends_after_the_idle_time_without_requests,
    a_disabled_user_cannot_log_in_and_its_cookie_stops_working,
    unknown_users_wrong_passwords_and_disabled_users_get_the_same_answer,
    local_mode_ends_once_an_enabled_account_exists,
    a_login_cookie_opens_a_websocket_whose_session_is_stored_under_that_user,
    an_open_websocket_keeps_its_login_alive,
    bearer_tokens_still_work_beside_accounts,
    a_user_disabled_while_recording_is_cut_off_with_what_was_sent_stored,
);

async fn a_login_sets_an_http_only_strict_cookie_that_authenticates_the_caller(db: AccountsDb) {
    db.add_user("alice").await;
    let app = db.spawn_app(&[]).await;

    let reply = login(&app, "alice", PASSWORD, &[]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["user"], "alice");
    let cookie = reply.login_cookie();
    assert!(cookie.has("HttpOnly"), "{cookie:?}");
    assert_eq!(cookie.attr("SameSite"), Some("Strict"), "{cookie:?}");
    assert_eq!(cookie.attr("Path"), Some("/"), "{cookie:?}");
    assert!(
        !cookie.has("Secure"),
        "plain http gets no Secure: {cookie:?}"
    );
    // The server ends the login, not the browser.
    assert_eq!(cookie.attr("Max-Age"), None, "{cookie:?}");

    let who = me(&app, Some(cookie)).await;
    assert_eq!(who.status, 200, "{who:?}");
    assert_eq!(who.body["user"], "alice");
    assert_eq!(who.body["via"], "cookie");
    // With an account, nobody is `local` any more.
    let anonymous = me(&app, None).await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert_eq!(anonymous.code(), "missing_credentials");

    // One session row, for alice, that does not hold the cookie's id.
    let rows = db.web_sessions().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].1.as_deref(), Some("alice"));
    assert!(!rows[0].0.contains(&cookie.value) && !rows[0].2.contains(&cookie.value));

    assert_eq!(
        db.audit("login").await,
        [audit_row("login", Some("alice"), Some("127.0.0.1"), None)]
    );
    app.stop().await;
}

async fn a_login_behind_tls_gets_a_secure_cookie(db: AccountsDb) {
    db.add_user("alice").await;
    let app = db.spawn_app(&[]).await;
    let reply = login(&app, "alice", PASSWORD, &[("x-forwarded-proto", "https")]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let cookie = reply.login_cookie();
    assert!(cookie.has("Secure"), "{cookie:?}");
    assert!(cookie.has("HttpOnly") && cookie.attr("SameSite") == Some("Strict"));
    assert_eq!(me(&app, Some(cookie)).await.body["user"], "alice");
    app.stop().await;
}

async fn a_form_login_works_like_a_json_one(db: AccountsDb) {
    db.add_user("alice").await;
    let app = db.spawn_app(&[]).await;
    let form = "username=alice&password=correct+horse+battery".to_owned();
    let reply = post(
        &app,
        "/v1/auth/login",
        "application/x-www-form-urlencoded",
        form,
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["user"], "alice");
    assert_eq!(me(&app, Some(reply.login_cookie())).await.status, 200);
    app.stop().await;
}

async fn a_malformed_login_is_a_400(db: AccountsDb) {
    let app = db.spawn_app(&[]).await;
    let reply = post(
        &app,
        "/v1/auth/login",
        "application/json",
        r#"{"username":"alice"}"#.into(),
        &[],
    )
    .await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.code(), "invalid_request");
    assert!(reply.cookie.is_none());
    app.stop().await;
}

async fn logging_in_gives_a_fresh_session_id_and_the_old_one_stops_working(db: AccountsDb) {
    db.add_user("alice").await;
    db.add_user("bob").await;
    let app = db.spawn_app(&[]).await;
    let first = logged_in(&app, "alice").await;

    // Logging in again from the same browser (sending the old cookie), as bob.
    let reply = login(&app, "bob", PASSWORD, &[("cookie", &first.header())]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let second = reply.login_cookie().clone();
    assert_ne!(
        second.value, first.value,
        "the session id must change at login"
    );

    assert_eq!(me(&app, Some(&first)).await.status, 401);
    let who = me(&app, Some(&second)).await;
    assert_eq!(who.body["user"], "bob", "{who:?}");
    let rows = db.web_sessions().await;
    assert_eq!(rows.len(), 1, "the old session row is gone: {rows:?}");
    assert_eq!(rows[0].1.as_deref(), Some("bob"));
    app.stop().await;
}

async fn logout_ends_the_cookie_session(db: AccountsDb) {
    db.add_user("alice").await;
    let app = db.spawn_app(&[]).await;
    let cookie = logged_in(&app, "alice").await;

    let reply = logout(&app, &cookie).await;
    assert_eq!(reply.status, 204, "{reply:?}");
    let cleared = reply.login_cookie();
    assert!(cleared.value.is_empty(), "{cleared:?}");
    assert_eq!(cleared.attr("Max-Age"), Some("0"), "{cleared:?}");

    let after = me(&app, Some(&cookie)).await;
    assert_eq!(after.status, 401, "{after:?}");
    assert!(db.web_sessions().await.is_empty());
    assert_eq!(
        db.audit("logout").await,
        [audit_row("logout", Some("alice"), Some("127.0.0.1"), None)]
    );
    // Logging out without a login is harmless.
    assert_eq!(logout(&app, &cookie).await.status, 204);
    assert_eq!(db.audit("logout").await.len(), 1);
    app.stop().await;
}

async fn a_login_ends_after_the_idle_time_without_requests(db: AccountsDb) {
    db.add_user("alice").await;
    let app = db.spawn_app(&[("AUSCULT_LOGIN_IDLE_SECS", "2")]).await;
    let cookie = logged_in(&app, "alice").await;

    // Requests keep it alive well past 2 s in all...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let who = me(&app, Some(&cookie)).await;
        assert_eq!(who.status, 200, "still active: {who:?}");
    }
    // ...and 2 s without one end it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = me(&app, Some(&cookie)).await;
    assert_eq!(after.status, 401, "{after:?}");
    assert_eq!(after.code(), "missing_credentials");
    // The browser is told to drop the dead cookie, and the row is cleaned up.
    assert_eq!(after.login_cookie().attr("Max-Age"), Some("0"));
    poll_until(|| async {
        let rows = db.web_sessions().await;
        match rows.is_empty() {
            true => Ok(()),
            false => Err(format!("expired login rows not deleted: {rows:?}")),
        }
    })
    .await;
    app.stop().await;
}

async fn a_disabled_user_cannot_log_in_and_its_cookie_stops_working(db: AccountsDb) {
    db.add_user("alice").await;
    db.add_user("bob").await;
    let app = db.spawn_app(&[]).await;
    let alice = logged_in(&app, "alice").await;
    let bob = logged_in(&app, "bob").await;

    db.accounts()
        .await
        .disable_user("alice", "test")
        .await
        .expect("disable alice");
    assert_eq!(me(&app, Some(&alice)).await.status, 401);
    assert_eq!(me(&app, Some(&bob)).await.status, 200, "bob is untouched");

    let reply = login(&app, "alice", PASSWORD, &[]).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(reply.code(), "bad_credentials");
    assert!(db.user_row("alice").await.unwrap().disabled);
    assert_eq!(
        db.audit("user_disabled").await,
        [audit_row(
            "user_disabled",
            Some("alice"),
            None,
            Some("test")
        )]
    );
    assert_eq!(
        db.audit("login_failed").await,
        [audit_row(
            "login_failed",
            Some("alice"),
            Some("127.0.0.1"),
            Some("disabled")
        )]
    );
    let sessions = db.web_sessions().await;
    assert!(
        sessions.iter().all(|s| s.1.as_deref() == Some("bob")),
        "{sessions:?}"
    );
    app.stop().await;
}

async fn unknown_users_wrong_passwords_and_disabled_users_get_the_same_answer(db: AccountsDb) {
    db.add_user("alice").await;
    db.add_user("carol").await;
    db.accounts()
        .await
        .disable_user("carol", "test")
        .await
        .unwrap();
    let app = db.spawn_app(&[]).await;
    let wrong = login(&app, "alice", "not her password", &[]).await;
    let unknown = login(&app, "mallory", PASSWORD, &[]).await;
    let disabled = login(&app, "carol", PASSWORD, &[]).await;
    for reply in [&wrong, &unknown, &disabled] {
        assert_eq!(reply.status, 401, "{reply:?}");
        assert_eq!(reply.body, wrong.body);
        assert!(reply.cookie.is_none());
    }
    let reasons: Vec<_> = db
        .audit("login_failed")
        .await
        .into_iter()
        .map(|r| (r.user_id.unwrap(), r.detail.unwrap()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("alice".to_owned(), "bad_password".to_owned()),
            ("mallory".to_owned(), "unknown_user".to_owned()),
            ("carol".to_owned(), "disabled".to_owned()),
        ]
    );
    app.stop().await;
}

async fn local_mode_ends_once_an_enabled_account_exists(db: AccountsDb) {
    let app = db.spawn_app(&[]).await;
    let who = me(&app, None).await;
    assert_eq!(who.status, 200, "{who:?}");
    assert_eq!(who.body["user"], "local");
    assert_eq!(who.body["via"], "local");
    let mut ws = app.connect_ws().await;
    ws.start(16_000, Enc::S16, 1).await;
    ws.stop_and_collect().await;

    db.add_user("alice").await;
    let refused = me(&app, None).await;
    assert_eq!(refused.status, 401, "{refused:?}");
    let upgrade = WsClient::connect(&app.ws_url(), &[]).await;
    assert_eq!(upgrade.err().as_ref().and_then(refused_status), Some(401));
    // A made-up token is no way back in either.
    let token = get(
        &app,
        "/v1/auth/me",
        &[("authorization", "Bearer whatever-token")],
    )
    .await;
    assert_eq!(token.status, 401, "{token:?}");
    assert_eq!(token.code(), "invalid_token");

    // Local mode is for a machine with no account at all: disabling the
    // only one does not reopen it.
    db.accounts()
        .await
        .disable_user("alice", "test")
        .await
        .unwrap();
    let after = me(&app, None).await;
    assert_eq!(after.status, 401, "{after:?}");
    app.stop().await;
}

async fn a_login_cookie_opens_a_websocket_whose_session_is_stored_under_that_user(db: AccountsDb) {
    db.add_user("alice").await;
    let app = db.spawn_app(&[]).await;
    let cookie = logged_in(&app, "alice").await;

    let mut ws = WsClient::connect(&app.ws_url(), &[("cookie", &cookie.header())])
        .await
        .expect("upgrade with the login cookie");
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 0.5);
    ws.send_audio(&audio, 3200).await;
    let end = ws.stop_and_collect().await;
    let key = format!("users/alice/audio/sessions/{}/audio.wav", ready.session_id);
    assert_eq!(end.stored().audio, key);
    let wav = parse_wav(&std::fs::read(app.object_path(&key)).expect("stored audio"));
    assert!(wav.data == audio, "stored audio differs from what was sent");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(app.object_path(&key.replace("audio.wav", "manifest.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["user_id"], "alice");

    // The cookie is checked against the origin like any credential.
    let foreign = WsClient::connect(
        &app.ws_url(),
        &[
            ("cookie", &cookie.header()),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(foreign.err().as_ref().and_then(refused_status), Some(403));
    // And a dead cookie opens nothing.
    logout(&app, &cookie).await;
    let after = WsClient::connect(&app.ws_url(), &[("cookie", &cookie.header())]).await;
    assert_eq!(after.err().as_ref().and_then(refused_status), Some(401));
    app.stop().await;
}

async fn an_open_websocket_keeps_its_login_alive(db: AccountsDb) {
    db.add_user("alice").await;
    let app = db
        .spawn_app(&[
            ("AUSCULT_LOGIN_IDLE_SECS", "2"),
            ("AUSCULT_IDLE_TIMEOUT_SECS", "30"),
        ])
        .await;
    let cookie = logged_in(&app, "alice").await;
    let mut ws = WsClient::connect(&app.ws_url(), &[("cookie", &cookie.header())])
        .await
        .expect("upgrade with the login cookie");
    ws.start(16_000, Enc::S16, 1).await;
    // Recording with no other request for longer than the idle time.
    let audio = tone(Enc::S16, 16_000, 1, 0.1);
    for _ in 0..7 {
        ws.send_audio(&audio, 3200).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        me(&app, Some(&cookie)).await.status,
        200,
        "alive while recording"
    );
    ws.stop_and_collect().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        me(&app, Some(&cookie)).await.status,
        401,
        "idle after the socket closed"
    );
    app.stop().await;
}

async fn bearer_tokens_still_work_beside_accounts(db: AccountsDb) {
    db.add_user("alice").await;
    let app = db
        .spawn_app(&[("AUSCULT_API_TOKENS", "bob:bob-token-0001")])
        .await;
    let bob = get(
        &app,
        "/v1/auth/me",
        &[("authorization", "Bearer bob-token-0001")],
    )
    .await;
    assert_eq!(bob.status, 200, "{bob:?}");
    assert_eq!(bob.body["user"], "bob");
    assert_eq!(bob.body["via"], "token");
    let query = get(&app, "/v1/auth/me?access_token=bob-token-0001", &[]).await;
    assert_eq!(query.body["via"], "token");
    let cookie = logged_in(&app, "alice").await;
    assert_eq!(me(&app, Some(&cookie)).await.body["via"], "cookie");
    assert_eq!(me(&app, None).await.status, 401);
    app.stop().await;
}

#[tokio::test]
async fn a_session_resumed_with_the_login_cookie_stays_with_its_user() {
    let db = AccountsDb::sqlite().await;
    db.add_user("alice").await;
    db.accounts()
        .await
        .add_user("bob", SecretString::from("bobs password!"), "test")
        .await
        .unwrap();
    let app = db.spawn_app(&[]).await;
    let alice = logged_in(&app, "alice").await;
    let bob = login(&app, "bob", "bobs password!", &[])
        .await
        .login_cookie()
        .clone();
    let audio = tone(Enc::S16, 16_000, 1, 1.0);

    let mut ws = WsClient::connect(&app.ws_url(), &[("cookie", &alice.header())])
        .await
        .unwrap();
    let id = ws.start(16_000, Enc::S16, 1).await.session_id;
    ws.send_audio(&audio[..16_000], 3200).await;
    ws.wait_durable(16_000).await;
    ws.drop_abruptly();

    // Bob's cookie cannot take it over; alice's resumes it.
    let mut other = WsClient::connect(&app.ws_url(), &[("cookie", &bob.header())])
        .await
        .unwrap();
    other.send_resume(16_000, Enc::S16, 1, &id, 16_000).await;
    other
        .expect_error(auscult::protocol::ErrorCode::UnknownSession)
        .await;
    let mut ws = WsClient::connect(&app.ws_url(), &[("cookie", &alice.header())])
        .await
        .unwrap();
    let ready = ws.resume(16_000, Enc::S16, 1, &id, 16_000).await;
    let from = ready.resume_from_bytes.unwrap() as usize;
    ws.send_audio(&audio[from..], 3200).await;
    ws.stop_and_collect().await;
    let key = format!("users/alice/audio/sessions/{id}/audio.wav");
    let wav = parse_wav(&std::fs::read(app.object_path(&key)).expect("stored audio"));
    assert!(wav.data == audio);
    app.stop().await;
}

async fn a_user_disabled_while_recording_is_cut_off_with_what_was_sent_stored(db: AccountsDb) {
    db.add_user("alice").await;
    db.add_user("bob").await;
    // Instances look for disabled users once per heartbeat interval.
    let app = db
        .spawn_app(&[
            ("AUSCULT_CHUNK_FLUSH_SECS", "1"),
            ("AUSCULT_SESSION_STALE_SECS", "5"),
        ])
        .await;
    let mut recording = Vec::new();
    for user in ["alice", "bob"] {
        let cookie = logged_in(&app, user).await;
        let mut ws = WsClient::connect(&app.ws_url(), &[("cookie", &cookie.header())])
            .await
            .expect("upgrade with the login cookie");
        let ready = ws.start(16_000, Enc::S16, 1).await;
        let audio = tone(Enc::S16, 16_000, 1, 0.5);
        ws.send_audio(&audio, 3200).await;
        ws.wait_durable(audio.len() as u64).await;
        recording.push((cookie, ws, ready.session_id, audio));
    }

    // Disabled from another process, as an operator would: only the database changes.
    let url = db.url();
    let out = common::process::command(&[("AUSCULT_DATABASE_URL", url.as_str())])
        .args(["users", "disable", "alice"])
        .output()
        .await
        .expect("run auscult users disable");
    assert!(out.status.success(), "{out:?}");

    let (alice_cookie, mut alice_ws, alice_session, alice_audio) = recording.remove(0);
    let end = alice_ws.collect_until_close().await;
    assert_eq!(end.closed_reason(), CloseReason::AccessRevoked);
    let key = format!("users/alice/audio/sessions/{alice_session}/audio.wav");
    assert_eq!(end.stored().audio, key);
    assert_stored_objects(
        &app,
        "alice",
        &alice_session,
        &alice_audio,
        "access_revoked",
    );
    let again = WsClient::connect(&app.ws_url(), &[("cookie", &alice_cookie.header())]).await;
    assert_eq!(again.err().as_ref().and_then(refused_status), Some(401));

    // Bob records on, untouched.
    let (_, mut bob_ws, bob_session, mut bob_audio) = recording.remove(0);
    let more = tone(Enc::S16, 16_000, 1, 0.5);
    bob_ws.send_audio(&more, 3200).await;
    bob_audio.extend_from_slice(&more);
    let end = bob_ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    let key = format!("users/bob/audio/sessions/{bob_session}/audio.wav");
    let wav = parse_wav(&std::fs::read(app.object_path(&key)).expect("stored audio"));
    assert!(wav.data == bob_audio, "everything bob sent is stored");
    app.stop().await;
}
