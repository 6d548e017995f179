//! Arbitrary `X-Forwarded-*`, `Host`, `Authorization` and `Origin` values,
//! trusted blocks and host patterns (tests/properties/headers.rs).
#![no_main]

use std::net::IpAddr;

#[path = "../../tests/properties/headers.rs"]
#[allow(dead_code)]
mod headers;

type Input<'a> = (
    [&'a str; 4],
    (&'a str, &'a str),
    Option<[u8; 4]>,
    (&'a str, &'a str, &'a str),
    (bool, Option<&'a str>, Option<&'a str>),
);

libfuzzer_sys::fuzz_target!(|input: Input<'_>| {
    let ([xff, proto, xfh, host], (cidr_a, cidr_b), peer, (token, presented, origin), rest) = input;
    let (in_query, allowed_origin, local) = rest;
    // Forwarded headers, from a peer that is sometimes inside the blocks.
    let trusted: Vec<_> = [cidr_a, cidr_b, "10.0.0.0/8"]
        .iter()
        .filter_map(|c| headers::cidr(c))
        .collect();
    let pairs = [
        ("x-forwarded-for", xff),
        ("x-forwarded-proto", proto),
        ("x-forwarded-host", xfh),
        ("host", host),
    ];
    let map = headers::header_map(&pairs);
    let peer = peer.map(|b| {
        IpAddr::from(if b[0] % 2 == 0 {
            [10, b[1], b[2], b[3]]
        } else {
            b
        })
    });
    headers::forwarded(&map, peer, &trusted);
    // Hosts against patterns.
    let local = local.and_then(|l| l.parse().ok());
    headers::hosts(host, &[xfh, cidr_a], local);
    // Tokens and origins.
    let tokens = [("alice", token)];
    let origins: Vec<&str> = allowed_origin.into_iter().collect();
    if let Some(configured) = headers::authenticator(&tokens, &origins) {
        let bearer = format!("Bearer {presented}");
        let (authorization, query) = if in_query {
            (None, Some(presented))
        } else {
            (Some(bearer.as_str()), None)
        };
        headers::credentials(&configured, authorization, query, Some(origin), Some(host));
    }
});
