//! One job's lifecycle as the supervisor drives it (issue 4, item 5): one task
//! owns one job from the claim to the platform's acknowledgement of its end.
//!
//! # Theory of operation
//! [`run_job`] is spawned by the [`Claimer`](crate::claimer::Claimer) into its
//! `TaskTracker`, with the pool permit moved in; the permit is dropped, and the
//! slot freed, only when the job has been reported. The task:
//! 1. keeps the [`Online`] snapshot it was given until its end, so a bundle
//!    refresh never changes a running job's secrets;
//! 2. computes the job's entitled [`SecretSet`](spedy_secrets::SecretSet) and
//!    builds the executor's [`RunSpec`], with the snapshot's redactor;
//! 3. runs three things at once: the executor (with a child of the runner's
//!    `force` token), the [`Shipper`] reading the executor's bounded log
//!    channel, and a heartbeat every `heartbeat_interval` (an answer
//!    `cancel: true` cancels the executor's token: the container is stopped
//!    with the grace period and the job ends `cancelled`);
//! 4. once the executor has returned *and* the shipper has posted the last
//!    batch, sends `complete` (retried; the platform treats it as idempotent).
//!
//! Error text sent to the platform goes through the snapshot's redactor too.
//! When `force` has fired, retries of log batches and of `complete` stop after
//! [`REPORT_PATIENCE`], so a dead platform cannot hold the runner's exit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use spedy_api::{CompleteRequest, FinalStatus, Job};
use spedy_client::RunnerApi;
use spedy_client::backoff::Backoff;
use spedy_docker::{Engine, Outcome, RunSpec};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::JobSettings;
use crate::metrics::Metrics;
use crate::shipper::{ShipSettings, Shipper};
use crate::state::Online;

/// How long reporting may still be retried once the runner is forced down.
pub(crate) const REPORT_PATIENCE: Duration = Duration::from_secs(10);

/// First delay between two attempts of a call to the platform.
const RETRY_BASE: Duration = Duration::from_millis(100);
/// Longest delay between two attempts.
const RETRY_CAP: Duration = Duration::from_secs(5);

/// What every job task shares. Cloned into an `Arc` once per claimer.
pub(crate) struct JobContext {
    /// The runner's platform client.
    pub api: RunnerApi,
    /// The Docker engine.
    pub engine: Engine,
    /// Where job_started/job_finished are counted.
    pub metrics: Arc<Metrics>,
    /// Timers, limits and injection.
    pub settings: JobSettings,
    /// Set by a job whose executor failed (the engine may be gone); the
    /// claimer clears it once the engine answers again.
    pub engine_suspect: AtomicBool,
}

/// Runs one claimed job to its end and reports it. Never fails: every failure
/// becomes a job status. `force` is the runner's token that stops running
/// jobs; `_permit` holds the job's pool slot until this returns.
pub(crate) async fn run_job(
    ctx: Arc<JobContext>,
    online: Arc<Online>,
    job: Job,
    force: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let give_up = CancellationToken::new();
    let watchdog = async {
        force.cancelled().await;
        tokio::time::sleep(REPORT_PATIENCE).await;
        give_up.cancel();
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = drive(&ctx, &online, job, &force, &give_up) => {}
        () = watchdog => unreachable!("the watchdog never returns"),
    }
}

#[tracing::instrument(skip_all, fields(job_id = %job.id))]
async fn drive(
    ctx: &JobContext,
    online: &Online,
    job: Job,
    force: &CancellationToken,
    give_up: &CancellationToken,
) {
    ctx.metrics.job_started();
    tracing::info!(image = %job.spec.image, pool = online.runner.pool_size, "job started");
    let cancel = force.child_token();
    let (tx, rx) = mpsc::channel(ctx.settings.log_buffer_chunks.max(1));
    let spec = run_spec(ctx, online, &job);
    let shipper = Shipper::new(
        ctx.api.clone(),
        job.id.clone(),
        ShipSettings {
            max_batch_bytes: ctx.settings.log_batch_max_bytes,
            flush_interval: ctx.settings.log_flush_interval,
        },
        give_up.clone(),
    );
    let work = async { tokio::join!(ctx.engine.run(spec, tx, cancel.clone()), shipper.run(rx)) };
    let heartbeat = heartbeat(&ctx.api, &job.id, ctx.settings.heartbeat_interval, &cancel);
    let (outcome, shipped) = tokio::select! {
        both = work => both,
        () = heartbeat => unreachable!("the heartbeat never returns"),
    };
    if outcome.is_err() {
        ctx.engine_suspect.store(true, Ordering::Release);
    }
    let complete = complete_request(outcome, online);
    if shipped.dropped_bytes > 0 {
        tracing::warn!(
            dropped_bytes = shipped.dropped_bytes,
            "part of the job's log was not delivered"
        );
    }
    report_complete(&ctx.api, &job.id, &complete, give_up).await;
    ctx.metrics.job_finished(complete.status);
    tracing::info!(status = %complete.status, exit_code = ?complete.exit_code,
        duration_ms = complete.duration_ms, "job finished");
}

