//! The metadata store contract: every test here runs against each
//! implementation (SQLite in a temp folder, Postgres in a fresh database), so
//! the two behave the same. Plus one full session stored through Postgres.

mod common;

use auscult::protocol::{CloseReason, Entity, Word};
use auscult::storage::meta::{
    self, AuditAction, AuditEntry, LimitScope, Reservation, SharedMetadataStore, User,
    WebSessionRow,
};
use auscult::storage::{FinalSegment, SessionCursor, SessionOutcome, SessionRecord, SessionStatus};
use common::postgres::{TestDatabase, wait_for_pg_status};
use common::*;
use secrecy::SecretString;

/// Declares each contract test once per store, as `sqlite::<name>` and
/// `postgres::<name>`. A store fixture returns the store and a guard that
/// keeps its backing (folder or database) alive until the test ends.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _dir) = super::sqlite_store().await;
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _db) = super::postgres_store().await;
                    super::$name(store).await;
                }
            )*
        }
    };
}

contract!(
    a_created_session_reads_back_live_with_nothing_finished,
    segments_come_back_in_order_and_adding_one_twice_keeps_the_first,
    a_segments_phi_entities_and_redacted_text_come_back,
    finishing_a_session_sets_its_status_keys_and_byte_count,
    an_unknown_session_reads_as_none_with_no_segments,
    migrations_are_all_applied_at_open,
    update_received_sets_only_the_byte_count,
    only_sessions_whose_owner_stopped_heartbeating_are_stale,
    a_stale_session_is_taken_over_by_exactly_one_instance,
    a_claim_moves_a_session_to_its_new_owner_whatever_its_heartbeat,
    a_session_pending_upload_stays_unfinished_and_heartbeaten,
    an_event_is_pending_once_per_session_until_sent,
    a_users_sessions_list_newest_first_in_pages_and_never_anyone_elses,
    sessions_starting_in_the_same_millisecond_page_by_id_without_loss_or_repeat,
    deleting_a_session_removes_its_row_and_segments_and_nothing_else,
    users_are_unique_listed_by_name_and_disabling_ends_their_logins,
    a_login_session_that_ended_is_never_brought_back,
    the_audit_log_reads_back_newest_first,
    a_login_attempt_is_counted_in_every_scope_or_in_none,
    a_released_attempt_gives_its_count_back_and_clears_what_it_names,
    parallel_reservations_never_pass_the_limit,
);

async fn sqlite_store() -> (SharedMetadataStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    // A folder that does not exist yet: opening creates it.
    let url = format!("sqlite://{}/nested/meta.db", dir.path().display());
    let store = meta::open(&SecretString::from(url), &meta::PoolSettings::default())
        .await
        .expect("open sqlite store");
    (store, dir)
}

async fn postgres_store() -> (SharedMetadataStore, TestDatabase) {
    let db = TestDatabase::create().await;
    let store = meta::open(
        &SecretString::from(db.url.clone()),
        &meta::PoolSettings::default(),
    )
    .await
    .expect("open postgres store");
    (store, db)
}

fn record(id: &str) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        user_id: "u1".into(),
        engine: "loadtest".into(),
        language: "en-US".into(),
        encoding: "pcm_s16le".into(),
        channels: 2,
        input_rate: 48_000,
        engine_rate: 16_000,
        started_at_ms: 1_763_700_000_123,
    }
}

fn segment(seq: u32, text: &str) -> FinalSegment {
    FinalSegment {
        seq,
        result_id: format!("r-{seq}"),
        start: f64::from(seq),
        end: f64::from(seq) + 0.75,
        text: text.into(),
        words: vec![Word {
            word: text.into(),
            start: f64::from(seq),
            end: f64::from(seq) + 0.5,
            confidence: Some(0.5),
        }],
        entities: Vec::new(),
        redacted_text: None,
    }
}

fn outcome() -> SessionOutcome {
    SessionOutcome {
        status: SessionStatus::Stored,
        close_reason: "client_stop".into(),
        ended_at_ms: 1_763_700_060_456,
        // Past 2^32: byte counts need 64 bits in every store.
        received_bytes: 5_000_000_000,
        duration_s: 60.25,
        audio_key: "users/u1/audio/sessions/s1/audio.wav".into(),
        transcript_key: "users/u1/audio/sessions/s1/transcript.json".into(),
        manifest_key: "users/u1/audio/sessions/s1/manifest.json".into(),
        notify: false,
    }
}

