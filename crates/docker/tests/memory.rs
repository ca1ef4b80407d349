//! A job that writes 200 MiB of log to a slow consumer: the executor's memory
//! stays bounded, because a full channel stops the reading of the attach
//! stream and Docker holds the output. A binary of its own, so the peak RSS
//! (`VmHWM`) it reads is this test's alone.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use spedy_api::{FinalStatus, LogStream};
use spedy_docker::{Engine, Injection, Limits, RunSpec};
use spedy_secrets::{Redactor, SecretSet};
use spedy_testkit::docker::{assert_no_containers, probe_image, require_engine, unique_runner_id};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Peak resident set size of this process so far, in KiB.
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line")
}

#[tokio::test]
async fn a_job_writing_200_mib_to_a_slow_consumer_keeps_the_runners_memory_bounded() {
    require_engine().await;
    let (engine, image, runner) = (
        Engine::connect().await.expect("engine"),
        probe_image().await,
        unique_runner_id(),
    );
    let set: SecretSet = [(
        "TOKEN".to_string(),
        SecretString::from("CANARY_memory_0123456789"),
    )]
    .into_iter()
    .collect();
    let spec = RunSpec {
        runner_id: runner.clone(),
        job_id: "job_memory".into(),
        image,
        command: Some(vec!["probe".into(), "spew".into(), "200".into()]),
        env: BTreeMap::new(),
        redactor: Arc::new(Redactor::from_set(&set)),
        secrets: set,
        limits: Limits::default(),
        injection: Injection::Stdin,
        timeout: Duration::from_secs(300),
        stop_grace: Duration::from_millis(200),
    };
    let before = vm_hwm_kib();
    let started = Instant::now();
    let (tx, mut rx) = mpsc::channel::<spedy_api::LogChunk>(16);
    let consume = async {
        let (mut bytes, mut chunks, mut largest) = (0usize, 0usize, 0usize);
        while let Some(c) = rx.recv().await {
            assert_eq!(c.stream, LogStream::Stdout);
            bytes += c.text.len();
            largest = largest.max(c.text.len());
            chunks += 1;
            // Slower than the job: it sleeps 1 ms every 2 chunks.
            if chunks % 2 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        (bytes, chunks, largest)
    };
    let (outcome, (bytes, chunks, largest)) =
        tokio::join!(engine.run(spec, tx, CancellationToken::new()), consume);
    let elapsed = started.elapsed();
    let after = vm_hwm_kib();
    let outcome = outcome.expect("the engine answers");
    println!(
        "200 MiB job: {bytes} bytes in {chunks} chunks (largest {largest} B) in {elapsed:.2?} \
         ({:.0} MiB/s); peak RSS (VmHWM) before {} KiB, after {} KiB, growth {} KiB",
        bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64(),
        before,
        after,
        after.saturating_sub(before)
    );
    assert_eq!(outcome.status, FinalStatus::Succeeded, "{outcome:?}");
    assert_eq!(bytes, 200 << 20, "every byte arrived, none dropped");
    // Generous: the design holds 16 chunks plus one frame per stream; the
    // output itself is 200 MiB.
    assert!(
        after - before < 64 * 1024,
        "peak RSS grew by {} KiB",
        after - before
    );
    assert_no_containers(&runner).await;
}
