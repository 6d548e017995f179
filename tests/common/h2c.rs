//! An HTTP client for the AWS SDK that speaks HTTP/2 with prior knowledge
//! over plain TCP (h2c). The SDK's own client speaks HTTP/2 only over TLS
//! (ALPN), as it does with the real service; this one lets tests run the real
//! engine over HTTP/2 against a fake service without certificates.

use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector, http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::body::SdkBody;

/// Opens one h2c connection per request (a stream per session is all tests need).
#[derive(Debug, Clone, Copy)]
struct H2c;

impl HttpConnector for H2c {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let authority = request
                .uri()
                .authority()
                .ok_or_else(|| ConnectorError::user("request without an authority".into()))?
                .to_string();
            let tcp = tokio::net::TcpStream::connect(authority)
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            let (mut sender, connection) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(tcp),
            )
            .await
            .map_err(|e| ConnectorError::io(e.into()))?;
            tokio::spawn(connection);
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            Response::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// An SDK HTTP client that reaches `http://` endpoints over h2c.
pub fn client() -> SharedHttpClient {
    http_client_fn(|_settings, _components| SharedHttpConnector::new(H2c))
}
