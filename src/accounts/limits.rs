//! Login rate limits. Every attempt is counted, before its password is
//! hashed, in up to three scopes: one username from one address (the tight
//! one), one username from anywhere (a higher ceiling, against guessing from
//! many addresses), and one address for any username. The counters live in
//! the database, so the limits hold across every instance and restart, and
//! one transaction counts an attempt in all its scopes or refuses it.
//!
//! An attacker who locks a username from their address does not lock its
//! owner out at another workstation; only the cross-address ceiling does.

use std::time::Duration;

use crate::storage::meta::LimitScope;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Failed logins for one username from one address per window.
    pub per_user_ip: u32,
    /// Failed logins for one username from any address per window.
    pub per_user: u32,
    /// Failed logins from one address, for any usernames, per window.
    pub per_ip: u32,
    pub window: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_user_ip: 5,
            per_user: 50,
            per_ip: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

impl RateLimits {
    /// The scopes an attempt for `user` (a valid id, or `None` for a name
    /// that cannot exist) from `ip` is counted in.
    pub fn scopes(&self, user: Option<&str>, ip: Option<&str>) -> Vec<LimitScope> {
        let scope = |key: String, limit| LimitScope { key, limit };
        let mut scopes = Vec::with_capacity(3);
        if let Some(user) = user {
            scopes.push(scope(format!("u:{user}"), self.per_user));
            if let Some(ip) = ip {
                scopes.push(scope(format!("ui:{user}|{ip}"), self.per_user_ip));
            }
        }
        if let Some(ip) = ip {
            scopes.push(scope(format!("i:{ip}"), self.per_ip));
        }
        scopes
    }

    /// The scopes a successful login of `user` from `ip` starts afresh: its
    /// own address and the cross-address ceiling (other addresses' lockouts
    /// stay: an attacker gains nothing from the owner's login).
    pub fn cleared_by_success(&self, user: &str, ip: Option<&str>) -> Vec<String> {
        let mut keys = vec![format!("u:{user}")];
        if let Some(ip) = ip {
            keys.push(format!("ui:{user}|{ip}"));
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_is_counted_per_user_and_address_per_user_and_per_address() {
        let limits = RateLimits::default();
        let keys: Vec<(String, u32)> = limits
            .scopes(Some("dr-lee"), Some("10.0.0.1"))
            .into_iter()
            .map(|s| (s.key, s.limit))
            .collect();
        assert_eq!(
            keys,
            [
                ("u:dr-lee".to_owned(), 50),
                ("ui:dr-lee|10.0.0.1".to_owned(), 5),
                ("i:10.0.0.1".to_owned(), 20)
            ]
        );
        assert_eq!(limits.scopes(None, Some("10.0.0.1")).len(), 1);
        assert_eq!(limits.scopes(Some("dr-lee"), None).len(), 1);
        assert_eq!(
            limits.cleared_by_success("dr-lee", Some("10.0.0.1")),
            ["u:dr-lee", "ui:dr-lee|10.0.0.1"]
        );
    }
}
