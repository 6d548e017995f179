//! Accounts in the metadata database: users (argon2id hashes, never the
//! passwords), cookie login sessions keyed by the hash of their id, and the
//! audit log. [`account_store!`] writes the [`AccountStore`] impl once for
//! each pool type, in SQL both dialects accept.

use async_trait::async_trait;
use secrecy::SecretString;

use crate::storage::StorageError;

/// A user as listed (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// A validated id: the user id in session rows and object keys.
    pub username: String,
    pub disabled: bool,
    pub created_at_ms: i64,
}

/// A user with the argon2id PHC string to check a password against.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: SecretString,
}

/// One cookie login session. `id_hash` is the SHA-256 (hex) of the id the
/// cookie carries; `data` is the session's JSON map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSessionRow {
    pub id_hash: String,
    pub user_id: Option<String>,
    pub data: String,
    pub expires_at_ms: i64,
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    Login,
    Logout,
    /// `detail` is the reason: `bad_password`, `unknown_user`, `disabled` or `rate_limited`.
    LoginFailed,
    UserAdded,
    UserDisabled,
    /// A recorded session deleted through the API; `detail` is its id.
    SessionDeleted,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Login => "login",
            AuditAction::Logout => "logout",
            AuditAction::LoginFailed => "login_failed",
            AuditAction::UserAdded => "user_added",
            AuditAction::UserDisabled => "user_disabled",
            AuditAction::SessionDeleted => "session_deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "login" => AuditAction::Login,
            "logout" => AuditAction::Logout,
            "login_failed" => AuditAction::LoginFailed,
            "user_added" => AuditAction::UserAdded,
            "user_disabled" => AuditAction::UserDisabled,
            "session_deleted" => AuditAction::SessionDeleted,
            _ => return None,
        })
    }
}

/// One row of the audit log: when, who, what, from where, and a detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at_ms: i64,
    pub user_id: Option<String>,
    pub action: AuditAction,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

impl AuditEntry {
    /// An entry stamped now, for `user` (if known).
    pub fn new(action: AuditAction, user: Option<&str>) -> Self {
        AuditEntry {
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            user_id: user.map(str::to_owned),
            action,
            ip: None,
            detail: None,
        }
    }

    pub fn with_ip(mut self, ip: Option<&str>) -> Self {
        self.ip = ip.map(str::to_owned);
        self
    }

    pub fn with_detail(mut self, detail: &str) -> Self {
        self.detail = Some(detail.to_owned());
        self
    }
}

/// The `detail` of a login refused by the rate limit: such refusals are
/// logged but not counted, so a lockout ends on time however hard it is tried.
pub const RATE_LIMITED: &str = "rate_limited";

/// One scope a login attempt is counted in, and how many attempts it allows
/// per window (see `accounts::limits`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitScope {
    pub key: String,
    pub limit: u32,
}

/// The answer to a reservation: counted in every scope, or refused (and
/// counted in none) until the earliest time every exceeded scope resets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Counted; each scope's key with the end of the window it was counted in.
    Granted(Vec<(String, i64)>),
    Refused {
        until_ms: i64,
    },
}

