//! Properties of the request header parsers: who the client is (trusted
//! proxies and `X-Forwarded-*`), which hosts the server answers to, bearer
//! tokens and the `Origin` check.
//!
//! Shared by `tests/properties.rs` and the `headers` fuzz target.

use std::collections::BTreeMap;
use std::net::IpAddr;

use auscult::Config;
use auscult::transport::auth::{Authenticator, TokenCheck};
use auscult::transport::forwarded::{self, Cidr};
use auscult::transport::host::{self, HostPattern, HostPolicy};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};

/// A header map from name/value pairs, skipping values no header can carry.
pub fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

/// `Cidr` parsing never panics, and a parsed block prints as one that
/// parses back to itself and contains its own network address.
pub fn cidr(text: &str) -> Option<Cidr> {
    let block: Cidr = text.parse().ok()?;
    let printed = block.to_string();
    let again: Cidr = printed.parse().expect("a printed block parses");
    assert_eq!(again, block, "{text:?} printed as {printed:?}");
    let network: IpAddr = printed.split('/').next().unwrap().parse().unwrap();
    assert!(
        block.contains(network),
        "{printed} lacks its own network address"
    );
    Some(block)
}

/// Forwarded headers count only from a trusted peer; from one, the client
/// is the peer or one of the forwarded addresses, and a trusted proxy only
/// when every hop was one.
pub fn forwarded(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &[Cidr]) {
    let facts = forwarded::resolve(headers, &Uri::from_static("/"), peer, trusted);
    let peer = peer.map(|ip| ip.to_canonical());
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let own_host = headers.get("host").and_then(|v| v.to_str().ok());
    if !peer.is_some_and(is_trusted) {
        assert_eq!(
            facts.client_ip, peer,
            "an untrusted peer's headers were believed"
        );
        assert!(
            !facts.https,
            "an untrusted peer's X-Forwarded-Proto was believed"
        );
        assert_eq!(
            facts.host.as_deref(),
            own_host,
            "an untrusted X-Forwarded-Host was believed"
        );
        return;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let parse = |v: &str| {
        v.parse::<IpAddr>()
            .ok()
            .or_else(|| v.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
            .map(|ip| ip.to_canonical())
    };
    let client = facts.client_ip.expect("a trusted peer has a client");
    if Some(client) == peer {
        return;
    }
    // The client is a forwarded address, and nothing right of it (written
    // later in the chain) was an address the server does not trust: what an
    // untrusted hop wrote is never believed.
    let at = entries
        .iter()
        .rposition(|v| parse(v) == Some(client))
        .unwrap_or_else(|| panic!("{client} is neither the peer nor a forwarded address"));
    for later in &entries[at + 1..] {
        assert!(
            parse(later).is_some_and(is_trusted),
            "{client} was believed past the hop {later:?}"
        );
    }
}

/// `split_host` gives a lower-case name without brackets, with a port only
/// when the input had one; a loopback server with no list answers only to
/// loopback names and addresses and the connection's own address.
pub fn hosts(host: &str, patterns: &[&str], local: Option<IpAddr>) {
    if let Some((name, port)) = host::split_host(host) {
        assert_eq!(name, name.to_ascii_lowercase());
        assert!(!name.contains('[') && !name.contains(']'), "{name:?}");
        if port.is_some() {
            assert!(host.contains(':'), "a port from nowhere in {host:?}");
        }
    }
    let patterns: Vec<HostPattern> = patterns.iter().filter_map(|p| p.parse().ok()).collect();
    let listed = HostPolicy::new(patterns, "0.0.0.0:8080".parse().unwrap());
    let _ = listed.allows(Some(host), local);
    let loopback = HostPolicy::new(Vec::new(), "127.0.0.1:8080".parse().unwrap());
    if loopback.allows(Some(host), local) {
        let (name, _) = host::split_host(host).expect("an allowed host is well formed");
        let ip = name.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
        assert!(
            name == "localhost"
                || name.ends_with(".localhost")
                || ip.is_some_and(
                    |ip| ip.is_loopback() || Some(ip) == local.map(|l| l.to_canonical())
                ),
            "a loopback server answered to {host:?}"
        );
    }
}

/// An authenticator configured as `AUSCULT_API_TOKENS` (`user:token`
/// pairs) and `AUSCULT_ALLOWED_ORIGINS` would configure it from `tokens`
/// and `origins`, with what the configuration made of them.
pub struct Configured {
    pub auth: Authenticator,
    /// (user, token) as parsed.
    pub tokens: Vec<(String, String)>,
    pub origins: Vec<String>,
}

pub fn authenticator(tokens: &[(&str, &str)], origins: &[&str]) -> Option<Configured> {
    use secrecy::ExposeSecret;
    let mut env = BTreeMap::new();
    let tokens: Vec<String> = tokens.iter().map(|(u, t)| format!("{u}:{t}")).collect();
    env.insert("AUSCULT_API_TOKENS".to_owned(), tokens.join(","));
    env.insert("AUSCULT_ALLOWED_ORIGINS".to_owned(), origins.join(","));
    let config = Config::load_from(None, &env).ok()?;
    Some(Configured {
        auth: Authenticator::from_config(&config),
        tokens: config
            .api_tokens
            .iter()
            .map(|t| (t.user_id.clone(), t.token.expose_secret().to_owned()))
            .collect(),
        origins: config.allowed_origins.clone(),
    })
}

/// A token is valid only when it is exactly one configured token; an origin
/// passes only when absent, allowed, or same-host.
pub fn credentials(
    configured: &Configured,
    authorization: Option<&str>,
    query_token: Option<&str>,
    origin: Option<&str>,
    host: Option<&str>,
) {
    let mut pairs = Vec::new();
    if let Some(a) = authorization {
        pairs.push(("authorization", a));
    }
    if let Some(o) = origin {
        pairs.push(("origin", o));
    }
    let headers = header_map(&pairs);
    let auth = &configured.auth;
    if let TokenCheck::Valid(user) = auth.check_token(&headers, query_token) {
        let presented: Vec<&str> = [
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim),
            query_token,
        ]
        .into_iter()
        .flatten()
        .collect();
        assert!(
            configured
                .tokens
                .iter()
                .any(|(u, t)| *u == user && presented.contains(&t.as_str())),
            "a token nobody has was taken for {user}"
        );
    }
    if auth.check_origin(&headers, host).is_ok()
        && let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok())
    {
        let origin = origin.trim_end_matches('/');
        let same_host = origin
            .split_once("://")
            .is_some_and(|(_, h)| host.is_some_and(|host| h.eq_ignore_ascii_case(host)));
        let allowed = configured
            .origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin));
        assert!(
            same_host || allowed,
            "origin {origin:?} passed for host {host:?}"
        );
    }
}
