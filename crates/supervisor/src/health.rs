//! Health and metrics over HTTP (axum) on `SPEDY_HEALTH_ADDR`:
//!
//! - `GET /healthz`: `200 ok` while the process serves at all.
//! - `GET /readyz`: `200 online` when a bundle is held and not gated, else
//!   `503` with the state's machine name (`starting`, `unreachable`,
//!   `invalid_token`, `anthropic_key_missing`, `shutting_down`).
//! - `GET /metrics`: the Prometheus text exposition of [`Metrics`].
//!
//! Nothing here shows a secret: the state is rendered by name only.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::state::RunnerState;

#[derive(Clone)]
struct Shared {
    state: watch::Receiver<RunnerState>,
    metrics: Arc<Metrics>,
}

/// The router of the health and metrics endpoints.
pub fn router(state: watch::Receiver<RunnerState>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Shared { state, metrics })
}

/// Serves the endpoints on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    state: watch::Receiver<RunnerState>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state, metrics))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Shared>) -> Response {
    let state = shared.state.borrow().clone();
    let status = if state.is_online() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("{}\n", state.as_str())).into_response()
}

async fn metrics_text(State(shared): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}
