//! `auscult users add|list|disable`, run as the real binary against SQLite and
//! Postgres: what it writes is what the server logs in with.

mod common;

use std::process::Stdio;

use common::login::*;
use common::process::command;
use tokio::io::AsyncWriteExt;

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `auscult <args>` on the database, writing `stdin` to it.
async fn auscult(db: &AccountsDb, args: &[&str], stdin: &str) -> Run {
    let url = db.url();
    let mut child = command(&[("AUSCULT_DATABASE_URL", url.as_str())])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn auscult");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    let out = tokio::time::timeout(common::WAIT, child.wait_with_output())
        .await
        .expect("auscult finishes")
        .expect("auscult output");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn add(db: &AccountsDb, name: &str, password: &str) -> Run {
    auscult(
        db,
        &["users", "add", name, "--password-stdin"],
        &format!("{password}\n"),
    )
    .await
}

/// `(name, disabled)` per row of `users list`, after its header.
fn listed(run: &Run) -> Vec<(String, String)> {
    let mut lines = run.stdout.lines();
    let header: Vec<_> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "DISABLED", "CREATED"], "{run:?}");
    lines
        .map(|l| {
            let cols: Vec<_> = l.split_whitespace().collect();
            assert_eq!(cols.len(), 3, "{l:?}");
            assert!(cols[2].ends_with('Z') && cols[2].contains('T'), "{l:?}");
            (cols[0].to_owned(), cols[1].to_owned())
        })
        .collect()
}

on_both_databases!(
    users_added_listed_and_disabled_on_the_command_line_are_the_ones_the_server_knows,
    bad_names_short_passwords_and_duplicates_are_refused_with_a_clear_message,
    a_public_address_without_tokens_needs_an_account_before_the_server_starts,
);

async fn users_added_listed_and_disabled_on_the_command_line_are_the_ones_the_server_knows(
    db: AccountsDb,
) {
    let run = add(&db, "alice", PASSWORD).await;
    assert!(run.ok, "{run:?}");
    assert!(run.stdout.contains("added user alice"), "{run:?}");
    let run = add(&db, "dr.bob@clinic", "another long password").await;
    assert!(run.ok, "{run:?}");

    let hash = db
        .user_row("alice")
        .await
        .expect("alice's row")
        .password_hash;
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));

    let list = auscult(&db, &["users", "list"], "").await;
    assert!(list.ok, "{list:?}");
    assert_eq!(
        listed(&list),
        [
            ("alice".into(), "no".into()),
            ("dr.bob@clinic".into(), "no".into())
        ]
    );

    // The server logs in with what the command line wrote.
    let app = db.spawn_app(&[]).await;
    let cookie = logged_in(&app, "alice").await;
    let bob = login(&app, "dr.bob@clinic", "another long password", &[]).await;
    assert_eq!(bob.status, 200, "{bob:?}");

    let run = auscult(&db, &["users", "disable", "alice"], "").await;
    assert!(run.ok, "{run:?}");
    assert!(run.stdout.contains("disabled user alice"), "{run:?}");
    assert_eq!(
        me(&app, Some(&cookie)).await.status,
        401,
        "alice's login ended"
    );
    assert_eq!(login(&app, "alice", PASSWORD, &[]).await.status, 401);
    let again = auscult(&db, &["users", "disable", "alice"], "").await;
    assert!(
        again.ok && again.stdout.contains("already disabled"),
        "{again:?}"
    );

    let list = auscult(&db, &["users", "list"], "").await;
    assert_eq!(
        listed(&list),
        [
            ("alice".into(), "yes".into()),
            ("dr.bob@clinic".into(), "no".into())
        ]
    );
    let added: Vec<_> = db
        .audit("user_added")
        .await
        .into_iter()
        .map(|r| r.user_id.unwrap())
        .collect();
    assert_eq!(added, ["alice", "dr.bob@clinic"]);
    assert_eq!(db.audit("user_disabled").await.len(), 1);
    app.stop().await;
}

async fn bad_names_short_passwords_and_duplicates_are_refused_with_a_clear_message(db: AccountsDb) {
    let short = add(&db, "alice", "123456789").await;
    assert!(!short.ok, "{short:?}");
    assert!(short.stderr.contains("at least 10 characters"), "{short:?}");

    let bad_name = add(&db, "../etc", PASSWORD).await;
    assert!(!bad_name.ok, "{bad_name:?}");
    assert!(bad_name.stderr.contains("invalid username"), "{bad_name:?}");

    assert!(add(&db, "alice", PASSWORD).await.ok);
    let duplicate = add(&db, "alice", "a different password").await;
    assert!(!duplicate.ok, "{duplicate:?}");
    assert!(duplicate.stderr.contains("already exists"), "{duplicate:?}");

    let unknown = auscult(&db, &["users", "disable", "nobody"], "").await;
    assert!(!unknown.ok, "{unknown:?}");
    assert!(unknown.stderr.contains("no such user"), "{unknown:?}");

    let list = auscult(&db, &["users", "list"], "").await;
    assert_eq!(listed(&list), [("alice".into(), "no".into())]);
    assert_eq!(db.audit("user_added").await.len(), 1);
}

async fn a_public_address_without_tokens_needs_an_account_before_the_server_starts(db: AccountsDb) {
    let data = tempfile::tempdir().unwrap();
    let port = common::process::free_port();
    let listen = format!("0.0.0.0:{port}");
    let url = db.url();
    let env = [
        ("AUSCULT_DATABASE_URL", url.as_str()),
        ("AUSCULT_ENGINE", "loadtest"),
        ("AUSCULT_LISTEN", listen.as_str()),
        ("AUSCULT_DATA_DIR", data.path().to_str().unwrap()),
    ];
    let refused = tokio::time::timeout(common::WAIT, command(&env).output())
        .await
        .expect("auscult exits")
        .expect("run auscult");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "must not start: {stderr}");
    assert!(stderr.contains("auscult users add"), "{stderr}");

    assert!(add(&db, "alice", PASSWORD).await.ok);
    let mut server = command(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn auscult");
    let health = format!("http://127.0.0.1:{port}/health");
    let me_url = format!("http://127.0.0.1:{port}/v1/auth/me");
    common::poll_until(|| async {
        match reqwest::get(&health).await {
            Ok(r) if r.status().is_success() => Ok(()),
            other => Err(format!("{health} did not answer: {other:?}")),
        }
    })
    .await;
    let me = reqwest::get(&me_url).await.expect("GET /v1/auth/me");
    assert_eq!(
        me.status().as_u16(),
        401,
        "no local user on a public address"
    );
    server.start_kill().expect("stop auscult");
    let _ = server.wait().await;
}
