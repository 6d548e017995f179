//! Who is calling: bearer tokens (header or `?access_token=`) mapped to user
//! ids, cookie logins, the loopback-only `local` user, and the `Origin` check.

use axum::http::{HeaderMap, StatusCode, header};
use secrecy::ExposeSecret;
use tower_sessions::Session;
use tower_sessions::session::Id;

use super::forwarded::Forwarded;
use crate::accounts::login_sessions::{SEEN_KEY, USER_KEY};
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
    /// A token of a user whose account is disabled.
    UserDisabled,
    /// The database holding accounts and logins did not answer (retryable).
    Unavailable,
}

impl AuthError {
    pub fn status(self) -> StatusCode {
        match self {
            AuthError::MissingCredentials | AuthError::InvalidToken => StatusCode::UNAUTHORIZED,
            AuthError::OriginNotAllowed | AuthError::UserDisabled => StatusCode::FORBIDDEN,
            AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            AuthError::MissingCredentials => "missing_credentials",
            AuthError::InvalidToken => "invalid_token",
            AuthError::OriginNotAllowed => "origin_not_allowed",
            AuthError::UserDisabled => "user_disabled",
            AuthError::Unavailable => "auth_unavailable",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            AuthError::MissingCredentials => {
                "authentication required: log in, or Authorization: Bearer <token> or ?access_token="
            }
            AuthError::InvalidToken => "the token is not valid",
            AuthError::OriginNotAllowed => {
                "cross-origin request from an origin that is not allowed"
            }
            AuthError::UserDisabled => "this user's account is disabled",
            AuthError::Unavailable => "cannot check credentials right now, try again",
        }
    }
}

/// What a request's token said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// No token was presented.
    Absent,
    Valid(String),
    Invalid,
}

/// How a caller was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVia {
    /// A login cookie session (`auscult_session`).
    Cookie,
    /// A bearer token (header or `?access_token=`).
    Token,
    /// The loopback `local` user: no tokens configured and no accounts.
    Local,
}

impl AuthVia {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthVia::Cookie => "cookie",
            AuthVia::Token => "token",
            AuthVia::Local => "local",
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

    /// Checks the `Authorization` header's token, or else the `access_token` query value.
    pub fn check_token(&self, headers: &HeaderMap, query_token: Option<&str>) -> TokenCheck {
        let header_token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let Some(token) = header_token.or(query_token).filter(|t| !t.is_empty()) else {
            return TokenCheck::Absent;
        };
        // Compare against every token so timing does not reveal which one nearly matched.
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(t.token.expose_secret().as_bytes(), token.as_bytes()) {
                found = Some(t.user_id.clone());
            }
        }
        found.map_or(TokenCheck::Invalid, TokenCheck::Valid)
    }

    /// Whether the configuration allows the `local` user (no tokens, a
    /// loopback listener); it applies only while no account exists.
    pub fn allows_local(&self) -> bool {
        self.allow_local
    }

    /// Allows requests without `Origin` (non-browser clients), same-origin ones
    /// (the origin's host is the `host` the request asked for, already
    /// checked by the gate), and origins in `AUSCULT_ALLOWED_ORIGINS`.
    pub fn check_origin(&self, headers: &HeaderMap, host: Option<&str>) -> Result<(), AuthError> {
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
        Caller::from_request_parts(parts, state)
            .await
            .map(|caller| AuthUser(caller.user))
    }
}

/// [`AuthUser`] with how the caller was authenticated. Credentials are tried
/// in order: a token (if one is presented, it must be valid), the login
/// cookie, then the loopback `local` user while no account exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub via: AuthVia,
    login: Option<Id>,
}

impl Caller {
    /// The cookie login session this caller came with.
    pub fn login_session(&self) -> Option<Id> {
        self.login
    }

