//! Recovery on the real engine: the orphan sweep after a runner died
//! mid-job, and an engine that vanishes mid-job and comes back.

use std::net::SocketAddr;
use std::time::Duration;

use spedy_api::FinalStatus;
use spedy_docker::Engine;
use spedy_testkit::docker::{
    assert_no_containers, containers_with_label, probe_image, unique_runner_id,
};
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::support::{engine, run, spec, wait_for};

#[tokio::test]
async fn the_sweep_removes_the_containers_a_dead_runner_left_and_names_their_jobs() {
    let (engine, image, runner) = (engine().await, probe_image().await, unique_runner_id());
    let other_runner = unique_runner_id();
    let mut left = Vec::new();
    // A runner "killed -9" mid-job: its run future is dropped without its
    // cleanup, exactly what a dead process leaves.
    for r in [&runner, &runner, &other_runner] {
        let job = spec(r, &image, &["probe", "print", "ready", "sleep", "30000"]);
        left.push((r.clone(), job.job_id.clone()));
        let (tx, mut rx) = mpsc::channel(16);
        let task = tokio::spawn({
            let engine = engine.clone();
            async move { engine.run(job, tx, CancellationToken::new()).await }
        });
        wait_for(&mut rx, &mut Vec::new(), "ready").await;
        task.abort();
        let _ = task.await;
    }
    assert_eq!(containers_with_label(&runner).await.len(), 2);

    let swept = engine
        .sweep_orphans(&runner)
        .await
        .expect("the engine answers");
    let mut expected: Vec<String> = left
        .iter()
        .filter(|(r, _)| r == &runner)
        .map(|(_, j)| j.clone())
        .collect();
    expected.sort();
    assert_eq!(swept, expected);
    assert_no_containers(&runner).await;
    assert_eq!(
        containers_with_label(&other_runner).await.len(),
        1,
        "another runner's container stays"
    );
    assert_eq!(
        engine
            .sweep_orphans(&other_runner)
            .await
            .expect("engine")
            .len(),
        1
    );
    assert!(
        engine
            .sweep_orphans(&runner)
            .await
            .expect("engine")
            .is_empty(),
        "nothing left to sweep"
    );
    assert_no_containers(&other_runner).await;
}

/// A TCP front for the engine's unix socket that the test can cut and
/// restore: the engine "vanishes" for the runner without touching the real
/// daemon, which other tests share.
struct EngineProxy {
    addr: SocketAddr,
    tasks: JoinSet<()>,
}

impl EngineProxy {
    async fn start(addr: SocketAddr) -> EngineProxy {
        let listener = TcpListener::bind(addr).await.expect("binding the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    break;
                };
                conns.spawn(async move {
                    let Ok(mut engine) = UnixStream::connect("/var/run/docker.sock").await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                });
            }
        });
        EngineProxy { addr, tasks }
    }

    /// Drops the listener and every open connection at once.
    async fn cut(mut self) -> SocketAddr {
        self.tasks.shutdown().await;
        self.addr
    }
}

#[tokio::test]
async fn an_engine_that_vanishes_mid_job_is_an_error_and_the_next_job_runs_once_it_is_back() {
    let (image, runner) = (probe_image().await, unique_runner_id());
    let _direct = engine().await;
    let proxy = EngineProxy::start("127.0.0.1:0".parse().unwrap()).await;
    let engine = Engine::connect_to(&format!("tcp://{}", proxy.addr))
        .await
        .expect("through the proxy");

    let job = spec(
        &runner,
        &image,
        &["probe", "print", "ready", "sleep", "30000"],
    );
    let (tx, mut rx) = mpsc::channel(16);
    let running = tokio::spawn({
        let engine = engine.clone();
        async move { engine.run(job, tx, CancellationToken::new()).await }
    });
    wait_for(&mut rx, &mut Vec::new(), "ready").await;
    let addr = proxy.cut().await;
    let result = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the job ends promptly when the engine vanishes")
        .expect("no panic");
    let err = result.expect_err("an engine that vanished is an Err, not an outcome");
    println!("engine gone: {err}");
    assert!(err.is_transient());
    assert!(matches!(err, spedy_docker::Error::Engine { .. }), "{err:?}");
    assert_eq!(
        containers_with_label(&runner).await.len(),
        1,
        "could not be removed while gone"
    );

    let _back = EngineProxy::start(addr).await;
    let (outcome, _) = run(&engine, spec(&runner, &image, &["probe", "exit", "0"])).await;
    assert_eq!(
        outcome.expect("the engine is back").status,
        FinalStatus::Succeeded
    );
    assert_no_containers(&runner).await;
}

#[tokio::test]
async fn connecting_to_an_engine_that_is_not_there_names_the_host_and_hints_at_docker_info() {
    let err = Engine::connect_to("unix:///nonexistent/docker.sock")
        .await
        .expect_err("no engine there");
    let text = err.to_string();
    assert!(text.contains("unix:///nonexistent/docker.sock"), "{text}");
    assert!(text.contains("`docker info`"), "{text}");
    let err = Engine::connect_to("tcp://127.0.0.1:9")
        .await
        .expect_err("nothing listens on port 9");
    assert!(err.to_string().contains("tcp://127.0.0.1:9"));
    let err = Engine::connect_to("ssh://host")
        .await
        .expect_err("unsupported");
    assert!(
        err.to_string()
            .contains("unsupported DOCKER_HOST ssh://host"),
        "{err}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn the_engine_reports_its_version_and_the_negotiated_api() {
    let info = engine().await.info().await.expect("the engine answers");
    println!("{info:?}");
    assert!(!info.version.is_empty());
    assert!(info.negotiated_api_version.starts_with("1."));
    assert!(!info.api_version.is_empty());
}
