//! `spedy-runner demo`: the whole path on one machine, with no account.
//!
//! Owns the demo's story and its clean-up; every part it shows is the real
//! one: the local platform (`spedy_platform::spawn`, in-process on a free
//! loopback port, with a temporary data folder), its encrypted vault, the
//! runner token, the supervisor (`spedy_supervisor::Supervisor`) with the real
//! Docker executor, and the job log as the platform stored it.
//!
//! # Theory of operation
//! 1. Connect to the Docker engine; without one, say so and how to fix it
//!    (exit 2) before anything else starts.
//! 2. Start the platform; put a random demo Anthropic key and another
//!    project's secret in its vault; create a runner token.
//! 3. Build the job image `spedy-demo/job:<hash>` if it is missing: `FROM
//!    scratch` plus the static job program that `build.rs` compiles from
//!    `crates/probe` and this file embeds. The image stays cached.
//! 4. Enqueue a job that prints the names of its environment and echoes the
//!    key, then run the supervisor until the job ends, with a spinner.
//! 5. Stop the supervisor (it removes the job's container), remove any
//!    container still labelled with the demo runner's id, stop the platform,
//!    delete the temporary folder, and print the redacted log.
//!
//! The host's own `.env`, config file and legacy variables are not read: the
//! demo's runner has no local overrides, so what the job receives comes from
//! the vault alone.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::SecretString;
use spedy_api::{
    Backend, CreateRunnerRequest, JobSpec, JobStatus, JobView, PutSecretRequest, Scope, SecretKind,
};
use spedy_client::{AdminApi, Client};
use spedy_docker::{Engine, Injection};
use spedy_platform::{PlatformConfig, RunningPlatform};
use spedy_supervisor::{Config, JobSettings, LocalSources, RunnerState, Supervisor, Timers};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::exit;
use crate::logging::LogHandle;
use crate::settings::SettingsArgs;

/// The demo's job program: `crates/probe`, static, built by `build.rs`.
const JOB_PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/spedy-demo-job"));
/// The repository of the demo's job image; the tag is a hash of its content.
const IMAGE_REPO: &str = "spedy-demo/job";
/// The label containers carry with their runner's id (spedy-docker sets it).
const RUNNER_LABEL: &str = "io.spedy.runner";
/// Every demo key starts with this, so a leak is easy to look for.
pub const DEMO_KEY_PREFIX: &str = "sk-ant-demo-";
/// The demo job's project, and another project whose secret it must not get.
const DEMO_PROJECT: &str = "proj_demo";
const OTHER_PROJECT: &str = "proj_other";
const OTHER_SECRET: &str = "OTHER_PROJECT_TOKEN";
/// How long the supervisor may take to drain once the job has ended.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

/// Arguments of `spedy-runner demo`.
///
/// Runs the whole path on this machine, with no account: a local platform
/// in-process (with its encrypted vault), a runner token, the supervisor,
/// and a sample job in a locally built `FROM scratch` image. The job prints
/// the names of the variables it received and echoes the Anthropic key; the
/// log shows `[REDACTED:ANTHROPIC_API_KEY]` instead of the value.
///
/// Needs a running Docker engine (`DOCKER_HOST` or the local socket). The
/// job image `spedy-demo/job` stays cached; everything else is removed.
///
/// Examples:
///   spedy-runner demo
///   cargo run --release -- demo
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long to wait for the sample job to finish.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Runs `spedy-runner demo`.
pub async fn run(args: Args, global: SettingsArgs, log: LogHandle) -> anyhow::Result<ExitCode> {
    // The demo runs against its own platform; of the host's settings only
    // `--injection` (SPEDY_INJECTION) applies, to try either hand-off.
    let injection = match global.injection.as_deref() {
        None => Injection::default(),
        Some(raw) => match raw.trim().parse::<Injection>() {
            Ok(mode) => mode,
            Err(err) => anyhow::bail!("SPEDY_INJECTION (--injection): {err}"),
        },
    };
    println!("spedy-runner demo: the whole path on this machine, with no account.\n");
    let Some(engine) = connect_engine().await else {
        return Ok(exit::failure());
    };
    let data = tempfile::Builder::new()
        .prefix("spedy-demo-")
        .tempdir()
        .context("creating the demo's temporary data folder")?;
    let platform = start_platform(data.path()).await?;
    let outcome = drive(&args, injection, &engine, &platform, log).await;
    let stopped = match tokio::time::timeout(DRAIN_WAIT, platform.shutdown()).await {
        Ok(stopped) => stopped.context("stopping the local platform"),
        Err(_) => Err(anyhow::anyhow!(
            "the local platform did not stop within {DRAIN_WAIT:?}"
        )),
    };
    let folder = data.path().display().to_string();
    data.close()
        .with_context(|| format!("removing the temporary folder {folder}"))?;
    stopped?;
    println!("  ✓ cleaned up: the platform is stopped and {folder} is removed");
    outcome
}

