//! Password hashing: argon2id PHC strings (argon2's default parameters,
//! OWASP's minimum: 19 MiB, 2 passes). A hash costs tens of milliseconds of
//! CPU, so it runs on a blocking thread, and only a few at once.

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// The shortest password `auscult users add` accepts, in characters.
pub const MIN_LENGTH: usize = 10;

/// Hashes being computed at once, at most (each holds 19 MiB).
const CONCURRENT_HASHES: usize = 4;

/// Why a hash could not be computed or checked (never says anything about the password).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes and verifies passwords off the async workers.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            permits: Arc::new(Semaphore::new(CONCURRENT_HASHES)),
        }
    }
}

impl Hasher {
    /// The PHC string (`$argon2id$v=19$…`) of `password` with a fresh salt.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        self.blocking(move || {
            Argon2::default()
                .hash_password(password.expose_secret().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| HashError(e.to_string()))
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
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| HashError(e.to_string()))
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

    #[test]
    fn passwords_shorter_than_ten_characters_are_refused() {
        assert!(!acceptable(&SecretString::from("123456789")));
        assert!(acceptable(&SecretString::from("1234567890")));
        assert!(acceptable(&SecretString::from("ééééééééééé")));
    }
}
