//! Accounts tests' helpers: a metadata database of either kind (SQLite in a
//! temp folder, or a fresh Postgres database) with readers for the account
//! tables straight from it, and an HTTP client for `/v1/auth/*` that handles
//! the login cookie by hand (so the server, not the client, decides when a
//! login ends).

use std::time::Duration;

use auscult::accounts::Accounts;
use auscult::storage::meta;
use secrecy::SecretString;
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tempfile::TempDir;

use super::TestApp;
use super::postgres::TestDatabase;

/// The password every test user gets unless a test says otherwise.
pub const PASSWORD: &str = "correct horse battery";

/// A metadata database for the app under test.
pub enum AccountsDb {
    Sqlite(TempDir),
    Postgres(TestDatabase),
}

/// One audit log row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub user_id: Option<String>,
    pub action: String,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

/// An expected audit row.
pub fn audit_row(
    action: &str,
    user: Option<&str>,
    ip: Option<&str>,
    detail: Option<&str>,
) -> AuditRow {
    AuditRow {
        user_id: user.map(str::to_owned),
        action: action.to_owned(),
        ip: ip.map(str::to_owned),
        detail: detail.map(str::to_owned),
    }
}

/// One `users` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub username: String,
    pub password_hash: String,
    pub disabled: bool,
}

impl AccountsDb {
    pub async fn sqlite() -> AccountsDb {
        AccountsDb::Sqlite(tempfile::tempdir().expect("temp dir for the sqlite database"))
    }

    pub async fn postgres() -> AccountsDb {
        AccountsDb::Postgres(TestDatabase::create().await)
    }

    pub fn url(&self) -> String {
        match self {
            AccountsDb::Sqlite(dir) => format!("sqlite://{}/meta.db", dir.path().display()),
            AccountsDb::Postgres(db) => db.url.clone(),
        }
    }

    /// The app (scripted engines, objects in its own data dir) on this
    /// database, with `env` on top. The test client plays the load balancer:
    /// loopback is a trusted proxy, so its `X-Forwarded-*` headers count.
    pub async fn spawn_app(&self, env: &[(&str, &str)]) -> TestApp {
        let url = self.url();
        let mut all = vec![
            ("AUSCULT_DATABASE_URL", url.as_str()),
            ("AUSCULT_TRUSTED_PROXIES", "127.0.0.1"),
        ];
        all.extend_from_slice(env);
        TestApp::spawn_env(&all).await
    }

    /// The accounts service on this database, through the library (for setup).
    pub async fn accounts(&self) -> Accounts {
        let store = meta::open(
            &SecretString::from(self.url()),
            &meta::PoolSettings::default(),
        )
        .await
        .expect("open the metadata store");
        Accounts::new(store, Duration::from_secs(900))
    }

    /// Adds an enabled user with [`PASSWORD`].
    pub async fn add_user(&self, name: &str) {
        self.accounts()
            .await
            .add_user(name, SecretString::from(PASSWORD), "test")
            .await
            .unwrap_or_else(|e| panic!("add user {name}: {e}"));
    }

    /// Every audit row, oldest first.
    pub async fn audit_rows(&self) -> Vec<AuditRow> {
        let sql = "SELECT user_id, action, ip, detail FROM audit_log ORDER BY id";
        macro_rules! read {
            ($pool:expr) => {
                sqlx::query(sql)
                    .fetch_all(&$pool)
                    .await
                    .expect("read audit_log")
                    .iter()
                    .map(|r| AuditRow {
                        user_id: r.get("user_id"),
                        action: r.get("action"),
                        ip: r.get("ip"),
                        detail: r.get("detail"),
                    })
                    .collect()
            };
        }
        match self {
            AccountsDb::Sqlite(_) => read!(self.sqlite_pool().await),
            AccountsDb::Postgres(db) => read!(db.pool().await),
        }
    }

    /// Audit rows with `action`, oldest first.
    pub async fn audit(&self, action: &str) -> Vec<AuditRow> {
        let mut rows = self.audit_rows().await;
        rows.retain(|r| r.action == action);
        rows
    }

    pub async fn user_row(&self, name: &str) -> Option<UserRow> {
        let sql = "SELECT username, password_hash, disabled FROM users WHERE username = $1";
        macro_rules! read {
            ($pool:expr) => {
                sqlx::query(sql)
                    .bind(name)
                    .fetch_optional(&$pool)
                    .await
                    .expect("read users")
                    .map(|r| UserRow {
                        username: r.get("username"),
                        password_hash: r.get("password_hash"),
                        disabled: r.get("disabled"),
                    })
            };
        }
        match self {
            AccountsDb::Sqlite(_) => read!(self.sqlite_pool().await),
            AccountsDb::Postgres(db) => read!(db.pool().await),
        }
    }

