//! One job's lifecycle through the supervisor, on the real engine and the
//! real local platform (issue 4, items 3 to 5): entitlement, redaction of the
//! stored log, exit codes, cancel from the admin, timeout, an image that
//! cannot be pulled, log shipping through a platform that hiccups, and an
//! engine that vanishes mid-job.

mod jobs_support;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use spedy_api::{GitProvider, JobStatus, Repo, Scope};
use spedy_docker::{Engine, Injection};
use spedy_testkit::canary::assert_absent;

use jobs_support::engine_proxy::EngineProxy;
use jobs_support::proxy::FlakyProxy;
use jobs_support::{Fixture, fast_jobs, github_in_project_a};

/// The secret names the fixture plants, whoever receives them.
const SECRET_NAMES: [&str; 5] = [
    "ANTHROPIC_API_KEY",
    "GITHUB_TOKEN",
    "BITBUCKET_TOKEN",
    "FEATURE_FLAG_X",
    "ORG_MCP_TOKEN",
];

/// The names among [`SECRET_NAMES`] that a job's `probe names` printed.
fn secret_names_in(log: &str) -> BTreeSet<&str> {
    log.lines()
        .map(str::trim)
        .filter(|l| SECRET_NAMES.contains(l))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_job_env_holds_exactly_the_secret_names_it_is_entitled_to() {
    let fx = Fixture::new(3).await;
    let runner = fx
        .start_runner(&fx.url(), fast_jobs(Injection::Stdin), None)
        .await;

    let github_a = fx.enqueue(&["names"], github_in_project_a).await;
    let bitbucket_b = fx
        .enqueue(&["names"], |s| {
            s.repo = Some(Repo {
                url: "https://bitbucket.org/acme/app".into(),
                provider: GitProvider::Bitbucket,
            });
            s.scope = Some(Scope::Project("proj_b".into()));
        })
        .await;
    let plain = fx
        .enqueue(&["names"], |s| {
            s.env.insert("PLAIN_SETTING".into(), "visible".into());
        })
        .await;

    let view = fx.wait_final(&github_a).await;
    assert_eq!(view.status, JobStatus::Succeeded, "{view:?}");
    assert_eq!(
        secret_names_in(&view.log),
        BTreeSet::from([
            "ANTHROPIC_API_KEY",
            "GITHUB_TOKEN",
            "FEATURE_FLAG_X",
            "ORG_MCP_TOKEN"
        ]),
        "a GitHub job of proj_a gets GITHUB_TOKEN, its project's variable and the org entries; log:\n{}",
        view.log
    );

    let view = fx.wait_final(&bitbucket_b).await;
    assert_eq!(view.status, JobStatus::Succeeded, "{view:?}");
    assert_eq!(
        secret_names_in(&view.log),
        BTreeSet::from(["ANTHROPIC_API_KEY", "BITBUCKET_TOKEN", "ORG_MCP_TOKEN"]),
        "a Bitbucket job of proj_b gets no GitHub token and not proj_a's variable; log:\n{}",
        view.log
    );

    let view = fx.wait_final(&plain).await;
    assert_eq!(view.status, JobStatus::Succeeded, "{view:?}");
    assert_eq!(
        secret_names_in(&view.log),
        BTreeSet::from(["ANTHROPIC_API_KEY", "ORG_MCP_TOKEN"]),
        "a job without repo or project gets the org entries only; log:\n{}",
        view.log
    );
    assert!(
        view.log.lines().any(|l| l.trim() == "PLAIN_SETTING"),
        "{}",
        view.log
    );

    runner.stop().await;
    fx.assert_no_containers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_echoes_every_secret_it_holds_leaves_none_in_the_stored_log() {
    let fx = Fixture::new(2).await;
    for injection in [Injection::Stdin, Injection::Env] {
        let runner = fx.start_runner(&fx.url(), fast_jobs(injection), None).await;
        let steps = [
            "env",
            "echo-split",
            "ANTHROPIC_API_KEY",
            "eprint",
            "on stderr too:",
            "echo",
            "GITHUB_TOKEN",
            "exit",
            "4",
        ];
        let id = fx.enqueue(&steps, github_in_project_a).await;
        let view = fx.wait_final(&id).await;
        assert_eq!(view.status, JobStatus::Failed, "{injection}: {view:?}");
        assert_eq!(view.exit_code, Some(4));
        for name in [
            "ANTHROPIC_API_KEY",
            "GITHUB_TOKEN",
            "FEATURE_FLAG_X",
            "ORG_MCP_TOKEN",
        ] {
            assert!(
                view.log.contains(&format!("{name}=[REDACTED:{name}]")),
                "{injection}: {name} was echoed and must show redacted; log:\n{}",
                view.log
            );
        }
        let stored = format!("{}{:?}", view.log, view.error);
        assert_absent(
            "the job log stored by the platform",
            stored.as_bytes(),
            &fx.planted.values(),
        );
        runner.stop().await;
    }
    fx.assert_no_containers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_give_succeeded_and_failed() {
    let fx = Fixture::new(2).await;
    let runner = fx
        .start_runner(&fx.url(), fast_jobs(Injection::Env), None)
        .await;
    let ok = fx.enqueue(&["print", "fine", "exit", "0"], |_| {}).await;
    let bad = fx.enqueue(&["eprint", "broken", "exit", "3"], |_| {}).await;
    let view = fx.wait_final(&ok).await;
    assert_eq!(
        (view.status, view.exit_code),
        (JobStatus::Succeeded, Some(0)),
        "{view:?}"
    );
    assert_eq!(view.log, "fine\n");
    let view = fx.wait_final(&bad).await;
    assert_eq!(
        (view.status, view.exit_code),
        (JobStatus::Failed, Some(3)),
        "{view:?}"
    );
    assert_eq!(view.log, "broken\n");
    runner.stop().await;
    fx.assert_no_containers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_by_the_admin_is_stopped_and_reported_cancelled() {
    let fx = Fixture::new(1).await;
    let runner = fx
        .start_runner(&fx.url(), fast_jobs(Injection::Stdin), None)
        .await;
    let id = fx
        .enqueue(&["print", "started", "sleep", "60000"], |_| {})
        .await;
    fx.wait_running(&id).await;
    fx.wait_containers(1).await;
    let asked = std::time::Instant::now();
    fx.platform.cancel_job(&id).await;
    let view = fx.wait_final(&id).await;
    assert_eq!(view.status, JobStatus::Cancelled, "{view:?}");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(15),
        "a cancel takes a heartbeat and the stop grace, not the job's minute: {:?}",
        asked.elapsed()
    );
    fx.assert_no_containers().await;
    // The slot is free again: the next job runs.
    let next = fx.enqueue(&["exit", "0"], |_| {}).await;
    assert_eq!(fx.wait_final(&next).await.status, JobStatus::Succeeded);
    runner.stop().await;
    fx.assert_no_containers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_timeout_is_reported_timed_out() {
    let fx = Fixture::new(1).await;
    let runner = fx
        .start_runner(&fx.url(), fast_jobs(Injection::Stdin), None)
        .await;
    let id = fx
        .enqueue(&["print", "working", "sleep", "60000"], |s| s.timeout_s = 1)
        .await;
    let view = fx.wait_final(&id).await;
    assert_eq!(view.status, JobStatus::TimedOut, "{view:?}");
    assert_eq!(
        view.log, "working\n",
        "the output before the timeout is kept"
    );
    runner.stop().await;
    fx.assert_no_containers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_pulled_errors_the_job_and_the_runner_goes_on() {
    let fx = Fixture::new(1).await;
    let runner = fx
        .start_runner(&fx.url(), fast_jobs(Injection::Stdin), None)
        .await;
    let missing = "registry.invalid/spedy/no-such-image:1";
    let bad = fx
        .enqueue(&["exit", "0"], |s| s.image = missing.to_owned())
        .await;
    let good = fx.enqueue(&["print", "after", "exit", "0"], |_| {}).await;
    let view = fx.wait_final(&bad).await;
    assert_eq!(view.status, JobStatus::Error, "{view:?}");
    let error = view.error.unwrap_or_default();
    assert!(
        error.contains(missing),
        "the error names the image: {error}"
    );
    let view = fx.wait_final(&good).await;
    assert_eq!(view.status, JobStatus::Succeeded, "{view:?}");
    assert_eq!(view.log, "after\n");
    runner.stop().await;
    fx.assert_no_containers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_hiccup_during_log_shipping_loses_and_duplicates_nothing() {
    let fx = Fixture::new(1).await;
    let proxy = FlakyProxy::start(&fx.url()).await;
    let runner = fx
        .start_runner(&proxy.url, fast_jobs(Injection::Stdin), None)
        .await;
    let mut steps: Vec<String> = Vec::new();
    let mut expected = String::new();
    for i in 0..30 {
        let line = format!("line-{i:02}");
        expected.push_str(&line);
        expected.push('\n');
        steps.extend(["print".into(), line, "sleep".into(), "30".into()]);
    }
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    let id = fx.enqueue(&steps, |_| {}).await;
    let view = fx.wait_final(&id).await;
    assert_eq!(view.status, JobStatus::Succeeded, "{view:?}");
    assert_eq!(view.log, expected, "every line once, in order");
    let h = &proxy.hiccups;
    assert!(
        h.lost_requests.load(Ordering::SeqCst) > 0 && h.lost_answers.load(Ordering::SeqCst) > 0,
        "the proxy must have lost both requests and answers: {h:?}"
    );
    runner.stop().await;
    fx.assert_no_containers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_vanishing_mid_job_errors_the_job_and_the_runner_recovers_when_it_is_back() {
    let fx = Fixture::new(1).await;
    let proxy = EngineProxy::start();
    let engine = Engine::connect_to(&proxy.host)
        .await
        .expect("connect through the engine proxy");
    let runner = fx
        .start_runner_on(engine, &fx.url(), fast_jobs(Injection::Stdin), None)
        .await;
    let doomed = fx.enqueue(&["print", "up", "sleep", "60000"], |_| {}).await;
    fx.wait_running(&doomed).await;
    fx.wait_containers(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    proxy.cut();
    let view = fx.wait_final(&doomed).await;
    assert_eq!(view.status, JobStatus::Error, "{view:?}");
    assert!(
        view.error.is_some_and(|e| !e.is_empty()),
        "the error says what failed"
    );

    // While the engine is gone, nothing is claimed.
    let next = fx.enqueue(&["print", "back", "exit", "0"], |_| {}).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        fx.job(&next).await.status,
        JobStatus::Queued,
        "no claim without an engine"
    );

    proxy.restore();
    let view = fx.wait_final(&next).await;
    assert_eq!(view.status, JobStatus::Succeeded, "{view:?}");
    assert_eq!(view.log, "back\n");
    runner.stop().await;
    fx.assert_no_containers().await;
}
