//! `Supervisor::run` as a whole, in-process, against the real local platform
//! and the real Docker engine (no job runs here): the health server's life,
//! a clean return on shutdown, and start-up errors that name their cause.

mod core_support;

use std::net::SocketAddr;
use std::time::Duration;

use spedy_api::{Backend, RunnerToken, Scope, SecretKind};
use spedy_docker::Engine;
use spedy_supervisor::{Config, JobSettings, LocalSources, RunnerState, Supervisor};
use spedy_testkit::canary::canary;
use spedy_testkit::platform::TestPlatform;
use tokio_util::sync::CancellationToken;

async fn platform_with_runner() -> (TestPlatform, RunnerToken) {
    spedy_testkit::docker::require_engine().await;
    let platform = TestPlatform::start().await;
    platform
        .put_secret_kind(
            "ANTHROPIC_API_KEY",
            &canary("KEY"),
            SecretKind::Anthropic,
            Scope::Org,
        )
        .await;
    let (_, token) = platform
        .create_runner("core-supervisor", 1, Backend::AnthropicApi)
        .await;
    (platform, token)
}

fn config(url: &str, token: RunnerToken, health: SocketAddr) -> Config {
    Config {
        client: spedy_client::Client::builder(url)
            .build()
            .expect("a client"),
        token,
        local: LocalSources::default(),
        pool_size: Some(1),
        refresh_interval: Some(Duration::from_millis(200)),
        health_addr: Some(health),
        shutdown_grace: Duration::from_secs(1),
        jobs: JobSettings {
            claim_wait_s: 1,
            ..JobSettings::default()
        },
        timers: core_support::fast_timers(),
        log_redactor: None,
    }
}

async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let client = reqwest::Client::builder().no_proxy().build().ok()?;
    let answer = client
        .get(format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    Some(answer.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_serves_health_while_it_runs_and_returns_ok_on_shutdown() {
    let (platform, token) = platform_with_runner().await;
    let engine = Engine::connect().await.expect("the Docker engine");
    let local: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let mut supervisor = Supervisor::new(config(&platform.url(), token, local), engine);
    let health = supervisor
        .bind_health()
        .await
        .expect("binds")
        .expect("an address");
    assert_ne!(health.port(), 0, "port 0 picked a real port");
    let mut state = supervisor.state();
    let (shutdown, force) = (CancellationToken::new(), CancellationToken::new());
    let task = tokio::spawn(supervisor.run(shutdown.clone(), force.clone()));
    tokio::time::timeout(
        core_support::PATIENCE,
        state.wait_for(RunnerState::is_online),
    )
    .await
    .expect("online in time")
    .expect("the state has a writer");
    assert_eq!(http_status(health, "/healthz").await, Some(200));
    assert_eq!(http_status(health, "/readyz").await, Some(200));
    assert_eq!(http_status(health, "/metrics").await, Some(200));
    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the supervisor returns promptly after shutdown")
        .expect("no panic");
    assert!(result.is_ok(), "{result:?}");
    assert!(
        matches!(
            *state.borrow(),
            RunnerState::Offline(spedy_supervisor::OfflineReason::ShuttingDown)
        ),
        "the last state says shutting down"
    );
    assert_eq!(
        http_status(health, "/healthz").await,
        None,
        "the health server stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_the_platform_is_unreachable_returns_promptly() {
    let (mut platform, token) = platform_with_runner().await;
    platform.stop().await;
    let engine = Engine::connect().await.expect("the Docker engine");
    let local: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let supervisor = Supervisor::new(config(&platform.url(), token, local), engine);
    let mut state = supervisor.state();
    let (shutdown, force) = (CancellationToken::new(), CancellationToken::new());
    let task = tokio::spawn(supervisor.run(shutdown.clone(), force));
    tokio::time::timeout(
        core_support::PATIENCE,
        state.wait_for(|s| matches!(s, RunnerState::Offline(_))),
    )
    .await
    .expect("offline in time")
    .expect("the state has a writer");
    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("returns promptly")
        .expect("no panic");
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_address_in_use_is_refused_with_the_setting_to_change() {
    let (platform, token) = platform_with_runner().await;
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = taken.local_addr().expect("addr");
    let engine = Engine::connect().await.expect("the Docker engine");
    let supervisor = Supervisor::new(config(&platform.url(), token, addr), engine);
    let err = supervisor
        .run(CancellationToken::new(), CancellationToken::new())
        .await
        .expect_err("the address is taken");
    let text = format!("{err:#}");
    assert!(
        text.contains(&addr.to_string()) && text.contains("SPEDY_HEALTH_ADDR"),
        "{text}"
    );
}
