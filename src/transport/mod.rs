//! Transport: the HTTP router, WebSocket upgrades and their authentication.
//! Handlers only translate between the network and the session layer.

pub mod api;
pub mod auth;
pub mod cookies;
pub mod forwarded;
pub mod headers;
pub mod host;
pub mod http;
pub mod login;
pub mod pages;
pub mod serve;
pub mod socketio;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware;
use axum::routing::{MethodFilter, MethodRouter, get};

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
    /// Trusted proxies and allowed hosts, for the gate in front of every route.
    pub gate: Arc<host::Gate>,
    /// The cached storage probe of `/ready`.
    pub probe: Arc<http::StorageProbe>,
    /// `/metrics` and the detailed `/ready` are on the admin listener, not here.
    pub admin_listener: bool,
    /// The Engine.IO transports of the Socket.IO endpoint (none: it is off).
    pub socketio: crate::config::SocketIoTransports,
}

/// One method on one path under `/v1`.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

impl Route {
    fn new<H, T>(method: Method, path: &'static str, handler: H) -> Route
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|_| panic!("{method} is not a routable method"));
        Route {
            method,
            path,
            handler: axum::routing::on(filter, handler),
        }
    }
}

/// Every route under `/v1`, in one table: the router is built from it, and a
/// test checks that `/v1/openapi.json` describes each one. Add `/v1` routes here.
pub fn v1_routes() -> Vec<Route> {
    use Method as M;
    vec![
        Route::new(M::GET, "/v1/stream", ws::stream),
        Route::new(M::GET, "/v1/openapi.json", api::openapi),
        Route::new(M::POST, "/v1/auth/login", login::login),
        Route::new(M::POST, "/v1/auth/logout", login::logout),
        Route::new(M::GET, "/v1/auth/me", login::me),
        Route::new(M::GET, "/v1/engines", api::engines),
        Route::new(M::GET, "/v1/sessions", api::list_sessions),
        Route::new(M::GET, "/v1/sessions/{id}", api::get_session),
        Route::new(M::DELETE, "/v1/sessions/{id}", api::delete_session),
        Route::new(M::GET, "/v1/sessions/{id}/transcript", api::transcript),
        Route::new(M::GET, "/v1/sessions/{id}/audio", api::audio),
    ]
}

/// The public listener: pages, `/v1`, `/health` and the terse `/ready`
/// (plus `/metrics` when there is no admin listener).
pub fn router(state: AppState) -> Router {
    let logins = cookies::session_layer(&state.accounts);
    let gate = Arc::clone(&state.gate);
    let mut router = Router::new();
    for route in v1_routes() {
        router = router.route(route.path, route.handler);
    }
    if !state.admin_listener {
        router = router.route("/metrics", get(http::metrics));
    }
    let socketio = socketio::layer(&state, state.socketio);
    let router = router
        .route("/health", get(http::health))
        .route("/ready", get(http::ready))
        .route("/", get(pages::index))
        .route("/history", get(pages::index))
        .route("/static/{file}", get(pages::file))
        .fallback(http::not_found)
        .with_state(state);
    // Socket.IO answers its own path inside the login layer (a connect may
    // authenticate with the login cookie) and behind the gate.
    let router = match socketio {
        Some(layer) => router
            .layer(layer)
            .layer(middleware::from_fn(socketio::standard_errors)),
        None => router,
    };
    router
        .layer(logins)
        .layer(middleware::from_fn(cookies::secure_cookie))
        .layer(middleware::from_fn_with_state(gate, host::gate))
        // Outermost, so refusals (the gate's too), 404s and 405s carry the headers.
        .layer(axum::middleware::map_response(headers::security_headers))
}

/// The admin listener (`AUSCULT_ADMIN_LISTEN`): `/health`, the detailed
/// `/ready` and `/metrics`, for operators and scrapers on a private port.
pub fn admin_router(state: AppState) -> Router {
    let gate = Arc::clone(&state.gate);
    Router::new()
        .route("/health", get(http::health))
        .route("/ready", get(http::ready_detail))
        .route("/metrics", get(http::metrics))
        .fallback(http::not_found)
        .with_state(state)
        .layer(middleware::from_fn_with_state(gate, host::gate))
        .layer(axum::middleware::map_response(headers::security_headers))
}
