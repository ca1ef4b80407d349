//! The plumbing the test proxies share: serve an axum app on `127.0.0.1:0`
//! until a token is cancelled, and pass a request through to the real local
//! platform and its answer back. Each proxy (core's `BadProxy`, the jobs
//! tests' `FlakyProxy`) only decides which calls to spoil.

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

/// Serves `app` on a fresh loopback port; returns its base URL and the token
/// that stops it (cancel it, or let the proxy's `Drop` do so).
pub async fn serve(app: axum::Router) -> (String, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let addr = listener.local_addr().expect("proxy address");
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await
            .expect("proxy serves");
    });
    (format!("http://{addr}"), stop)
}

/// A client for talking to the upstream platform (never through a proxy).
pub fn upstream_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("proxy client")
}

/// The request's path and query, as sent.
pub fn path_of(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default()
}

/// What the upstream answered.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Sends the request to `upstream` with its method, path, headers and body;
/// `Err` holds the proxy's own answer when that fails.
pub async fn pass_through(
    http: &reqwest::Client,
    upstream: &str,
    parts: &Parts,
    body: Body,
) -> Result<Answer, Response> {
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return Err(StatusCode::BAD_REQUEST.into_response());
    };
    let mut out = http
        .request(
            parts.method.clone(),
            format!("{upstream}{}", path_of(parts)),
        )
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            out = out.header(name, value);
        }
    }
    let Ok(answer) = out.send().await else {
        return Err(StatusCode::BAD_GATEWAY.into_response());
    };
    Ok(Answer {
        status: answer.status(),
        headers: answer.headers().clone(),
        body: answer.bytes().await.unwrap_or_default(),
    })
}

impl Answer {
    /// The answer as the proxy's response (length headers recomputed).
    pub fn into_response(self) -> Response {
        let mut resp = Response::new(Body::from(self.body));
        *resp.status_mut() = self.status;
        for (name, value) in &self.headers {
            if name != "content-length" && name != "transfer-encoding" {
                resp.headers_mut().insert(name, value.clone());
            }
        }
        resp
    }
}
