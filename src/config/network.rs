//! The settings about who reaches the server and how: the host allow-list,
//! the proxies trusted to say who the client is, the connection limits and
//! the admin listener.

use std::net::SocketAddr;
use std::time::Duration;

use super::{ConfigError, invalid, parse};
use crate::transport::forwarded::Cidr;
use crate::transport::host::HostPattern;

/// Connections kept open at once when `AUSCULT_MAX_CONNECTIONS` is not set,
/// unless twice the session limit is more (every session is one connection,
/// and the page and API need some beside them).
const DEFAULT_MAX_CONNECTIONS: usize = 1024;

#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Host names the server answers to besides loopback names and its own
    /// addresses (`AUSCULT_ALLOWED_HOSTS`).
    pub allowed_hosts: Vec<HostPattern>,
    /// Peers whose `X-Forwarded-*` headers are believed (`AUSCULT_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<Cidr>,
    /// Where `/metrics` and the detailed `/ready` are served (`AUSCULT_ADMIN_LISTEN`).
    pub admin_listen: Option<SocketAddr>,
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// The Engine.IO transports Socket.IO clients may use (`AUSCULT_SOCKETIO_TRANSPORTS`).
    pub socketio: SocketIoTransports,
}

/// Which Engine.IO transports the Socket.IO endpoint offers; neither means
/// the endpoint is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketIoTransports {
    pub polling: bool,
    pub websocket: bool,
}

impl SocketIoTransports {
    pub fn enabled(self) -> bool {
        self.polling || self.websocket
    }

    /// The setting as written: `polling,websocket`, one of them, or `off`.
    pub fn describe(self) -> String {
        match (self.polling, self.websocket) {
            (true, true) => "polling,websocket".into(),
            (true, false) => "polling".into(),
            (false, true) => "websocket".into(),
            (false, false) => "off".into(),
        }
    }

    fn parse(value: Option<&str>) -> Result<Self, ConfigError> {
        let value = value.map(str::trim).filter(|v| !v.is_empty());
        let mut t = SocketIoTransports {
            polling: false,
            websocket: false,
        };
        match value {
            None => {
                return Ok(SocketIoTransports {
                    polling: true,
                    websocket: true,
                });
            }
            Some("off" | "none") => return Ok(t),
            Some(list) => {
                for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    match name {
                        "polling" => t.polling = true,
                        "websocket" => t.websocket = true,
                        other => {
                            return Err(invalid(
                                "AUSCULT_SOCKETIO_TRANSPORTS",
                                format!(
                                    "unknown transport {other:?}: use polling, websocket \
                                     (comma-separated) or off"
                                ),
                            ));
                        }
                    }
                }
            }
        }
        Ok(t)
    }
}

pub(super) fn network_settings<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    max_sessions: usize,
) -> Result<NetworkConfig, ConfigError> {
    let list = |key: &str| -> Vec<&'a str> {
        get(key)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    };
    let allowed_hosts = list("allowed_hosts")
        .into_iter()
        .map(|h| h.parse().map_err(|e| invalid("AUSCULT_ALLOWED_HOSTS", e)))
        .collect::<Result<_, _>>()?;
    let trusted_proxies = list("trusted_proxies")
        .into_iter()
        .map(|c| c.parse().map_err(|e| invalid("AUSCULT_TRUSTED_PROXIES", e)))
        .collect::<Result<_, _>>()?;
    let admin_listen = match get("admin_listen").map(str::trim).filter(|v| !v.is_empty()) {
        None | Some("off") => None,
        Some(addr) => Some(parse(Some(addr), "AUSCULT_ADMIN_LISTEN", "")?),
    };
    let default_connections = DEFAULT_MAX_CONNECTIONS.max(max_sessions.saturating_mul(2));
    let max_connections: usize = parse(
        get("max_connections"),
        "AUSCULT_MAX_CONNECTIONS",
        &default_connections.to_string(),
    )?;
    if max_connections <= max_sessions {
        return Err(invalid(
            "AUSCULT_MAX_CONNECTIONS",
            format!(
                "{max_connections} must be more than AUSCULT_MAX_SESSIONS ({max_sessions}): \
                 every session holds a connection"
            ),
        ));
    }
    let header_secs: u64 = parse(
        get("header_read_timeout_secs"),
        "AUSCULT_HEADER_READ_TIMEOUT_SECS",
        "10",
    )?;
    if header_secs == 0 {
        return Err(invalid(
            "AUSCULT_HEADER_READ_TIMEOUT_SECS",
            "must be at least 1",
        ));
    }
    let socketio = SocketIoTransports::parse(get("socketio_transports"))?;
    Ok(NetworkConfig {
        socketio,
        allowed_hosts,
        trusted_proxies,
        admin_listen,
        max_connections,
        header_read_timeout: Duration::from_secs(header_secs),
    })
}
