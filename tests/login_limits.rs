//! Failed-login rate limits and the password-hashing bound (docs/api.md
//! "Accounts and login"): per username and address, per username from
//! anywhere, per address; counted before the hash, so a parallel burst gets
//! no more hashes than the limits allow; a flood answered `busy`; and the
//! client address believed only from a trusted proxy. Every test runs
//! against SQLite and against Postgres.

mod common;

use common::login::*;

on_both_databases!(
    wrong_passwords_for_one_user_lock_out_that_address_not_the_owner,
    guesses_from_many_addresses_hit_a_higher_ceiling_for_the_username,
    two_hundred_parallel_wrong_logins_get_only_the_limits_worth_of_hashes,
    a_flood_of_logins_is_answered_busy_instead_of_queueing_without_end,
    failures_from_one_address_are_limited_across_usernames,
    forwarded_headers_from_a_peer_that_is_not_a_trusted_proxy_change_nothing,
);

async fn wrong_passwords_for_one_user_lock_out_that_address_not_the_owner(db: AccountsDb) {
    db.add_user("alice").await;
    db.add_user("bob").await;
    let app = db.spawn_app(&[]).await;
    let attacker = "198.51.100.66";
    for i in 0..5 {
        let reply = login_from(&app, attacker, "alice", "wrong password!").await;
        assert_eq!(reply.status, 401, "attempt {i}: {reply:?}");
        assert_eq!(reply.code(), "bad_credentials");
    }
    // The sixth attempt from there is refused, even with the right password.
    let limited = login_from(&app, attacker, "alice", PASSWORD).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.code(), "too_many_attempts");
    let retry = limited.retry_after.expect("Retry-After");
    assert!((1..=15 * 60).contains(&retry), "Retry-After {retry}");
    assert!(limited.cookie.is_none());
    // Alice at her own workstation is not locked out, and her login does
    // not unlock the attacker's address.
    assert_eq!(
        login_from(&app, "198.51.100.10", "alice", PASSWORD)
            .await
            .status,
        200
    );
    assert_eq!(
        login_from(&app, attacker, "alice", PASSWORD).await.status,
        429
    );
    // Another user from the attacker's address is not affected.
    assert_eq!(
        login_from(&app, attacker, "bob", PASSWORD).await.status,
        200
    );

    let failed = db.audit("login_failed").await;
    assert_eq!(failed.len(), 7, "{failed:?}");
    for row in &failed[..5] {
        assert_eq!(
            *row,
            audit_row(
                "login_failed",
                Some("alice"),
                Some(attacker),
                Some("bad_password")
            )
        );
    }
    for row in &failed[5..] {
        assert_eq!(
            *row,
            audit_row(
                "login_failed",
                Some("alice"),
                Some(attacker),
                Some("rate_limited")
            )
        );
    }
    let metrics = reqwest::get(app.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["bad_password", "rate_limited", "ok"] {
        let series = format!("auscult_logins_total{{outcome=\"{outcome}\"}}");
        assert!(metrics.contains(&series), "{series} missing");
    }
    app.stop().await;
}

async fn guesses_from_many_addresses_hit_a_higher_ceiling_for_the_username(db: AccountsDb) {
    db.add_user("alice").await;
    let app = db.spawn_app(&[]).await;
    // 50 addresses, one wrong guess each: under every per-address limit.
    for i in 0..50 {
        let reply = login_from(
            &app,
            &format!("198.51.{}.{}", i / 200, i % 200 + 1),
            "alice",
            "wrong!!!!!!",
        )
        .await;
        assert_eq!(reply.status, 401, "guess {i}: {reply:?}");
    }
    let limited = login_from(&app, "203.0.113.200", "alice", PASSWORD).await;
    assert_eq!(
        limited.status, 429,
        "the 51st guess for alice, from anywhere: {limited:?}"
    );
    assert!(limited.retry_after.is_some());
    app.stop().await;
}

