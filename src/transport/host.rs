//! The gate every request passes first: who the client is (see
//! [`forwarded`](super::forwarded)) and whether the host it asked for is one
//! this server answers to. Without the host check, a web page on any domain
//! that resolves to the server's address (DNS rebinding) would be same-origin
//! with it and could use a login-free local server as its own.
//!
//! Always allowed: loopback names (`localhost`, `*.localhost`) and addresses,
//! and the address the connection arrived on (a load balancer's health check
//! asks for `10.0.1.5:8080`). Besides those, the names in
//! `AUSCULT_ALLOWED_HOSTS`; with none configured, a server on a public address
//! answers to any host and one on loopback only to those above.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use super::forwarded::{self, Cidr, Forwarded};
use super::http::error_response;
use super::serve::LocalAddr;
use crate::telemetry;

/// One entry of `AUSCULT_ALLOWED_HOSTS`: `auscult.example.org`, with a port
/// (`auscult.example.org:8443`) to allow only that port, or `*.example.org`
/// for every subdomain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower case; for a wildcard, the part after `*.`.
    name: String,
    wildcard: bool,
    port: Option<u16>,
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad =
            || format!("{text:?} is not a host name (e.g. auscult.example.org or *.example.org)");
        let (wildcard, rest) = match text.trim().strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text.trim()),
        };
        let (name, port) = split_host(rest).ok_or_else(bad)?;
        if wildcard && name.parse::<IpAddr>().is_ok() {
            return Err(bad());
        }
        Ok(HostPattern {
            name,
            wildcard,
            port,
        })
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        match (self.name.contains(':'), self.port) {
            (true, Some(port)) => write!(f, "[{}]:{port}", self.name),
            (true, None) => write!(f, "[{}]", self.name),
            (false, Some(port)) => write!(f, "{}:{port}", self.name),
            (false, None) => f.write_str(&self.name),
        }
    }
}

impl HostPattern {
    fn matches(&self, name: &str, port: Option<u16>) -> bool {
        let name_ok = if self.wildcard {
            name.strip_suffix(self.name.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        } else {
            name == self.name
        };
        name_ok && (self.port.is_none() || self.port == port)
    }
}

/// Splits a `Host` value into its lower-case name (or address, without
/// brackets) and port; `None` when it is not a well-formed host.
pub fn split_host(host: &str) -> Option<(String, Option<u16>)> {
    let host = host.trim();
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        addr.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse::<u16>().ok()?),
        };
        (addr, port)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port.parse::<u16>().ok()?)),
            None => (host, None),
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let well_formed = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    well_formed.then_some((name, port))
}

/// Which hosts the server answers to.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    patterns: Vec<HostPattern>,
    /// No list and a public listener: every host.
    any: bool,
}

impl HostPolicy {
    pub fn new(patterns: Vec<HostPattern>, listen: SocketAddr) -> Self {
        let any = patterns.is_empty() && !listen.ip().is_loopback();
        HostPolicy { patterns, any }
    }

    /// Whether a request for `host`, arriving on `local`, is answered.
    pub fn allows(&self, host: Option<&str>, local: Option<IpAddr>) -> bool {
        let Some((name, port)) = host.and_then(split_host) else {
            return self.any && host.is_none();
        };
        if self.any {
            return true;
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            let ip = ip.to_canonical();
            if ip.is_loopback() || local.is_some_and(|l| l.to_canonical() == ip) {
                return true;
            }
        }
        if name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        self.patterns.iter().any(|p| p.matches(&name, port))
    }
}

/// What the gate works with, shared by every request.
#[derive(Debug)]
pub struct Gate {
    pub trusted_proxies: Vec<Cidr>,
    pub hosts: HostPolicy,
}

/// Resolves the request's [`Forwarded`] facts into its extensions, then
/// refuses a host the server does not answer to with 421 `bad_host`.
pub async fn gate(State(gate): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let local = req.extensions().get::<LocalAddr>().map(|l| l.0.ip());
    let facts: Forwarded =
        forwarded::resolve(req.headers(), req.uri(), peer, &gate.trusted_proxies);
    if !gate.hosts.allows(facts.host.as_deref(), local) {
        metrics::counter!(telemetry::REQUESTS_REFUSED, "code" => "bad_host").increment(1);
        tracing::warn!(
            event = "bad_host",
            host_len = facts.host.as_ref().map_or(0, String::len),
            path = %req.uri().path(),
            client_ip = ?facts.client_ip
        );
        return error_response(
            StatusCode::MISDIRECTED_REQUEST,
            "bad_host",
            "this server does not answer to that host name",
        );
    }
    req.extensions_mut().insert(facts);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(patterns: &[&str], listen: &str) -> HostPolicy {
        HostPolicy::new(
            patterns.iter().map(|p| p.parse().unwrap()).collect(),
            listen.parse().unwrap(),
        )
    }

    #[test]
    fn a_loopback_server_answers_only_to_loopback_names_and_its_own_address() {
        let p = policy(&[], "127.0.0.1:8080");
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "app.localhost",
            "[::1]:8080",
            "127.0.0.2",
        ] {
            assert!(
                p.allows(Some(ok), Some("127.0.0.1".parse().unwrap())),
                "{ok}"
            );
        }
        for bad in [
            "evil.test:8080",
            "evil.test",
            "localhost.evil.test",
            "10.0.0.1:8080",
            "",
            "a..b",
            "x:y",
        ] {
            assert!(
                !p.allows(Some(bad), Some("127.0.0.1".parse().unwrap())),
                "{bad:?}"
            );
        }
        assert!(!p.allows(None, None));
    }

    #[test]
    fn listed_names_and_the_connection_address_are_allowed() {
        let p = policy(
            &[
                "auscult.example.org",
                "*.clinic.example",
                "api.example.org:8443",
            ],
            "0.0.0.0:8080",
        );
        let local = Some("10.0.1.5".parse().unwrap());
        for ok in [
            "auscult.example.org",
            "Auscult.Example.Org.:443",
            "a.clinic.example",
            "b.a.clinic.example",
            "api.example.org:8443",
            "10.0.1.5:8080",
            "localhost",
        ] {
            assert!(p.allows(Some(ok), local), "{ok}");
        }
        for bad in [
            "clinic.example",
            "evil.test",
            "api.example.org:443",
            "10.0.1.6:8080",
            "xclinic.example",
        ] {
            assert!(!p.allows(Some(bad), local), "{bad}");
        }
    }

    #[test]
    fn a_public_server_without_a_list_answers_to_any_well_formed_host() {
        let p = policy(&[], "0.0.0.0:8080");
        assert!(p.allows(Some("anything.example"), None));
        assert!(p.allows(None, None));
        assert!(!p.allows(Some("bad host"), None));
    }

    #[test]
    fn patterns_that_are_not_host_names_are_refused() {
        for bad in ["", "*.", "*.10.0.0.1", "exa mple.org", "host:port", "[::1"] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad:?}");
        }
    }
}