    /// Every login session row as `(id_hash, user_id, data)`.
    pub async fn web_sessions(&self) -> Vec<(String, Option<String>, String)> {
        let sql = "SELECT id_hash, user_id, data FROM web_sessions";
        macro_rules! read {
            ($pool:expr) => {
                sqlx::query(sql)
                    .fetch_all(&$pool)
                    .await
                    .expect("read web_sessions")
                    .iter()
                    .map(|r| (r.get("id_hash"), r.get("user_id"), r.get("data")))
                    .collect()
            };
        }
        match self {
            AccountsDb::Sqlite(_) => read!(self.sqlite_pool().await),
            AccountsDb::Postgres(db) => read!(db.pool().await),
        }
    }

    async fn sqlite_pool(&self) -> sqlx::SqlitePool {
        let AccountsDb::Sqlite(dir) = self else {
            unreachable!("sqlite_pool on Postgres")
        };
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("meta.db"))
            .create_if_missing(false);
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("open the app's sqlite database")
    }
}

/// A `Set-Cookie` for the login cookie, split into its value and attributes.
#[derive(Debug, Clone)]
pub struct LoginCookie {
    pub value: String,
    /// The attributes as sent (`HttpOnly`, `SameSite=Strict`, …).
    pub attrs: Vec<String>,
}

impl LoginCookie {
    /// The `Cookie` request header that sends it back.
    pub fn header(&self) -> String {
        format!("auscult_session={}", self.value)
    }

    pub fn has(&self, attr: &str) -> bool {
        self.attrs.iter().any(|a| a.eq_ignore_ascii_case(attr))
    }

    /// The value of attribute `name` (`Max-Age`, `Path`, …), if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find_map(|a| {
            let (k, v) = a.split_once('=')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

/// A response to one `/v1/auth/*` request.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub cookie: Option<LoginCookie>,
    pub retry_after: Option<u64>,
    pub body: Value,
}

impl Reply {
    async fn from(resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("auscult_session="))
            .map(|v| {
                let mut parts = v.split(';').map(|p| p.trim().to_owned());
                let value = parts.next().unwrap_or_default();
                LoginCookie {
                    value: value["auscult_session=".len()..].to_owned(),
                    attrs: parts.collect(),
                }
            });
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().expect("Retry-After in seconds"));
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            cookie,
            retry_after,
            body,
        }
    }

    /// The error code of a JSON error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn login_cookie(&self) -> &LoginCookie {
        self.cookie
            .as_ref()
            .unwrap_or_else(|| panic!("no auscult_session cookie in {self:?}"))
    }
}

/// `POST /v1/auth/login` with a JSON body and extra headers.
pub async fn login(app: &TestApp, user: &str, password: &str, headers: &[(&str, &str)]) -> Reply {
    let body = serde_json::json!({ "username": user, "password": password }).to_string();
    post(app, "/v1/auth/login", "application/json", body, headers).await
}

/// `POST /v1/auth/login` from the client address `ip` (as the ALB would say it).
pub async fn login_from(app: &TestApp, ip: &str, user: &str, password: &str) -> Reply {
    login(app, user, password, &[("x-forwarded-for", ip)]).await
}

pub async fn post(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: String,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = reqwest::Client::new()
        .post(app.http_url(path))
        .header("content-type", content_type)
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Reply::from(req.send().await.expect("POST")).await
}

/// `GET path` with extra headers.
pub async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = reqwest::Client::new().get(app.http_url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Reply::from(req.send().await.expect("GET")).await
}

/// `GET /v1/auth/me` with the cookie (if any).
pub async fn me(app: &TestApp, cookie: Option<&LoginCookie>) -> Reply {
    match cookie {
        Some(c) => get(app, "/v1/auth/me", &[("cookie", &c.header())]).await,
        None => get(app, "/v1/auth/me", &[]).await,
    }
}

/// `POST /v1/auth/logout` with the cookie.
pub async fn logout(app: &TestApp, cookie: &LoginCookie) -> Reply {
    post(
        app,
        "/v1/auth/logout",
        "application/json",
        String::new(),
        &[("cookie", &cookie.header())],
    )
    .await
}

/// Logs `user` in with [`PASSWORD`] and returns the login cookie.
pub async fn logged_in(app: &TestApp, user: &str) -> LoginCookie {
    let reply = login(app, user, PASSWORD, &[]).await;
    assert_eq!(reply.status, 200, "login of {user}: {reply:?}");
    reply.login_cookie().clone()
}

/// Checks a stored session's objects straight from the folder store (the
/// database of these apps is the test's, not the data dir's): the audio is
/// exactly `audio` and the manifest's close reason is `reason`.
pub fn assert_stored_objects(
    app: &TestApp,
    user: &str,
    session_id: &str,
    audio: &[u8],
    reason: &str,
) {
    let key = format!("users/{user}/audio/sessions/{session_id}/audio.wav");
    let wav = super::parse_wav(&std::fs::read(app.object_path(&key)).expect("stored audio"));
    assert!(wav.data == audio, "the stored audio is what was sent");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(app.object_path(&key.replace("audio.wav", "manifest.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["close_reason"], reason);
}

/// Declares each test once per database, as `sqlite::<name>` and
/// `postgres::<name>`; each test takes a fresh [`AccountsDb`]. (Only some
/// test binaries use it.)
#[allow(unused_macros)]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::AccountsDb::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::AccountsDb::postgres().await).await;
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_databases;