/// Connects to the engine, or explains how to get one (and returns `None`).
async fn connect_engine() -> Option<Engine> {
    let checked = async {
        let engine = Engine::connect().await?;
        let info = engine.info().await?;
        Ok::<_, spedy_docker::Error>((engine, info))
    };
    match checked.await {
        Ok((engine, info)) => {
            println!(
                "  ✓ Docker engine {} (API {}) at {}",
                info.version, info.negotiated_api_version, info.host
            );
            Some(engine)
        }
        Err(err) => {
            eprintln!("error: no Docker engine answers: {err}");
            eprintln!(
                "\nThe demo runs its job in a container, so it needs a running Docker engine.\n\
                 Start it (for example `sudo systemctl start docker`, or open Docker Desktop),\n\
                 check with `docker info`, or point DOCKER_HOST at a running engine; then run\n\
                 `spedy-runner demo` again."
            );
            None
        }
    }
}

/// Starts the local platform on a free loopback port.
async fn start_platform(data_dir: &Path) -> anyhow::Result<RunningPlatform> {
    let mut config = PlatformConfig::new(data_dir);
    // Short claims, so the supervisor stops promptly once the job is done.
    config.max_claim_wait_s = 1;
    let platform = spedy_platform::spawn(config)
        .await
        .context("starting the local platform")?;
    println!(
        "  ✓ local platform at {} (temporary data in {})",
        platform.url(),
        data_dir.display()
    );
    Ok(platform)
}

/// Everything between the platform's start and its stop.
async fn drive(
    args: &Args,
    injection: Injection,
    engine: &Engine,
    platform: &RunningPlatform,
    log: LogHandle,
) -> anyhow::Result<ExitCode> {
    let client = Client::builder(&platform.url())
        .build()
        .context("building the platform client")?;
    let admin = client.admin(platform.admin_token.clone());
    seed_vault(&admin).await?;
    let created = admin
        .create_runner(&CreateRunnerRequest {
            name: "demo".into(),
            pool_size: 1,
            backend: Backend::AnthropicApi,
        })
        .await
        .context("creating the runner token")?;
    println!(
        "  ✓ runner token created for runner {} (shown once, kept in memory)",
        created.runner_id
    );
    let image = ensure_image(engine).await?;
    let spec = demo_job(&image);
    let job = admin.enqueue(&spec).await.context("enqueueing the job")?;
    println!(
        "  ✓ job {} queued: {}",
        job.id,
        spec.command.as_deref().unwrap_or_default().join(" ")
    );

    let config = supervisor_config(client, created.token, injection, log);
    let view = supervise(args, config, engine, &admin, &job.id).await;
    let swept = sweep(engine, &created.runner_id).await;
    let view = view?;
    println!(
        "  ✓ no container left for runner {} {swept}",
        created.runner_id
    );
    report(&view)
}

/// Puts the demo key and another project's secret into the vault.
async fn seed_vault(admin: &AdminApi) -> anyhow::Result<()> {
    let key = SecretString::from(format!("{DEMO_KEY_PREFIX}{}", random_hex()));
    let entry = admin
        .put_secret(
            spedy_api::ANTHROPIC_API_KEY,
            &PutSecretRequest {
                value: key,
                kind: None,
                scope: None,
            },
        )
        .await
        .context("putting the demo key in the vault")?;
    let other = SecretString::from(format!("other-project-{}", random_hex()));
    admin
        .put_secret(
            OTHER_SECRET,
            &PutSecretRequest {
                value: other,
                kind: Some(SecretKind::Custom),
                scope: Some(Scope::Project(OTHER_PROJECT.into())),
            },
        )
        .await
        .context("putting the other project's secret in the vault")?;
    println!(
        "  ✓ vault: a demo ANTHROPIC_API_KEY ({}), and {OTHER_SECRET} for project {OTHER_PROJECT} only",
        entry.masked
    );
    Ok(())
}