/// When the test sessions start, in unix milliseconds.
const T0: i64 = 1_763_700_000_000;

async fn create(store: &SharedMetadataStore, id: &str) {
    store.create_session(&record(id), "i-a", T0).await.unwrap();
}

async fn a_segments_phi_entities_and_redacted_text_come_back(store: SharedMetadataStore) {
    create(&store, "s1").await;
    let entity = Entity {
        category: "PHI".into(),
        start: 12.5,
        end: 13.25,
        content: "Jane Roe".into(),
        confidence: Some(0.75),
    };
    let with_phi = FinalSegment {
        text: "patient Jane Roe reports pain".into(),
        entities: vec![entity],
        redacted_text: Some("patient [PHI] reports pain".into()),
        ..segment(0, "unused")
    };
    store.add_segment("s1", &with_phi).await.unwrap();
    store.add_segment("s1", &segment(1, "plain")).await.unwrap();
    // Read back as a takeover rebuilds a transcript: entities and the
    // redacted variant included, none invented for a final without them.
    assert_eq!(
        store.segments("s1").await.unwrap(),
        vec![with_phi, segment(1, "plain")]
    );
}

async fn a_created_session_reads_back_live_with_nothing_finished(store: SharedMetadataStore) {
    store.ping().await.expect("ping");
    create(&store, "s1").await;
    let row = store.get_session("s1").await.unwrap().expect("row exists");
    assert_eq!(row.record, record("s1"));
    assert_eq!(row.status, SessionStatus::Live);
    assert_eq!(row.close_reason, None);
    assert_eq!(row.ended_at_ms, None);
    assert_eq!(row.received_bytes, 0);
    assert_eq!(row.duration_s, None);
    assert_eq!(row.audio_key, None);
    assert_eq!(row.transcript_key, None);
    assert_eq!(row.manifest_key, None);
}

async fn segments_come_back_in_order_and_adding_one_twice_keeps_the_first(
    store: SharedMetadataStore,
) {
    create(&store, "s1").await;
    create(&store, "s2").await;
    for seq in [2, 0, 1] {
        store
            .add_segment("s1", &segment(seq, &format!("word{seq}")))
            .await
            .unwrap();
    }
    // A retry after a lost reply must not duplicate or overwrite.
    store
        .add_segment("s1", &segment(1, "rewritten"))
        .await
        .unwrap();
    store.add_segment("s2", &segment(0, "other")).await.unwrap();
    assert_eq!(
        store.segments("s1").await.unwrap(),
        vec![
            segment(0, "word0"),
            segment(1, "word1"),
            segment(2, "word2")
        ]
    );
    assert_eq!(
        store.segments("s2").await.unwrap(),
        vec![segment(0, "other")]
    );
}

async fn finishing_a_session_sets_its_status_keys_and_byte_count(store: SharedMetadataStore) {
    create(&store, "s1").await;
    store.finish_session("s1", &outcome()).await.unwrap();
    let row = store.get_session("s1").await.unwrap().expect("row exists");
    let o = outcome();
    assert_eq!(row.record, record("s1"));
    assert_eq!(row.status, SessionStatus::Stored);
    assert_eq!(row.close_reason.as_deref(), Some("client_stop"));
    assert_eq!(row.ended_at_ms, Some(o.ended_at_ms));
    assert_eq!(row.received_bytes, o.received_bytes);
    assert_eq!(row.duration_s, Some(o.duration_s));
    assert_eq!(row.audio_key, Some(o.audio_key));
    assert_eq!(row.transcript_key, Some(o.transcript_key));
    assert_eq!(row.manifest_key, Some(o.manifest_key));

    let failed = SessionOutcome {
        status: SessionStatus::PendingUpload,
        ..outcome()
    };
    store.finish_session("s1", &failed).await.unwrap();
    let row = store.get_session("s1").await.unwrap().unwrap();
    assert_eq!(row.status, SessionStatus::PendingUpload);
}

