//! Accounts: the people who log in to the page. Users with argon2id password
//! hashes, logins checked against failed-login rate limits, cookie login
//! sessions, and an audit log of who logged in, out or failed, from where.

pub mod limits;
pub mod login_sessions;
pub mod password;

use std::time::Duration;

use secrecy::SecretString;

use crate::session::wall_clock_ms;
use crate::storage::StorageError;
use crate::storage::keys::{InvalidId, validate_id};
use crate::storage::meta::{
    AuditAction, AuditEntry, RATE_LIMITED, Reservation, SharedMetadataStore, User,
};
use crate::telemetry;
pub use limits::RateLimits;
pub use password::{HashError, Hasher};

/// Why a user could not be added, listed or disabled.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid username: {0}")]
    InvalidUsername(#[from] InvalidId),
    #[error("the password must be at least {} characters", password::MIN_LENGTH)]
    PasswordTooShort,
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("no such user {0:?}")]
    UnknownUser(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Hashing(#[from] HashError),
}

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong password, unknown user or disabled user: the caller is not told which.
    #[error("wrong username or password")]
    BadCredentials,
    #[error("too many failed logins; retry in {} s", retry_after.as_secs())]
    TooManyAttempts { retry_after: Duration },
    /// Too many password checks are waiting; nothing was checked or counted.
    #[error("too many logins at once")]
    Busy,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Hashing(#[from] HashError),
}

/// What a password check found.
enum Checked {
    Valid(String),
    /// Why not: `unknown_user`, `bad_password` or `disabled`.
    Refused(&'static str),
}

/// What `disable_user` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disabled {
    Now,
    Already,
}

#[derive(Clone)]
pub struct Accounts {
    store: SharedMetadataStore,
    hasher: Hasher,
    limits: RateLimits,
    login_idle: Duration,
}

impl Accounts {
    pub fn new(store: SharedMetadataStore, login_idle: Duration) -> Self {
        Accounts {
            store,
            hasher: Hasher::default(),
            limits: RateLimits::default(),
            login_idle,
        }
    }

    pub fn store(&self) -> &SharedMetadataStore {
        &self.store
    }

    /// How long a cookie login lasts without a request.
    pub fn login_idle(&self) -> Duration {
        self.login_idle
    }

    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// Adds an enabled user (audit-logged with `detail`, e.g. `cli`).
    pub async fn add_user(
        &self,
        username: &str,
        password: SecretString,
        detail: &str,
    ) -> Result<User, AccountError> {
        validate_id(username)?;
        if !password::acceptable(&password) {
            return Err(AccountError::PasswordTooShort);
        }
        // Refuse before the expensive hash; the insert below settles any race.
        if self.store.credentials(username).await?.is_some() {
            return Err(AccountError::Exists(username.to_owned()));
        }
        let hash = self.hasher.hash(password).await?;
        let user = User {
            username: username.to_owned(),
            disabled: false,
            created_at_ms: wall_clock_ms(),
        };
        if !self.store.add_user(&user, &hash).await? {
            return Err(AccountError::Exists(username.to_owned()));
        }
        self.store
            .audit(&AuditEntry::new(AuditAction::UserAdded, Some(username)).with_detail(detail))
            .await?;
        tracing::info!(event = "user_added", user = username);
        Ok(user)
    }

    pub async fn list_users(&self) -> Result<Vec<User>, AccountError> {
        Ok(self.store.list_users().await?)
    }

    /// Disables a user: it can no longer log in and its cookie logins end.
    pub async fn disable_user(
        &self,
        username: &str,
        detail: &str,
    ) -> Result<Disabled, AccountError> {
        let Some(current) = self.store.credentials(username).await? else {
            return Err(AccountError::UnknownUser(username.to_owned()));
        };
        if !self.store.disable_user(username).await? {
            return Err(AccountError::UnknownUser(username.to_owned()));
        }
        if current.user.disabled {
            return Ok(Disabled::Already);
        }
        self.store
            .audit(&AuditEntry::new(AuditAction::UserDisabled, Some(username)).with_detail(detail))
            .await?;
        tracing::info!(event = "user_disabled", user = username);
        Ok(Disabled::Now)
    }

    /// Whether the loopback `local` user may still be used: only while no
    /// account exists (disabling every account does not reopen the machine).
    pub async fn local_mode(&self) -> Result<bool, StorageError> {
        Ok(!self.store.has_users().await?)
    }

    /// Checks a login attempt from `ip` and returns the username. Every
    /// outcome is audit-logged. The attempt is counted against the rate
    /// limits before the password is hashed (so a parallel burst gets no
    /// more hashes than the limits allow) and given back when it was not a
    /// failure. The password is always hashed (against a dummy for unknown
    /// users), so the answer's timing does not reveal which usernames exist.
    pub async fn login(
        &self,
        username: &str,
        password: SecretString,
        ip: Option<&str>,
    ) -> Result<String, LoginError> {
        // A name that is not a valid id cannot exist; only its address is counted.
        let user = validate_id(username).ok();
        let fail = |reason: &'static str| {
            AuditEntry::new(AuditAction::LoginFailed, user)
                .with_ip(ip)
                .with_detail(reason)
        };
        let now = wall_clock_ms();
        let window_ms = self.limits.window.as_millis() as i64;
        let scopes = self.limits.scopes(user, ip);
        let counted = match self.store.reserve_login(&scopes, window_ms, now).await? {
            Reservation::Granted(counted) => counted,
            Reservation::Refused { until_ms } => {
                self.store.audit(&fail(RATE_LIMITED)).await?;
                metrics::counter!(telemetry::LOGINS, "outcome" => RATE_LIMITED).increment(1);
                tracing::warn!(event = "login_failed", user, ip, reason = RATE_LIMITED);
                let retry_after = Duration::from_millis((until_ms - now).max(1) as u64);
                return Err(LoginError::TooManyAttempts { retry_after });
            }
        };
        let outcome = self.check_password(user, password).await;
        let cleared = match &outcome {
            Ok(Checked::Valid(name)) => self.limits.cleared_by_success(name, ip),
            _ => Vec::new(),
        };
        // Only a wrong password (or unknown or disabled user) stays counted.
        if !matches!(outcome, Ok(Checked::Refused(_)))
            && let Err(e) = self.store.release_login(&counted, &cleared).await
        {
            telemetry::storage_failure("metadata", "login_limits", &e);
        }
        let reason = match outcome {
            Ok(Checked::Valid(name)) => {
                self.store
                    .audit(&AuditEntry::new(AuditAction::Login, Some(&name)).with_ip(ip))
                    .await?;
                metrics::counter!(telemetry::LOGINS, "outcome" => "ok").increment(1);
                tracing::info!(event = "login", user = %name, ip);
                return Ok(name);
            }
            Ok(Checked::Refused(reason)) => reason,
            Err(LoginError::Hashing(HashError::Busy)) => {
                metrics::counter!(telemetry::LOGINS, "outcome" => "busy").increment(1);
                tracing::warn!(event = "login_busy", user, ip);
                return Err(LoginError::Busy);
            }
            Err(e) => return Err(e),
        };
        self.store.audit(&fail(reason)).await?;
        metrics::counter!(telemetry::LOGINS, "outcome" => reason).increment(1);
        tracing::info!(event = "login_failed", user, ip, reason);
        Err(LoginError::BadCredentials)
    }

    /// Hashes the password against `user`'s (or a dummy) and says whether it
    /// opens an enabled account.
    async fn check_password(
        &self,
        user: Option<&str>,
        password: SecretString,
    ) -> Result<Checked, LoginError> {
        let credentials = match user {
            Some(user) => self.store.credentials(user).await?,
            None => None,
        };
        let hash = credentials.as_ref().map(|c| c.password_hash.clone());
        let matches = self.hasher.verify(password, hash).await?;
        Ok(match credentials {
            None => Checked::Refused("unknown_user"),
            Some(_) if !matches => Checked::Refused("bad_password"),
            Some(c) if c.user.disabled => Checked::Refused("disabled"),
            Some(c) => Checked::Valid(c.user.username),
        })
    }

    /// Records a logout.
    pub async fn logged_out(&self, user: &str, ip: Option<&str>) -> Result<(), StorageError> {
        self.store
            .audit(&AuditEntry::new(AuditAction::Logout, Some(user)).with_ip(ip))
            .await?;
        tracing::info!(event = "logout", user, ip);
        Ok(())
    }
}
