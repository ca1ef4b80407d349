//! A flaky reverse proxy in front of the local platform: it forwards every
//! request, but some `POST /runners/jobs/{id}/logs` calls are lost, either
//! before they reach the platform (answered `503`) or after the platform
//! stored them (the platform's answer is replaced by `503`). The first kind
//! tests that nothing is lost, the second that a retried batch is not stored
//! twice.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

/// What the proxy did to log posts.
#[derive(Debug, Default)]
pub struct Hiccups {
    /// Log posts seen.
    pub seen: AtomicU64,
    /// Log posts answered 503 without reaching the platform.
    pub lost_requests: AtomicU64,
    /// Log posts the platform stored, answered 503 anyway.
    pub lost_answers: AtomicU64,
}

/// The proxy; stops when dropped.
pub struct FlakyProxy {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    /// Counters.
    pub hiccups: Arc<Hiccups>,
    stop: CancellationToken,
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Clone)]
struct Ctx {
    upstream: String,
    http: reqwest::Client,
    hiccups: Arc<Hiccups>,
}

impl FlakyProxy {
    /// A proxy on `127.0.0.1:0` forwarding to `upstream` (a base URL).
    pub async fn start(upstream: &str) -> FlakyProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr: SocketAddr = listener.local_addr().expect("proxy address");
        let hiccups = Arc::new(Hiccups::default());
        let ctx = Ctx {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("proxy client"),
            hiccups: Arc::clone(&hiccups),
        };
        let app = axum::Router::new().fallback(forward).with_state(ctx);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await
                .expect("proxy serves");
        });
        FlakyProxy {
            url: format!("http://{addr}"),
            hiccups,
            stop,
        }
    }
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("content-type", "application/json")],
        r#"{"error":{"code":"unavailable","message":"the proxy dropped this call"}}"#,
    )
        .into_response()
}

async fn forward(State(ctx): State<Ctx>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let is_logs = parts.method == Method::POST
        && path.starts_with("/runners/jobs/")
        && path.ends_with("/logs");
    // Of every four log posts: the 2nd is lost on the way in, the 4th on
    // the way back.
    let fate = is_logs.then(|| ctx.hiccups.seen.fetch_add(1, Ordering::SeqCst) % 4);
    if fate == Some(1) {
        ctx.hiccups.lost_requests.fetch_add(1, Ordering::SeqCst);
        return unavailable();
    }
    let body: Bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let mut out = ctx
        .http
        .request(parts.method.clone(), format!("{}{path}", ctx.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            out = out.header(name, value);
        }
    }
    let answer = match out.send().await {
        Ok(a) => a,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    if fate == Some(3) {
        ctx.hiccups.lost_answers.fetch_add(1, Ordering::SeqCst);
        return unavailable();
    }
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" {
            resp.headers_mut().insert(name, value.clone());
        }
    }
    resp
}