async fn an_unknown_session_reads_as_none_with_no_segments(store: SharedMetadataStore) {
    create(&store, "s1").await;
    assert!(store.get_session("nope").await.unwrap().is_none());
    assert!(store.segments("nope").await.unwrap().is_empty());
}

async fn migrations_are_all_applied_at_open(store: SharedMetadataStore) {
    let status = store.migrations().await.unwrap();
    assert_eq!(status.pending, 0, "{status:?}");
    assert!(status.applied >= 1, "{status:?}");
}

async fn update_received_sets_only_the_byte_count(store: SharedMetadataStore) {
    create(&store, "s1").await;
    store.update_received("s1", 3_200).await.unwrap();
    assert_eq!(
        store
            .get_session("s1")
            .await
            .unwrap()
            .unwrap()
            .received_bytes,
        3_200
    );
    store.update_received("s1", 5_000_000_000).await.unwrap();
    let row = store.get_session("s1").await.unwrap().unwrap();
    assert_eq!(row.received_bytes, 5_000_000_000);
    assert_eq!(row.record, record("s1"));
    assert_eq!(row.status, SessionStatus::Live);
    // An update for a session that does not exist is not an error.
    store.update_received("nope", 1).await.unwrap();
    assert!(store.get_session("nope").await.unwrap().is_none());
}

#[tokio::test]
async fn a_streamed_session_is_stored_in_postgres_with_every_byte_counted() {
    let db = TestDatabase::create().await;
    let app = TestApp::spawn_env(&[("AUSCULT_DATABASE_URL", db.url.as_str())]).await;
    let mut ws = app.connect_ws().await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 1.5);
    ws.send_audio(&audio, bytes_for_ms(Enc::S16, 16_000, 1, 100))
        .await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    assert!(end.errors().is_empty(), "errors: {:?}", end.errors());

    let pool = db.pool().await;
    let row = wait_for_pg_status(&pool, &ready.session_id, "stored").await;
    assert_eq!(row.received_bytes, audio.len() as u64);
    assert_eq!(row.close_reason.as_deref(), Some("client_stop"));
    assert_eq!(row.user_id, "local");
    assert_eq!(row.encoding, Enc::S16.name());
    assert_eq!(row.input_rate, 16_000);
    assert!(
        !app.data_path().join("auscult.db").exists(),
        "no SQLite database beside Postgres"
    );
    pool.close().await;
    app.stop().await;
}

async fn only_sessions_whose_owner_stopped_heartbeating_are_stale(store: SharedMetadataStore) {
    store
        .create_session(&record("a1"), "i-a", T0)
        .await
        .unwrap();
    store
        .create_session(&record("b1"), "i-b", T0)
        .await
        .unwrap();
    store
        .create_session(&record("done"), "i-b", T0)
        .await
        .unwrap();
    store.finish_session("done", &outcome()).await.unwrap();
    // Instance a keeps heartbeating; b went quiet at T0.
    assert_eq!(store.heartbeat("i-a", T0 + 30_000).await.unwrap(), 1);
    assert_eq!(
        store.stale_sessions(T0 + 20_000, 10).await.unwrap(),
        vec!["b1".to_owned()],
        "a finished session is never stale"
    );
    assert!(store.stale_sessions(T0, 10).await.unwrap().is_empty());
    assert_eq!(store.heartbeat("i-nobody", T0).await.unwrap(), 0);
}

async fn a_stale_session_is_taken_over_by_exactly_one_instance(store: SharedMetadataStore) {
    create(&store, "s1").await;
    let cutoff = T0 + 60_000;
    let now = T0 + 61_000;
    let (c, d) = tokio::join!(
        store.take_over("s1", "i-c", cutoff, now),
        store.take_over("s1", "i-d", cutoff, now)
    );
    assert_eq!(
        [c.unwrap(), d.unwrap()].iter().filter(|won| **won).count(),
        1,
        "one winner"
    );
    // The winner's fresh heartbeat means it is no longer stale.
    assert!(!store.take_over("s1", "i-e", cutoff, now).await.unwrap());
    assert!(store.stale_sessions(cutoff, 10).await.unwrap().is_empty());
    assert!(!store.take_over("nope", "i-e", cutoff, now).await.unwrap());
}

