//! One storage pair per test, so a test body can run against both:
//! `embedded` (SQLite + a folder, in a temp dir of the backend's own) and
//! `cloud` (a fresh Postgres database + a fresh moto bucket, optionally
//! behind switchable [`Proxy`]s for outage tests).
//!
//! The app is pointed at the pair with [`Backend::env`] (in-process
//! [`TestApp`]) or [`Backend::process_env`] (the real binary), and what it
//! stored is read back here, straight from SQLite / Postgres / the folder /
//! moto, never through the proxies, so reads work during an outage.

use std::path::{Path, PathBuf};

use aws_sdk_s3::types::ServerSideEncryption;
use sqlx::postgres::PgPool;
use tempfile::TempDir;

use super::moto::Moto;
use super::postgres::{TestDatabase, pg_session_row};
use super::stored::{SessionRow, StoredSession, session_prefix, sqlite_session_row};
use super::{Proxy, poll_until};

/// The key prefix the cloud pair stores under (`s3://<bucket>/pfx`).
pub const S3_PREFIX: &str = "pfx";
/// The region the cloud pair (and moto) uses.
pub const S3_REGION: &str = "us-east-1";

pub struct Backend {
    pair: Pair,
}

enum Pair {
    Embedded(Embedded),
    Cloud(Box<Cloud>),
}

struct Embedded {
    dir: TempDir,
}

// Fields drop in order: proxies first, then the reading pool, then the
// database (dropped with FORCE), then the share of moto.
struct Cloud {
    db_proxy: Option<Proxy>,
    s3_proxy: Option<Proxy>,
    pool: PgPool,
    db: TestDatabase,
    /// Talks to moto directly.
    s3: aws_sdk_s3::Client,
    bucket: String,
    moto: Moto,
}

impl Backend {
    /// SQLite at `<dir>/meta.db` and a folder store at `<dir>/objects`.
    pub async fn embedded() -> Backend {
        let dir = tempfile::tempdir().expect("temp dir for the embedded backend");
        Backend {
            pair: Pair::Embedded(Embedded { dir }),
        }
    }

    /// A fresh Postgres database and a fresh moto bucket, reached directly.
    pub async fn cloud() -> Backend {
        Self::cloud_via(false, false).await
    }

    /// Like [`Backend::cloud`], with the app reaching Postgres (`db_proxy`)
    /// and/or moto (`s3_proxy`) through a switchable [`Proxy`]; see
    /// [`Backend::db_proxy`] and [`Backend::s3_proxy`].
    pub async fn cloud_via(db_proxy: bool, s3_proxy: bool) -> Backend {
        let db = TestDatabase::create().await;
        let pool = db.pool().await;
        let moto = Moto::acquire().await;
        let bucket = moto.create_bucket().await;
        let db_proxy = match db_proxy {
            true => Some(Proxy::start(url_host_port(&db.url, 5432)).await),
            false => None,
        };
        let s3_proxy = match s3_proxy {
            true => Some(Proxy::start(url_host_port(&moto.endpoint, 80)).await),
            false => None,
        };
        Backend {
            pair: Pair::Cloud(Box::new(Cloud {
                db_proxy,
                s3_proxy,
                pool,
                db,
                s3: moto.client(),
                bucket,
                moto,
            })),
        }
    }

