//! Who is calling: bearer tokens (header or `?access_token=`) mapped to user
//! ids, the loopback-only `local` user, and the `Origin` check.

use axum::http::{HeaderMap, StatusCode, header};
use secrecy::ExposeSecret;

use crate::config::{ApiToken, Config};

/// The single user allowed without a token on a loopback listener with no tokens configured.
pub const LOCAL_USER: &str = "local";

#[derive(Clone)]
pub struct Authenticator {
    tokens: Vec<ApiToken>,
    allow_local: bool,
    allowed_origins: Vec<String>,
}

/// Why a request was refused, with its HTTP status and stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    MissingCredentials,
    InvalidToken,
    OriginNotAllowed,
}

impl AuthError {
    pub fn status(self) -> StatusCode {
        match self {
            AuthError::MissingCredentials | AuthError::InvalidToken => StatusCode::UNAUTHORIZED,
            AuthError::OriginNotAllowed => StatusCode::FORBIDDEN,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            AuthError::MissingCredentials => "missing_credentials",
            AuthError::InvalidToken => "invalid_token",
            AuthError::OriginNotAllowed => "origin_not_allowed",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            AuthError::MissingCredentials => {
                "authentication required: Authorization: Bearer <token> or ?access_token="
            }
            AuthError::InvalidToken => "the token is not valid",
            AuthError::OriginNotAllowed => {
                "cross-origin request from an origin that is not allowed"
            }
        }
    }
}

impl Authenticator {
    pub fn from_config(config: &Config) -> Self {
        Authenticator {
            tokens: config.api_tokens.clone(),
            allow_local: config.allows_local_user(),
            allowed_origins: config.allowed_origins.clone(),
        }
    }

    /// Resolves the caller's user id from the `Authorization` header or the `access_token` query value.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<String, AuthError> {
        let header_token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let Some(token) = header_token.or(query_token).filter(|t| !t.is_empty()) else {
            return if self.allow_local {
                Ok(LOCAL_USER.to_owned())
            } else {
                Err(AuthError::MissingCredentials)
            };
        };
        // Compare against every token so timing does not reveal which one nearly matched.
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(t.token.expose_secret().as_bytes(), token.as_bytes()) {
                found = Some(t.user_id.clone());
            }
        }
        match found {
            Some(user) => Ok(user),
            None if self.allow_local && self.tokens.is_empty() => Ok(LOCAL_USER.to_owned()),
            None => Err(AuthError::InvalidToken),
        }
    }

    /// Allows requests without `Origin` (non-browser clients), same-origin ones,
    /// and origins in `AUSCULT_ALLOWED_ORIGINS`.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin
            .to_str()
            .map_err(|_| AuthError::OriginNotAllowed)?
            .trim_end_matches('/');
        if self
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        {
            return Ok(());
        }
        let origin_host = origin.split_once("://").map(|(_, h)| h);
        let forwarded_host = headers
            .get("x-forwarded-host")
            .and_then(|v| v.to_str().ok());
        let host =
            forwarded_host.or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()));
        match (origin_host, host) {
            (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
            _ => Err(AuthError::OriginNotAllowed),
        }
    }
}

/// The caller of an API or the WebSocket upgrade, authenticated (and, for
/// browsers, origin-checked). Every handler that touches a user's data takes
/// this; a refusal is the JSON error body with a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser(pub String);

impl axum::extract::FromRequestParts<super::AppState> for AuthUser {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &super::AppState,
    ) -> Result<Self, Self::Rejection> {
        #[derive(serde::Deserialize)]
        struct TokenQuery {
            access_token: Option<String>,
        }
        let query_token = axum::extract::Query::<TokenQuery>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|q| q.0.access_token);
        state
            .auth
            .check_origin(&parts.headers)
            .and_then(|()| {
                state
                    .auth
                    .authenticate(&parts.headers, query_token.as_deref())
            })
            .map(AuthUser)
            .map_err(AuthError::into_response)
    }
}

/// The stable code of a refusal, carried on its response for metrics.
#[derive(Debug, Clone, Copy)]
pub struct RefusalCode(pub &'static str);

impl AuthError {
    /// The refusal as an HTTP response (401s name the Bearer scheme).
    pub fn into_response(self) -> axum::response::Response {
        let mut resp = super::http::error_response(self.status(), self.code(), self.message());
        resp.extensions_mut().insert(RefusalCode(self.code()));
        if self.status() == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn auth(env: &[(&str, &str)]) -> Authenticator {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Authenticator::from_config(&Config::load_from(None, &env).unwrap())
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn tokens_map_to_users_and_bad_tokens_are_refused() {
        let a = auth(&[("AUSCULT_API_TOKENS", "alice:token-alice,bob:token-bob")]);
        let h = headers(&[(header::AUTHORIZATION, "Bearer token-bob")]);
        assert_eq!(a.authenticate(&h, None).unwrap(), "bob");
        assert_eq!(
            a.authenticate(&HeaderMap::new(), Some("token-alice"))
                .unwrap(),
            "alice"
        );
        assert_eq!(
            a.authenticate(&HeaderMap::new(), None),
            Err(AuthError::MissingCredentials)
        );
        assert_eq!(
            a.authenticate(&HeaderMap::new(), Some("token-eve")),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn loopback_without_tokens_is_the_local_user() {
        let a = auth(&[]);
        assert_eq!(a.authenticate(&HeaderMap::new(), None).unwrap(), LOCAL_USER);
    }

    #[test]
    fn origin_rules() {
        let a = auth(&[("AUSCULT_ALLOWED_ORIGINS", "https://app.example.org")]);
        assert!(a.check_origin(&HeaderMap::new()).is_ok());
        assert!(
            a.check_origin(&headers(&[(header::ORIGIN, "https://app.example.org")]))
                .is_ok()
        );
        let same = headers(&[
            (header::ORIGIN, "http://127.0.0.1:8080"),
            (header::HOST, "127.0.0.1:8080"),
        ]);
        assert!(a.check_origin(&same).is_ok());
        let evil = headers(&[
            (header::ORIGIN, "https://evil.example"),
            (header::HOST, "127.0.0.1:8080"),
        ]);
        assert_eq!(a.check_origin(&evil), Err(AuthError::OriginNotAllowed));
    }
}
