//! What every connection and request passes before a handler: the host
//! check (no DNS rebinding into the login-free local mode), the trusted
//! proxies, the connection cap and the deadline for a request's headers.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` as written (HTTP/1.1, any headers) and reads the answer
/// until the server closes: `(status, whole text)`.
async fn raw(app: &TestApp, request: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .expect("read");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    (status, text)
}

fn get(path: &str, headers: &[(&str, &str)]) -> String {
    let mut request = format!("GET {path} HTTP/1.1\r\nconnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request + "\r\n"
}

fn upgrade(host: &str, origin: &str) -> String {
    get(
        "/v1/stream",
        &[
            ("host", host),
            ("origin", origin),
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    )
}

#[tokio::test]
async fn a_rebound_domain_cannot_reach_the_local_mode_on_any_route() {
    let app = TestApp::spawn().await;
    let evil = [
        ("host", "evil.test:8080"),
        ("origin", "http://evil.test:8080"),
    ];
    for path in [
        "/v1/auth/me",
        "/v1/sessions",
        "/v1/engines",
        "/",
        "/history",
        "/static/app.js",
        "/health",
        "/ready",
        "/no/such/page",
    ] {
        let (status, text) = raw(&app, &get(path, &evil)).await;
        assert_eq!(status, 421, "{path}: {text}");
        assert!(text.contains(r#""code":"bad_host""#), "{path}: {text}");
        assert!(text.contains("x-frame-options: DENY"), "{path}: {text}");
    }
    let (status, text) = raw(&app, &upgrade("evil.test:8080", "http://evil.test:8080")).await;
    assert_eq!(status, 421, "the upgrade: {text}");
    // A delete is refused the same way, before anything is looked up.
    let delete = get("/v1/sessions/x", &evil).replacen("GET", "DELETE", 1);
    assert_eq!(raw(&app, &delete).await.0, 421);

    // The page's own origin still gets in as the local user.
    let own = format!("127.0.0.1:{}", app.addr.port());
    let (status, text) = raw(
        &app,
        &get(
            "/v1/auth/me",
            &[("host", &own), ("origin", &format!("http://{own}"))],
        ),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(r#""via":"local""#), "{text}");
    let localhost = format!("localhost:{}", app.addr.port());
    assert_eq!(
        raw(&app, &get("/v1/auth/me", &[("host", &localhost)]))
            .await
            .0,
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn a_listed_host_is_answered_and_any_other_is_refused() {
    let app = TestApp::spawn_env(&[
        ("AUSCULT_API_TOKENS", "alice:token-alice"),
        (
            "AUSCULT_ALLOWED_HOSTS",
            "auscult.example.org,*.clinic.example",
        ),
    ])
    .await;
    let auth = ("authorization", "Bearer token-alice");
    for host in [
        "auscult.example.org",
        "AUSCULT.example.org:443",
        "ward3.clinic.example",
    ] {
        let (status, text) = raw(&app, &get("/v1/sessions", &[("host", host), auth])).await;
        assert_eq!(status, 200, "{host}: {text}");
    }
    for host in [
        "evil.test",
        "clinic.example",
        "auscult.example.org.evil.test",
    ] {
        let (status, text) = raw(&app, &get("/v1/sessions", &[("host", host), auth])).await;
        assert_eq!(status, 421, "{host}: {text}");
    }
    // A forwarded host from a peer that is not a trusted proxy proves nothing.
    let spoofed = [
        ("host", "evil.test"),
        ("x-forwarded-host", "auscult.example.org"),
        auth,
    ];
    assert_eq!(raw(&app, &get("/v1/sessions", &spoofed)).await.0, 421);
    // Without a Host at all (HTTP/1.0) there is nothing to allow.
    let (status, _) = raw(
        &app,
        "GET /v1/sessions HTTP/1.0\r\nauthorization: Bearer token-alice\r\n\r\n",
    )
    .await;
    assert_eq!(status, 421);
    app.stop().await;
}

#[tokio::test]
async fn a_trusted_proxy_names_the_host_and_the_connection_address_is_always_answered() {
    let app = TestApp::spawn_env(&[
        ("AUSCULT_API_TOKENS", "alice:token-alice"),
        ("AUSCULT_ALLOWED_HOSTS", "auscult.example.org"),
        ("AUSCULT_TRUSTED_PROXIES", "127.0.0.0/8"),
    ])
    .await;
    let auth = ("authorization", "Bearer token-alice");
    let behind = [
        ("host", "10.0.1.5:8080"),
        ("x-forwarded-host", "auscult.example.org"),
        auth,
    ];
    assert_eq!(raw(&app, &get("/v1/sessions", &behind)).await.0, 200);
    let rebound = [
        ("host", "auscult.example.org"),
        ("x-forwarded-host", "evil.test"),
        auth,
    ];
    assert_eq!(raw(&app, &get("/v1/sessions", &rebound)).await.0, 421);
    // A load balancer's health check asks for the address it connected to.
    let own = format!("127.0.0.1:{}", app.addr.port());
    assert_eq!(raw(&app, &get("/health", &[("host", &own)])).await.0, 200);
    // The cross-origin check compares the origin with the forwarded host.
    let mut ws_headers = behind.to_vec();
    ws_headers.push(("origin", "https://auscult.example.org"));
    let (status, text) = raw(&app, &get("/v1/sessions", &ws_headers)).await;
    assert_eq!(status, 200, "same origin behind the proxy: {text}");
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let app = TestApp::spawn_env(&[("AUSCULT_HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let started = std::time::Instant::now();
    tcp.write_all(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // One byte a while: a slowloris client. The server ends it anyway.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if tcp.write_all(b"a").await.is_err() {
                return;
            }
            match tokio::time::timeout(Duration::from_millis(10), tcp.read_buf(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was still open after 10 s");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A prompt client on the same server is served as usual.
    assert_eq!(
        raw(&app, &get("/health", &[("host", "127.0.0.1")])).await.0,
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_until_one_closes() {
    let app = TestApp::spawn_env(&[
        ("AUSCULT_MAX_SESSIONS", "2"),
        ("AUSCULT_MAX_CONNECTIONS", "3"),
        ("AUSCULT_HEADER_READ_TIMEOUT_SECS", "30"),
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let tcp = TcpStream::connect(app.addr).await.unwrap();
        held.push(tcp);
    }
    // The server takes them in turn; once all three hold a slot, a fourth is refused.
    let (status, text) = poll_until(|| async {
        let answer = raw(&app, &get("/health", &[("host", "127.0.0.1")])).await;
        match answer.0 {
            503 => Ok(answer),
            other => Err(format!("a fourth connection got {other}")),
        }
    })
    .await;
    assert_eq!(status, 503);
    assert!(text.contains(r#""code":"too_many_connections""#), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 5"),
        "{text}"
    );
    drop(held.pop());
    let (status, _) = poll_until(|| async {
        let answer = raw(&app, &get("/health", &[("host", "127.0.0.1")])).await;
        match answer.0 {
            200 => Ok(answer),
            other => Err(format!("a freed slot still refused: {other}")),
        }
    })
    .await;
    assert_eq!(status, 200);
    drop(held);
    app.stop().await;
}

#[tokio::test]
async fn an_open_websocket_holds_its_place_under_the_cap() {
    let app = TestApp::spawn_env(&[
        ("AUSCULT_MAX_SESSIONS", "2"),
        ("AUSCULT_MAX_CONNECTIONS", "3"),
    ])
    .await;
    let mut a = app.connect_ws().await;
    a.start(16_000, Enc::S16, 1).await;
    let mut b = app.connect_ws().await;
    b.start(16_000, Enc::S16, 1).await;
    let _idle = TcpStream::connect(app.addr).await.unwrap();
    let (status, text) = poll_until(|| async {
        let answer = raw(&app, &get("/health", &[("host", "127.0.0.1")])).await;
        match answer.0 {
            503 => Ok(answer),
            other => Err(format!(
                "two sockets and an idle connection, and a fourth got {other}"
            )),
        }
    })
    .await;
    assert_eq!(status, 503, "{text}");
    a.stop_and_collect().await;
    b.stop_and_collect().await;
    app.stop().await;
}
