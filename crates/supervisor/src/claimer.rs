//! The claim loop and the pool (issue 4, items 6 and 7): claims a job only
//! while the runner is online and a pool slot is free, and runs each job in a
//! task of its own.
//!
//! # Theory of operation
//! - **Pool.** A [`Semaphore`] with one permit per slot. A permit is acquired
//!   *before* claiming and moved into the job's task, which drops it when the
//!   job has been reported; so at most `pool_size` jobs run at once and the
//!   runner never holds a job it has no slot for. The size is the override
//!   (`SPEDY_POOL_SIZE`) or the platform's `pool_size` from the latest online
//!   snapshot; when the platform changes it, the pool grows at once and shrinks
//!   as running jobs end.
//! - **State.** Claims happen only while the [`RunnerState`] is online; a long
//!   poll in flight is raced against the state leaving online and against
//!   `shutdown`, and dropped when either comes first. A job that arrives just
//!   as the runner goes offline is reported `error` rather than run without a
//!   bundle.
//! - **Engine.** When a job fails because the engine could not be used, the
//!   next claim waits until the engine answers again, so an engine restart
//!   does not burn through the queue.
//! - **Shutdown.** `shutdown` stops claiming; [`Claimer::run`] then waits for
//!   the running jobs. They finish on their own, or, once `force` is
//!   cancelled, are stopped (grace then kill), reported `cancelled`, and their
//!   containers removed (each job's cancel token is a child of `force`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use spedy_api::{CompleteRequest, FinalStatus, Job};
use spedy_client::RunnerApi;
use spedy_client::backoff::Backoff;
use spedy_docker::Engine;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::JobSettings;
use crate::job::{self, JobContext};
use crate::metrics::Metrics;
use crate::state::{Online, RunnerState};

/// First delay after a failed claim; it doubles up to [`CLAIM_BACKOFF_CAP`].
const CLAIM_BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Longest delay between two failed claims (or engine checks).
const CLAIM_BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Claims jobs and runs them, at most `pool_size` at once.
pub struct Claimer {
    ctx: Arc<JobContext>,
    /// The runner's state; the refresher owns the sender. When it is dropped
    /// the state can no longer change: claiming stops unless online.
    state: watch::Receiver<RunnerState>,
    pool_size_override: Option<u32>,
}

impl std::fmt::Debug for Claimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimer")
            .field("pool_size_override", &self.pool_size_override)
            .finish_non_exhaustive()
    }
}

/// What one claim attempt came to.
enum Claimed {
    Job(Box<Job>),
    Nothing,
    Offline,
    Shutdown,
    Failed(spedy_client::Error),
}

impl Claimer {
    /// A claimer over the runner's client, engine and state.
    pub fn new(
        api: RunnerApi,
        engine: Engine,
        state: watch::Receiver<RunnerState>,
        metrics: Arc<Metrics>,
        settings: JobSettings,
        pool_size_override: Option<u32>,
    ) -> Self {
        let ctx = JobContext {
            api,
            engine,
            metrics,
            settings,
            engine_suspect: AtomicBool::new(false),
        };
        Claimer {
            ctx: Arc::new(ctx),
            state,
            pool_size_override,
        }
    }

