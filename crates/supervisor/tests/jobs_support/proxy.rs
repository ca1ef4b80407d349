//! A flaky reverse proxy in front of the local platform: it forwards every
//! request, but some `POST /runners/jobs/{id}/logs` calls are lost, either
//! before they reach the platform (answered `503`) or after the platform
//! stored them (the platform's answer is replaced by `503`). The first kind
//! tests that nothing is lost, the second that a retried batch is not stored
//! twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

#[path = "../proxy_support/mod.rs"]
mod proxy_support;

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
        let hiccups = Arc::new(Hiccups::default());
        let ctx = Ctx {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: proxy_support::upstream_client(),
            hiccups: Arc::clone(&hiccups),
        };
        let app = axum::Router::new().fallback(forward).with_state(ctx);
        let (url, stop) = proxy_support::serve(app).await;
        FlakyProxy { url, hiccups, stop }
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
    let path = proxy_support::path_of(&parts);
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
    let answer = match proxy_support::pass_through(&ctx.http, &ctx.upstream, &parts, body).await {
        Ok(answer) => answer,
        Err(resp) => return resp,
    };
    if fate == Some(3) {
        ctx.hiccups.lost_answers.fetch_add(1, Ordering::SeqCst);
        return unavailable();
    }
    answer.into_response()
}
