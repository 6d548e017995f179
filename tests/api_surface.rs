//! The API's surface: the OpenAPI document describes every `/v1` route the
//! router serves, `/v1/engines` lists the engines, and every response
//! (pages, APIs, refusals, errors) carries the security headers.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::Method;
use serde_json::Value;

const TOKENS: &str = "alice:token-alice,bob:token-bob";

async fn app() -> TestApp {
    TestApp::spawn_env(&[("AUSCULT_API_TOKENS", TOKENS)]).await
}

/// Every `(method, path)` operation the document describes.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (key, _) in item.as_object().expect("path item") {
            if methods.contains(&key.as_str()) {
                out.insert((key.clone(), path.clone()));
            }
        }
    }
    out
}

/// Every `$ref` in the document points at something in it.
fn assert_refs_resolve(doc: &Value, node: &Value) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                let pointer = target
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("external $ref {target}"));
                assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
            }
            map.values().for_each(|v| assert_refs_resolve(doc, v));
        }
        Value::Array(items) => items.iter().for_each(|v| assert_refs_resolve(doc, v)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_parses_and_describes_every_v1_route_the_router_serves() {
    let app = app().await;
    let answer = ApiClient::anonymous(&app).get("/v1/openapi.json").await;
    assert_eq!(answer.status, 200, "public, like any API description");
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let doc = answer.json();
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert_refs_resolve(&doc, &doc);

    let described = operations(&doc);
    let served: BTreeSet<(String, String)> = auscult::transport::v1_routes()
        .iter()
        .map(|r| (r.method.as_str().to_lowercase(), r.path.to_owned()))
        .collect();
    assert!(served.iter().all(|(_, path)| path.starts_with("/v1/")));
    let undocumented: Vec<_> = served.difference(&described).collect();
    assert!(
        undocumented.is_empty(),
        "served but not described: {undocumented:?}"
    );
    let unserved: Vec<_> = described.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "described but not served: {unserved:?}"
    );
    for (method, path) in &described {
        let op = &doc["paths"][path][method];
        assert!(op["responses"].is_object(), "{method} {path} has responses");
        assert!(
            op["operationId"].is_string(),
            "{method} {path} has an operationId"
        );
    }
    assert!(
        doc["paths"]["/v1/stream"]["get"]["responses"]["101"].is_object(),
        "the stream is a GET upgrade"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_v1_route_in_the_table_is_answered_by_its_handler_not_the_fallback() {
    let app = app().await;
    let alice = ApiClient::new(&app, "token-alice");
    for route in auscult::transport::v1_routes() {
        let path = route.path.replace("{id}", "no-such-session");
        let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let answer = alice.send(method.clone(), &path, &[]).await;
        assert_ne!(answer.status, 405, "{method} {path}");
        if answer.status == 404 {
            assert_ne!(answer.error_code(), "not_found", "{method} {path}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn engines_lists_what_the_server_has_with_readiness_and_the_default() {
    let app = app().await;
    let body = ApiClient::new(&app, "token-bob")
        .get_json("/v1/engines")
        .await;
    assert_eq!(body["default"], "scripted");
    let engines = body["engines"].as_array().expect("engines");
    let mut names: Vec<&str> = engines
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["loadtest", "scripted"]);
    assert!(engines.iter().all(|e| e["ready"] == true), "{body}");
    app.stop().await;
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

#[tokio::test]
async fn every_response_carries_the_security_headers_errors_included() {
    let app = app().await;
    let alice = ApiClient::new(&app, "token-alice");
    let nobody = ApiClient::anonymous(&app);
    let answers = [
        ("health", nobody.get("/health").await),
        ("ready", nobody.get("/ready").await),
        ("openapi", nobody.get("/v1/openapi.json").await),
        ("engines", alice.get("/v1/engines").await),
        ("list", alice.get("/v1/sessions").await),
        ("unknown session", alice.get("/v1/sessions/x/audio").await),
        ("bad limit", alice.get("/v1/sessions?limit=0").await),
        ("401", nobody.get("/v1/sessions").await),
        ("fallback 404", nobody.get("/no/such/page").await),
        ("405", nobody.send(Method::POST, "/health", &[]).await),
        ("upgrade refused", nobody.get("/v1/stream").await),
    ];
    for (what, answer) in &answers {
        assert_eq!(
            answer.header("content-security-policy"),
            Some(CSP),
            "{what}"
        );
        assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{what}");
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            answer.header("referrer-policy"),
            Some("no-referrer"),
            "{what}"
        );
    }
    app.stop().await;
}