    /// Claims only while online and only when a pool slot is free (the permit
    /// is moved into the job task). Returns when `shutdown` is cancelled and
    /// every running job has ended: jobs get until `force` is cancelled to
    /// finish; on `force` they are stopped (grace then kill), reported
    /// `cancelled`, and their containers removed.
    pub async fn run(
        mut self,
        shutdown: CancellationToken,
        force: CancellationToken,
    ) -> Result<(), crate::Error> {
        let tracker = TaskTracker::new();
        let mut pool = Pool::new();
        let mut backoff = Backoff::new(CLAIM_BACKOFF_BASE, CLAIM_BACKOFF_CAP);
        while let Some(online) = self.wait_online(&shutdown).await {
            pool.resize(self.pool_size(&online));
            let Some(permit) = pool.acquire(&shutdown).await else {
                break;
            };
            if !self.engine_ready(&shutdown).await {
                break;
            }
            match self.claim(&shutdown).await {
                Claimed::Job(job) => {
                    backoff.reset();
                    self.start(&tracker, *job, &force, permit).await;
                }
                Claimed::Nothing | Claimed::Offline => backoff.reset(),
                Claimed::Shutdown => break,
                Claimed::Failed(e) => {
                    drop(permit);
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?wait, "claiming a job failed");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = shutdown.cancelled() => break,
                    }
                }
            }
        }
        tracker.close();
        if !tracker.is_empty() {
            tracing::info!(
                running = tracker.len(),
                "no more claims; waiting for the running jobs"
            );
        }
        tracker.wait().await;
        tracing::info!("every job has ended");
        Ok(())
    }

    /// The current online snapshot, waiting for one; `None` on shutdown, or
    /// when the state can no longer become online.
    async fn wait_online(&mut self, shutdown: &CancellationToken) -> Option<Arc<Online>> {
        if shutdown.is_cancelled() {
            return None;
        }
        tokio::select! {
            () = shutdown.cancelled() => None,
            state = self.state.wait_for(RunnerState::is_online) => match state {
                Ok(s) => s.online(),
                Err(_) => {
                    tracing::warn!("the runner state has no writer any more; claiming stops");
                    None
                }
            },
        }
    }

    fn pool_size(&self, online: &Online) -> usize {
        let size = self.pool_size_override.unwrap_or(online.runner.pool_size);
        usize::try_from(size.max(1)).unwrap_or(1)
    }

    /// After a job failed because of the engine, waits until the engine
    /// answers again. `false` on shutdown.
    async fn engine_ready(&self, shutdown: &CancellationToken) -> bool {
        let mut backoff = Backoff::new(CLAIM_BACKOFF_BASE, CLAIM_BACKOFF_CAP);
        while self.ctx.engine_suspect.load(Ordering::Acquire) {
            match self.ctx.engine.info().await {
                Ok(_) => {
                    self.ctx.engine_suspect.store(false, Ordering::Release);
                    tracing::info!("the Docker engine answers; claiming again");
                }
                Err(e) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?wait,
                        "the Docker engine does not answer; no claims until it does");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = shutdown.cancelled() => return false,
                    }
                }
            }
        }
        true
    }

    /// One long-poll claim, raced against shutdown and the state leaving
    /// online.
    async fn claim(&mut self, shutdown: &CancellationToken) -> Claimed {
        let api = &self.ctx.api;
        let wait_s = self.ctx.settings.claim_wait_s;
        // An answer that is already here wins over shutdown: a job the
        // platform handed over is run (and drained), never dropped.
        tokio::select! {
            biased;
            answer = api.claim(wait_s) => match answer {
                Ok(Some(job)) => Claimed::Job(Box::new(job)),
                Ok(None) => Claimed::Nothing,
                Err(e) => Claimed::Failed(e),
            },
            () = shutdown.cancelled() => Claimed::Shutdown,
            () = left_online(&mut self.state) => Claimed::Offline,
        }
    }

    /// Starts `job` in a task of its own, under the current online snapshot;
    /// reports it `error` at once when the runner has just gone offline.
    async fn start(
        &self,
        tracker: &TaskTracker,
        job: Job,
        force: &CancellationToken,
        permit: OwnedSemaphorePermit,
    ) {
        let current = self.state.borrow().clone();
        match current.online() {
            Some(online) => {
                tracing::debug!(job_id = %job.id, "job claimed");
                tracker.spawn(job::run_job(
                    Arc::clone(&self.ctx),
                    online,
                    job,
                    force.clone(),
                    permit,
                ));
            }
            None => {
                let reason = current.as_str();
                tracing::warn!(job_id = %job.id, reason, "job claimed as the runner went offline; reporting it");
                let body = CompleteRequest {
                    status: FinalStatus::Error,
                    exit_code: None,
                    duration_ms: 0,
                    error: Some(format!(
                        "the runner went offline ({reason}) before the job could start"
                    )),
                    usage: None,
                };
                job::report_complete(&self.ctx.api, &job.id, &body, force).await;
            }
        }
    }
}

