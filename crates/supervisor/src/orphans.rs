//! Orphans left by an earlier run of this runner (issue 4, item 8).
//!
//! A runner that was killed (`kill -9`, a host crash) leaves its job
//! containers behind, and the platform still sees their jobs as running. At
//! start, once the runner's id is known and before the first claim, [`sweep`]
//! stops and removes every container labelled `io.spedy.runner=<runner id>`
//! (through the executor) and reports each of their jobs `error` with the
//! reason [`RUNNER_RESTARTED`].
//!
//! The sweep never touches containers of other runners: the label filter is
//! exact. Reporting is retried for transient failures for a short while; a
//! job the platform no longer knows (or already completed) is only logged.

use std::time::Duration;

use spedy_api::{CompleteRequest, FinalStatus};
use spedy_client::RunnerApi;
use spedy_docker::Engine;
use tokio_util::sync::CancellationToken;

use crate::job::report_complete;

/// The `error` text a job left running by a dead runner is reported with.
pub const RUNNER_RESTARTED: &str = "runner restarted";

/// How long reporting one orphan's job may be retried.
const REPORT_FOR: Duration = Duration::from_secs(30);

/// Removes the containers labelled with this runner's id and reports their
/// jobs `error` with the reason "runner restarted". Returns how many
/// containers were removed.
pub async fn sweep(
    engine: &Engine,
    api: &RunnerApi,
    runner_id: &str,
) -> Result<usize, crate::Error> {
    let job_ids = engine.sweep_orphans(runner_id).await?;
    if job_ids.is_empty() {
        return Ok(0);
    }
    tracing::warn!(
        count = job_ids.len(),
        "removed job containers left by an earlier run of this runner"
    );
    let body = CompleteRequest {
        status: FinalStatus::Error,
        exit_code: None,
        duration_ms: 0,
        error: Some(RUNNER_RESTARTED.to_owned()),
        usage: None,
    };
    let never = CancellationToken::new();
    for job_id in &job_ids {
        let reported =
            tokio::time::timeout(REPORT_FOR, report_complete(api, job_id, &body, &never))
                .await
                .unwrap_or(false);
        if reported {
            tracing::info!(job_id, "orphaned job reported as error: runner restarted");
        }
    }
    Ok(job_ids.len())
}
