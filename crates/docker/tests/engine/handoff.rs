//! The stdin hand-off on the real engine (issue 5): the job sees its secret
//! while `docker inspect` and the engine's files never hold it; the image's
//! own ENTRYPOINT and CMD still work; the env path, for contrast, shows the
//! value in `docker inspect`.

use spedy_api::FinalStatus;
use spedy_docker::{Engine, Injection, RunSpec};
use spedy_testkit::canary::{assert_absent, canary};
use spedy_testkit::docker::{
    assert_no_containers, containers_with_label, engine_files_containing, image_with_entrypoint,
    inspect_raw, probe_image, unique_runner_id,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::{engine, run, secrets, spec, stdout, wait_for};

/// Runs `job` (which must print `ready` and then sleep), and while it sleeps
/// returns its output so far, the raw `docker inspect` and the file scan.
async fn look_while_running(
    engine: &Engine,
    runner: &str,
    job: RunSpec,
    needle: &str,
) -> (
    String,
    Vec<u8>,
    Result<spedy_testkit::docker::FileScan, String>,
) {
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let running = tokio::spawn({
        let (engine, cancel) = (engine.clone(), cancel.clone());
        async move { engine.run(job, tx, cancel).await }
    });
    let mut seen = Vec::new();
    wait_for(&mut rx, &mut seen, "ready").await;
    let ids = containers_with_label(runner).await;
    assert_eq!(ids.len(), 1, "one running container");
    let inspect = inspect_raw(&ids[0]).await;
    let files = engine_files_containing(&ids[0], needle.as_bytes()).await;
    cancel.cancel();
    while let Some(c) = rx.recv().await {
        seen.push(c);
    }
    let outcome = running
        .await
        .expect("no panic")
        .expect("the engine answers");
    assert_eq!(outcome.status, FinalStatus::Cancelled);
    (stdout(&seen), inspect, files)
}

#[tokio::test]
async fn the_job_sees_its_secret_while_docker_inspect_and_the_engines_files_never_hold_it() {
    let (engine, image, runner) = (engine().await, probe_image().await, unique_runner_id());
    let value = canary("handoff");
    let mut job = spec(
        &runner,
        &image,
        &[
            "probe",
            "echo",
            "ANTHROPIC_API_KEY",
            "names",
            "print",
            "ready",
            "sleep",
            "30000",
        ],
    );
    job.secrets = secrets(&[
        ("ANTHROPIC_API_KEY", &value),
        ("GITHUB_TOKEN", "ghp_second_value_1"),
    ]);
    job.env.insert("SPEDY_JOB_KIND".into(), "plain".into());
    let (out, inspect, files) = look_while_running(&engine, &runner, job, &value).await;

    assert!(
        out.contains(&format!("ANTHROPIC_API_KEY={value}\n")),
        "{out}"
    );
    for name in [
        "ANTHROPIC_API_KEY\n",
        "GITHUB_TOKEN\n",
        "SPEDY_JOB_KIND\n",
        "PATH\n",
    ] {
        assert!(out.contains(name), "{name} missing from {out}");
    }
    assert_absent(
        "docker inspect of the running container",
        &inspect,
        &[&value, "ghp_second_value_1"],
    );
    let inspect_text = String::from_utf8_lossy(&inspect);
    assert!(
        inspect_text.contains("SPEDY_JOB_KIND=plain"),
        "the non-secret env is in the config"
    );
    match files {
        Ok(scan) => {
            println!(
                "engine files checked: {} files in {:?}",
                scan.files, scan.dirs
            );
            assert!(scan.files > 0, "config.v2.json at least");
            assert!(scan.leaks.is_empty(), "canary found in {:?}", scan.leaks);
        }
        Err(why) => println!("engine files NOT checked: {why}"),
    }
    assert_no_containers(&runner).await;
}

#[tokio::test]
async fn on_the_env_path_the_job_sees_its_secret_and_docker_inspect_shows_it_as_documented() {
    let (engine, image, runner) = (engine().await, probe_image().await, unique_runner_id());
    let value = canary("envpath");
    let mut job = spec(
        &runner,
        &image,
        &[
            "probe",
            "echo",
            "ANTHROPIC_API_KEY",
            "print",
            "ready",
            "sleep",
            "30000",
        ],
    );
    job.secrets = secrets(&[("ANTHROPIC_API_KEY", &value)]);
    job.injection = Injection::Env;
    let (out, inspect, files) = look_while_running(&engine, &runner, job, &value).await;
    assert!(
        out.contains(&format!("ANTHROPIC_API_KEY={value}\n")),
        "{out}"
    );
    let inspect = String::from_utf8_lossy(&inspect);
    assert!(
        inspect.contains(&format!("ANTHROPIC_API_KEY={value}")),
        "the env path is visible"
    );
    assert!(!inspect.contains("/.spedy/init"), "no init on the env path");
    if let Ok(scan) = files {
        println!("env path, files holding the value: {:?}", scan.leaks);
        assert!(
            !scan.leaks.is_empty(),
            "dockerd keeps Env in config.v2.json"
        );
    }
    assert_no_containers(&runner).await;
}

#[tokio::test]
async fn the_images_own_entrypoint_and_cmd_run_when_the_job_names_no_command() {
    let (engine, runner) = (engine().await, unique_runner_id());
    let image = image_with_entrypoint(
        &["/bin/probe", "print", "from-entrypoint"],
        &["echo", "ANTHROPIC_API_KEY"],
    )
    .await;
    let value = canary("entrypoint");
    for injection in [Injection::Stdin, Injection::Env] {
        let mut job = spec(&runner, &image, &[]);
        job.command = None;
        job.injection = injection;
        job.secrets = secrets(&[("ANTHROPIC_API_KEY", &value)]);
        let (outcome, chunks) = run(&engine, job).await;
        assert_eq!(
            outcome.expect("engine").status,
            FinalStatus::Succeeded,
            "{injection}"
        );
        assert_eq!(
            stdout(&chunks),
            format!("from-entrypoint\nANTHROPIC_API_KEY={value}\n"),
            "{injection}"
        );

        // A job command replaces CMD and keeps ENTRYPOINT, as `docker run` does.
        let mut job = spec(&runner, &image, &["print", "from-job"]);
        job.injection = injection;
        let (outcome, chunks) = run(&engine, job).await;
        assert_eq!(
            outcome.expect("engine").status,
            FinalStatus::Succeeded,
            "{injection}"
        );
        assert_eq!(
            stdout(&chunks),
            "from-entrypoint\nfrom-job\n",
            "{injection}"
        );
    }
    assert_no_containers(&runner).await;
}

#[tokio::test]
async fn an_image_with_only_cmd_runs_it_and_an_image_with_nothing_to_run_is_a_job_error() {
    let (engine, runner) = (engine().await, unique_runner_id());
    let only_cmd = image_with_entrypoint(&[], &["/bin/probe", "print", "from-cmd"]).await;
    let mut job = spec(&runner, &only_cmd, &[]);
    job.command = None;
    let (outcome, chunks) = run(&engine, job).await;
    assert_eq!(outcome.expect("engine").status, FinalStatus::Succeeded);
    assert_eq!(stdout(&chunks), "from-cmd\n");

    let mut job = spec(&runner, &probe_image().await, &[]);
    job.command = None;
    let (outcome, _) = run(&engine, job).await;
    let outcome = outcome.expect("engine");
    assert_eq!(outcome.status, FinalStatus::Error);
    let message = outcome.error.expect("a message");
    assert!(message.contains("no ENTRYPOINT or CMD"), "{message}");
    assert_no_containers(&runner).await;
}

#[tokio::test]
async fn values_with_newlines_quotes_equals_signs_and_unicode_arrive_byte_for_byte() {
    let (engine, image, runner) = (engine().await, probe_image().await, unique_runner_id());
    let tricky = "line1\nline2 \"quoted\" a=b 'single' é ✓ \\back";
    let mut job = spec(
        &runner,
        &image,
        &["probe", "echo", "TRICKY", "echo", "EMPTY"],
    );
    job.secrets = secrets(&[("TRICKY", tricky), ("EMPTY", "")]);
    let (outcome, chunks) = run(&engine, job).await;
    assert_eq!(outcome.expect("engine").status, FinalStatus::Succeeded);
    assert_eq!(stdout(&chunks), format!("TRICKY={tricky}\nEMPTY=\n"));
    assert_no_containers(&runner).await;
}

#[tokio::test]
async fn without_the_init_volume_the_init_is_uploaded_per_job_and_the_hand_off_still_works() {
    let engine = engine().await.with_init_volume(false);
    let (image, runner) = (probe_image().await, unique_runner_id());
    let value = canary("upload");
    let mut job = spec(
        &runner,
        &image,
        &[
            "probe",
            "echo",
            "ANTHROPIC_API_KEY",
            "print",
            "ready",
            "sleep",
            "30000",
        ],
    );
    job.secrets = secrets(&[("ANTHROPIC_API_KEY", &value)]);
    let (out, inspect, _) = look_while_running(&engine, &runner, job, &value).await;
    assert!(
        out.contains(&format!("ANTHROPIC_API_KEY={value}\n")),
        "{out}"
    );
    assert_absent("docker inspect", &inspect, &[&value]);
    let inspect: serde_json::Value = serde_json::from_slice(&inspect).unwrap();
    assert_eq!(
        inspect["Mounts"],
        serde_json::json!([]),
        "no volume: the init was uploaded"
    );
    assert_eq!(inspect["Path"], "/.spedy/init");
    assert_no_containers(&runner).await;
}
