//! Failed-login rate limits, per username and per client address. Failures
//! are counted from the audit log, so the limits hold across every instance
//! behind the load balancer and across restarts.

use std::time::Duration;

use crate::storage::StorageError;
use crate::storage::meta::{AccountStore, FailureScope};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Failed logins for one username within `window` (since its last
    /// successful login) after which its logins are refused.
    pub per_user: u32,
    /// Failed logins from one address within `window`, for any usernames.
    pub per_ip: u32,
    pub window: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_user: 5,
            per_ip: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

impl RateLimits {
    /// How long until a login for `user` from `ip` may be tried; `None` when it may be now.
    pub async fn retry_after(
        &self,
        store: &dyn AccountStore,
        user: Option<&str>,
        ip: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<Duration>, StorageError> {
        let window_ms = self.window.as_millis() as i64;
        let since = now_ms - window_ms;
        let scopes = [
            user.map(|u| (FailureScope::User(u), self.per_user)),
            ip.map(|ip| (FailureScope::Ip(ip), self.per_ip)),
        ];
        let mut wait: Option<i64> = None;
        for (scope, limit) in scopes.into_iter().flatten() {
            // Allowed again once the limit-th newest failure leaves the window.
            if let Some(at) = store.nth_recent_failure(scope, since, limit).await? {
                let ms = (at + window_ms - now_ms).max(1);
                wait = Some(wait.map_or(ms, |w| w.max(ms)));
            }
        }
        Ok(wait.map(|ms| Duration::from_millis(ms as u64)))
    }
}
