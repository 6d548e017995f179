//! Proves the test harness itself works for real: the switchable proxy in
//! front of Postgres and moto, the store-agnostic Backend reading back
//! what the app stored, and the FUSE mount that fails fsync on demand.

mod common;

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::time::Duration;

use auscult::protocol::CloseReason;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::primitives::ByteStream;
use common::backend::url_host_port;
use common::faultfs::FaultFs;
use common::moto::{self, Moto};
use common::postgres::TestDatabase;
use common::process::ServerProcess;
use common::*;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};

/// How long a cut-off call may take to fail: fast, not a hang.
const FAIL_FAST: Duration = Duration::from_secs(5);

#[test]
fn urls_are_rewritten_to_the_proxy_and_split_into_host_and_port() {
    assert_eq!(
        url_host_port("postgres://postgres@127.0.0.1:5432/test?sslmode=disable", 1),
        "127.0.0.1:5432"
    );
    assert_eq!(url_host_port("postgres://u:p@db/x", 5432), "db:5432");
    assert_eq!(url_host_port("http://127.0.0.1:9000", 80), "127.0.0.1:9000");
    assert_eq!(url_host_port("http://[::1]", 80), "[::1]:80");
}

#[tokio::test]
async fn the_proxy_relays_postgres_cuts_it_off_when_down_and_relays_again_when_up() {
    let db = TestDatabase::create().await;
    let proxy = Proxy::start(url_host_port(&db.url, 5432)).await;
    let url = proxy.rewrite_url(&db.url);
    assert!(
        url.contains(&format!("127.0.0.1:{}", proxy.port())),
        "{url}"
    );
    assert!(url.contains(&format!("/{}", db.name)), "{url}");

    let mut conn = PgConnection::connect(&url)
        .await
        .expect("connect via proxy");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&url)
        .await
        .expect("pool via proxy");
    sqlx::query("SELECT 1").execute(&pool).await.unwrap();

    proxy.set_up(false);
    assert!(!proxy.is_up());
    let on_open = tokio::time::timeout(FAIL_FAST, sqlx::query("SELECT 1").execute(&mut conn))
        .await
        .expect("a query on an open connection fails fast, not hangs");
    assert!(on_open.is_err(), "the open connection was cut: {on_open:?}");
    let fresh = tokio::time::timeout(FAIL_FAST, PgConnection::connect(&url))
        .await
        .expect("a new connection fails fast, not hangs");
    assert!(fresh.is_err(), "a new connection is refused");
    let pooled = tokio::time::timeout(FAIL_FAST, sqlx::query("SELECT 1").execute(&pool))
        .await
        .expect("a pooled query fails fast, not hangs");
    assert!(pooled.is_err(), "a pooled query fails: {pooled:?}");

    proxy.set_up(true);
    let mut again = PgConnection::connect(&url)
        .await
        .expect("a new connection works once up");
    let two: i32 = sqlx::query_scalar("SELECT 2")
        .fetch_one(&mut again)
        .await
        .unwrap();
    assert_eq!(two, 2);
    sqlx::query("SELECT 1")
        .execute(&pool)
        .await
        .expect("the pool reconnects once up");
    let _ = again.close().await;
    pool.close().await;
}

