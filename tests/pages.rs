//! The clinician's page as the binary serves it: `/` and `/history` are the
//! embedded app, every file it loads is served with its content type and a
//! validator, nothing else is, and the page needs no inline script.

mod common;

use std::collections::BTreeSet;

use common::*;

struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut request = reqwest::Client::new().get(app.http_url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let resp = request.send().await.expect("GET");
    Got {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.expect("body"),
    }
}

fn header<'a>(got: &'a Got, name: &str) -> &'a str {
    got.headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

/// The `/static/…` paths a file refers to: `src`/`href` in HTML, module
/// imports and `new URL('./x.js', import.meta.url)` in scripts.
fn references(path: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let quoted = |prefix: &str| -> Vec<String> {
        text.match_indices(prefix)
            .filter_map(|(i, _)| {
                let rest = &text[i + prefix.len()..];
                let quote = rest.chars().next()?;
                let rest = &rest[quote.len_utf8()..];
                Some(rest[..rest.find(quote)?].to_owned())
            })
            .collect()
    };
    if path.ends_with(".html") {
        found.extend(quoted("src=").into_iter().chain(quoted("href=")));
    } else if path.ends_with(".js") {
        found.extend(quoted("from ").into_iter().chain(quoted("new URL(")));
    }
    found
        .into_iter()
        .filter_map(|r| {
            if let Some(name) = r.strip_prefix("./") {
                Some(format!("/static/{name}"))
            } else if r.starts_with("/static/") {
                Some(r)
            } else {
                None
            }
        })
        .collect()
}

#[tokio::test]
async fn the_live_page_and_the_history_are_the_same_embedded_app() {
    let app = TestApp::spawn().await;
    let root = get(&app, "/", &[]).await;
    let history = get(&app, "/history", &[]).await;
    for (path, got) in [("/", &root), ("/history", &history)] {
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(header(got, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(got, "cache-control"), "no-cache");
    }
    assert_eq!(root.body, history.body);
    for testid in [
        "login-username",
        "login-password",
        "login-submit",
        "rate-select",
        "engine-select",
        "record-start",
        "record-stop",
        "connection-state",
        "history-list",
        "export-srt",
    ] {
        assert!(
            root.body.contains(&format!("data-testid=\"{testid}\"")),
            "no data-testid={testid} in index.html"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn every_file_the_page_loads_is_served_with_its_content_type() {
    let app = TestApp::spawn().await;
    let mut todo = references("index.html", &get(&app, "/", &[]).await.body);
    let mut seen = BTreeSet::new();
    while let Some(path) = todo.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let got = get(&app, &path, &[]).await;
        assert_eq!(got.status, 200, "{path} is referenced but not served");
        let expected = match path.rsplit_once('.').map(|(_, ext)| ext) {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("{path}: unexpected kind of file {other:?}"),
        };
        assert_eq!(header(&got, "content-type"), expected, "{path}");
        todo.extend(references(&path, &got.body));
    }
    for needed in [
        "/static/app.js",
        "/static/style.css",
        "/static/stream.js",
        "/static/recorder.js",
        "/static/capture-worklet.js",
        "/static/history.js",
    ] {
        assert!(
            seen.contains(needed),
            "{needed} not reached from index.html: {seen:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_page_and_its_files_carry_the_security_headers() {
    let app = TestApp::spawn().await;
    for path in ["/", "/history", "/static/app.js", "/static/nope.js"] {
        let got = get(&app, path, &[]).await;
        let csp = header(&got, "content-security-policy");
        assert_eq!(
            csp,
            auscult::transport::headers::CONTENT_SECURITY_POLICY_VALUE,
            "{path}"
        );
        assert!(csp.contains("script-src 'self'"), "{path}: CSP {csp:?}");
        assert!(!csp.contains("unsafe-inline"), "{path}: CSP {csp:?}");
        assert_eq!(header(&got, "x-frame-options"), "DENY", "{path}");
        assert_eq!(header(&got, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&got, "referrer-policy"), "no-referrer", "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_missing_asset_is_a_404_and_paths_never_leave_the_embedded_files() {
    let app = TestApp::spawn().await;
    for path in [
        "/static/nope.js",
        "/static/",
        "/static/..%2FCargo.toml",
        "/static/%2E%2E%2Fsrc%2Fmain.rs",
        "/static/sub/app.js",
        "/index.html",
    ] {
        let got = get(&app, path, &[]).await;
        assert_eq!(got.status, 404, "{path}: {}", got.body);
    }
    let got = get(&app, "/static/nope.js", &[]).await;
    let body: serde_json::Value = serde_json::from_str(&got.body).expect("JSON error");
    assert_eq!(body["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn assets_are_revalidated_with_their_etag() {
    let app = TestApp::spawn().await;
    for path in ["/", "/static/app.js", "/static/style.css"] {
        let first = get(&app, path, &[]).await;
        let etag = header(&first, "etag").to_owned();
        assert!(
            etag.starts_with('"') && etag.len() > 10,
            "{path}: ETag {etag:?}"
        );
        assert_eq!(header(&first, "cache-control"), "no-cache", "{path}");
        let again = get(&app, path, &[("if-none-match", etag.as_str())]).await;
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty(), "{path}: 304 with a body");
        assert_eq!(header(&again, "etag"), etag, "{path}");
        let stale = get(&app, path, &[("if-none-match", "\"stale\"")]).await;
        assert_eq!(stale.status, 200, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_page_has_no_inline_script_style_or_event_handlers() {
    let app = TestApp::spawn().await;
    let html = get(&app, "/", &[]).await.body;
    let lower = html.to_lowercase();
    for (i, _) in lower.match_indices("<script") {
        let tag = &lower[i..i + lower[i..].find('>').unwrap()];
        assert!(tag.contains(" src="), "inline script: {tag}");
    }
    assert!(!lower.contains("<style"), "inline <style> element");
    assert!(!lower.contains(" style="), "inline style attribute");
    assert!(!lower.contains("javascript:"), "javascript: URL");
    for word in lower.split(|c: char| c.is_whitespace() || c == '<') {
        let is_handler = word.starts_with("on")
            && word.contains('=')
            && word[2..word.find('=').unwrap()]
                .chars()
                .all(|c| c.is_ascii_lowercase());
        assert!(!is_handler, "inline event handler: {word}");
    }
    app.stop().await;
}