/// The executor's spec for `job` under the snapshot `online`.
fn run_spec(ctx: &JobContext, online: &Online, job: &Job) -> RunSpec {
    let secrets =
        spedy_secrets::entitled(&online.bundle, &online.overrides, &job.spec, online.backend);
    RunSpec {
        runner_id: online.runner.id.clone(),
        job_id: job.id.clone(),
        image: job.spec.image.clone(),
        command: job.spec.command.clone(),
        env: job.spec.env.clone(),
        secrets,
        redactor: Arc::clone(&online.redactor),
        limits: ctx.settings.limits.clone(),
        injection: ctx.settings.injection,
        timeout: Duration::from_secs(job.spec.timeout_s),
        stop_grace: ctx.settings.stop_grace,
    }
}

/// Sends a heartbeat every `every` until dropped; an answer `cancel: true`
/// cancels `cancel` (the executor then stops the container).
async fn heartbeat(api: &RunnerApi, job_id: &str, every: Duration, cancel: &CancellationToken) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match api.heartbeat(job_id).await {
            Ok(answer) if answer.cancel && !cancel.is_cancelled() => {
                tracing::info!("the platform cancelled the job; stopping it");
                cancel.cancel();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; the job goes on"),
        }
    }
}

/// The body of `complete` for the executor's result, with the error text
/// redacted by the snapshot's redactor.
fn complete_request(
    outcome: Result<Outcome, spedy_docker::Error>,
    online: &Online,
) -> CompleteRequest {
    match outcome {
        Ok(o) => CompleteRequest {
            status: o.status,
            exit_code: o.exit_code,
            duration_ms: duration_ms(o.duration),
            error: o.error.map(|e| redact(online, &e)),
            usage: None,
        },
        Err(e) => CompleteRequest {
            status: FinalStatus::Error,
            exit_code: None,
            duration_ms: 0,
            error: Some(redact(online, &error_chain(&e))),
            usage: None,
        },
    }
}

/// Sends `complete`, retrying transient failures until the platform accepts
/// it or `give_up` fires.
pub(crate) async fn report_complete(
    api: &RunnerApi,
    job_id: &str,
    body: &CompleteRequest,
    give_up: &CancellationToken,
) -> bool {
    let mut backoff = retry_backoff();
    loop {
        match api.complete(job_id, body).await {
            Ok(()) => return true,
            Err(e) if e.is_transient() => {
                tracing::debug!(job_id, attempt = backoff.attempts(), error = %e,
                    "complete not accepted yet; retrying");
                let wait = backoff
                    .next_delay()
                    .max(e.retry_after().unwrap_or_default());
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = give_up.cancelled() => {
                        tracing::error!(job_id, status = %body.status,
                            "could not report the job's end: the platform does not answer");
                        return false;
                    }
                }
            }
            Err(e) => {
                tracing::error!(job_id, status = %body.status, error = %e,
                    "the platform refused the job's completion");
                return false;
            }
        }
    }
}

/// The backoff between two attempts of a report to the platform: 100 ms
/// doubling up to 5 s, jittered.
pub(crate) fn retry_backoff() -> Backoff {
    Backoff::new(RETRY_BASE, RETRY_CAP)
}

/// `error` and its sources, `: `-separated.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `text` with every secret of the snapshot replaced.
pub(crate) fn redact(online: &Online, text: &str) -> String {
    online.redactor.redact_str(text).into_owned()
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_names_every_source() {
        let inner = std::io::Error::other("socket closed");
        let outer = std::io::Error::other(OuterError(inner));
        assert_eq!(error_chain(&outer), "engine gone: socket closed");
    }

    #[derive(Debug)]
    struct OuterError(std::io::Error);
    impl std::fmt::Display for OuterError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("engine gone")
        }
    }
    impl std::error::Error for OuterError {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