/// Users, login sessions and the audit log. Part of every
/// [`MetadataStore`](super::MetadataStore).
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Adds a user; `false` when the username is taken.
    async fn add_user(&self, user: &User, password_hash: &str) -> Result<bool, StorageError>;
    async fn credentials(&self, username: &str) -> Result<Option<Credentials>, StorageError>;
    /// Every user, by name.
    async fn list_users(&self) -> Result<Vec<User>, StorageError>;
    /// Disables the user and ends its login sessions; `false` when there is no such user.
    async fn disable_user(&self, username: &str) -> Result<bool, StorageError>;
    /// Whether any account exists (which ends the loopback `local` mode).
    async fn has_users(&self) -> Result<bool, StorageError>;

    /// Inserts a new login session; `false` when its id is taken.
    async fn create_web_session(&self, row: &WebSessionRow) -> Result<bool, StorageError>;
    /// Updates a login session that still exists and has not expired at
    /// `now_ms`; one that ended (logout, expiry) is not brought back.
    async fn save_web_session(&self, row: &WebSessionRow, now_ms: i64) -> Result<(), StorageError>;
    /// The session, unless it expired by `now_ms` or its user is disabled.
    async fn load_web_session(
        &self,
        id_hash: &str,
        now_ms: i64,
    ) -> Result<Option<WebSessionRow>, StorageError>;
    /// Moves a live session's expiry to `expires_at_ms`; `false` when it has ended.
    async fn touch_web_session(
        &self,
        id_hash: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StorageError>;
    async fn delete_web_session(&self, id_hash: &str) -> Result<(), StorageError>;
    /// Which of `id_hashes` are login sessions that still exist and have not
    /// expired at `now_ms` (and whose user is enabled).
    async fn live_web_sessions(
        &self,
        id_hashes: &[String],
        now_ms: i64,
    ) -> Result<Vec<String>, StorageError>;
    /// Removes sessions that expired before `now_ms`; returns how many.
    async fn delete_expired_web_sessions(&self, now_ms: i64) -> Result<u64, StorageError>;

    /// Appends an entry to the audit log.
    async fn audit(&self, entry: &AuditEntry) -> Result<(), StorageError>;
    /// The newest `limit` audit entries, newest first.
    async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StorageError>;
    /// Counts one login attempt in every scope at once, or in none when
    /// any scope is at its limit (one transaction: parallel attempts cannot
    /// all pass a check made before any of them is counted). A scope's window
    /// starts with its first attempt and lasts `window_ms`.
    async fn reserve_login(
        &self,
        scopes: &[LimitScope],
        window_ms: i64,
        now_ms: i64,
    ) -> Result<Reservation, StorageError>;
    /// Takes back a granted attempt (it was not a failure): each counted scope
    /// loses one attempt, and the scopes in `clear` are forgotten.
    async fn release_login(
        &self,
        counted: &[(String, i64)],
        clear: &[String],
    ) -> Result<(), StorageError>;
    /// Removes the rate-limit rows whose window ended before `now_ms`.
    async fn delete_expired_login_limits(&self, now_ms: i64) -> Result<u64, StorageError>;
}

