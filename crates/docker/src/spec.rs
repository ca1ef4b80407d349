//! What the executor is asked to run ([`RunSpec`], [`Limits`], [`Injection`])
//! and what it answers ([`Outcome`]). Plain data; no I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use spedy_api::FinalStatus;
use spedy_secrets::{Redactor, SecretSet};

/// One job to run in one container.
///
/// `Debug` shows the secret *names* only ([`SecretSet`]'s own `Debug`).
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The runner's id: the value of the container's `io.spedy.runner` label.
    pub runner_id: String,
    /// The job's id: the value of the container's `io.spedy.job` label.
    pub job_id: String,
    /// The image; pulled when it is not present.
    pub image: String,
    /// The command (`docker run IMAGE COMMAND…` semantics: it replaces the
    /// image's `CMD`, the image's `ENTRYPOINT` stays). `None` runs the
    /// image's own `ENTRYPOINT` and `CMD`.
    pub command: Option<Vec<String>>,
    /// Non-secret variables. They are part of the container's config, so
    /// `docker inspect` shows them.
    pub env: BTreeMap<String, String>,
    /// The job's entitled secrets, delivered as [`RunSpec::injection`] says.
    pub secrets: SecretSet,
    /// Redacts the job's output (one [`spedy_secrets::StreamRedactor`] per
    /// stream is built over it).
    pub redactor: Arc<Redactor>,
    /// Memory, CPU and pids limits.
    pub limits: Limits,
    /// How the secrets reach the job.
    pub injection: Injection,
    /// Wall-clock limit, counted from the container's start.
    pub timeout: Duration,
    /// After a cancel or a timeout: how long the job has between SIGTERM and
    /// SIGKILL.
    pub stop_grace: Duration,
}

/// Resource limits of a job container. `None` leaves the engine's default
/// (no limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Memory limit in bytes; swap is set to the same value (no swap).
    pub memory_bytes: Option<i64>,
    /// CPU limit in billionths of a CPU (`1_500_000_000` is 1.5 CPUs). It
    /// must not exceed the host's CPU count, or the engine refuses the
    /// container.
    pub nano_cpus: Option<i64>,
    /// The most processes and threads the job may have at once.
    pub pids: Option<i64>,
}

impl Default for Limits {
    /// 4 GiB of memory, no CPU cap, 1024 pids.
    fn default() -> Self {
        Limits {
            memory_bytes: Some(4 << 30),
            nano_cpus: None,
            pids: Some(1024),
        }
    }
}

/// How a job's secrets reach it (`SPEDY_INJECTION=stdin|env`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Injection {
    /// The default: the container is created without any secret; the static
    /// `spedy-init` is its entrypoint and receives the set on stdin, then
    /// execs the job. Neither `docker inspect` nor the engine's files ever
    /// hold a value.
    #[default]
    Stdin,
    /// The secrets are part of the container's `Env`: simple and works with
    /// any image, but `docker inspect` shows them and dockerd writes them to
    /// `/var/lib/docker/containers/<id>/config.v2.json` until the container
    /// is removed.
    Env,
}

impl Injection {
    /// The setting's value (`stdin`, `env`).
    pub fn as_str(self) -> &'static str {
        match self {
            Injection::Stdin => "stdin",
            Injection::Env => "env",
        }
    }
}

impl fmt::Display for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an injection setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the injection path is `stdin` or `env`, not {0:?}")]
pub struct InjectionParseError(String);

impl FromStr for Injection {
    type Err = InjectionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "stdin" => Ok(Injection::Stdin),
            "env" => Ok(Injection::Env),
            _ => Err(InjectionParseError(s.to_owned())),
        }
    }
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `succeeded` (exit 0), `failed` (other exit codes), `cancelled`,
    /// `timed_out`, or `error` (the job could not run: no image, a refused
    /// create or start).
    pub status: FinalStatus,
    /// The container's exit code, when it ran.
    pub exit_code: Option<i64>,
    /// From the container's start to its end (zero when it never started).
    pub duration: Duration,
    /// What went wrong, in the engine's or `spedy-init`'s words. Never a
    /// secret value: it comes from the engine or from the redacted stderr.
    pub error: Option<String>,
}

impl Outcome {
    /// An `error` outcome for a job that never ran.
    pub(crate) fn error(message: impl Into<String>) -> Outcome {
        Outcome {
            status: FinalStatus::Error,
            exit_code: None,
            duration: Duration::ZERO,
            error: Some(message.into()),
        }
    }

    /// A `cancelled` outcome for a job cancelled before its container started.
    pub(crate) fn cancelled_before_start() -> Outcome {
        Outcome {
            status: FinalStatus::Cancelled,
            exit_code: None,
            duration: Duration::ZERO,
            error: Some("cancelled before the container started".into()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn injection_parses_both_paths_and_refuses_others() {
        assert_eq!("stdin".parse::<Injection>(), Ok(Injection::Stdin));
        assert_eq!(" ENV ".parse::<Injection>(), Ok(Injection::Env));
        let err = "file".parse::<Injection>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "the injection path is `stdin` or `env`, not \"file\""
        );
        assert_eq!(Injection::default(), Injection::Stdin);
        assert_eq!(Injection::Env.to_string(), "env");
    }
}
