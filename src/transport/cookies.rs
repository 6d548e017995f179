//! The login cookie: a `tower-sessions` layer over the database-backed
//! [`LoginSessionStore`], and `Secure` added when the request came over TLS.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use super::forwarded::Forwarded;
use crate::accounts::Accounts;
use crate::accounts::login_sessions::LoginSessionStore;

/// The login cookie's name.
pub const COOKIE_NAME: &str = "auscult_session";

/// Login sessions: HttpOnly, SameSite=Strict, Path=/, no Max-Age (the server
/// ends a login after its idle time, see [`LoginSessionStore`]). `Secure` is
/// left to [`secure_cookie`], which knows whether the request was https.
pub fn session_layer(accounts: &Accounts) -> SessionManagerLayer<LoginSessionStore> {
    let store = LoginSessionStore::new(accounts.store().clone(), accounts.login_idle());
    SessionManagerLayer::new(store)
        .with_name(COOKIE_NAME)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_path("/")
        .with_secure(false)
        .with_expiry(Expiry::OnSessionEnd)
}

/// Adds `Secure` to the login cookie of a response to a request that came
/// over TLS (a trusted load balancer's `X-Forwarded-Proto: https`).
pub async fn secure_cookie(req: Request, next: Next) -> Response {
    let https = req.extensions().get::<Forwarded>().is_some_and(|f| f.https);
    let mut resp = next.run(req).await;
    if https {
        mark_secure(resp.headers_mut());
    }
    resp
}

fn mark_secure(headers: &mut HeaderMap) {
    let prefix = format!("{COOKIE_NAME}=");
    let ours = |v: &HeaderValue| v.as_bytes().starts_with(prefix.as_bytes());
    let cookies: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    if !cookies.iter().any(ours) {
        return;
    }
    headers.remove(header::SET_COOKIE);
    for value in cookies {
        let secured = match value.to_str() {
            Ok(text) if ours(&value) && !is_secure(text) => {
                HeaderValue::from_str(&format!("{text}; Secure")).unwrap_or(value)
            }
            _ => value,
        };
        headers.append(header::SET_COOKIE, secured);
    }
}

fn is_secure(cookie: &str) -> bool {
    cookie
        .split(';')
        .any(|attr| attr.trim().eq_ignore_ascii_case("secure"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_login_cookie_is_marked_and_only_once() {
        let mut h = HeaderMap::new();
        h.append(
            header::SET_COOKIE,
            "auscult_session=abc; HttpOnly; SameSite=Strict; Path=/"
                .parse()
                .unwrap(),
        );
        h.append(header::SET_COOKIE, "other=1; Path=/".parse().unwrap());
        mark_secure(&mut h);
        mark_secure(&mut h);
        let values: Vec<&str> = h
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            values,
            [
                "auscult_session=abc; HttpOnly; SameSite=Strict; Path=/; Secure",
                "other=1; Path=/"
            ]
        );
    }
}
