//! A job's life on the real engine: exit codes and streams, a missing image,
//! commands that cannot run, cancel and timeout. Every test ends with no
//! container left under its runner id.

use std::time::Duration;

use spedy_api::{FinalStatus, LogStream};
use spedy_docker::Injection;
use spedy_testkit::docker::{assert_no_containers, probe_image, unique_runner_id};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::{engine, run, run_with, spec, stdout, text, wait_for};

#[tokio::test]
async fn a_job_that_exits_zero_succeeds_and_its_streams_arrive_separately() {
    let (engine, image, runner) = (engine().await, probe_image().await, unique_runner_id());
    let job = spec(
        &runner,
        &image,
        &["probe", "print", "to stdout", "eprint", "to stderr"],
    );
    let (outcome, chunks) = run(&engine, job).await;
    let outcome = outcome.expect("the engine answers");
    assert_eq!(outcome.status, FinalStatus::Succeeded, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(outcome.error, None);
    assert_eq!(stdout(&chunks), "to stdout\n");
    assert_eq!(text(&chunks, LogStream::Stderr), "to stderr\n");
    assert_no_containers(&runner).await;
}

#[tokio::test]
async fn a_non_zero_exit_code_is_a_failed_job_with_that_code_on_both_injection_paths() {
    let (engine, image, runner) = (engine().await, probe_image().await, unique_runner_id());
    for injection in [Injection::Stdin, Injection::Env] {
        let mut job = spec(&runner, &image, &["probe", "print", "bye", "exit", "3"]);
        job.injection = injection;
        let (outcome, chunks) = run(&engine, job).await;
        let outcome = outcome.expect("the engine answers");
        assert_eq!(
            outcome.status,
            FinalStatus::Failed,
            "{injection}: {outcome:?}"
        );
        assert_eq!(outcome.exit_code, Some(3), "{injection}");
        assert_eq!(stdout(&chunks), "bye\n", "{injection}");
    }
    assert_no_containers(&runner).await;
}

#[tokio::test]
async fn a_missing_image_that_cannot_be_pulled_is_a_job_error_and_the_next_job_runs() {
    let (engine, image, runner) = (engine().await, probe_image().await, unique_runner_id());
    let missing = "spedy-test/does-not-exist:never";
    let (outcome, chunks) = run(&engine, spec(&runner, missing, &["probe"])).await;
    let outcome = outcome.expect("a failed pull is the job's outcome, not an engine error");
    assert_eq!(outcome.status, FinalStatus::Error, "{outcome:?}");
    assert_eq!(outcome.exit_code, None);
    let message = outcome.error.expect("an error message");
    assert!(
        message.contains(missing) && message.contains("could not be pulled"),
        "{message}"
    );
    println!("missing image: {message}");
    assert!(chunks.is_empty());
    let (next, _) = run(&engine, spec(&runner, &image, &["probe", "exit", "0"])).await;
    assert_eq!(
        next.expect("the engine answers").status,
        FinalStatus::Succeeded
    );
    assert_no_containers(&runner).await;
}

#[tokio::test]
async fn a_command_that_is_not_executable_or_missing_fails_with_a_clear_message_on_the_stdin_path()
{
    let (engine, image, runner) = (engine().await, probe_image().await, unique_runner_id());
    // Docker bind-mounts /etc/hostname (mode 0644) even into scratch containers.
    for (command, code, says) in [
        (
            "/etc/hostname",
            126,
            "spedy-init: /etc/hostname: permission denied (not executable)",
        ),
        (
            "/no/such/program",
            127,
            "spedy-init: /no/such/program: command not found",
        ),
    ] {
        let (outcome, chunks) = run(&engine, spec(&runner, &image, &[command, "arg"])).await;
        let outcome = outcome.expect("the engine answers");
        assert_eq!(
            outcome.status,
            FinalStatus::Failed,
            "{command}: {outcome:?}"
        );
        assert_eq!(outcome.exit_code, Some(code), "{command}");
        assert_eq!(outcome.error.as_deref(), Some(says), "{command}");
        assert_eq!(text(&chunks, LogStream::Stderr), format!("{says}\n"));
    }
    assert_no_containers(&runner).await;
}

#[tokio::test]
async fn a_command_that_is_not_executable_or_missing_is_a_job_error_with_dockers_message_on_the_env_path()
 {
    let (engine, image, runner) = (engine().await, probe_image().await, unique_runner_id());
    for command in ["/etc/hostname", "/no/such/program"] {
        let mut job = spec(&runner, &image, &[command]);
        job.injection = Injection::Env;
        let (outcome, _) = run(&engine, job).await;
        let outcome = outcome.expect("the engine answers");
        assert_eq!(outcome.status, FinalStatus::Error, "{command}: {outcome:?}");
        let message = outcome.error.expect("Docker's message");
        println!("{command}: {message}");
        assert!(
            message.starts_with("could not start the job's container: "),
            "{message}"
        );
        assert!(message.contains(command), "{message}");
    }
    assert_no_containers(&runner).await;
}

#[tokio::test]
async fn cancelling_a_running_job_stops_its_container_and_reports_cancelled() {
    let (engine, image, runner) = (engine().await, probe_image().await, unique_runner_id());
    let job = spec(
        &runner,
        &image,
        &["probe", "print", "ready", "sleep", "30000"],
    );
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let running = tokio::spawn({
        let (engine, cancel) = (engine.clone(), cancel.clone());
        async move { engine.run(job, tx, cancel).await }
    });
    let mut seen = Vec::new();
    wait_for(&mut rx, &mut seen, "ready").await;
    cancel.cancel();
    while rx.recv().await.is_some() {}
    let outcome = running
        .await
        .expect("no panic")
        .expect("the engine answers");
    assert_eq!(outcome.status, FinalStatus::Cancelled, "{outcome:?}");
    // The probe is PID 1 and ignores SIGTERM, so the grace ends in SIGKILL.
    assert_eq!(outcome.exit_code, Some(137));
    assert!(
        outcome.duration < Duration::from_secs(20),
        "it did not sleep it out"
    );
    assert_no_containers(&runner).await;
}

#[tokio::test]
async fn a_job_cancelled_before_it_starts_never_runs_and_leaves_nothing() {
    let (engine, image, runner) = (engine().await, probe_image().await, unique_runner_id());
    let cancel = CancellationToken::new();
    cancel.cancel();
    let (outcome, chunks) = run_with(
        &engine,
        spec(&runner, &image, &["probe", "print", "x"]),
        cancel,
    )
    .await;
    let outcome = outcome.expect("the engine answers");
    assert_eq!(outcome.status, FinalStatus::Cancelled);
    assert_eq!(outcome.exit_code, None);
    assert!(chunks.is_empty());
    assert_no_containers(&runner).await;
}

#[tokio::test]
async fn a_job_past_its_timeout_is_stopped_and_reported_timed_out_with_its_output() {
    let (engine, image, runner) = (engine().await, probe_image().await, unique_runner_id());
    let mut job = spec(
        &runner,
        &image,
        &["probe", "print", "working", "sleep", "30000"],
    );
    job.timeout = Duration::from_millis(700);
    let (outcome, chunks) = run(&engine, job).await;
    let outcome = outcome.expect("the engine answers");
    assert_eq!(outcome.status, FinalStatus::TimedOut, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(137));
    let message = outcome.error.expect("a reason");
    assert!(message.contains("timeout"), "{message}");
    assert_eq!(stdout(&chunks), "working\n");
    assert_no_containers(&runner).await;
}

#[tokio::test]
async fn the_job_container_has_the_labels_limits_and_log_driver_none_while_it_runs() {
    let (engine, image, runner) = (engine().await, probe_image().await, unique_runner_id());
    let job = spec(
        &runner,
        &image,
        &["probe", "print", "ready", "sleep", "30000"],
    );
    let job_id = job.job_id.clone();
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let running = tokio::spawn({
        let (engine, cancel) = (engine.clone(), cancel.clone());
        async move { engine.run(job, tx, cancel).await }
    });
    wait_for(&mut rx, &mut Vec::new(), "ready").await;
    let ids = spedy_testkit::docker::containers_with_label(&runner).await;
    assert_eq!(ids.len(), 1);
    let raw = spedy_testkit::docker::inspect_raw(&ids[0]).await;
    let inspect: serde_json::Value = serde_json::from_slice(&raw).expect("inspect JSON");
    let labels = &inspect["Config"]["Labels"];
    assert_eq!(labels["io.spedy.runner"], runner.as_str());
    assert_eq!(labels["io.spedy.job"], job_id.as_str());
    let host = &inspect["HostConfig"];
    assert_eq!(host["LogConfig"]["Type"], "none");
    assert_eq!(host["AutoRemove"], false);
    assert_eq!(host["Privileged"], false);
    assert_ne!(host["NetworkMode"], "host");
    assert_eq!(host["Memory"], 256 << 20);
    assert_eq!(host["PidsLimit"], 64);
    assert_eq!(inspect["Path"], "/.spedy/init");
    let mount = &inspect["Mounts"][0];
    assert_eq!(mount["Destination"], "/.spedy", "{mount}");
    assert_eq!(mount["Type"], "volume");
    assert_eq!(mount["RW"], false, "the init volume is read-only");
    cancel.cancel();
    while rx.recv().await.is_some() {}
    running
        .await
        .expect("no panic")
        .expect("the engine answers");
    assert_no_containers(&runner).await;
}

#[tokio::test]
async fn a_timeout_too_large_for_the_clock_means_no_timeout() {
    let (engine, image, runner) = (engine().await, probe_image().await, unique_runner_id());
    let mut job = spec(&runner, &image, &["probe", "exit", "0"]);
    job.timeout = Duration::from_secs(u64::MAX);
    let (outcome, _) = run(&engine, job).await;
    assert_eq!(
        outcome.expect("the engine answers").status,
        FinalStatus::Succeeded
    );
    assert_no_containers(&runner).await;
}