/// 128 bits from std's randomly keyed hasher: enough for a demo value.
fn random_hex() -> String {
    use std::hash::{BuildHasher, RandomState};
    let a = RandomState::new().hash_one(std::process::id());
    let b = RandomState::new().hash_one(std::time::SystemTime::now());
    format!("{a:016x}{b:016x}")
}

/// The sample job: its env names, the key echoed, the other project's
/// secret asked for (it is not there).
fn demo_job(image: &str) -> JobSpec {
    let steps = [
        "print",
        "Hello from the demo job. The names in my environment:",
        "names",
        "print",
        "Echoing the Anthropic key, to show redaction:",
        "echo",
        spedy_api::ANTHROPIC_API_KEY,
        "print",
        "Asking for another project's secret (entitlement keeps it out):",
        "echo",
        OTHER_SECRET,
    ];
    let mut command = vec!["/bin/job".to_owned()];
    command.extend(steps.iter().map(|s| (*s).to_owned()));
    JobSpec {
        image: image.to_owned(),
        command: Some(command),
        env: BTreeMap::from([("DEMO_GREETING".to_owned(), "not a secret".to_owned())]),
        repo: None,
        scope: Some(Scope::Project(DEMO_PROJECT.into())),
        timeout_s: 60,
    }
}

/// The supervisor's configuration for the demo: pool 1, no local
/// overrides, no health server, short claims and flushes.
fn supervisor_config(
    client: Client,
    token: spedy_api::RunnerToken,
    injection: Injection,
    log: LogHandle,
) -> Config {
    Config {
        client,
        token,
        local: LocalSources::default(),
        pool_size: Some(1),
        refresh_interval: None,
        health_addr: None,
        shutdown_grace: Duration::from_secs(10),
        jobs: JobSettings {
            injection,
            claim_wait_s: 1,
            heartbeat_interval: Duration::from_secs(1),
            log_flush_interval: Duration::from_millis(200),
            ..JobSettings::default()
        },
        timers: Timers::default(),
        log_redactor: Some(log.redactor()),
    }
}

/// Builds the job image unless it is cached; returns its tag.
async fn ensure_image(engine: &Engine) -> anyhow::Result<String> {
    let docker = engine.docker();
    let tag = format!("{IMAGE_REPO}:{:016x}", fnv64(JOB_PROGRAM));
    if docker.inspect_image(&tag).await.is_ok() {
        println!("  ✓ job image {tag} (cached)");
        return Ok(tag);
    }
    let dockerfile = "FROM scratch\nCOPY job /bin/job\nLABEL io.spedy.demo=\"true\"\n";
    let context = tar_context(&[
        ("Dockerfile", dockerfile.as_bytes(), 0o644),
        ("job", JOB_PROGRAM, 0o755),
    ])?;
    let options = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(&tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut build = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(step) = build.next().await {
        step.with_context(|| format!("building the job image {tag}"))?;
    }
    println!("  ✓ job image {tag} (built: FROM scratch + a static job program)");
    Ok(tag)
}

/// An in-memory tar of `(name, content, mode)` files.
fn tar_context(files: &[(&str, &[u8], u32)]) -> anyhow::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, *data)
            .context("packing the image context")?;
    }
    tar.into_inner().context("packing the image context")
}

