//! The runner's Prometheus metrics (prometheus-client), served at `/metrics`.
//!
//! One [`Metrics`] is shared as `Arc<Metrics>`: the refresher records bundle
//! fetches, version changes, failures and the online state; the claimer
//! records jobs started and finished. No label ever holds a secret or a
//! free-form string: reasons and statuses are fixed machine names.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use spedy_api::FinalStatus;

/// The label of a refresh failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The label of a finished job.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

/// Every metric of the runner, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    /// When the bundle now held was fetched; `None` when none is held.
    bundle_fetched: Mutex<Option<Instant>>,
    bundle_age: Gauge<f64, AtomicU64>,
    bundle_version_changes: Counter,
    refreshes: Counter,
    refresh_failures: Family<ReasonLabel, Counter>,
    online: Gauge,
    jobs_running: Gauge,
    jobs_finished: Family<StatusLabel, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("spedy_runner");
        let bundle_age = Gauge::<f64, AtomicU64>::default();
        let bundle_version_changes = Counter::default();
        let refreshes = Counter::default();
        let refresh_failures = Family::<ReasonLabel, Counter>::default();
        let online = Gauge::default();
        let jobs_running = Gauge::default();
        let jobs_finished = Family::<StatusLabel, Counter>::default();
        registry.register(
            "bundle_age_seconds",
            "Seconds since the bundle now held was fetched (0 when none is held)",
            bundle_age.clone(),
        );
        registry.register(
            "bundle_version_changes",
            "Times a refresh brought a bundle with a new version",
            bundle_version_changes.clone(),
        );
        registry.register(
            "refreshes",
            "Successful bootstraps (the first one and every refresh)",
            refreshes.clone(),
        );
        registry.register(
            "refresh_failures",
            "Failed bootstraps, by reason",
            refresh_failures.clone(),
        );
        registry.register(
            "online",
            "1 when a bundle is held and not gated, so jobs may be claimed",
            online.clone(),
        );
        registry.register("jobs_running", "Jobs running now", jobs_running.clone());
        registry.register(
            "jobs_finished",
            "Jobs finished, by final status",
            jobs_finished.clone(),
        );
        for status in FinalStatus::ALL {
            // Every status shows from the start, at 0, so rate() works at once.
            drop(jobs_finished.get_or_create(&StatusLabel {
                status: status.as_str(),
            }));
        }
        Metrics {
            registry,
            bundle_fetched: Mutex::new(None),
            bundle_age,
            bundle_version_changes,
            refreshes,
            refresh_failures,
            online,
            jobs_running,
            jobs_finished,
        }
    }

    /// A job's container is about to start.
    pub fn job_started(&self) {
        self.jobs_running.inc();
    }

    /// A job that [`Metrics::job_started`] counted has ended with `status`.
    pub fn job_finished(&self, status: FinalStatus) {
        self.jobs_running.dec();
        self.jobs_finished
            .get_or_create(&StatusLabel {
                status: status.as_str(),
            })
            .inc();
    }

    /// A bootstrap succeeded; `version_changed` when its bundle version
    /// differs from the one held before (not counted for the first bundle).
    pub fn bundle_fetched(&self, version_changed: bool) {
        self.refreshes.inc();
        if version_changed {
            self.bundle_version_changes.inc();
        }
        *self.fetched_lock() = Some(Instant::now());
    }

    /// The bundle was dropped (invalid token, key missing): none is held.
    pub fn bundle_dropped(&self) {
        *self.fetched_lock() = None;
    }

    /// A bootstrap failed for `reason` (a fixed machine name, see
    /// [`crate::classify::Failure::reason`]).
    pub fn refresh_failed(&self, reason: &'static str) {
        self.refresh_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Whether the runner is online (claims jobs).
    pub fn set_online(&self, online: bool) {
        self.online.set(i64::from(online));
    }

    /// How many refreshes failed for `reason` so far (for tests and doctor).
    pub fn refresh_failures(&self, reason: &'static str) -> u64 {
        self.refresh_failures
            .get(&ReasonLabel { reason })
            .map_or(0, |c| c.get())
    }

    /// How many jobs run now.
    pub fn jobs_running(&self) -> i64 {
        self.jobs_running.get()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let age = self
            .fetched_lock()
            .map_or(0.0, |at| at.elapsed().as_secs_f64());
        self.bundle_age.set(age);
        let mut out = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding metrics into a String cannot fail");
        out
    }

    fn fetched_lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // A panic while holding this lock cannot leave the Option torn.
        self.bundle_fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric_the_issue_asks_for() {
        let m = Metrics::new();
        m.bundle_fetched(false);
        m.bundle_fetched(true);
        m.refresh_failed("server_error");
        m.set_online(true);
        m.job_started();
        m.job_started();
        m.job_finished(FinalStatus::Succeeded);
        let text = m.render();
        for want in [
            "spedy_runner_bundle_age_seconds ",
            "spedy_runner_bundle_version_changes_total 1",
            "spedy_runner_refreshes_total 2",
            "spedy_runner_refresh_failures_total{reason=\"server_error\"} 1",
            "spedy_runner_online 1",
            "spedy_runner_jobs_running 1",
            "spedy_runner_jobs_finished_total{status=\"succeeded\"} 1",
            "spedy_runner_jobs_finished_total{status=\"timed_out\"} 0",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert_eq!(m.refresh_failures("server_error"), 1);
        assert_eq!(m.refresh_failures("timeout"), 0);
    }
}
