//! Job overhead of the executor on both injection paths, against the same
//! container run straight through the engine (issue 4 "job overhead", issue 5
//! "run with both paths, with the ratio printed").
//!
//! For each round, in turn: the baseline (bollard create, start, wait,
//! remove; log driver `none`), then [`Engine::run`] with `env`, then with
//! `stdin`; all three run the probe with `exit 0` and one secret. Prints the
//! median and p90 of each and the ratios of the medians. Not a timed test:
//! it asserts nothing.
//!
//! `cargo bench -p spedy-docker --bench handoff` (`SPEDY_BENCH_ROUNDS`, default 20).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{RemoveContainerOptionsBuilder, StartContainerOptions};
use futures_util::StreamExt;
use secrecy::SecretString;
use spedy_docker::{Engine, Injection, Limits, RunSpec};
use spedy_secrets::{Redactor, SecretSet};
use spedy_testkit::docker::{assert_no_containers, probe_image, require_engine, unique_runner_id};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "bench-secret-value-0123456789";

async fn direct(docker: &Docker, image: &str, runner: &str) -> Duration {
    let t = Instant::now();
    let body = ContainerCreateBody {
        image: Some(image.into()),
        cmd: Some(vec!["probe".into(), "exit".into(), "0".into()]),
        env: Some(vec![format!("ANTHROPIC_API_KEY={SECRET}")]),
        labels: Some(HashMap::from([("io.spedy.runner".into(), runner.into())])),
        host_config: Some(HostConfig {
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .unwrap()
        .id;
    docker
        .start_container(&id, None::<StartContainerOptions>)
        .await
        .unwrap();
    let _ = docker.wait_container(&id, None).next().await;
    let rm = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    docker.remove_container(&id, Some(rm)).await.unwrap();
    t.elapsed()
}

async fn executor(engine: &Engine, image: &str, runner: &str, injection: Injection) -> Duration {
    let secrets: SecretSet = [("ANTHROPIC_API_KEY".to_string(), SecretString::from(SECRET))]
        .into_iter()
        .collect();
    let spec = RunSpec {
        runner_id: runner.into(),
        job_id: "job_bench".into(),
        image: image.into(),
        command: Some(vec!["probe".into(), "exit".into(), "0".into()]),
        env: BTreeMap::new(),
        redactor: Arc::new(Redactor::from_set(&secrets)),
        secrets,
        limits: Limits::default(),
        injection,
        timeout: Duration::from_secs(60),
        stop_grace: Duration::from_secs(1),
    };
    let (tx, mut rx) = mpsc::channel(64);
    let t = Instant::now();
    let (outcome, ()) = tokio::join!(engine.run(spec, tx, CancellationToken::new()), async {
        while rx.recv().await.is_some() {}
    });
    let elapsed = t.elapsed();
    assert_eq!(outcome.unwrap().exit_code, Some(0));
    elapsed
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[(v.len() * 9 / 10).min(v.len() - 1)])
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("SPEDY_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let docker = require_engine().await;
    let engine = Engine::connect().await.unwrap();
    let image = probe_image().await;
    let runner = unique_runner_id();
    // Warm-up: the first container of a fresh image is slower.
    direct(&docker, &image, &runner).await;
    executor(&engine, &image, &runner, Injection::Stdin).await;
    let (mut base, mut env, mut stdin) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        base.push(direct(&docker, &image, &runner).await);
        env.push(executor(&engine, &image, &runner, Injection::Env).await);
        stdin.push(executor(&engine, &image, &runner, Injection::Stdin).await);
    }
    assert_no_containers(&runner).await;
    let (b, e, s) = (stats(base), stats(env), stats(stdin));
    let ratio = |x: Duration| x.as_secs_f64() / b.0.as_secs_f64();
    println!("job overhead, {rounds} rounds, probe `exit 0` (median / p90):");
    println!(
        "  direct engine (create, start, wait, remove)  {:>8.1?} / {:>8.1?}",
        b.0, b.1
    );
    println!(
        "  Engine::run, injection env                   {:>8.1?} / {:>8.1?}  ratio {:.2}x",
        e.0,
        e.1,
        ratio(e.0)
    );
    println!(
        "  Engine::run, injection stdin                 {:>8.1?} / {:>8.1?}  ratio {:.2}x",
        s.0,
        s.1,
        ratio(s.0)
    );
    println!(
        "  stdin / env                                  {:.2}x",
        s.0.as_secs_f64() / e.0.as_secs_f64()
    );
}