async fn two_hundred_parallel_wrong_logins_get_only_the_limits_worth_of_hashes(db: AccountsDb) {
    db.add_user("alice").await;
    let app = db.spawn_app(&[]).await;
    let attempts = (0..200).map(|_| login_from(&app, "198.51.100.77", "alice", "wrong password!"));
    let replies = futures_util::future::join_all(attempts).await;
    let checked = replies.iter().filter(|r| r.status == 401).count();
    let refused = replies
        .iter()
        .filter(|r| r.status == 429 && r.code() == "too_many_attempts")
        .count();
    // Every 401 is one argon2 hash; the burst gets exactly the limit's worth.
    assert_eq!(
        checked,
        5,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(refused, 195);
    let failed = db.audit("login_failed").await;
    let bad = failed
        .iter()
        .filter(|r| r.detail.as_deref() == Some("bad_password"))
        .count();
    assert_eq!(bad, 5);
    app.stop().await;
}

async fn a_flood_of_logins_is_answered_busy_instead_of_queueing_without_end(db: AccountsDb) {
    let app = db.spawn_app(&[]).await;
    // Unknown users from distinct addresses: no rate limit applies, every
    // one of them costs a hash, far more than the hash queue holds.
    let attempts = (0..300).map(|i| {
        let ip = format!("10.{}.{}.{}", i / 60000, i / 250 % 250, i % 250 + 1);
        let app = &app;
        async move { login_from(app, &ip, &format!("nobody-{i}"), "some password!").await }
    });
    let replies = futures_util::future::join_all(attempts).await;
    let busy: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(!busy.is_empty(), "300 parallel hashes and none refused");
    for reply in &busy {
        assert_eq!(reply.code(), "busy", "{reply:?}");
        assert!(reply.retry_after.is_some(), "{reply:?}");
    }
    assert!(replies.iter().all(|r| r.status == 401 || r.status == 503));
    // Busy refusals are not failures: nobody's address was counted for them,
    // and the audit log has one row per checked password only.
    let failed = db.audit("login_failed").await;
    assert_eq!(failed.len(), 300 - busy.len());
    app.stop().await;
}

async fn failures_from_one_address_are_limited_across_usernames(db: AccountsDb) {
    db.add_user("alice").await;
    db.add_user("bob").await;
    let app = db.spawn_app(&[]).await;
    let ip = "203.0.113.7";
    for i in 0..19 {
        let reply = login_from(&app, ip, &format!("nobody-{i}"), "wrong password!").await;
        assert_eq!(reply.status, 401, "attempt {i}: {reply:?}");
    }
    // A success in between does not reset the address's count for others.
    assert_eq!(login_from(&app, ip, "alice", PASSWORD).await.status, 200);
    assert_eq!(
        login_from(&app, ip, "bob", "wrong password!").await.status,
        401
    );

    let limited = login_from(&app, ip, "alice", PASSWORD).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert!(limited.retry_after.is_some());
    // What the client puts before the balancer's entry does not get it out.
    let spoofed = login(
        &app,
        "alice",
        PASSWORD,
        &[("x-forwarded-for", &format!("192.0.2.1, {ip}"))],
    )
    .await;
    assert_eq!(spoofed.status, 429, "{spoofed:?}");
    // Another address is fine.
    assert_eq!(
        login_from(&app, "203.0.113.8", "alice", PASSWORD)
            .await
            .status,
        200
    );

    let failed = db.audit("login_failed").await;
    let reasons: Vec<_> = failed.iter().filter_map(|r| r.detail.as_deref()).collect();
    assert_eq!(reasons.iter().filter(|r| **r == "unknown_user").count(), 19);
    assert_eq!(reasons.iter().filter(|r| **r == "rate_limited").count(), 2);
    assert!(failed.iter().all(|r| r.ip.as_deref() == Some(ip)));
    app.stop().await;
}

async fn forwarded_headers_from_a_peer_that_is_not_a_trusted_proxy_change_nothing(db: AccountsDb) {
    db.add_user("alice").await;
    // No trusted proxies: the test client is just a client.
    let app = db.spawn_app(&[("AUSCULT_TRUSTED_PROXIES", "")]).await;
    for i in 0..5 {
        let reply = login_from(&app, &format!("198.51.100.{i}"), "alice", "wrong password!").await;
        assert_eq!(reply.status, 401, "attempt {i}: {reply:?}");
    }
    // A new made-up address does not get around the limit of the real one.
    let limited = login_from(&app, "203.0.113.99", "alice", PASSWORD).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    let failed = db.audit("login_failed").await;
    assert!(
        failed.iter().all(|r| r.ip.as_deref() == Some("127.0.0.1")),
        "{failed:?}"
    );
    // Nor does a made-up X-Forwarded-Proto mark the cookie Secure.
    db.add_user("bob").await;
    let reply = login(&app, "bob", PASSWORD, &[("x-forwarded-proto", "https")]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(!reply.login_cookie().has("Secure"), "{reply:?}");
    app.stop().await;
}
