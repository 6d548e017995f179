//! An HTTP client for the `/v1` API, authenticated with a bearer token.

use reqwest::Method;
use serde_json::Value;

use super::TestApp;

/// One HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    /// A response header as text; `None` when it is absent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// The stable code of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in HTTP {} {:?}", self.status, self.text()))
            .to_owned()
    }
}

pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    /// Calls `app` as the owner of `token`.
    pub fn new(app: &TestApp, token: &str) -> ApiClient {
        ApiClient {
            token: Some(token.to_owned()),
            ..Self::anonymous(app)
        }
    }

    /// Calls `app` without credentials.
    pub fn anonymous(app: &TestApp) -> ApiClient {
        ApiClient {
            base: app.http_url(""),
            token: None,
            http: reqwest::Client::new(),
        }
    }

    /// Calls `app`'s admin listener (`/metrics`, the detailed `/ready`).
    pub fn admin(app: &TestApp) -> ApiClient {
        ApiClient {
            base: app.admin_url(""),
            ..Self::anonymous(app)
        }
    }

    /// Sends `method path` with extra headers and reads the whole answer.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let resp = tokio::time::timeout(super::WAIT, request.send())
            .await
            .unwrap_or_else(|_| panic!("{method} {path} not answered in time"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} body: {e}"))
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[]).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(Method::GET, path, headers).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, &[]).await
    }

    /// `GET path`, which must answer 200 with JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let answer = self.get(path).await;
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.text());
        answer.json()
    }
}
