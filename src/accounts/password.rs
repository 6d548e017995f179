//! Password hashing: argon2id PHC strings (argon2's default parameters,
//! OWASP's minimum: 19 MiB, 2 passes). A hash costs tens of milliseconds of
//! CPU, so it runs on a blocking thread, on at most half the cores (the
//! speech engine needs the rest), and the queue in front of it is bounded in
//! length and in wait: a flood of logins is answered "busy" at once instead
//! of piling up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// The shortest password `auscult users add` accepts, in characters.
pub const MIN_LENGTH: usize = 10;

/// Hashes waiting for a thread, at most, per core.
const QUEUE_PER_CORE: usize = 4;
/// The longest a hash waits for a thread before the caller hears "busy".
const MAX_WAIT: Duration = Duration::from_secs(3);

/// Why a hash could not be computed or checked (never says anything about the password).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many hashes are waiting already; nothing was hashed. Retryable.
    #[error("too many password checks at once")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Hashes and verifies passwords off the async workers.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    max_wait: Duration,
}

impl Default for Hasher {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_limits((cores / 2).max(1), QUEUE_PER_CORE * cores, MAX_WAIT)
    }
}

/// Counts a caller as waiting until it is dropped.
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hasher {
    /// `concurrent` hashes at once, `max_waiting` more queued for at most `max_wait`.
    pub fn with_limits(concurrent: usize, max_waiting: usize, max_wait: Duration) -> Self {
        Hasher {
            permits: Arc::new(Semaphore::new(concurrent.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
            max_wait,
        }
    }

    /// The PHC string (`$argon2id$v=19$…`) of `password` with a fresh salt.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        self.blocking(move || {
            Argon2::default()
                .hash_password(password.expose_secret().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await?
    }

    /// Whether `password` matches `hash`. With no hash (an unknown user) it
    /// is checked against a dummy one, so the answer takes as long either way
    /// and its timing does not tell which usernames exist.
    pub async fn verify(
        &self,
        password: SecretString,
        hash: Option<SecretString>,
    ) -> Result<bool, HashError> {
        self.blocking(move || {
            let matches = |phc: &str| {
                PasswordHash::new(phc).is_ok_and(|parsed| {
                    Argon2::default()
                        .verify_password(password.expose_secret().as_bytes(), &parsed)
                        .is_ok()
                })
            };
            match hash {
                Some(hash) => matches(hash.expose_secret()),
                None => {
                    let _ = matches(dummy_hash());
                    false
                }
            }
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let queued = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_waiting).then_some(n + 1)
            })
            .is_ok();
        if !queued {
            return Err(HashError::Busy);
        }
        let waiting = Waiting(Arc::clone(&self.waiting));
        let _permit = match tokio::time::timeout(self.max_wait, self.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(e)) => return Err(HashError::Failed(e.to_string())),
            Err(_) => return Err(HashError::Busy),
        };
        drop(waiting);
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| HashError::Failed(e.to_string()))
    }
}

/// A hash with the real parameters, of a password nobody has.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"auscult: no such user")
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Checks the password policy: at least [`MIN_LENGTH`] characters.
pub fn acceptable(password: &SecretString) -> bool {
    password.expose_secret().chars().count() >= MIN_LENGTH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_is_argon2id_and_verifies_only_its_password() {
        let hasher = Hasher::default();
        let hash = hasher
            .hash(SecretString::from("correct horse battery"))
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        let check = |pw: &str| hasher.verify(SecretString::from(pw), Some(hash.clone().into()));
        assert!(check("correct horse battery").await.unwrap());
        assert!(!check("correct horse battery!").await.unwrap());
        assert!(
            !hasher
                .verify(SecretString::from("anything at all"), None)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_without_hashing() {
        // One thread, one waiting: a third caller is refused at once.
        let hasher = Hasher::with_limits(1, 1, Duration::from_secs(30));
        let checks: Vec<_> = (0..3)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move {
                    hasher
                        .verify(SecretString::from("anything at all"), None)
                        .await
                })
            })
            .collect();
        let mut busy = 0;
        for check in checks {
            match check.await.unwrap() {
                Ok(false) => {}
                Err(HashError::Busy) => busy += 1,
                other => panic!("{other:?}"),
            }
        }
        assert!(busy >= 1, "three checks through a queue of one");
        // A caller that waits too long is refused too.
        let slow = Hasher::with_limits(1, 10, Duration::from_millis(1));
        let results = futures_util::future::join_all(
            (0..4).map(|_| slow.verify(SecretString::from("anything at all"), None)),
        )
        .await;
        assert!(results.iter().any(|r| matches!(r, Err(HashError::Busy))));
    }

    #[test]
    fn passwords_shorter_than_ten_characters_are_refused() {
        assert!(!acceptable(&SecretString::from("123456789")));
        assert!(acceptable(&SecretString::from("1234567890")));
        assert!(acceptable(&SecretString::from("ééééééééééé")));
    }
}