    /// Authenticates a request's parts. `extra_token` is a token presented
    /// outside the request line and headers (the Socket.IO handshake's
    /// `auth.token`); it is tried before `Authorization` and `?access_token=`.
    pub(super) async fn resolve(
        parts: &axum::http::request::Parts,
        state: &super::AppState,
        extra_token: Option<&str>,
    ) -> Result<Caller, AuthError> {
        #[derive(serde::Deserialize)]
        struct TokenQuery {
            access_token: Option<String>,
        }
        state.auth.check_origin(
            &parts.headers,
            request_host(&parts.extensions, &parts.headers),
        )?;
        let query_token = axum::extract::Query::<TokenQuery>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|q| q.0.access_token);
        let token = match extra_token.filter(|t| !t.is_empty()) {
            Some(t) => state.auth.check_token(&HeaderMap::new(), Some(t)),
            None => state
                .auth
                .check_token(&parts.headers, query_token.as_deref()),
        };
        let caller = |user, via, login| Caller { user, via, login };
        match token {
            TokenCheck::Valid(user) => {
                // A token names a user; when that user is a disabled account,
                // the token is refused like its logins are.
                let account = state
                    .accounts
                    .store()
                    .credentials(&user)
                    .await
                    .map_err(|e| {
                        tracing::warn!(event = "auth_unavailable", error = %e);
                        AuthError::Unavailable
                    })?;
                if account.is_some_and(|a| a.user.disabled) {
                    tracing::info!(event = "token_of_disabled_user", user = %user);
                    return Err(AuthError::UserDisabled);
                }
                return Ok(caller(user, AuthVia::Token, None));
            }
            // With no tokens configured a token proves nothing; fall through.
            TokenCheck::Invalid if !state.auth.allows_local() => {
                return Err(AuthError::InvalidToken);
            }
            TokenCheck::Invalid | TokenCheck::Absent => {}
        }
        if let Some(session) = parts.extensions.get::<Session>()
            && let Some((user, id)) = cookie_user(session).await?
        {
            return Ok(caller(user, AuthVia::Cookie, Some(id)));
        }
        if state.auth.allows_local() {
            let local = state.accounts.local_mode().await.map_err(|e| {
                tracing::warn!(event = "auth_unavailable", error = %e);
                AuthError::Unavailable
            })?;
            if local {
                return Ok(caller(LOCAL_USER.to_owned(), AuthVia::Local, None));
            }
        }
        Err(match token {
            TokenCheck::Invalid => AuthError::InvalidToken,
            _ => AuthError::MissingCredentials,
        })
    }
}

/// The host a request asked for: the gate's [`Forwarded`] answer (which
/// believes `X-Forwarded-Host` only from a trusted proxy), else `Host`.
pub fn request_host<'a>(
    extensions: &'a axum::http::Extensions,
    headers: &'a HeaderMap,
) -> Option<&'a str> {
    match extensions.get::<Forwarded>() {
        Some(f) => f.host.as_deref(),
        None => headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    }
}

/// The user of a live cookie login, whose idle expiry is pushed back (the
/// session is saved with the response).
async fn cookie_user(session: &Session) -> Result<Option<(String, Id)>, AuthError> {
    let unavailable = |e: tower_sessions::session::Error| {
        tracing::warn!(event = "auth_unavailable", error = %e);
        AuthError::Unavailable
    };
    if session.id().is_none() {
        return Ok(None);
    }
    let Some(user) = session.get::<String>(USER_KEY).await.map_err(unavailable)? else {
        return Ok(None);
    };
    session
        .insert(SEEN_KEY, crate::session::wall_clock_ms())
        .await
        .map_err(unavailable)?;
    Ok(session.id().map(|id| (user, id)))
}

impl axum::extract::FromRequestParts<super::AppState> for Caller {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &super::AppState,
    ) -> Result<Self, Self::Rejection> {
        Caller::resolve(parts, state, None)
            .await
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
        assert_eq!(a.check_token(&h, None), TokenCheck::Valid("bob".into()));
        assert_eq!(
            a.check_token(&HeaderMap::new(), Some("token-alice")),
            TokenCheck::Valid("alice".into())
        );
        assert_eq!(a.check_token(&HeaderMap::new(), None), TokenCheck::Absent);
        assert_eq!(
            a.check_token(&HeaderMap::new(), Some("token-eve")),
            TokenCheck::Invalid
        );
        assert!(!a.allows_local());
    }

    #[test]
    fn loopback_without_tokens_allows_the_local_user() {
        assert!(auth(&[]).allows_local());
        assert!(!auth(&[("AUSCULT_LISTEN", "0.0.0.0:8080")]).allows_local());
    }

    #[test]
    fn origin_rules() {
        let a = auth(&[("AUSCULT_ALLOWED_ORIGINS", "https://app.example.org")]);
        assert!(a.check_origin(&HeaderMap::new(), None).is_ok());
        assert!(
            a.check_origin(
                &headers(&[(header::ORIGIN, "https://app.example.org")]),
                None
            )
            .is_ok()
        );
        let same = headers(&[(header::ORIGIN, "http://127.0.0.1:8080")]);
        assert!(a.check_origin(&same, Some("127.0.0.1:8080")).is_ok());
        let evil = headers(&[(header::ORIGIN, "https://evil.example")]);
        assert_eq!(
            a.check_origin(&evil, Some("127.0.0.1:8080")),
            Err(AuthError::OriginNotAllowed)
        );
        assert_eq!(
            a.check_origin(&same, None),
            Err(AuthError::OriginNotAllowed)
        );
    }
}
