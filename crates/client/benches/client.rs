//! What the client's safety costs, side by side with a baseline in the same
//! run: plain reqwest (`.bytes()` then `serde_json`) against `spedy-client`
//! (streamed with a cap and a per-chunk timeout, decoded through
//! `serde_path_to_error`, secret bodies in a pre-sized wiped buffer), on the
//! same keep-alive loopback server.
//!
//! Run with `cargo bench -p spedy-client`. Prints a table; asserts nothing.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use spedy_api::{AdminToken, BootstrapResponse, JobView, RunnerToken};
use spedy_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ROUNDS: usize = 300;

/// A keep-alive HTTP/1.1 server answering every request with `body`.
async fn serve(body: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let answer: Arc<Vec<u8>> = Arc::new([head.as_bytes(), &body].concat());
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut pending = Vec::new();
                loop {
                    let n = match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&buf[..n]);
                    // Requests here have no body: one answer per blank line.
                    while let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..i + 4);
                        if sock.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

fn bundle(secrets: usize) -> Vec<u8> {
    let entries: Vec<_> = (0..secrets)
        .map(|i| {
            serde_json::json!({"env": format!("SECRET_{i}"), "value": format!("v{i}-{}", "x".repeat(120)),
                               "kind": "custom", "scope": "org"})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "runner": {"id": "run_1", "name": "bench", "pool_size": 4, "backend": "anthropic_api"},
        "bundle": {"version": "v1", "issued_at": "2026-12-03T12:00:00Z", "refresh_after_s": 900,
                   "secrets": entries}
    }))
    .unwrap()
}

fn job_view(log_bytes: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": "job_1", "status": "succeeded", "exit_code": 0,
        "log": "l".repeat(log_bytes), "usage": null, "error": null
    }))
    .unwrap()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Prints the medians side by side (calls alternate, so load on the machine
/// hits both alike).
fn report(what: &str, baseline: Vec<Duration>, ours: Vec<Duration>) {
    let (b, o) = (median(baseline), median(ours));
    println!(
        "{what}  reqwest+serde {:>8.1} µs   spedy-client {:>8.1} µs   ratio {:.2}",
        b.as_secs_f64() * 1e6,
        o.as_secs_f64() * 1e6,
        o.as_secs_f64() / b.as_secs_f64()
    );
}

async fn bench_bootstrap(secrets: usize) {
    let body = bundle(secrets);
    let size = body.len();
    let addr = serve(body).await;
    let url = format!("http://{addr}");
    let token = "rnt_abcdefghijABCDEFGHIJ0123456789abcdefghij";

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let runner = Client::builder(&url)
        .build()
        .unwrap()
        .runner(RunnerToken::parse(token).unwrap());
    let (mut baseline, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let bytes = http
            .post(format!("{url}/runners/bootstrap"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let b: BootstrapResponse = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(b.bundle.secrets.len(), secrets);
        baseline.push(started.elapsed());

        let started = Instant::now();
        let b = runner.bootstrap().await.unwrap();
        assert!(!b.bundle.secrets[0].value.expose_secret().is_empty());
        ours.push(started.elapsed());
    }
    report(
        &format!("bootstrap, {secrets:>4} secrets ({size:>7} B)"),
        baseline,
        ours,
    );
}

async fn bench_job_view(log_bytes: usize) {
    let body = job_view(log_bytes);
    let size = body.len();
    let addr = serve(body).await;
    let url = format!("http://{addr}");
    let token = "sat_abcdefghijABCDEFGHIJ0123456789abcdefghij";

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let admin = Client::builder(&url)
        .build()
        .unwrap()
        .admin(AdminToken::parse(token).unwrap());
    let (mut baseline, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let bytes = http
            .get(format!("{url}/jobs/job_1"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let v: JobView = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v.log.len(), log_bytes);
        baseline.push(started.elapsed());

        let started = Instant::now();
        let v = admin.job("job_1").await.unwrap();
        assert_eq!(v.log.len(), log_bytes);
        ours.push(started.elapsed());
    }
    report(
        &format!("job view, {:>5} KiB log ({size:>7} B)", log_bytes / 1024),
        baseline,
        ours,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("{ROUNDS} alternating calls each over loopback keep-alive; median per call");
        for secrets in [5, 100, 1000] {
            bench_bootstrap(secrets).await;
        }
        for kib in [4, 256, 4096] {
            bench_job_view(kib * 1024).await;
        }
    });
}
