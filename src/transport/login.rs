//! `/v1/auth/*`: log in (a fresh cookie session), log out, and who am I.

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use tower_sessions::Session;

use super::AppState;
use super::auth::{Caller, request_host};
use super::forwarded::ClientIp;
use super::http::error_response;
use crate::accounts::LoginError;
use crate::accounts::login_sessions::{self, SEEN_KEY, USER_KEY};
use crate::session::wall_clock_ms;

/// The login body, as JSON or a form. Deliberately not `Debug`.
#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

/// `POST /v1/auth/login`: 200 `{"user"}` with a fresh `auscult_session`
/// cookie; 401 `bad_credentials`; 429 `too_many_attempts` with `Retry-After`;
/// 503 `busy` with `Retry-After` when too many password checks are waiting.
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    session: Session,
    req: Request,
) -> Response {
    if let Err(refusal) = state
        .auth
        .check_origin(req.headers(), request_host(req.extensions(), req.headers()))
    {
        return refusal.into_response();
    }
    let Some(form) = read_form(req).await else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected JSON or a form with username and password",
        );
    };
    let password = SecretString::from(form.password);
    let user = match state
        .accounts
        .login(&form.username, password, ip.as_deref())
        .await
    {
        Ok(user) => user,
        Err(LoginError::BadCredentials) => {
            return error_response(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "wrong username or password",
            );
        }
        Err(LoginError::TooManyAttempts { retry_after }) => {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let mut resp = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many failed logins, try again later",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return resp;
        }
        Err(LoginError::Busy) => {
            let mut resp = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many logins at once, try again in a moment",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return resp;
        }
        Err(e) => return unavailable(&e),
    };
    // A fresh id at every login, so an id known before it (fixation) is worthless.
    let started = async {
        if session.id().is_some() {
            session.cycle_id().await?;
        }
        session.insert(USER_KEY, &user).await?;
        session.insert(SEEN_KEY, wall_clock_ms()).await
    };
    if let Err(e) = started.await {
        return unavailable(&e);
    }
    no_store(Json(json!({ "user": user })).into_response())
}

async fn read_form(req: Request) -> Option<LoginForm> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        Json::<LoginForm>::from_request(req, &())
            .await
            .ok()
            .map(|Json(f)| f)
    } else {
        Form::<LoginForm>::from_request(req, &())
            .await
            .ok()
            .map(|Form(f)| f)
    }
}

/// `POST /v1/auth/logout`: 204; the cookie session ends (row deleted, cookie
/// cleared), and so do the recordings opened with it.
pub async fn logout(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    session: Session,
    req: Request,
) -> Response {
    if let Err(refusal) = state
        .auth
        .check_origin(req.headers(), request_host(req.extensions(), req.headers()))
    {
        return refusal.into_response();
    }
    if let Some(id) = session.id() {
        let user = match session.get::<String>(USER_KEY).await {
            Ok(user) => user,
            Err(e) => return unavailable(&e),
        };
        if let Err(e) = session.flush().await {
            return unavailable(&e);
        }
        // Recordings opened with this login end with it (stored, `logged_out`);
        // other instances notice within a heartbeat interval.
        state.sessions.end_login(&login_sessions::id_hash(&id));
        if let Some(user) = user
            && let Err(e) = state.accounts.logged_out(&user, ip.as_deref()).await
        {
            tracing::warn!(event = "audit_failed", action = "logout", error = %e);
        }
    }
    no_store(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/auth/me`: `{"user","via"}` for any authenticated caller; 401 otherwise.
pub async fn me(caller: Caller) -> Response {
    no_store(Json(json!({ "user": caller.user, "via": caller.via.as_str() })).into_response())
}

fn unavailable(e: &dyn std::fmt::Display) -> Response {
    tracing::warn!(event = "login_unavailable", error = %e);
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "auth_unavailable",
        "cannot log in right now, try again",
    )
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Keeps the cookie login a streaming connection came with alive for as long
/// as the connection lasts (never returns while there is one; pending when
/// the connection came with a token).
pub async fn keep_connection_login(state: &AppState, login: Option<tower_sessions::session::Id>) {
    match login {
        Some(id) => {
            login_sessions::keep_alive(
                state.accounts.store().clone(),
                id,
                state.accounts.login_idle(),
            )
            .await
        }
        None => std::future::pending().await,
    }
}
