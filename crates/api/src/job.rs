//! Jobs as the runner sees them: claim, logs, heartbeat and completion.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::runner::{GitProvider, Scope};

/// The repository a job works on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repo {
    /// Clone URL.
    pub url: String,
    /// Which provider's token the job needs.
    pub provider: GitProvider,
}

/// What to run: the body of `POST /jobs`, and a [`Job`] without its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The image to run.
    pub image: String,
    /// The command; `None` runs the image's own entrypoint and command.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Non-secret env.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The repository, if any.
    #[serde(default)]
    pub repo: Option<Repo>,
    /// The job's project, for project-scoped secrets.
    #[serde(default)]
    pub scope: Option<Scope>,
    /// Wall-clock limit in seconds.
    pub timeout_s: u64,
}

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// `job_…`
    pub id: String,
    /// The rest of the job.
    #[serde(flatten)]
    pub spec: JobSpec,
}

/// Body of `POST /runners/jobs/claim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// How long the platform may hold the request open, in seconds.
    pub wait_s: u64,
}

/// `200` answer of `POST /runners/jobs/claim` (`204` means no job came).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimResponse {
    /// The job.
    pub job: Job,
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A piece of a job's output, already redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// Where it came from.
    pub stream: LogStream,
    /// The text.
    pub text: String,
}

/// Body of `POST /runners/jobs/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogBatch {
    /// Starts at 0 and rises by one per call; a repeated `seq` is ignored.
    pub seq: u64,
    /// The chunks, in order.
    pub chunks: Vec<LogChunk>,
}

/// `200` answer of `POST /runners/jobs/{id}/heartbeat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The job was cancelled: stop it and report `cancelled`.
    pub cancel: bool,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalStatus {
    /// Exit code 0.
    Succeeded,
    /// A non-zero exit code.
    Failed,
    /// `timeout_s` passed.
    TimedOut,
    /// Cancelled by an admin or by the runner's shutdown.
    Cancelled,
    /// The runner could not run it (no image, engine gone, runner restarted).
    Error,
}

impl FinalStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FinalStatus::Succeeded => "succeeded",
            FinalStatus::Failed => "failed",
            FinalStatus::TimedOut => "timed_out",
            FinalStatus::Cancelled => "cancelled",
            FinalStatus::Error => "error",
        }
    }

    /// Every final status, for metrics.
    pub const ALL: [FinalStatus; 5] = [
        FinalStatus::Succeeded,
        FinalStatus::Failed,
        FinalStatus::TimedOut,
        FinalStatus::Cancelled,
        FinalStatus::Error,
    ];
}

impl fmt::Display for FinalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Body of `POST /runners/jobs/{id}/complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteRequest {
    /// How it ended.
    pub status: FinalStatus,
    /// The container's exit code, when it has one.
    pub exit_code: Option<i64>,
    /// From container start to end.
    pub duration_ms: u64,
    /// What went wrong, for `error` (already redacted).
    pub error: Option<String>,
    /// Token usage, when the job reports it.
    #[serde(default)]
    pub usage: Option<serde_json::Value>,
}

/// Where a job stands, as an admin sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a runner.
    Queued,
    /// Claimed by a runner.
    Running,
    /// See [`FinalStatus::Succeeded`].
    Succeeded,
    /// See [`FinalStatus::Failed`].
    Failed,
    /// See [`FinalStatus::TimedOut`].
    TimedOut,
    /// See [`FinalStatus::Cancelled`].
    Cancelled,
    /// See [`FinalStatus::Error`].
    Error,
}

impl JobStatus {
    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }
}

impl From<FinalStatus> for JobStatus {
    fn from(s: FinalStatus) -> Self {
        match s {
            FinalStatus::Succeeded => JobStatus::Succeeded,
            FinalStatus::Failed => JobStatus::Failed,
            FinalStatus::TimedOut => JobStatus::TimedOut,
            FinalStatus::Cancelled => JobStatus::Cancelled,
            FinalStatus::Error => JobStatus::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_with_null_command_parses() {
        let j: Job = serde_json::from_str(
            r#"{"id":"job_1","image":"img:1","command":null,"env":{"A":"b"},
                "repo":{"url":"https://github.com/o/r","provider":"github"},
                "scope":"project:p","timeout_s":60}"#,
        )
        .unwrap();
        assert_eq!(j.spec.command, None);
        assert_eq!(j.spec.scope, Some(Scope::Project("p".into())));
        let minimal: JobSpec = serde_json::from_str(r#"{"image":"i","timeout_s":1}"#).unwrap();
        assert!(minimal.env.is_empty());
    }
}
