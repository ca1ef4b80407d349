//! The pool, the drain on shutdown and the orphan sweep, on the real engine
//! and the real local platform (issue 4, items 6 to 8).

mod jobs_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, StartContainerOptions};
use spedy_api::JobStatus;
use spedy_docker::Injection;
use spedy_testkit::docker::{RUNNER_LABEL, require_engine};

use jobs_support::{Fixture, fast_jobs, job_containers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_size_3_with_10_queued_jobs_never_runs_more_than_3_containers_and_completes_all() {
    let fx = Fixture::new(3).await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(fx.enqueue(&["sleep", "300", "exit", "0"], |_| {}).await);
    }
    // Sample the label-filtered container list while the jobs run.
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (most, done, runner_id) = (Arc::clone(&most), Arc::clone(&done), fx.runner_id.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let n = job_containers(&runner_id).await.len();
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let runner = fx
        .start_runner(&fx.url(), fast_jobs(Injection::Stdin), None)
        .await;
    for id in &ids {
        let view = fx.wait_final(id).await;
        assert_eq!(view.status, JobStatus::Succeeded, "{view:?}");
    }
    done.store(true, Ordering::SeqCst);
    sampler.await.expect("the sampler ends");
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 3, "{most} containers ran at once with a pool of 3");
    assert!(
        most >= 2,
        "the pool runs jobs side by side (saw at most {most})"
    );
    runner.stop().await;
    fx.assert_no_containers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_running_jobs_finish_and_are_reported_and_no_new_job_is_claimed() {
    let fx = Fixture::new(3).await;
    let runner = fx
        .start_runner(&fx.url(), fast_jobs(Injection::Stdin), None)
        .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let text = format!("job {i} done");
        ids.push(
            fx.enqueue(&["sleep", "1200", "print", &text, "exit", "0"], |_| {})
                .await,
        );
    }
    fx.wait_containers(3).await;
    runner.shutdown.cancel();
    let late = fx.enqueue(&["exit", "0"], |_| {}).await;
    tokio::time::timeout(Duration::from_secs(30), runner.task)
        .await
        .expect("the drain ends when the jobs end")
        .expect("no panic")
        .expect("a clean drain");
    for (i, id) in ids.iter().enumerate() {
        let view = fx.job(id).await;
        assert_eq!(view.status, JobStatus::Succeeded, "{view:?}");
        assert_eq!(
            view.log,
            format!("job {i} done\n"),
            "the log is shipped before the end"
        );
    }
    assert_eq!(
        fx.job(&late).await.status,
        JobStatus::Queued,
        "a job queued after shutdown stays queued"
    );
    fx.assert_no_containers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_force_running_jobs_are_stopped_reported_cancelled_and_removed() {
    let fx = Fixture::new(3).await;
    let runner = fx
        .start_runner(&fx.url(), fast_jobs(Injection::Stdin), None)
        .await;
    // The redactor holds back a short tail that may start a secret until
    // more output comes, so "up" is followed by a line longer than any secret.
    let filler = "-".repeat(512);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let steps = ["print", "up", "print", &filler, "sleep", "60000"];
        ids.push(fx.enqueue(&steps, |_| {}).await);
    }
    for id in &ids {
        fx.wait_log(id, "up").await;
    }
    runner.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let forced = Instant::now();
    runner.force.cancel();
    tokio::time::timeout(Duration::from_secs(30), runner.task)
        .await
        .expect("force ends the drain")
        .expect("no panic")
        .expect("a clean drain");
    assert!(
        forced.elapsed() < Duration::from_secs(10),
        "forced jobs are stopped with the grace period, not awaited: {:?}",
        forced.elapsed()
    );
    for id in &ids {
        let view = fx.job(id).await;
        assert_eq!(view.status, JobStatus::Cancelled, "{view:?}");
        assert_eq!(view.log, format!("up\n{filler}\n"));
    }
    fx.assert_no_containers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_of_an_earlier_run_are_removed_and_their_jobs_reported_runner_restarted() {
    let fx = Fixture::new(1).await;
    // An earlier run claimed this job and died with its container running.
    let id = fx.enqueue(&["sleep", "60000"], |_| {}).await;
    let client = spedy_client::Client::builder(&fx.url())
        .build()
        .expect("client");
    let claimed = client
        .runner(fx.token.clone())
        .claim(1)
        .await
        .expect("claim")
        .expect("the queued job");
    assert_eq!(claimed.id, id);
    let docker = require_engine().await;
    let body = ContainerCreateBody {
        image: Some(fx.image.clone()),
        cmd: Some(vec!["/bin/probe".into(), "sleep".into(), "60000".into()]),
        labels: Some(HashMap::from([
            (RUNNER_LABEL.to_owned(), fx.runner_id.clone()),
            ("io.spedy.job".to_owned(), id.clone()),
        ])),
        host_config: Some(HostConfig {
            auto_remove: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let name = format!("spedy-orphan-{}", fx.runner_id);
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            body,
        )
        .await
        .expect("create the orphan");
    docker
        .start_container(&created.id, None::<StartContainerOptions>)
        .await
        .expect("start the orphan");
    assert_eq!(job_containers(&fx.runner_id).await.len(), 1);

    let runner = fx
        .start_runner(&fx.url(), fast_jobs(Injection::Stdin), None)
        .await;
    let view = fx.wait_final(&id).await;
    assert_eq!(view.status, JobStatus::Error, "{view:?}");
    assert_eq!(view.error.as_deref(), Some("runner restarted"));
    fx.assert_no_containers().await;
    runner.stop().await;
}
