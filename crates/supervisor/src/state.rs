//! The runner's state as every part of the supervisor sees it: starting,
//! online with a bundle, or offline for a reason.
//!
//! The refresher is the only writer; it owns the `watch::Sender<RunnerState>`.
//! The claimer, the health endpoint and the metrics hold receivers. A job takes
//! a snapshot (`Arc<Online>`) when it starts and keeps it to its end, so a
//! refresh never changes the secrets of a running job; the old bundle is
//! zeroized when the last job holding it ends.
//!
//! Invariant: the bundle inside [`Online`] is already filtered of expired
//! entries, and a state other than [`RunnerState::Online`] holds no secret.

use std::fmt;
use std::sync::Arc;

use spedy_api::{Backend, RunnerInfo};
use spedy_secrets::{LocalOverrides, Redactor, SecretBundle};

/// What a job needs from an online runner: who it is, the bundle, the local
/// overrides and the redactor built over both. Shared as `Arc<Online>`.
pub struct Online {
    /// Who the runner is, as the platform answered at the last bootstrap.
    pub runner: RunnerInfo,
    /// The AI backend in force (the platform's value).
    pub backend: Backend,
    /// The bundle, already filtered of expired entries. Zeroized on drop.
    pub bundle: Arc<SecretBundle>,
    /// The local overrides (the `.env` and the legacy process environment).
    pub overrides: Arc<LocalOverrides>,
    /// The redactor over every value of the bundle and the overrides; the
    /// same matcher the log writer uses.
    pub redactor: Arc<Redactor>,
}

impl fmt::Debug for Online {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Online")
            .field("runner", &self.runner.id)
            .field("backend", &self.backend)
            .field("bundle_version", &self.bundle.version())
            .finish_non_exhaustive()
    }
}

/// Why the runner claims nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OfflineReason {
    /// The platform cannot be reached (or answers errors) and no good bundle
    /// is held; the refresher retries with backoff.
    Unreachable,
    /// The platform answered `401 invalid_token`: the bundle was dropped; the
    /// refresher keeps checking slowly in case the token turns valid.
    InvalidToken,
    /// The platform answered `409 anthropic_key_missing`: no bundle until the
    /// key is in the vault; checked every minute.
    AnthropicKeyMissing {
        /// The deep link to the Secrets tab, when the platform sent one.
        link: Option<String>,
    },
    /// The runner is shutting down: no new claims.
    ShuttingDown,
}

impl OfflineReason {
    /// A short machine name, for metrics and `/readyz`.
    pub fn as_str(&self) -> &'static str {
        match self {
            OfflineReason::Unreachable => "unreachable",
            OfflineReason::InvalidToken => "invalid_token",
            OfflineReason::AnthropicKeyMissing { .. } => "anthropic_key_missing",
            OfflineReason::ShuttingDown => "shutting_down",
        }
    }
}

/// Where the runner stands. Shared as `tokio::sync::watch::Receiver<RunnerState>`.
#[derive(Debug, Clone)]
pub enum RunnerState {
    /// No bootstrap has answered yet.
    Starting,
    /// A bundle is held and not gated: jobs may be claimed.
    Online(Arc<Online>),
    /// No claims, for this reason.
    Offline(OfflineReason),
}

impl RunnerState {
    /// The snapshot a job keeps, when online.
    pub fn online(&self) -> Option<Arc<Online>> {
        match self {
            RunnerState::Online(o) => Some(Arc::clone(o)),
            _ => None,
        }
    }

    /// Whether jobs may be claimed.
    pub fn is_online(&self) -> bool {
        matches!(self, RunnerState::Online(_))
    }

    /// A short machine name (`starting`, `online`, or the offline reason).
    pub fn as_str(&self) -> &'static str {
        match self {
            RunnerState::Starting => "starting",
            RunnerState::Online(_) => "online",
            RunnerState::Offline(r) => r.as_str(),
        }
    }
}
