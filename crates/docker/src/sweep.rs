//! [`Engine::sweep_orphans`]: at start, remove the containers an earlier run
//! of this runner left behind (a crash, `kill -9`, a power cut), so that no
//! container outlives its runner and every such job can be reported.

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptionsBuilder;

use crate::run::short;
use crate::{Engine, Error, JOB_LABEL, RUNNER_LABEL};

impl Engine {
    /// Stops and removes every container labelled
    /// `io.spedy.runner=<runner_id>`, running or not, and returns the job ids
    /// (`io.spedy.job`) they carried, sorted and without repeats. Report each
    /// as `error` with the reason "runner restarted".
    ///
    /// Call it before the first claim: it removes *all* of this runner's
    /// containers, including ones a job of this process would be running.
    pub async fn sweep_orphans(&self, runner_id: &str) -> Result<Vec<String>, Error> {
        self.retry_leftovers().await;
        let label = format!("{RUNNER_LABEL}={runner_id}");
        let filters = HashMap::from([("label", vec![label.as_str()])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let found = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|source| Error::Engine {
                call: "list containers",
                source,
            })?;
        let mut jobs = Vec::new();
        for container in found {
            let Some(id) = container.id else { continue };
            let job = container
                .labels
                .as_ref()
                .and_then(|l| l.get(JOB_LABEL))
                .cloned();
            // Force-removal kills a running container first (SIGKILL): its
            // job is over anyway, its runner is gone.
            let removed = self.remove(&id).await;
            tracing::info!(container = %short(&id), job_id = job.as_deref().unwrap_or("?"),
                removed, "orphaned job container swept");
            jobs.extend(job);
        }
        jobs.sort();
        jobs.dedup();
        Ok(jobs)
    }
}
