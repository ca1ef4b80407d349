//! `spedy-runner run`: the supervisor as a service. Resolves and checks the
//! settings (before any network call), connects the Docker engine, wires the
//! signals to the shutdown tokens, and runs `spedy_supervisor::Supervisor`.
//!
//! Signals: the first SIGTERM or SIGINT cancels `shutdown` (no new claims,
//! no more refreshes) and starts the `--shutdown-grace` timer, which then
//! cancels `force` (running jobs are stopped and reported `cancelled`); a
//! second signal cancels `force` at once. Exit code 0 after the drain.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;
use spedy_docker::{Engine, Injection, Limits};
use spedy_supervisor::{Config, JobSettings, LocalSources, Supervisor, Timers};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::exit;
use crate::logging::LogHandle;
use crate::settings::{InjectionMode, Settings, SettingsArgs};

/// What `run --help` says about shutdown, a revoked token and exit codes.
const RUN_HELP: &str = "\
Shutdown:
  The first SIGTERM or SIGINT stops claiming and lets running jobs finish
  within --shutdown-grace (SPEDY_SHUTDOWN_GRACE, default 10m); after that they
  are stopped and reported `cancelled`. A second signal stops them at once.
  Every job container is removed either way. Exit code 0 after the drain.

A revoked or unknown token (401 invalid_token):
  The runner does not exit. It stops claiming, drops the bundle from memory,
  lets running jobs finish, and logs once: create a new token with
  `spedy-runner setup`. It keeps checking every 5 minutes, so a token that
  turns valid again brings it back online without a restart. /readyz answers
  503 `invalid_token` meanwhile. Its exit code on SIGTERM is still 0.

No ANTHROPIC_API_KEY in the vault (409 anthropic_key_missing):
  The runner stays up but claims nothing, logs the link to the Secrets tab
  once, and checks again every minute; it goes online as soon as the key is
  in the vault. /readyz answers 503 `anthropic_key_missing` meanwhile.

Platform unreachable or failing (5xx, timeouts, garbage answers):
  The last good bundle keeps serving (minus entries past their expiry) and
  the bootstrap is retried with a jittered exponential backoff.

Exit codes:
  0  stopped by a signal after a clean drain
  2  bad settings (the error names the setting and where it came from),
     no Docker engine, or a failure the runner cannot recover from";

/// Run the supervisor: bootstrap, refresh, claim jobs, run each in its own
/// container.
///
/// Fetches the secret bundle from the platform into memory only, refreshes
/// it every 15 minutes (or as the platform or --refresh-interval says), and
/// hands each job exactly the secrets it is entitled to, in a container of
/// its own. Local `.env` values win over the platform's. Health and metrics
/// are served on --health-addr (`/healthz`, `/readyz`, `/metrics`).
///
/// Examples:
///   SPEDY_RUNNER_TOKEN=rnt_… spedy-runner run
///   spedy-runner run --env-file /etc/spedy-runner/.env --log-format json
#[derive(Debug, clap::Args)]
#[command(after_long_help = RUN_HELP)]
pub struct Args {}

/// Runs `spedy-runner run`.
pub async fn run(args: Args, global: SettingsArgs, log: LogHandle) -> anyhow::Result<ExitCode> {
    let Args {} = args;
    let settings = Settings::resolve(&global)?;
    for (name, source) in &settings.unknown {
        warn!(%name, %source, "unknown setting ignored (a typo?)");
    }
    let token = settings.token()?.value.clone();
    let mut builder = spedy_client::Client::builder(settings.api_url.value.as_str());
    if let Some(ca) = &settings.ca_file {
        builder = builder.extra_ca_pem(ca.value.clone());
    }
    let client = builder.build().context("setting up the platform client")?;
    // Signal handlers first, so a signal during start-up is not lost.
    let signals = Signals::install().context("installing the signal handlers")?;
    let engine = Engine::connect()
        .await
        .context("connecting to the Docker engine")?;
    let grace = settings.shutdown_grace.value;
    let config = config(settings, client, token, log);
    let mut supervisor = Supervisor::new(config, engine);
    supervisor.bind_health().await?;
    info!(version = env!("CARGO_PKG_VERSION"), "spedy-runner started");

    let (shutdown, force) = (CancellationToken::new(), CancellationToken::new());
    let on_signals = signals.watch(shutdown.clone(), force.clone(), grace);
    let run = supervisor.run(shutdown, force);
    tokio::pin!(on_signals, run);
    let result = tokio::select! {
        r = &mut run => r,
        () = &mut on_signals => run.await,
    };
    result?;
    info!("stopped");
    Ok(exit::OK)
}

/// The supervisor's configuration from the checked settings.
fn config(
    settings: Settings,
    client: spedy_client::Client,
    token: spedy_api::RunnerToken,
    log: LogHandle,
) -> Config {
    let mut limits = Limits::default();
    if let Some(m) = &settings.job_memory {
        limits.memory_bytes = Some(i64::try_from(m.value).unwrap_or(i64::MAX));
    }
    if let Some(c) = &settings.job_cpus {
        // At most 1024 CPUs (checked), so this fits an i64.
        limits.nano_cpus = Some((c.value * 1e9).round() as i64);
    }
    if let Some(p) = &settings.job_pids {
        limits.pids = Some(p.value);
    }
    let jobs = JobSettings {
        injection: match settings.injection.value {
            InjectionMode::Stdin => Injection::Stdin,
            InjectionMode::Env => Injection::Env,
        },
        limits,
        ..JobSettings::default()
    };
    Config {
        client,
        token,
        local: LocalSources {
            dotenv: settings.local_env,
            process_env: process_env(),
        },
        pool_size: settings.pool_size.map(|s| s.value),
        refresh_interval: settings.refresh_interval.map(|s| s.value),
        health_addr: Some(settings.health_addr.value),
        shutdown_grace: settings.shutdown_grace.value,
        jobs,
        timers: Timers::default(),
        log_redactor: Some(log.redactor()),
    }
}

/// The runner's own environment, read once: a legacy name or a name the
/// bundle delivers counts as a local override (decided at each refresh).
/// SPEDY_* variables are settings, never overrides.
fn process_env() -> Vec<(String, SecretString)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| !k.starts_with("SPEDY_"))
        .map(|(k, v)| (k, SecretString::from(v)))
        .collect()
}

/// SIGTERM and SIGINT, installed before anything else starts.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }

    /// First signal: `shutdown`, then `force` after `grace`; a second signal:
    /// `force` at once. Returns once `force` is cancelled.
    async fn watch(
        mut self,
        shutdown: CancellationToken,
        force: CancellationToken,
        grace: Duration,
    ) {
        let first = self.next().await;
        info!(
            signal = first,
            grace = %humantime::format_duration(grace),
            "shutting down: no new jobs are claimed; running jobs may finish within the grace period \
             (send the signal again to stop them now)"
        );
        shutdown.cancel();
        tokio::select! {
            second = self.next() => warn!(signal = second, "second signal: stopping running jobs now"),
            () = tokio::time::sleep(grace) => warn!("the shutdown grace period is over: stopping running jobs"),
            () = force.cancelled() => {}
        }
        force.cancel();
    }
}