    /// `"embedded"` or `"cloud"`, for messages.
    pub fn name(&self) -> &'static str {
        match &self.pair {
            Pair::Embedded(_) => "embedded",
            Pair::Cloud(_) => "cloud",
        }
    }

    pub fn is_cloud(&self) -> bool {
        matches!(self.pair, Pair::Cloud(_))
    }

    /// The embedded pair's folder (holding `meta.db` and `objects/`).
    pub fn dir(&self) -> Option<&Path> {
        match &self.pair {
            Pair::Embedded(e) => Some(e.dir.path()),
            Pair::Cloud(_) => None,
        }
    }

    /// The cloud pair's bucket.
    pub fn bucket(&self) -> Option<&str> {
        match &self.pair {
            Pair::Embedded(_) => None,
            Pair::Cloud(c) => Some(&c.bucket),
        }
    }

    /// The cloud pair's test database.
    pub fn database(&self) -> Option<&TestDatabase> {
        match &self.pair {
            Pair::Embedded(_) => None,
            Pair::Cloud(c) => Some(&c.db),
        }
    }

    /// The proxy between the app and Postgres. Panics unless the backend was
    /// made with `cloud_via(true, _)`.
    pub fn db_proxy(&self) -> &Proxy {
        self.cloud_pair("db_proxy")
            .db_proxy
            .as_ref()
            .expect("db_proxy() needs Backend::cloud_via(true, _)")
    }

    /// The proxy between the app and moto. Panics unless the backend was made
    /// with `cloud_via(_, true)`.
    pub fn s3_proxy(&self) -> &Proxy {
        self.cloud_pair("s3_proxy")
            .s3_proxy
            .as_ref()
            .expect("s3_proxy() needs Backend::cloud_via(_, true)")
    }

    fn cloud_pair(&self, what: &str) -> &Cloud {
        match &self.pair {
            Pair::Cloud(c) => c,
            Pair::Embedded(_) => panic!("{what}() is only for the cloud backend"),
        }
    }

    /// The database URL the app is given (through the proxy if there is one).
    pub fn database_url(&self) -> String {
        match &self.pair {
            Pair::Embedded(e) => format!("sqlite://{}", e.dir.path().join("meta.db").display()),
            Pair::Cloud(c) => match &c.db_proxy {
                Some(proxy) => proxy.rewrite_url(&c.db.url),
                None => c.db.url.clone(),
            },
        }
    }

    /// The storage URL the app is given.
    pub fn storage_url(&self) -> String {
        match &self.pair {
            Pair::Embedded(e) => format!("file://{}", e.dir.path().join("objects").display()),
            Pair::Cloud(c) => format!("s3://{}/{S3_PREFIX}", c.bucket),
        }
    }

    /// The S3 endpoint the app is given (the proxy's if there is one).
    pub fn s3_endpoint(&self) -> Option<String> {
        match &self.pair {
            Pair::Embedded(_) => None,
            Pair::Cloud(c) => Some(match &c.s3_proxy {
                Some(proxy) => proxy.http_url(),
                None => c.moto.endpoint.clone(),
            }),
        }
    }

    /// The `AUSCULT_*` pairs that point an app at this backend.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("AUSCULT_DATABASE_URL".to_owned(), self.database_url()),
            ("AUSCULT_STORAGE_URL".to_owned(), self.storage_url()),
        ];
        if let Some(endpoint) = self.s3_endpoint() {
            env.push(("AUSCULT_S3_ENDPOINT".to_owned(), endpoint));
            env.push(("AUSCULT_S3_REGION".to_owned(), S3_REGION.to_owned()));
        }
        env
    }

    /// [`Backend::env`] plus what the real binary (run with a cleared
    /// environment) needs to reach moto: static test credentials and region,
    /// and no EC2 metadata lookups.
    pub fn process_env(&self) -> Vec<(String, String)> {
        let mut env = self.env();
        if self.is_cloud() {
            for (k, v) in [
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_REGION", S3_REGION),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ] {
                env.push((k.to_owned(), v.to_owned()));
            }
        }
        env
    }

    /// An object by its key relative to the store root (`users/...`), read
    /// directly from the folder or bucket; `None` if it does not exist.
    pub async fn get_object(&self, key: &str) -> Option<Vec<u8>> {
        match &self.pair {
            Pair::Embedded(e) => match std::fs::read(e.dir.path().join("objects").join(key)) {
                Ok(bytes) => Some(bytes),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => panic!("read object {key}: {err}"),
            },
            Pair::Cloud(c) => {
                let got =
                    c.s3.get_object()
                        .bucket(&c.bucket)
                        .key(format!("{S3_PREFIX}/{key}"))
                        .send()
                        .await;
                match got {
                    Ok(out) => Some(
                        out.body
                            .collect()
                            .await
                            .unwrap_or_else(|e| panic!("read object {key} from moto: {e}"))
                            .into_bytes()
                            .to_vec(),
                    ),
                    Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => None,
                    Err(err) => panic!("get object {key} from moto: {err:?}"),
                }
            }
        }
    }

    /// The keys (relative to the store root, e.g. `users/local/...`) that
    /// start with `prefix`, sorted. The folder store's in-flight temp files
    /// (`.tmp-*`) are not objects and are left out.
    pub async fn list(&self, prefix: &str) -> Vec<String> {
        let mut keys = match &self.pair {
            Pair::Embedded(e) => {
                let root = e.dir.path().join("objects");
                let mut keys = Vec::new();
                walk(&root, &root, &mut keys);
                keys.retain(|k| k.starts_with(prefix));
                keys
            }
            Pair::Cloud(c) => {
                let strip = format!("{S3_PREFIX}/");
                c.bucket_keys(&format!("{strip}{prefix}"))
                    .await
                    .into_iter()
                    .map(|k| {
                        k.strip_prefix(&strip)
                            .unwrap_or_else(|| panic!("{k} is outside the prefix"))
                            .to_owned()
                    })
                    .collect()
            }
        };
        keys.sort();
        keys
    }

    /// The session's row (and segments), read directly; `None` if there is
    /// none (or no database yet).
    pub async fn row(&self, session_id: &str) -> Option<SessionRow> {
        match &self.pair {
            Pair::Embedded(e) => {
                let file = e.dir.path().join("meta.db");
                if !file.exists() {
                    return None;
                }
                sqlite_session_row(&file, session_id).await
            }
            Pair::Cloud(c) => pg_session_row(&c.pool, session_id).await,
        }
    }

    /// Runs one SQL statement on the backend's database directly (the same
    /// text serves both: `$N` placeholders are not needed for literals).
    pub async fn execute(&self, sql: &str) {
        use sqlx::Executor;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.pair {
            Pair::Embedded(e) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(e.dir.path().join("meta.db"))
                    .create_if_missing(false);
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .expect("open the backend's sqlite database");
                pool.execute(sql).await.expect("execute on sqlite");
                pool.close().await;
            }
            Pair::Cloud(c) => {
                c.pool.execute(sql).await.expect("execute on postgres");
            }
        }
    }

    /// Polls until the session's row has `status`.
    pub async fn wait_for_status(&self, session_id: &str, status: &str) -> SessionRow {
        poll_until(|| async move {
            match self.row(session_id).await {
                Some(row) if row.status == status => Ok(row),
                seen => Err(format!(
                    "[{}] session {session_id} did not reach status {status:?}: {seen:?}",
                    self.name()
                )),
            }
        })
        .await
    }

    /// Everything stored for the session, once stored as a whole: waits
    /// until `manifest.json` (written last of the objects) exists and the
    /// row's status has caught up with the manifest's, then reads the rest.
    pub async fn stored(&self, user: &str, session_id: &str) -> StoredSession {
        let prefix = session_prefix(user, session_id);
        let (manifest, row) = poll_until(|| {
            let prefix = &prefix;
            async move {
                let Some(manifest) = self.get_object(&format!("{prefix}manifest.json")).await
                else {
                    return Err(format!("[{}] no {prefix}manifest.json stored", self.name()));
                };
                let status = serde_json::from_slice::<serde_json::Value>(&manifest)
                    .ok()
                    .and_then(|m| m["status"].as_str().map(str::to_owned));
                match self.row(session_id).await {
                    Some(row) if Some(&row.status) == status.as_ref() => Ok((manifest, row)),
                    seen => Err(format!(
                        "[{}] row of session {session_id} did not reach the manifest's \
                         status {status:?}: {seen:?}",
                        self.name()
                    )),
                }
            }
        })
        .await;
        let read = async |name: &str| {
            self.get_object(&format!("{prefix}{name}"))
                .await
                .unwrap_or_else(|| {
                    panic!(
                        "[{}] {prefix}{name} missing beside its manifest",
                        self.name()
                    )
                })
        };
        let audio = read("audio.wav").await;
        let transcript = read("transcript.json").await;
        StoredSession::from_parts(audio, &manifest, &transcript, row)
    }

    /// The object's ETag (S3 gives multipart uploads `"<md5>-<parts>"`);
    /// `None` on the embedded pair or for a missing object.
    pub async fn etag(&self, key: &str) -> Option<String> {
        let Pair::Cloud(c) = &self.pair else {
            return None;
        };
        let head =
            c.s3.head_object()
                .bucket(&c.bucket)
                .key(format!("{S3_PREFIX}/{key}"))
                .send()
                .await
                .ok()?;
        head.e_tag().map(|t| t.trim_matches('"').to_owned())
    }

    /// Makes object storage unreachable for the app (`false`) or reachable
    /// again (`true`): the S3 proxy goes down (cloud, built with an S3
    /// proxy), or the objects folder is swapped for a plain file (embedded).
    pub fn set_objects_reachable(&self, reachable: bool) {
        match &self.pair {
            Pair::Cloud(_) => self.s3_proxy().set_up(reachable),
            Pair::Embedded(e) => {
                let objects = e.dir.path().join("objects");
                let away = e.dir.path().join("objects.away");
                if reachable {
                    std::fs::remove_file(&objects).expect("remove the stand-in file");
                    std::fs::rename(&away, &objects).expect("put the objects folder back");
                } else {
                    std::fs::rename(&objects, &away).expect("move the objects folder away");
                    std::fs::write(&objects, b"not a folder").expect("write the stand-in file");
                }
            }
        }
    }

    /// Cloud: every object in the bucket sits under the prefix and has
    /// server-side encryption (AES256) set; returns how many were checked.
    /// Embedded: nothing to check (a folder has no SSE), returns 0.
    pub async fn assert_all_encrypted(&self) -> usize {
        let Pair::Cloud(c) = &self.pair else {
            return 0;
        };
        let keys = c.bucket_keys("").await;
        for key in &keys {
            assert!(
                key.starts_with(&format!("{S3_PREFIX}/")),
                "{key} is outside the prefix {S3_PREFIX}/"
            );
            let head =
                c.s3.head_object()
                    .bucket(&c.bucket)
                    .key(key)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("head object {key}: {e:?}"));
            assert_eq!(
                head.server_side_encryption(),
                Some(&ServerSideEncryption::Aes256),
                "{key} is not encrypted at rest"
            );
        }
        keys.len()
    }
}