async fn a_claim_moves_a_session_to_its_new_owner_whatever_its_heartbeat(
    store: SharedMetadataStore,
) {
    create(&store, "s1").await;
    store.heartbeat("i-a", T0 + 50_000).await.unwrap();
    store.claim_session("s1", "i-b", T0 + 60_000).await.unwrap();
    // Heartbeats of the old owner no longer reach it; the new owner's do.
    assert_eq!(store.heartbeat("i-a", T0 + 200_000).await.unwrap(), 0);
    assert_eq!(
        store.stale_sessions(T0 + 100_000, 10).await.unwrap(),
        vec!["s1".to_owned()]
    );
    assert_eq!(store.heartbeat("i-b", T0 + 200_000).await.unwrap(), 1);
    assert!(
        store
            .stale_sessions(T0 + 100_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_session_pending_upload_stays_unfinished_and_heartbeaten(store: SharedMetadataStore) {
    create(&store, "s1").await;
    store
        .mark_pending("s1", "client_stop", T0 + 5_000)
        .await
        .unwrap();
    let row = store.get_session("s1").await.unwrap().unwrap();
    assert_eq!(row.status, SessionStatus::PendingUpload);
    assert_eq!(row.close_reason.as_deref(), Some("client_stop"));
    assert_eq!(row.ended_at_ms, Some(T0 + 5_000));
    assert_eq!(store.heartbeat("i-a", T0 + 9_000).await.unwrap(), 1);
    assert_eq!(
        store.stale_sessions(T0 + 10_000, 10).await.unwrap(),
        vec!["s1".to_owned()]
    );
    // A stored session is not marked pending after the fact.
    store.finish_session("s1", &outcome()).await.unwrap();
    store.mark_pending("s1", "late", T0).await.unwrap();
    let row = store.get_session("s1").await.unwrap().unwrap();
    assert_eq!(row.status, SessionStatus::Stored);
}

async fn an_event_is_pending_once_per_session_until_sent(store: SharedMetadataStore) {
    create(&store, "quiet").await;
    create(&store, "s1").await;
    store.finish_session("quiet", &outcome()).await.unwrap();
    let announced = SessionOutcome {
        notify: true,
        ..outcome()
    };
    store.finish_session("s1", &announced).await.unwrap();
    let pending = store.pending_events(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].record.id, "s1");
    assert_eq!(pending[0].status, SessionStatus::Stored);
    store.mark_event_sent("s1").await.unwrap();
    assert!(store.pending_events(10).await.unwrap().is_empty());
    // Stored again (a fuller copy after a recovery): not announced twice.
    store.finish_session("s1", &announced).await.unwrap();
    assert!(store.pending_events(10).await.unwrap().is_empty());
}

/// Creates `id` for `user`, starting at `T0 + offset_ms`.
async fn create_for(store: &SharedMetadataStore, user: &str, id: &str, offset_ms: i64) {
    let record = SessionRecord {
        user_id: user.into(),
        started_at_ms: T0 + offset_ms,
        ..record(id)
    };
    store.create_session(&record, "i-a", T0).await.unwrap();
}

fn ids(rows: &[auscult::storage::SessionRow]) -> Vec<&str> {
    rows.iter().map(|r| r.record.id.as_str()).collect()
}

/// Every page of `user`'s sessions, `limit` at a time, as the API walks them.
async fn all_pages(store: &SharedMetadataStore, user: &str, limit: u32) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut before: Option<SessionCursor> = None;
    loop {
        let rows = store
            .list_sessions(user, limit, before.as_ref())
            .await
            .unwrap();
        if rows.is_empty() {
            return pages;
        }
        before = rows.last().map(SessionCursor::after);
        pages.push(ids(&rows).into_iter().map(str::to_owned).collect());
    }
}

async fn a_users_sessions_list_newest_first_in_pages_and_never_anyone_elses(
    store: SharedMetadataStore,
) {
    // Created out of order: the list orders by start time, not insertion.
    for (id, offset) in [("a2", 2_000), ("a1", 1_000), ("a4", 4_000), ("a3", 3_000)] {
        create_for(&store, "alice", id, offset).await;
    }
    create_for(&store, "bob", "b1", 2_500).await;
    store.finish_session("a2", &outcome()).await.unwrap();

    let first = store.list_sessions("alice", 3, None).await.unwrap();
    assert_eq!(ids(&first), ["a4", "a3", "a2"]);
    assert_eq!(
        first[2].status,
        SessionStatus::Stored,
        "rows come back whole"
    );
    assert_eq!(first[0].record.user_id, "alice");
    let rest = store
        .list_sessions("alice", 3, Some(&SessionCursor::after(&first[2])))
        .await
        .unwrap();
    assert_eq!(ids(&rest), ["a1"]);
    let after_last = SessionCursor::after(&rest[0]);
    assert!(
        store
            .list_sessions("alice", 3, Some(&after_last))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(all_pages(&store, "alice", 1).await.len(), 4);
    assert_eq!(
        ids(&store.list_sessions("bob", 100, None).await.unwrap()),
        ["b1"]
    );
    assert!(
        store
            .list_sessions("carol", 10, None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn sessions_starting_in_the_same_millisecond_page_by_id_without_loss_or_repeat(
    store: SharedMetadataStore,
) {
    for id in ["s-b", "s-d", "s-a", "s-c"] {
        create_for(&store, "u1", id, 0).await;
    }
    create_for(&store, "u1", "s-newer", 1).await;
    let pages = all_pages(&store, "u1", 2).await;
    assert_eq!(
        pages,
        vec![
            vec!["s-newer".to_owned(), "s-d".to_owned()],
            vec!["s-c".to_owned(), "s-b".to_owned()],
            vec!["s-a".to_owned()],
        ]
    );
}

async fn deleting_a_session_removes_its_row_and_segments_and_nothing_else(
    store: SharedMetadataStore,
) {
    create(&store, "s1").await;
    create(&store, "s2").await;
    for seq in 0..3 {
        store
            .add_segment("s1", &segment(seq, "gone"))
            .await
            .unwrap();
    }
    store.add_segment("s2", &segment(0, "kept")).await.unwrap();
    store.finish_session("s1", &outcome()).await.unwrap();

    assert!(
        store.delete_session("s1", T0).await.unwrap(),
        "a row was deleted"
    );
    assert!(store.get_session("s1").await.unwrap().is_none());
    assert!(store.segments("s1").await.unwrap().is_empty());
    assert!(
        !store.delete_session("s1", T0).await.unwrap(),
        "deleting again finds nothing"
    );
    assert!(!store.delete_session("nope", T0).await.unwrap());

    assert_eq!(
        store.get_session("s2").await.unwrap().unwrap().record,
        record("s2")
    );
    assert_eq!(
        store.segments("s2").await.unwrap(),
        vec![segment(0, "kept")]
    );
    assert_eq!(
        ids(&store.list_sessions("u1", 10, None).await.unwrap()),
        ["s2"]
    );
    // The deleted session leaves a tombstone: it cannot be created again.
    assert!(store.is_deleted("s1").await.unwrap());
    assert!(!store.is_deleted("s2").await.unwrap());
    assert!(
        !store.is_deleted("nope").await.unwrap(),
        "no tombstone for what never was"
    );
    let again = store.create_session(&record("s1"), "i-1", T0).await;
    assert!(
        matches!(again, Err(auscult::storage::StorageError::Deleted(ref id)) if id == "s1"),
        "{again:?}"
    );
    assert!(store.get_session("s1").await.unwrap().is_none());
}
fn user(name: &str) -> User {
    User {
        username: name.into(),
        disabled: false,
        created_at_ms: T0,
    }
}

fn login_row(id_hash: &str, user: &str, expires_at_ms: i64) -> WebSessionRow {
    WebSessionRow {
        id_hash: id_hash.into(),
        user_id: Some(user.into()),
        data: format!(r#"{{"user":"{user}"}}"#),
        expires_at_ms,
    }
}

async fn users_are_unique_listed_by_name_and_disabling_ends_their_logins(
    store: SharedMetadataStore,
) {
    assert!(!store.has_users().await.unwrap());
    assert!(store.add_user(&user("zoe"), "$argon2id$zoe").await.unwrap());
    assert!(store.add_user(&user("amy"), "$argon2id$amy").await.unwrap());
    assert!(
        !store
            .add_user(&user("amy"), "$argon2id$other")
            .await
            .unwrap()
    );
    assert!(store.has_users().await.unwrap());
    let names: Vec<_> = store.list_users().await.unwrap();
    assert_eq!(names, [user("amy"), user("zoe")]);
    let amy = store.credentials("amy").await.unwrap().expect("amy");
    assert_eq!(amy.user, user("amy"));
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&amy.password_hash),
        "$argon2id$amy"
    );
    assert!(store.credentials("nobody").await.unwrap().is_none());

    assert!(
        store
            .create_web_session(&login_row("h-amy", "amy", T0 + 1000))
            .await
            .unwrap()
    );
    assert!(
        store
            .create_web_session(&login_row("h-zoe", "zoe", T0 + 1000))
            .await
            .unwrap()
    );
    assert!(store.disable_user("amy").await.unwrap());
    assert!(!store.disable_user("nobody").await.unwrap());
    assert!(
        store
            .credentials("amy")
            .await
            .unwrap()
            .unwrap()
            .user
            .disabled
    );
    assert!(store.load_web_session("h-amy", T0).await.unwrap().is_none());
    assert!(store.load_web_session("h-zoe", T0).await.unwrap().is_some());
    assert!(store.has_users().await.unwrap());
    store.disable_user("zoe").await.unwrap();
    assert!(
        store.has_users().await.unwrap(),
        "disabled accounts still close local mode"
    );
}

async fn a_login_session_that_ended_is_never_brought_back(store: SharedMetadataStore) {
    store.add_user(&user("amy"), "$argon2id$amy").await.unwrap();
    let row = login_row("h1", "amy", T0 + 1000);
    assert!(store.create_web_session(&row).await.unwrap());
    assert!(!store.create_web_session(&row).await.unwrap(), "id taken");
    assert_eq!(
        store.load_web_session("h1", T0).await.unwrap(),
        Some(row.clone())
    );
    assert_eq!(
        store.load_web_session("h1", T0 + 1000).await.unwrap(),
        None,
        "expired"
    );

    // Saving and touching move the expiry of a live session only.
    assert!(
        store
            .touch_web_session("h1", T0 + 5000, T0 + 500)
            .await
            .unwrap()
    );
    assert!(
        store
            .load_web_session("h1", T0 + 4000)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        !store
            .touch_web_session("h1", T0 + 9000, T0 + 5000)
            .await
            .unwrap()
    );
    store
        .save_web_session(&login_row("h1", "amy", T0 + 9000), T0 + 6000)
        .await
        .unwrap();
    assert_eq!(store.load_web_session("h1", T0 + 6000).await.unwrap(), None);

    // Deleted (logout): a late save does not recreate it.
    assert!(
        store
            .create_web_session(&login_row("h2", "amy", T0 + 1000))
            .await
            .unwrap()
    );
    store.delete_web_session("h2").await.unwrap();
    store
        .save_web_session(&login_row("h2", "amy", T0 + 2000), T0)
        .await
        .unwrap();
    assert_eq!(store.load_web_session("h2", T0).await.unwrap(), None);

    // Cleanup takes what expired (h3), not what lives on (h1, until T0 + 5000).
    let h3 = login_row("h3", "amy", T0 + 3000);
    assert!(store.create_web_session(&h3).await.unwrap());
    assert_eq!(
        store.delete_expired_web_sessions(T0 + 4000).await.unwrap(),
        1
    );
    assert!(
        store
            .load_web_session("h1", T0 + 4000)
            .await
            .unwrap()
            .is_some()
    );
    assert!(!store.touch_web_session("h3", T0 + 9000, T0).await.unwrap());
}

async fn the_audit_log_reads_back_newest_first(store: SharedMetadataStore) {
    let fail = |at: i64, user: &str, reason: &str| AuditEntry {
        at_ms: at,
        user_id: Some(user.into()),
        action: AuditAction::LoginFailed,
        ip: Some("10.0.0.1".into()),
        detail: Some(reason.to_owned()),
    };
    for e in [
        fail(T0 + 1, "amy", "bad_password"),
        fail(T0 + 5, "amy", "rate_limited"),
        fail(T0 + 6, "bob", "unknown_user"),
    ] {
        store.audit(&e).await.unwrap();
    }
    let recent = store.recent_audit(2).await.unwrap();
    assert_eq!(
        recent,
        [
            fail(T0 + 6, "bob", "unknown_user"),
            fail(T0 + 5, "amy", "rate_limited")
        ]
    );
}

fn scopes(pairs: &[(&str, u32)]) -> Vec<LimitScope> {
    pairs
        .iter()
        .map(|(key, limit)| LimitScope {
            key: (*key).to_owned(),
            limit: *limit,
        })
        .collect()
}

async fn a_login_attempt_is_counted_in_every_scope_or_in_none(store: SharedMetadataStore) {
    const WINDOW: i64 = 60_000;
    let both = scopes(&[("u:amy", 3), ("i:10.0.0.1", 2)]);
    let ip_only = scopes(&[("i:10.0.0.1", 2)]);
    let granted = |r: Reservation| match r {
        Reservation::Granted(counted) => counted,
        other => panic!("refused: {other:?}"),
    };
    let counted = granted(store.reserve_login(&both, WINDOW, T0).await.unwrap());
    assert_eq!(
        counted,
        [
            ("i:10.0.0.1".to_owned(), T0 + WINDOW),
            ("u:amy".to_owned(), T0 + WINDOW)
        ]
    );
    granted(store.reserve_login(&both, WINDOW, T0 + 10).await.unwrap());
    // The address is at its limit: refused, and amy's scope is not counted either.
    assert_eq!(
        store.reserve_login(&both, WINDOW, T0 + 20).await.unwrap(),
        Reservation::Refused {
            until_ms: T0 + WINDOW
        }
    );
    let amy = scopes(&[("u:amy", 3)]);
    granted(store.reserve_login(&amy, WINDOW, T0 + 30).await.unwrap());
    assert!(matches!(
        store.reserve_login(&amy, WINDOW, T0 + 40).await.unwrap(),
        Reservation::Refused { .. }
    ));
    // Refusals never extend the window: it ends on time, then counting starts afresh.
    let after = T0 + WINDOW;
    let counted = granted(store.reserve_login(&ip_only, WINDOW, after).await.unwrap());
    assert_eq!(counted, [("i:10.0.0.1".to_owned(), after + WINDOW)]);
    assert_eq!(
        store.delete_expired_login_limits(after).await.unwrap(),
        1,
        "amy's window ended"
    );
}

async fn a_released_attempt_gives_its_count_back_and_clears_what_it_names(
    store: SharedMetadataStore,
) {
    const WINDOW: i64 = 60_000;
    let both = scopes(&[("u:amy", 1), ("i:10.0.0.1", 1)]);
    let Reservation::Granted(counted) = store.reserve_login(&both, WINDOW, T0).await.unwrap()
    else {
        panic!("refused")
    };
    store.release_login(&counted, &[]).await.unwrap();
    let Reservation::Granted(counted) = store.reserve_login(&both, WINDOW, T0 + 1).await.unwrap()
    else {
        panic!("a released attempt still counted")
    };
    // A success: its address's count given back, amy's scope forgotten.
    store
        .release_login(&counted, &["u:amy".to_owned()])
        .await
        .unwrap();
    assert!(matches!(
        store.reserve_login(&both, WINDOW, T0 + 2).await.unwrap(),
        Reservation::Granted(_)
    ));
    // Releasing a window that has since been replaced takes nothing from the new one.
    let stale = [("i:10.0.0.1".to_owned(), T0 + WINDOW - 1)];
    store.release_login(&stale, &[]).await.unwrap();
    assert!(matches!(
        store.reserve_login(&both, WINDOW, T0 + 3).await.unwrap(),
        Reservation::Refused { .. }
    ));
}

async fn parallel_reservations_never_pass_the_limit(store: SharedMetadataStore) {
    let scope = scopes(&[("ui:amy|10.0.0.9", 5), ("u:amy", 50), ("i:10.0.0.9", 20)]);
    let attempts = (0..60).map(|i| {
        let store = store.clone();
        let scope = scope.clone();
        async move { store.reserve_login(&scope, 60_000, T0 + i).await.unwrap() }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let granted = answers
        .iter()
        .filter(|a| matches!(a, Reservation::Granted(_)))
        .count();
    assert_eq!(granted, 5, "{answers:?}");
}