/// Resolves when the state is no longer online; never when it can no longer
/// change.
async fn left_online(state: &mut watch::Receiver<RunnerState>) {
    if state.wait_for(|s| !s.is_online()).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The pool's semaphore, with resizing. Shrinking below the permits held by
/// running jobs is paid back as they end (`debt`).
struct Pool {
    /// Shared with nobody but the permits it hands out; never closed.
    sem: Arc<Semaphore>,
    size: usize,
    /// Permits still to be withdrawn after a shrink.
    debt: usize,
}

impl Pool {
    fn new() -> Self {
        Pool {
            sem: Arc::new(Semaphore::new(0)),
            size: 0,
            debt: 0,
        }
    }

    fn resize(&mut self, size: usize) {
        if size > self.size {
            let grow = size - self.size;
            let repay = grow.min(self.debt);
            self.debt -= repay;
            self.sem.add_permits(grow - repay);
        } else if size < self.size {
            let shrink = self.size - size;
            let forgotten = self.sem.forget_permits(shrink);
            self.debt += shrink - forgotten;
        }
        if size != self.size && self.size != 0 {
            tracing::info!(from = self.size, to = size, "pool size changed");
        }
        self.size = size;
    }

    /// A free slot; `None` on shutdown.
    async fn acquire(&mut self, shutdown: &CancellationToken) -> Option<OwnedSemaphorePermit> {
        loop {
            let permit = tokio::select! {
                () = shutdown.cancelled() => return None,
                p = Arc::clone(&self.sem).acquire_owned() => p.expect("the pool's semaphore is never closed"),
            };
            if self.debt == 0 {
                return Some(permit);
            }
            permit.forget();
            self.debt -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pool_hands_out_at_most_its_size_and_shrinks_as_permits_return() {
        let shutdown = CancellationToken::new();
        let mut pool = Pool::new();
        pool.resize(3);
        let a = pool.acquire(&shutdown).await.expect("slot");
        let b = pool.acquire(&shutdown).await.expect("slot");
        let c = pool.acquire(&shutdown).await.expect("slot");
        assert_eq!(pool.sem.available_permits(), 0);
        pool.resize(1);
        assert_eq!(pool.debt, 2);
        drop((a, b));
        // Both returned permits pay the debt; the third is still held.
        let none = tokio::time::timeout(Duration::from_millis(50), pool.acquire(&shutdown)).await;
        assert!(none.is_err(), "no slot while the one left is held");
        assert_eq!(pool.debt, 0);
        drop(c);
        assert!(pool.acquire(&shutdown).await.is_some());
    }

    #[tokio::test]
    async fn growing_a_pool_repays_debt_first() {
        let shutdown = CancellationToken::new();
        let mut pool = Pool::new();
        pool.resize(2);
        let a = pool.acquire(&shutdown).await.expect("slot");
        let b = pool.acquire(&shutdown).await.expect("slot");
        pool.resize(1);
        assert_eq!(pool.debt, 1);
        pool.resize(4);
        assert_eq!(pool.debt, 0);
        assert_eq!(pool.sem.available_permits(), 2);
        drop((a, b));
        assert_eq!(pool.sem.available_permits(), 4);
    }

    #[tokio::test]
    async fn acquiring_gives_up_on_shutdown() {
        let shutdown = CancellationToken::new();
        let mut pool = Pool::new();
        pool.resize(1);
        let _held = pool.acquire(&shutdown).await.expect("slot");
        shutdown.cancel();
        assert!(pool.acquire(&shutdown).await.is_none());
    }
}
