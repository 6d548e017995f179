//! What the load balancer says about the original request: the client's
//! address (`X-Forwarded-For`) and whether it came over TLS
//! (`X-Forwarded-Proto`).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

/// The client's address as text, if known: see [`client_ip`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp(
            client_ip(&parts.headers, peer).map(|ip| ip.to_string()),
        ))
    }
}

/// The client's address: the last `X-Forwarded-For` entry when there is one,
/// else the socket peer. The last entry is the one the load balancer added
/// (an ALB appends the address it saw to whatever the client sent), so a
/// client cannot choose it; earlier entries can say anything.
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|v| !v.is_empty());
    forwarded
        .and_then(parse_addr)
        .or(peer)
        .map(|ip| ip.to_canonical())
}

fn parse_addr(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// Whether the client reached the load balancer over TLS (`X-Forwarded-Proto: https`).
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_address_the_balancer_added_wins_over_what_the_client_sent() {
        let peer = Some("10.0.0.5".parse().unwrap());
        let ip = |h: &HeaderMap| client_ip(h, peer).map(|ip| ip.to_string());
        assert_eq!(ip(&headers(&[])), Some("10.0.0.5".into()));
        assert_eq!(
            ip(&headers(&[("x-forwarded-for", "203.0.113.7")])),
            Some("203.0.113.7".into())
        );
        assert_eq!(
            ip(&headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7")])),
            Some("203.0.113.7".into())
        );
        assert_eq!(
            ip(&headers(&[
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-for", "2001:db8::1")
            ])),
            Some("2001:db8::1".into())
        );
        assert_eq!(
            ip(&headers(&[("x-forwarded-for", "::ffff:192.0.2.1")])),
            Some("192.0.2.1".into())
        );
        assert_eq!(
            ip(&headers(&[("x-forwarded-for", "garbage")])),
            Some("10.0.0.5".into())
        );
    }

    #[test]
    fn https_is_what_the_balancer_says() {
        assert!(is_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(is_https(&headers(&[("x-forwarded-proto", "HTTPS")])));
        assert!(!is_https(&headers(&[("x-forwarded-proto", "http")])));
        assert!(!is_https(&headers(&[])));
    }
}