#[tokio::test]
async fn the_proxy_relays_s3_to_moto_cuts_it_off_when_down_and_relays_again_when_up() {
    let moto = Moto::acquire().await;
    let bucket = moto.create_bucket().await;
    let proxy = Proxy::start(url_host_port(&moto.endpoint, 80)).await;
    // No SDK retries: each call is one attempt, so a failure shows at once.
    let client = moto::client_for(&proxy.http_url());
    let client = aws_sdk_s3::Client::from_conf(
        client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    let put = |key: &'static str, body: &'static [u8]| {
        client
            .put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from_static(body))
            .send()
    };
    let get = |key: &'static str| client.get_object().bucket(&bucket).key(key).send();

    put("a", b"relayed").await.expect("put via proxy");
    let body = get("a").await.expect("get via proxy").body.collect().await;
    assert_eq!(body.unwrap().into_bytes().as_ref(), b"relayed");

    proxy.set_up(false);
    let put_down = tokio::time::timeout(FAIL_FAST, put("b", b"lost"))
        .await
        .expect("a put fails fast, not hangs");
    assert!(put_down.is_err(), "a put fails while down");
    let get_down = tokio::time::timeout(FAIL_FAST, get("a"))
        .await
        .expect("a get fails fast, not hangs");
    assert!(get_down.is_err(), "a get fails while down");

    proxy.set_up(true);
    put("c", b"back").await.expect("put via proxy once up");
    let direct = moto
        .client()
        .get_object()
        .bucket(&bucket)
        .key("c")
        .send()
        .await
        .expect("the object reached moto")
        .body
        .collect()
        .await
        .unwrap();
    assert_eq!(direct.into_bytes().as_ref(), b"back");
    let missing = moto
        .client()
        .get_object()
        .bucket(&bucket)
        .key("b")
        .send()
        .await;
    assert!(missing.is_err(), "the put made while down never arrived");
}

/// Streams a 1 s tone and returns (session id, audio sent).
async fn stream_a_session(ws: &mut WsClient) -> (String, Vec<u8>) {
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 1.0);
    ws.send_audio(&audio, bytes_for_ms(Enc::S16, 16_000, 1, 100))
        .await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    assert!(end.errors().is_empty(), "errors: {:?}", end.errors());
    (ready.session_id, audio)
}

/// The session's three objects, and nothing else under the user.
async fn assert_three_objects(backend: &Backend, session_id: &str) {
    let prefix = session_prefix("local", session_id);
    assert_eq!(
        backend.list("users/local/").await,
        ["audio.wav", "manifest.json", "transcript.json"].map(|n| format!("{prefix}{n}")),
        "[{}] stored keys",
        backend.name()
    );
}

