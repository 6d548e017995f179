//! Transport: the HTTP router, WebSocket upgrades and their authentication.
//! Handlers only translate between the network and the session layer.

pub mod auth;
pub mod http;
pub mod ws;

use axum::Router;
use axum::routing::get;

use crate::session::SessionManager;
use crate::storage::meta::SharedMetadataStore;
use crate::storage::object::SharedObjectStore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub sessions: SessionManager,
    pub auth: auth::Authenticator,
    pub metadata: SharedMetadataStore,
    pub objects: SharedObjectStore,
    pub keepalive: ws::Keepalive,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/stream", get(ws::stream))
        .route("/health", get(http::health))
        .route("/ready", get(http::ready))
        .route("/metrics", get(http::metrics))
        .fallback(http::not_found)
        .with_state(state)
}
