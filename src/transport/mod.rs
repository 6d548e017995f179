//! Transport: the HTTP router, WebSocket upgrades and their authentication.
//! Handlers only translate between the network and the session layer.

pub mod auth;
pub mod cookies;
pub mod forwarded;
pub mod http;
pub mod login;
pub mod ws;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};

use crate::accounts::Accounts;
use crate::session::SessionManager;
use crate::storage::meta::SharedMetadataStore;
use crate::storage::object::SharedObjectStore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub sessions: SessionManager,
    pub auth: auth::Authenticator,
    /// Users, logins and the audit log.
    pub accounts: Accounts,
    pub metadata: SharedMetadataStore,
    pub objects: SharedObjectStore,
    pub keepalive: ws::Keepalive,
}

pub fn router(state: AppState) -> Router {
    let logins = cookies::session_layer(&state.accounts);
    Router::new()
        .route("/v1/stream", get(ws::stream))
        .route("/v1/auth/login", post(login::login))
        .route("/v1/auth/logout", post(login::logout))
        .route("/v1/auth/me", get(login::me))
        .route("/health", get(http::health))
        .route("/ready", get(http::ready))
        .route("/metrics", get(http::metrics))
        .fallback(http::not_found)
        .with_state(state)
        .layer(logins)
        .layer(middleware::from_fn(cookies::secure_cookie))
}