/// FNV-1a, to name the image after its content.
fn fnv64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Runs the supervisor until the job is final (or the wait ends, or Ctrl-C),
/// then drains it. Returns the job as the platform last saw it.
async fn supervise(
    args: &Args,
    config: Config,
    engine: &Engine,
    admin: &AdminApi,
    job_id: &str,
) -> anyhow::Result<JobView> {
    let supervisor = Supervisor::new(config, engine.clone());
    let state = supervisor.state();
    let (shutdown, force) = (CancellationToken::new(), CancellationToken::new());
    let mut task = tokio::spawn(supervisor.run(shutdown.clone(), force.clone()));
    let spinner = spinner("starting the runner");
    let waited = tokio::select! {
        view = wait_for_job(args.timeout, admin, job_id, state, &spinner) => view,
        joined = &mut task => Err(match joined {
            Ok(Ok(())) => anyhow::anyhow!("the supervisor stopped before the job ended"),
            Ok(Err(e)) => anyhow::Error::new(e).context("the supervisor failed"),
            Err(_) => anyhow::anyhow!("the supervisor panicked"),
        }),
        () = interrupted() => Err(anyhow::anyhow!("interrupted; the job was stopped")),
    };
    spinner.finish_and_clear();
    if !task.is_finished() {
        shutdown.cancel();
        if waited.is_err() {
            force.cancel();
        }
        if tokio::time::timeout(DRAIN_WAIT, &mut task).await.is_err() {
            // Stop the running job at once; if even that hangs, give up on
            // the supervisor: the final sweep removes its container.
            force.cancel();
            if tokio::time::timeout(DRAIN_WAIT, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
    waited
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM, so the demo still
/// cleans up (the container, the platform, the temporary folder).
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Polls the job until it is final, showing where it stands.
async fn wait_for_job(
    limit: Duration,
    admin: &AdminApi,
    job_id: &str,
    mut state: watch::Receiver<RunnerState>,
    spinner: &ProgressBar,
) -> anyhow::Result<JobView> {
    let started = Instant::now();
    let mut announced = false;
    loop {
        if !announced && let Some(online) = state.borrow_and_update().online() {
            announced = true;
            spinner.suspend(|| {
                println!(
                    "  ✓ runner {} online: its bundle came from the vault, into memory only",
                    online.runner.id
                );
            });
        }
        let view = admin
            .job(job_id)
            .await
            .context("asking the platform about the job")?;
        if view.status.is_final() {
            println!(
                "  ✓ job {job_id} ended: {} after {:.1}s",
                status_name(view.status),
                started.elapsed().as_secs_f64()
            );
            return Ok(view);
        }
        spinner.set_message(match view.status {
            JobStatus::Queued => "waiting for the runner to claim the job".to_owned(),
            _ => format!(
                "job running in its own container ({})",
                state.borrow().as_str()
            ),
        });
        if started.elapsed() > limit {
            anyhow::bail!(
                "the job did not end within {} (it is {})\n\nRun with SPEDY_LOG=debug to see what the runner does.",
                humantime::format_duration(limit),
                status_name(view.status)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn status_name(status: JobStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{status:?}"))
}

/// A spinner on stderr; hidden (and silent) when stderr is not a terminal.
fn spinner(message: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("  {spinner} {msg} ({elapsed})") {
        pb.set_style(style);
    }
    pb.set_message(message.to_owned());
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

/// Removes any container still labelled with the demo runner's id (the
/// executor removes its own; this is the demo's promise to leave none).
/// Returns a note for the summary line.
async fn sweep(engine: &Engine, runner_id: &str) -> String {
    let docker = engine.docker();
    let label = format!("{RUNNER_LABEL}={runner_id}");
    let filters = HashMap::from([("label", vec![label.as_str()])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let Ok(left) = docker.list_containers(Some(options)).await else {
        return "(could not list containers to check)".into();
    };
    let mut removed = 0;
    for id in left.into_iter().filter_map(|c| c.id) {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        if docker.remove_container(&id, Some(options)).await.is_ok() {
            removed += 1;
        }
    }
    match removed {
        0 => "(the executor removed its container)".into(),
        n => format!("({n} removed by the demo's final sweep)"),
    }
}

/// Prints the job's log and what to look at in it; exit 0 on success.
fn report(view: &JobView) -> anyhow::Result<ExitCode> {
    println!(
        "\nThe job's log, as the platform stored it (redacted on this host before it was sent):\n"
    );
    for line in view.log.lines() {
        println!("  │ {line}");
    }
    println!();
    if view.status != JobStatus::Succeeded {
        anyhow::bail!(
            "the demo job ended {} (exit code {:?}){}",
            status_name(view.status),
            view.exit_code,
            view.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    println!(
        "What happened:\n\
         - The key went from the platform's encrypted vault to the runner's memory, and from\n\
           there only into the job's container; the job printed it, and the runner replaced it\n\
           with [REDACTED:ANTHROPIC_API_KEY] before the log left this host.\n\
         - {OTHER_SECRET} belongs to another project, so the job never received it.\n\
         - DEMO_GREETING is plain job env, not a secret, so it is not redacted.\n\n\
         Next: `spedy-runner setup` connects this host to your Spedy account.\n"
    );
    Ok(exit::OK)
}