impl Cloud {
    /// Every full key in the bucket starting with `prefix`.
    async fn bucket_keys(&self, prefix: &str) -> Vec<String> {
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| panic!("list objects on moto: {e:?}"));
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        keys
    }
}

/// Borrows owned pairs as the `&[(&str, &str)]` that TestApp and
/// ServerProcess take.
pub fn str_pairs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The `host:port` of `scheme://[user@]host[:port][/...]`, with `default_port`
/// when the URL has none.
pub fn url_host_port(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let has_port = match host_port.rsplit_once(':') {
        // `[::1]` alone has colons but no port.
        Some((_, port)) => !port.ends_with(']') && !port.is_empty(),
        None => false,
    };
    if has_port {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    }
}

/// Collects the files under `dir` as `/`-separated keys relative to `root`.
fn walk(root: &Path, dir: &Path, keys: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => panic!("list {}: {e}", dir.display()),
    };
    for entry in entries {
        let entry = entry.unwrap();
        let path: PathBuf = entry.path();
        if entry.file_type().unwrap().is_dir() {
            walk(root, &path, keys);
        } else if !entry.file_name().to_string_lossy().starts_with(".tmp-") {
            let rel = path.strip_prefix(root).unwrap();
            let key: Vec<_> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            keys.push(key.join("/"));
        }
    }
}
