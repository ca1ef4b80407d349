//! Shared by the `core_*` test binaries: the refresher and the health server
//! run in-process against the real local platform (or a misbehaving proxy in
//! front of it), with sub-second timers.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use spedy_api::RunnerToken;
use spedy_secrets::RedactorHandle;
use spedy_supervisor::refresher::Refresher;
use spedy_supervisor::{LocalSources, Metrics, RunnerState, Timers, health};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[path = "../proxy_support/mod.rs"]
mod proxy_support;

/// How long a state change may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Timers small enough for tests.
pub fn fast_timers() -> Timers {
    Timers {
        key_missing_recheck: Duration::from_millis(100),
        invalid_token_recheck: Duration::from_millis(100),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(150),
        expiry_lead: Duration::from_secs(300),
        min_refresh: Duration::from_millis(10),
    }
}

/// A refresher and a health server running for one test.
pub struct Refreshing {
    pub state: watch::Receiver<RunnerState>,
    pub metrics: Arc<Metrics>,
    pub health: SocketAddr,
    pub log: RedactorHandle,
    stop: CancellationToken,
    task: JoinHandle<Result<(), spedy_supervisor::Error>>,
}

impl Refreshing {
    /// Starts a refresher against `base_url` with `interval` overriding the
    /// platform's refresh interval.
    pub async fn start(
        base_url: &str,
        token: RunnerToken,
        local: LocalSources,
        interval: Option<Duration>,
    ) -> Refreshing {
        let client = spedy_client::Client::builder(base_url)
            .build()
            .expect("a client for the test platform");
        let metrics = Arc::new(Metrics::new());
        let (tx, state) = watch::channel(RunnerState::Starting);
        let log = RedactorHandle::default();
        let stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind health");
        let health = listener.local_addr().expect("health address");
        tokio::spawn(health::serve(
            listener,
            state.clone(),
            Arc::clone(&metrics),
            stop.clone(),
        ));
        let refresher = Refresher::new(
            client.runner(token.clone()),
            token,
            local,
            interval,
            fast_timers(),
            Arc::clone(&metrics),
            tx,
            Some(log.clone()),
        );
        let task = tokio::spawn(refresher.run(stop.clone()));
        Refreshing {
            state,
            metrics,
            health,
            log,
            stop,
            task,
        }
    }

    /// Waits until the state satisfies `pred`; fails the test after [`PATIENCE`].
    pub async fn wait(
        &mut self,
        what: &str,
        pred: impl FnMut(&RunnerState) -> bool,
    ) -> RunnerState {
        let waited = tokio::time::timeout(PATIENCE, self.state.wait_for(pred))
            .await
            .map(|r| r.map(|s| s.clone()));
        match waited {
            Ok(Ok(state)) => state,
            Ok(Err(_)) => panic!("the refresher ended while waiting for: {what}"),
            Err(_) => panic!(
                "not {what} after {PATIENCE:?}; the state is {}",
                self.state.borrow().as_str()
            ),
        }
    }

    /// `GET /readyz`: status and body.
    pub async fn readyz(&self) -> (u16, String) {
        get(self.health, "/readyz").await
    }

    /// `GET /metrics`: the exposition text.
    pub async fn metrics_text(&self) -> String {
        get(self.health, "/metrics").await.1
    }

    /// Stops the refresher and checks that it ended cleanly.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task
            .await
            .expect("the refresher does not panic")
            .expect("the refresher ends cleanly on shutdown");
    }
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let answer = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap_or_default())
}

/// How the proxy answers `POST /runners/bootstrap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Forwards to the platform.
    Pass = 0,
    /// `500` with an empty body.
    ServerError = 1,
    /// `200` with a body that is not JSON.
    Garbage = 2,
    /// `200` with a 2 MiB body.
    Oversized = 3,
    /// `401 invalid_token`, as if the token were revoked.
    Unauthorized = 4,
    /// Forwards, but every delivered entry expires 700 ms from now.
    ShortExpiry = 5,
}

/// A proxy in front of the local platform that forwards every request, but
/// answers bootstrap as [`Mode`] says. Stops when dropped.
pub struct BadProxy {
    pub url: String,
    mode: Arc<AtomicU8>,
    /// Bootstrap calls seen, in any mode.
    pub bootstraps: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl Drop for BadProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Clone)]
struct Ctx {
    upstream: String,
    http: reqwest::Client,
    mode: Arc<AtomicU8>,
    bootstraps: Arc<AtomicU64>,
}

impl BadProxy {
    /// A proxy on `127.0.0.1:0` forwarding to `upstream`.
    pub async fn start(upstream: &str) -> BadProxy {
        let ctx = Ctx {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: proxy_support::upstream_client(),
            mode: Arc::new(AtomicU8::new(Mode::Pass as u8)),
            bootstraps: Arc::new(AtomicU64::new(0)),
        };
        let (mode, bootstraps) = (Arc::clone(&ctx.mode), Arc::clone(&ctx.bootstraps));
        let app = axum::Router::new().fallback(forward).with_state(ctx);
        let (url, stop) = proxy_support::serve(app).await;
        BadProxy {
            url,
            mode,
            bootstraps,
            stop,
        }
    }

    /// Changes how bootstrap is answered from now on.
    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Bootstrap calls seen so far.
    pub fn bootstrap_calls(&self) -> u64 {
        self.bootstraps.load(Ordering::SeqCst)
    }
}

async fn forward(State(ctx): State<Ctx>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = proxy_support::path_of(&parts);
    if path == "/runners/bootstrap" {
        ctx.bootstraps.fetch_add(1, Ordering::SeqCst);
        let json = [("content-type", "application/json")];
        match ctx.mode.load(Ordering::SeqCst) {
            1 => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            2 => return (json, "{\"runner\": <<not json>>").into_response(),
            3 => return (json, vec![b' '; 2 << 20]).into_response(),
            4 => {
                return (
                    StatusCode::UNAUTHORIZED,
                    json,
                    r#"{"error":{"code":"invalid_token","message":"revoked"}}"#,
                )
                    .into_response();
            }
            _ => {}
        }
    }
    let mut answer = match proxy_support::pass_through(&ctx.http, &ctx.upstream, &parts, body).await
    {
        Ok(answer) => answer,
        Err(resp) => return resp,
    };
    if path == "/runners/bootstrap" && ctx.mode.load(Ordering::SeqCst) == Mode::ShortExpiry as u8 {
        answer.body = expire_soon(&answer.body).into();
    }
    answer.into_response()
}

/// Sets `expires_at` of every entry of a bootstrap answer to 700 ms from now.
fn expire_soon(body: &[u8]) -> Vec<u8> {
    let mut json: serde_json::Value = serde_json::from_slice(body).expect("bootstrap JSON");
    let at = time::OffsetDateTime::now_utc() + Duration::from_millis(700);
    let at = at
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    for entry in json["bundle"]["secrets"].as_array_mut().expect("secrets") {
        entry["expires_at"] = serde_json::Value::String(at.clone());
    }
    serde_json::to_vec(&json).expect("JSON")
}
