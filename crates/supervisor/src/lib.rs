//! The runner's supervisor: bootstrap, the memory-only bundle and its
//! refresh, the claim loop and pool, job reporting, health and metrics.
//!
//! # Layout
//! - [`config`]: the checked configuration ([`Config`], [`JobSettings`],
//!   [`Timers`]), built by `spedy-runner run` or a test.
//! - [`state`]: [`RunnerState`] and the [`Online`] snapshot jobs keep.
//! - [`refresher`]: bootstrap and refresh; the one writer of the state.
//! - [`classify`]: what a failed bootstrap means (retry, offline, fatal).
//! - [`schedule`]: when the next refresh happens (a pure function).
//! - [`health`]: `/healthz`, `/readyz`, `/metrics` (axum).
//! - [`metrics`]: the Prometheus registry.
//! - `claimer`, `job`, `shipper`, `orphans`: the claim loop and pool, one
//!   job's lifecycle, its log shipping, and the start-up orphan sweep.
//!
//! # Theory of operation
//! [`Supervisor::run`] binds the health address, starts the refresher,
//! waits until the runner is first online (its id is then known), sweeps the
//! containers an earlier run of this runner left behind, and starts the
//! claimer. The refresher, the claimer and the health server run in a
//! `JoinSet` under their names; if one ends before `shutdown`, the others are
//! stopped and the error names it. `shutdown` stops claiming and refreshing;
//! running jobs finish, or are stopped once `force` is cancelled; then the
//! health server stops and `run` returns.
//!
//! The bundle lives only in memory: in [`Online`], shared as `Arc`, and
//! zeroized when the last holder drops it. Nothing from it is written to
//! disk or to the process environment.

#![warn(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use spedy_docker::Engine;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub mod classify;
pub mod config;
pub mod health;
pub mod metrics;
pub mod refresher;
pub mod schedule;
pub mod state;

mod claimer;
mod job;
mod orphans;
mod shipper;

pub use claimer::Claimer;
pub use config::{Config, JobSettings, LocalSources, Timers};
pub use metrics::Metrics;
pub use state::{OfflineReason, Online, RunnerState};

/// What stops the supervisor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The platform answered in a way that cannot be retried, or the client
    /// cannot work with the local configuration.
    #[error(transparent)]
    Platform(#[from] spedy_client::Error),
    /// The Docker engine failed in a way the supervisor cannot recover from.
    #[error(transparent)]
    Docker(#[from] spedy_docker::Error),
    /// The health and metrics address cannot be bound.
    #[error(
        "cannot serve health and metrics on {addr}\n\nset SPEDY_HEALTH_ADDR (--health-addr) to a free address"
    )]
    HealthBind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The health server failed while serving.
    #[error("the health and metrics server failed")]
    Health(#[source] std::io::Error),
    /// A top-level task ended before shutdown.
    #[error("the {task} task ended unexpectedly")]
    TaskEnded {
        /// Which one.
        task: &'static str,
    },
    /// A top-level task panicked.
    #[error("the {task} task panicked")]
    TaskPanicked {
        /// Which one.
        task: &'static str,
    },
}

