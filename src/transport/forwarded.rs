//! Who the client is: the socket peer, or, only when the peer is a trusted
//! proxy (`AUSCULT_TRUSTED_PROXIES`, e.g. the ALB's subnets), what its
//! `X-Forwarded-For`, `-Proto` and `-Host` headers say. Anyone else can write
//! those headers, so from anyone else they are ignored.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri, header};

/// An address block: `10.0.0.0/16`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an IP address or CIDR block (e.g. 10.0.0.0/16)");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr = addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr {
            net: mask(addr, prefix),
            prefix,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix) == self.net
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & keep).into())
        }
    }
}

/// What is known about a request's origin, worked out once per request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forwarded {
    pub client_ip: Option<IpAddr>,
    /// The client reached the (trusted) load balancer over TLS.
    pub https: bool,
    /// The host the client asked for: a trusted proxy's `X-Forwarded-Host`,
    /// else `Host` (or an HTTP/2 request's authority).
    pub host: Option<String>,
}

/// Resolves [`Forwarded`] from the socket `peer` and the headers, believing
/// `X-Forwarded-*` only when `peer` is inside `trusted`.
pub fn resolve(
    headers: &HeaderMap,
    uri: &Uri,
    peer: Option<IpAddr>,
    trusted: &[Cidr],
) -> Forwarded {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let peer = peer.map(|ip| ip.to_canonical());
    let via_proxy = peer.is_some_and(is_trusted);
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let own_host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()));
    if !via_proxy {
        return Forwarded {
            client_ip: peer,
            https: false,
            host: own_host,
        };
    }
    Forwarded {
        client_ip: forwarded_client(headers, peer, &is_trusted),
        https: first("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https")),
        host: first("x-forwarded-host").map(str::to_owned).or(own_host),
    }
}

/// The right-most `X-Forwarded-For` address that is not a trusted proxy:
/// each proxy appends the address it saw, so everything left of the first
/// untrusted hop was written by the client and proves nothing. When every
/// hop is trusted, the left-most one reached is the client.
fn forwarded_client(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    is_trusted: &impl Fn(IpAddr) -> bool,
) -> Option<IpAddr> {
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_addr(hop) else { break };
        client = Some(ip);
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

fn parse_addr(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client's address as text, if known (from [`Forwarded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = match parts.extensions.get::<Forwarded>() {
            Some(f) => f.client_ip,
            None => parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_canonical()),
        };
        Ok(ClientIp(ip.map(|ip| ip.to_string())))
    }
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

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    fn client(h: &HeaderMap, peer: &str, trusted: &[Cidr]) -> Option<String> {
        resolve(
            h,
            &Uri::from_static("/"),
            Some(peer.parse().unwrap()),
            trusted,
        )
        .client_ip
        .map(|ip| ip.to_string())
    }

    #[test]
    fn cidr_blocks_contain_their_addresses_only() {
        let block: Cidr = "10.0.0.0/16".parse().unwrap();
        assert!(block.contains("10.0.255.1".parse().unwrap()));
        assert!(!block.contains("10.1.0.1".parse().unwrap()));
        assert!(block.contains("::ffff:10.0.3.4".parse().unwrap()));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "example.org",
            "::/129",
            "1.2.3.4/x",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.test"),
            ("host", "auscult.example.org"),
        ]);
        let f = resolve(
            &h,
            &Uri::from_static("/"),
            Some("198.51.100.1".parse().unwrap()),
            &[],
        );
        assert_eq!(f.client_ip, Some("198.51.100.1".parse().unwrap()));
        assert!(!f.https);
        assert_eq!(f.host.as_deref(), Some("auscult.example.org"));
    }

    #[test]
    fn a_trusted_proxy_names_the_right_most_untrusted_hop() {
        let trusted = cidrs(&["10.0.0.0/16"]);
        let peer = "10.0.1.5";
        assert_eq!(client(&headers(&[]), peer, &trusted), Some(peer.into()));
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7")]);
        assert_eq!(client(&spoofed, peer, &trusted), Some("203.0.113.7".into()));
        let chained = headers(&[
            ("x-forwarded-for", "1.2.3.4, 203.0.113.7"),
            ("x-forwarded-for", "10.0.2.9"),
        ]);
        assert_eq!(client(&chained, peer, &trusted), Some("203.0.113.7".into()));
        let mapped = headers(&[("x-forwarded-for", "::ffff:192.0.2.1")]);
        assert_eq!(client(&mapped, peer, &trusted), Some("192.0.2.1".into()));
        let all_trusted = headers(&[("x-forwarded-for", "10.0.9.9, 10.0.2.9")]);
        assert_eq!(
            client(&all_trusted, peer, &trusted),
            Some("10.0.9.9".into())
        );
        let garbage = headers(&[("x-forwarded-for", "garbage")]);
        assert_eq!(client(&garbage, peer, &trusted), Some(peer.into()));
    }

    #[test]
    fn a_trusted_proxy_says_whether_the_client_used_tls_and_which_host() {
        let trusted = cidrs(&["127.0.0.1"]);
        let h = headers(&[
            ("x-forwarded-proto", "HTTPS"),
            ("x-forwarded-host", "auscult.example.org"),
            ("host", "10.0.1.5:8080"),
        ]);
        let f = resolve(
            &h,
            &Uri::from_static("/"),
            Some("127.0.0.1".parse().unwrap()),
            &trusted,
        );
        assert!(f.https);
        assert_eq!(f.host.as_deref(), Some("auscult.example.org"));
        let plain = headers(&[("x-forwarded-proto", "http")]);
        let f = resolve(
            &plain,
            &Uri::from_static("/"),
            Some("127.0.0.1".parse().unwrap()),
            &trusted,
        );
        assert!(!f.https);
    }
}