macro_rules! account_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::meta::AccountStore for $store {
            async fn add_user(
                &self,
                user: &$crate::storage::meta::User,
                password_hash: &str,
            ) -> Result<bool, $crate::storage::StorageError> {
                let done = sqlx::query(
                    "INSERT INTO users (username, password_hash, disabled, created_at_ms) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING",
                )
                .bind(&user.username)
                .bind(password_hash)
                .bind(user.disabled)
                .bind(user.created_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn credentials(
                &self,
                username: &str,
            ) -> Result<Option<$crate::storage::meta::Credentials>, $crate::storage::StorageError>
            {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT username, password_hash, disabled, created_at_ms FROM users \
                     WHERE username = $1",
                )
                .bind(username)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let hash: String = row.try_get("password_hash")?;
                Ok(Some($crate::storage::meta::Credentials {
                    user: $crate::storage::meta::rows::user(&row)?,
                    password_hash: secrecy::SecretString::from(hash),
                }))
            }

            async fn list_users(
                &self,
            ) -> Result<Vec<$crate::storage::meta::User>, $crate::storage::StorageError> {
                let rows = sqlx::query(
                    "SELECT username, disabled, created_at_ms FROM users ORDER BY username",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map($crate::storage::meta::rows::user).collect()
            }

            async fn disable_user(
                &self,
                username: &str,
            ) -> Result<bool, $crate::storage::StorageError> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("UPDATE users SET disabled = $1 WHERE username = $2")
                    .bind(true)
                    .bind(username)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM web_sessions WHERE user_id = $1")
                    .bind(username)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn has_users(&self) -> Result<bool, $crate::storage::StorageError> {
                let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users LIMIT 1")
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(found.is_some())
            }

            async fn create_web_session(
                &self,
                row: &$crate::storage::meta::WebSessionRow,
            ) -> Result<bool, $crate::storage::StorageError> {
                let done = sqlx::query(
                    "INSERT INTO web_sessions (id_hash, user_id, data, expires_at_ms) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (id_hash) DO NOTHING",
                )
                .bind(&row.id_hash)
                .bind(&row.user_id)
                .bind(&row.data)
                .bind(row.expires_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn save_web_session(
                &self,
                row: &$crate::storage::meta::WebSessionRow,
                now_ms: i64,
            ) -> Result<(), $crate::storage::StorageError> {
                sqlx::query(
                    "UPDATE web_sessions SET user_id = $1, data = $2, expires_at_ms = $3 \
                     WHERE id_hash = $4 AND expires_at_ms > $5",
                )
                .bind(&row.user_id)
                .bind(&row.data)
                .bind(row.expires_at_ms)
                .bind(&row.id_hash)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn load_web_session(
                &self,
                id_hash: &str,
                now_ms: i64,
            ) -> Result<
                Option<$crate::storage::meta::WebSessionRow>,
                $crate::storage::StorageError,
            > {
                use sqlx::Row as _;
                // A session of a disabled (or vanished) user is as good as gone.
                let row = sqlx::query(
                    "SELECT w.id_hash, w.user_id, w.data, w.expires_at_ms FROM web_sessions w \
                     WHERE w.id_hash = $1 AND w.expires_at_ms > $2 AND (w.user_id IS NULL OR \
                     EXISTS (SELECT 1 FROM users u WHERE u.username = w.user_id AND u.disabled = $3))",
                )
                .bind(id_hash)
                .bind(now_ms)
                .bind(false)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|row| {
                    Ok($crate::storage::meta::WebSessionRow {
                        id_hash: row.try_get("id_hash")?,
                        user_id: row.try_get("user_id")?,
                        data: row.try_get("data")?,
                        expires_at_ms: row.try_get("expires_at_ms")?,
                    })
                })
                .transpose()
            }

            async fn touch_web_session(
                &self,
                id_hash: &str,
                expires_at_ms: i64,
                now_ms: i64,
            ) -> Result<bool, $crate::storage::StorageError> {
                let done = sqlx::query(
                    "UPDATE web_sessions SET expires_at_ms = $1 \
                     WHERE id_hash = $2 AND expires_at_ms > $3",
                )
                .bind(expires_at_ms)
                .bind(id_hash)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_web_session(
                &self,
                id_hash: &str,
            ) -> Result<(), $crate::storage::StorageError> {
                sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn live_web_sessions(
                &self,
                id_hashes: &[String],
                now_ms: i64,
            ) -> Result<Vec<String>, $crate::storage::StorageError> {
                let mut live = Vec::new();
                // A few hundred at a time keeps every statement's parameter list small.
                for batch in id_hashes.chunks(200) {
                    let list = (0..batch.len())
                        .map(|i| format!("${}", i + 3))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "SELECT w.id_hash FROM web_sessions w WHERE w.expires_at_ms > $1 \
                         AND (w.user_id IS NULL OR EXISTS (SELECT 1 FROM users u \
                         WHERE u.username = w.user_id AND u.disabled = $2)) \
                         AND w.id_hash IN ({list})"
                    );
                    // Only numbered placeholders are spliced in; every value is bound.
                    let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
                        .bind(now_ms)
                        .bind(false);
                    for hash in batch {
                        query = query.bind(hash);
                    }
                    live.extend(query.fetch_all(&self.pool).await?);
                }
                Ok(live)
            }

            async fn delete_expired_web_sessions(
                &self,
                now_ms: i64,
            ) -> Result<u64, $crate::storage::StorageError> {
                let done = sqlx::query("DELETE FROM web_sessions WHERE expires_at_ms <= $1")
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn audit(
                &self,
                e: &$crate::storage::meta::AuditEntry,
            ) -> Result<(), $crate::storage::StorageError> {
                sqlx::query(
                    "INSERT INTO audit_log (at_ms, user_id, action, ip, detail) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(e.at_ms)
                .bind(&e.user_id)
                .bind(e.action.as_str())
                .bind(&e.ip)
                .bind(&e.detail)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn recent_audit(
                &self,
                limit: u32,
            ) -> Result<Vec<$crate::storage::meta::AuditEntry>, $crate::storage::StorageError>
            {
                let rows = sqlx::query(
                    "SELECT at_ms, user_id, action, ip, detail FROM audit_log \
                     ORDER BY id DESC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map($crate::storage::meta::rows::audit_entry)
                    .collect()
            }

            async fn reserve_login(
                &self,
                scopes: &[$crate::storage::meta::LimitScope],
                window_ms: i64,
                now_ms: i64,
            ) -> Result<$crate::storage::meta::Reservation, $crate::storage::StorageError> {
                use sqlx::Row as _;
                // Scopes in one order in every transaction, so two attempts
                // that lock the same rows never wait for each other in a cycle.
                let mut ordered: Vec<&$crate::storage::meta::LimitScope> = scopes.iter().collect();
                ordered.sort_by(|a, b| a.key.cmp(&b.key));
                let mut tx = self.pool.begin().await?;
                let mut counted = Vec::with_capacity(ordered.len());
                let mut refused_until: Option<i64> = None;
                for scope in ordered {
                    let row = sqlx::query(
                        "INSERT INTO login_limits (scope_key, attempts, resets_at_ms) VALUES ($1, 1, $2) \
                         ON CONFLICT (scope_key) DO UPDATE SET \
                         attempts = CASE WHEN login_limits.resets_at_ms <= $3 THEN 1 \
                                    ELSE login_limits.attempts + 1 END, \
                         resets_at_ms = CASE WHEN login_limits.resets_at_ms <= $3 THEN $2 \
                                        ELSE login_limits.resets_at_ms END \
                         RETURNING attempts, resets_at_ms",
                    )
                    .bind(&scope.key)
                    .bind(now_ms + window_ms)
                    .bind(now_ms)
                    .fetch_one(&mut *tx)
                    .await?;
                    let attempts: i64 = row.try_get("attempts")?;
                    let resets: i64 = row.try_get("resets_at_ms")?;
                    if attempts > i64::from(scope.limit) {
                        refused_until = Some(refused_until.map_or(resets, |r| r.max(resets)));
                    }
                    counted.push((scope.key.clone(), resets));
                }
                if let Some(until_ms) = refused_until {
                    tx.rollback().await?;
                    return Ok($crate::storage::meta::Reservation::Refused { until_ms });
                }
                tx.commit().await?;
                Ok($crate::storage::meta::Reservation::Granted(counted))
            }

            async fn release_login(
                &self,
                counted: &[(String, i64)],
                clear: &[String],
            ) -> Result<(), $crate::storage::StorageError> {
                let mut tx = self.pool.begin().await?;
                for (key, resets) in counted {
                    // Only in the window it was counted in: a newer window owes nothing.
                    sqlx::query(
                        "UPDATE login_limits SET attempts = attempts - 1 \
                         WHERE scope_key = $1 AND resets_at_ms = $2 AND attempts > 0",
                    )
                    .bind(key)
                    .bind(resets)
                    .execute(&mut *tx)
                    .await?;
                }
                for key in clear {
                    sqlx::query("DELETE FROM login_limits WHERE scope_key = $1")
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn delete_expired_login_limits(
                &self,
                now_ms: i64,
            ) -> Result<u64, $crate::storage::StorageError> {
                let done = sqlx::query("DELETE FROM login_limits WHERE resets_at_ms <= $1")
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(super) use account_store;