/// One runner: holds the configuration, the engine, the state channel and
/// the metrics until [`Supervisor::run`].
pub struct Supervisor {
    config: Config,
    engine: Engine,
    metrics: Arc<Metrics>,
    /// The state's sender, moved into the refresher by `run`.
    state: watch::Sender<RunnerState>,
    /// The health listener, when bound early by [`Supervisor::bind_health`].
    health: Option<TcpListener>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A top-level task's result, with its name.
type TaskResult = (&'static str, Result<(), Error>);

impl Supervisor {
    /// A supervisor over `config` and a connected engine.
    pub fn new(config: Config, engine: Engine) -> Self {
        let (state, _) = watch::channel(RunnerState::Starting);
        Supervisor {
            config,
            engine,
            metrics: Arc::new(Metrics::new()),
            state,
            health: None,
        }
    }

    /// The runner's state, for observers (tests, the demo).
    pub fn state(&self) -> watch::Receiver<RunnerState> {
        self.state.subscribe()
    }

    /// The shared metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Binds the health address now, so a caller learns the port that port 0
    /// picked before [`Supervisor::run`]. `None` when no address is set.
    pub async fn bind_health(&mut self) -> Result<Option<SocketAddr>, Error> {
        if self.health.is_none()
            && let Some(addr) = self.config.health_addr
        {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| Error::HealthBind { addr, source })?;
            self.health = Some(listener);
        }
        match &self.health {
            Some(l) => Ok(Some(l.local_addr().map_err(Error::Health)?)),
            None => Ok(None),
        }
    }

    /// Runs the runner until `shutdown` (then drains; `force` stops running
    /// jobs). Returns an error when a part fails beyond recovery.
    pub async fn run(
        mut self,
        shutdown: CancellationToken,
        force: CancellationToken,
    ) -> Result<(), Error> {
        let health_addr = self.bind_health().await?;
        let stop = shutdown.child_token();
        let stop_health = CancellationToken::new();
        let mut tasks: JoinSet<TaskResult> = JoinSet::new();
        let mut state = self.state.subscribe();
        if let (Some(listener), Some(addr)) = (self.health.take(), health_addr) {
            info!(%addr, "health and metrics listening on http://{addr}");
            let (rx, metrics, token) =
                (self.state.subscribe(), self.metrics(), stop_health.clone());
            tasks.spawn(async move {
                let r = health::serve(listener, rx, metrics, token).await;
                ("health", r.map_err(Error::Health))
            });
        }
        let api = self.config.client.runner(self.config.token.clone());
        let refresher = refresher::Refresher::new(
            api.clone(),
            self.config.token.clone(),
            std::mem::take(&mut self.config.local),
            self.config.refresh_interval,
            self.config.timers.clone(),
            self.metrics(),
            self.state.clone(),
            self.config.log_redactor.clone(),
        );
        let token = stop.clone();
        tasks.spawn(async move { ("refresher", refresher.run(token).await) });

        let mut result = match first_online(&mut state, &stop, &mut tasks).await {
            Err(e) => Err(e),
            Ok(None) => Ok(()),
            Ok(Some(runner_id)) => {
                self.sweep(&api, &runner_id, &stop).await;
                let claimer = Claimer::new(
                    api,
                    self.engine.clone(),
                    self.state.subscribe(),
                    self.metrics(),
                    self.config.jobs.clone(),
                    self.config.pool_size,
                );
                let (token, force) = (stop.clone(), force.clone());
                tasks.spawn(async move { ("claimer", claimer.run(token, force).await) });
                Ok(())
            }
        };
        // Drain: every task but health ends after `stop`; health ends last.
        loop {
            if stop.is_cancelled() && only_health_left(&tasks, &stop_health) {
                stop_health.cancel();
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let (task, r) = match joined {
                Ok(done) => done,
                Err(e) => {
                    let task = task_name(&e);
                    (task, Err(Error::TaskPanicked { task }))
                }
            };
            let early = !stop.is_cancelled() && task != "health";
            if let Err(e) = r {
                warn!(task, error = %format!("{e:#}"), "a supervisor task failed; stopping the others");
                result = result.and(Err(e));
            } else if early || (task == "health" && !stop_health.is_cancelled()) {
                warn!(
                    task,
                    "a supervisor task ended before shutdown; stopping the others"
                );
                result = result.and(Err(Error::TaskEnded { task }));
            }
            if result.is_err() {
                stop.cancel();
                force.cancel();
            }
        }
        result
    }

    /// Removes the containers an earlier run left, raced with shutdown.
    async fn sweep(
        &self,
        api: &spedy_client::RunnerApi,
        runner_id: &str,
        stop: &CancellationToken,
    ) {
        tokio::select! {
            () = stop.cancelled() => {}
            swept = orphans::sweep(&self.engine, api, runner_id) => match swept {
                Ok(0) => {}
                Ok(n) => info!(removed = n, "orphaned job containers removed"),
                Err(e) => warn!(error = %format!("{e:#}"), "the orphan sweep failed; going on"),
            },
        }
    }
}

/// Waits until the runner is first online and returns its id; `None` when
/// `stop` comes first. A task that ends meanwhile is an error.
async fn first_online(
    state: &mut watch::Receiver<RunnerState>,
    stop: &CancellationToken,
    tasks: &mut JoinSet<TaskResult>,
) -> Result<Option<String>, Error> {
    loop {
        if let Some(online) = state.borrow_and_update().online() {
            return Ok(Some(online.runner.id.clone()));
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(None),
            changed = state.changed() => {
                if changed.is_err() {
                    return Ok(None);
                }
            }
            Some(joined) = tasks.join_next() => {
                let ended = match joined {
                    Ok((_, Err(e))) => e,
                    // A task that ends cleanly after `stop` is the shutdown.
                    Ok((_, Ok(()))) if stop.is_cancelled() => return Ok(None),
                    Ok((task, Ok(()))) => Error::TaskEnded { task },
                    Err(e) => Error::TaskPanicked { task: task_name(&e) },
                };
                stop.cancel();
                return Err(ended);
            }
        }
    }
}

/// A panicked task's result carries no name: every task but health
/// catches its own errors, so name the panic by what it can be.
fn task_name(e: &tokio::task::JoinError) -> &'static str {
    if e.is_panic() {
        "supervisor (panicked)"
    } else {
        "supervisor (aborted)"
    }
}

/// Whether only the health server is still running (so it may stop).
fn only_health_left(tasks: &JoinSet<TaskResult>, stop_health: &CancellationToken) -> bool {
    !stop_health.is_cancelled() && tasks.len() <= 1
}