#[tokio::test]
async fn a_session_through_test_app_is_read_back_from_the_embedded_backend() {
    let backend = Backend::embedded().await;
    let app = TestApp::spawn_on(&backend, &[]).await;
    let mut ws = app.connect_ws().await;
    let (session_id, audio) = stream_a_session(&mut ws).await;

    let stored = backend.stored("local", &session_id).await;
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    stored.assert_status("stored", "client_stop");
    assert_three_objects(&backend, &session_id).await;
    let row = backend.wait_for_status(&session_id, "stored").await;
    assert_eq!(row.user_id, "local");
    assert_eq!(
        backend
            .get_object(&format!(
                "{}audio.wav",
                session_prefix("local", &session_id)
            ))
            .await
            .as_deref(),
        Some(stored.audio_file.as_slice())
    );
    assert!(backend.get_object("users/local/nothing").await.is_none());
    assert_eq!(backend.assert_all_encrypted().await, 0, "no S3 to check");
    // The backend's pair was used, not the data directory's defaults.
    assert!(!app.data_path().join("auscult.db").exists());
    assert!(stored_session_ids(app.data_path(), "local").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_session_through_the_binary_is_read_back_from_the_cloud_backend_via_proxies() {
    let backend = Backend::cloud_via(true, true).await;
    let data = tempfile::tempdir().unwrap();
    let env = backend.process_env();
    let mut server = ServerProcess::start(data.path(), &str_pairs(&env)).await;
    let mut ws = WsClient::connect(&server.ws_url(), &[])
        .await
        .expect("upgrade");
    let (session_id, audio) = stream_a_session(&mut ws).await;

    let stored = backend.stored("local", &session_id).await;
    stored.assert_audio(&audio, Enc::S16, 16_000, 1);
    stored.assert_status("stored", "client_stop");
    assert_three_objects(&backend, &session_id).await;
    assert!(
        backend.assert_all_encrypted().await >= 3,
        "the session's objects were checked"
    );
    // The traffic went through the proxies: the app's URLs name them.
    assert!(
        backend
            .database_url()
            .contains(&backend.db_proxy().port().to_string())
    );
    assert_eq!(backend.s3_endpoint(), Some(backend.s3_proxy().http_url()));
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(server.wait().await.success(), "{}", server.log_text());
}

/// The errno a failed fsync must carry: EIO, as from a failing disk.
const EIO: i32 = nix::errno::Errno::EIO as i32;

/// The permission bits of a path in the backing directory (not through FUSE).
fn backing_mode(fs: &FaultFs, name: &str) -> u32 {
    let path = fs.backing_path().join(name);
    std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{} in the backing dir: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn faultfs_passes_files_through_and_fails_fsync_with_eio_while_told_to() {
    let fs = FaultFs::mount();

    // As the spool opens its audio: created with an explicit mode, read+write,
    // appended to and read back with pread.
    let mut file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .append(true)
        .mode(0o600)
        .open(fs.mountpoint.join("audio.wav"))
        .expect("create a file through the mount");
    file.write_all(b"first").unwrap();
    file.sync_data()
        .expect("fsync passes through with no fault set");

    fs.fail_fsync(true);
    file.write_all(b" second").unwrap();
    let failed = file
        .sync_data()
        .expect_err("fsync fails while the fault is on");
    assert_eq!(failed.raw_os_error(), Some(EIO), "{failed:?}");
    let failed = file.sync_all().expect_err("a full fsync fails too");
    assert_eq!(failed.raw_os_error(), Some(EIO), "{failed:?}");

    fs.fail_fsync(false);
    file.sync_data()
        .expect("fsync passes again once the fault is off");
    let mut read = [0u8; 12];
    file.read_exact_at(&mut read, 0)
        .expect("pread through the mount");
    assert_eq!(&read, b"first second");
    assert_eq!(
        std::fs::read(fs.backing_path().join("audio.wav")).unwrap(),
        b"first second",
        "the writes reached the backing file"
    );
    assert_eq!(
        backing_mode(&fs, "audio.wav"),
        0o600,
        "create's mode reached disk"
    );

    // A fault aimed at one file leaves the others alone.
    let mut other = File::create(fs.mountpoint.join("meta.json")).unwrap();
    other.write_all(b"{}").unwrap();
    fs.fail_fsync_matching("audio.wav");
    other
        .sync_all()
        .expect("fsync of a file the fault does not name passes");
    let failed = file.sync_data().expect_err("fsync of the named file fails");
    assert_eq!(failed.raw_os_error(), Some(EIO), "{failed:?}");
    fs.fail_fsync(false);

    let dir = fs.mountpoint.join("session");
    DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .expect("mkdir through the mount");
    assert_eq!(
        backing_mode(&fs, "session"),
        0o700,
        "mkdir's mode reached disk"
    );
    File::open(&dir)
        .unwrap()
        .sync_all()
        .expect("a directory fsync passes with no fault set");
    fs.fail_fsyncdir(true);
    let failed = File::open(&dir)
        .unwrap()
        .sync_all()
        .expect_err("a directory fsync fails while the fault is on");
    assert_eq!(failed.raw_os_error(), Some(EIO), "{failed:?}");
    file.sync_data()
        .expect("the directory fault leaves file fsyncs alone");
    fs.fail_fsyncdir(false);
    File::open(&dir)
        .unwrap()
        .sync_all()
        .expect("a directory fsync passes again once the fault is off");

    // Rename, unlink and rmdir pass through, as the spool's cleanup needs.
    std::fs::rename(&dir, fs.mountpoint.join("stored")).unwrap();
    std::fs::remove_dir(fs.mountpoint.join("stored")).unwrap();
    std::fs::remove_file(fs.mountpoint.join("meta.json")).unwrap();
    assert_eq!(
        std::fs::read_dir(fs.backing_path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect::<Vec<_>>(),
        ["audio.wav"]
    );

    let mountpoint = fs.mountpoint.clone();
    drop(file);
    drop(fs);
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(&*mountpoint.to_string_lossy()),
        "unmounted on drop: {mounts}"
    );
}
