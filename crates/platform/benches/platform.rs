//! What the platform's own work costs per request, measured over a real
//! loopback socket and printed side by side with a baseline from the same
//! run: `GET /healthz` (routing and HTTP only, no auth, no database).
//!
//! - bootstrap with 50 vault entries and a GitHub App (token lookup, 50
//!   AES-GCM decryptions, 50 `last_used_at` updates, one mint, one commit);
//! - `PUT /secrets/{env}` (a seal and a transaction);
//! - claim of a queued job (`UPDATE … RETURNING`), enqueue excluded;
//! - `GET /jobs/{id}` with a 1000-batch log.
//!
//! Run: `cargo bench -p spedy-platform --bench platform`. Medians of N calls.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spedy_platform::{PlatformConfig, spawn};

const N: usize = 300;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Bench {
    http: reqwest::Client,
    base: String,
}

impl Bench {
    async fn send(&self, method: reqwest::Method, path: &str, token: &str, body: Value) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    async fn time<F, Fut>(&self, mut f: F) -> Duration
    where
        F: FnMut(usize) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        for i in 0..10 {
            f(i).await;
        }
        let mut samples = Vec::with_capacity(N);
        for i in 0..N {
            let start = Instant::now();
            f(i + 10).await;
            samples.push(start.elapsed());
        }
        median(samples)
    }
}

fn row(name: &str, figure: Duration, baseline: Duration) {
    println!(
        "| {name:<42} | {:>9.1} µs | {:>9.1} µs | {:>6.2}× |",
        figure.as_secs_f64() * 1e6,
        baseline.as_secs_f64() * 1e6,
        figure.as_secs_f64() / baseline.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    use reqwest::Method as M;
    let dir = tempfile::tempdir().unwrap();
    let running = spawn(PlatformConfig::new(dir.path())).await.unwrap();
    let b = Bench {
        http: reqwest::Client::new(),
        base: format!("http://{}", running.addr),
    };
    let admin = running.admin_token.expose().to_owned();
    for i in 0..50 {
        b.send(
            M::PUT,
            &format!("/secrets/SECRET_{i}"),
            &admin,
            json!({"value": format!("value-{i}-0123456789abcdef")}),
        )
        .await;
    }
    b.send(
        M::PUT,
        "/secrets/ANTHROPIC_API_KEY",
        &admin,
        json!({"value": "sk-ant-bench-0123456789"}),
    )
    .await;
    b.send(
        M::PUT,
        "/integrations/github",
        &admin,
        json!({"type": "app", "installation_id": 1}),
    )
    .await;
    let created = b
        .send(
            M::POST,
            "/runners/tokens",
            &admin,
            json!({"name": "bench", "pool_size": 1, "backend": "anthropic_api"}),
        )
        .await;
    let runner = created["token"].as_str().unwrap().to_owned();

    let baseline = b
        .time(|_| async {
            let r = b
                .http
                .get(format!("{}/healthz", b.base))
                .send()
                .await
                .unwrap();
            r.bytes().await.unwrap();
        })
        .await;
    let bootstrap = b
        .time(|_| async {
            b.send(M::POST, "/runners/bootstrap", &runner, Value::Null)
                .await;
        })
        .await;
    let put = b
        .time(|i| {
            let admin = admin.clone();
            let b = &b;
            async move {
                b.send(
                    M::PUT,
                    "/secrets/ROTATED",
                    &admin,
                    json!({"value": format!("rotation-{i}-abcdef")}),
                )
                .await;
            }
        })
        .await;
    // Queue enough jobs first, so every timed claim takes one.
    for _ in 0..N + 10 {
        b.send(
            M::POST,
            "/jobs",
            &admin,
            json!({"image": "i", "timeout_s": 1}),
        )
        .await;
    }
    let claim = b
        .time(|_| async {
            let job = b
                .send(
                    M::POST,
                    "/runners/jobs/claim",
                    &runner,
                    json!({"wait_s": 0}),
                )
                .await;
            assert!(job["job"]["id"].is_string());
        })
        .await;
    let job = b
        .send(
            M::POST,
            "/jobs",
            &admin,
            json!({"image": "i", "timeout_s": 1}),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let claimed = b
        .send(
            M::POST,
            "/runners/jobs/claim",
            &runner,
            json!({"wait_s": 0}),
        )
        .await;
    assert_eq!(claimed["job"]["id"], id.as_str());
    for seq in 0..1000 {
        let line = format!("line {seq} of the job's output, long enough to be realistic\n");
        b.send(
            M::POST,
            &format!("/runners/jobs/{id}/logs"),
            &runner,
            json!({"seq": seq, "chunks": [{"stream": "stdout", "text": line}]}),
        )
        .await;
    }
    let view = b
        .time(|_| async {
            b.send(M::GET, &format!("/jobs/{id}"), &admin, Value::Null)
                .await;
        })
        .await;

    println!("median of {N} calls over loopback, release build");
    println!(
        "| {:<42} | {:>12} | {:>12} | {:>7} |",
        "request", "figure", "healthz", "ratio"
    );
    row(
        "POST /runners/bootstrap (51 entries + app)",
        bootstrap,
        baseline,
    );
    row("PUT /secrets/{env} (rotation)", put, baseline);
    row("POST /runners/jobs/claim (a job queued)", claim, baseline);
    row("GET /jobs/{id} (1000 log batches)", view, baseline);
    running.shutdown().await.unwrap();
}
