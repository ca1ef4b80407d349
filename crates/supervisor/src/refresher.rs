//! The refresher: the one writer of [`RunnerState`]. It bootstraps, holds
//! the bundle in memory, and fetches it again on the schedule of
//! [`crate::schedule`].
//!
//! # Theory of operation
//! Each turn of the loop drops the entries of the held bundle that have
//! expired, calls `POST /runners/bootstrap`, and then:
//! - **on success** builds the new bundle, the local overrides (the `.env`
//!   and the legacy process env, local wins) and one [`Redactor`] over every
//!   value (and the runner token), swaps the log writer's redactor to it,
//!   and publishes [`RunnerState::Online`]. A job that started earlier keeps
//!   its own snapshot. Local values that shadow a platform value are logged
//!   once, by name only.
//! - **on a transient failure** (see [`crate::classify`]) counts it, keeps
//!   serving the last good bundle minus expired entries (offline
//!   `Unreachable` only when none is held), and retries after a jittered
//!   exponential backoff (or the platform's `Retry-After`, if longer).
//! - **on `401`** publishes `Offline(InvalidToken)`: the claimer stops, the
//!   bundle is dropped (zeroized once the last running job lets go of it),
//!   and the token is checked again every `invalid_token_recheck`. An
//!   actionable line is logged once. A token that turns valid brings the
//!   runner online again without a restart.
//! - **on `409`** publishes `Offline(AnthropicKeyMissing)`, logs the deep
//!   link once and checks again every `key_missing_recheck` (or every
//!   `SPEDY_REFRESH_INTERVAL`, when that is set and shorter).
//! - **on a fatal error** (the local configuration cannot work) returns it,
//!   which stops the runner.
//!
//! On shutdown it publishes `Offline(ShuttingDown)` and returns.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use spedy_api::{ANTHROPIC_API_KEY, Backend, BootstrapRequest, BootstrapResponse, RunnerToken};
use spedy_client::RunnerApi;
use spedy_client::backoff::Backoff;
use spedy_secrets::{LocalOverrides, Redactor, RedactorHandle, SecretBundle};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::Error;
use crate::classify::{Action, classify};
use crate::config::{LocalSources, Timers};
use crate::metrics::Metrics;
use crate::schedule::{self, Schedule};
use crate::state::{OfflineReason, Online, RunnerState};

/// Fetches and holds the bundle; publishes the runner's state.
pub struct Refresher {
    api: RunnerApi,
    /// Kept to redact the token itself from the runner's own log.
    token: RunnerToken,
    local: LocalSources,
    /// The bootstrap body: the names of `local`, which never change while
    /// the process runs, so it is built once.
    request: BootstrapRequest,
    refresh_override: Option<Duration>,
    timers: Timers,
    metrics: Arc<Metrics>,
    /// The only sender of the state; receivers are the claimer, health and
    /// `Supervisor::state`. Dropped when the refresher returns.
    state: watch::Sender<RunnerState>,
    /// The log writer's redactor slot, swapped at each refresh.
    log_redactor: Option<RedactorHandle>,
    backoff: Backoff,
    /// The offline reason last logged, so each is logged once per episode.
    logged_offline: Option<&'static str>,
    /// Names already logged as shadowed by a local value.
    logged_shadowed: HashSet<String>,
}

/// What a turn of the loop decided.
struct Next {
    delay: Duration,
}

impl Refresher {
    /// A refresher that publishes on `state`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        api: RunnerApi,
        token: RunnerToken,
        local: LocalSources,
        refresh_override: Option<Duration>,
        timers: Timers,
        metrics: Arc<Metrics>,
        state: watch::Sender<RunnerState>,
        log_redactor: Option<RedactorHandle>,
    ) -> Self {
        let backoff = Backoff::new(timers.backoff_base, timers.backoff_cap);
        let request = bootstrap_request(&local);
        Refresher {
            api,
            token,
            local,
            request,
            refresh_override,
            timers,
            metrics,
            state,
            log_redactor,
            backoff,
            logged_offline: None,
            logged_shadowed: HashSet::new(),
        }
    }

    /// Runs until `shutdown` is cancelled; returns an error only when the
    /// local configuration cannot work.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), Error> {
        loop {
            self.drop_expired(OffsetDateTime::now_utc());
            let answer = tokio::select! {
                () = shutdown.cancelled() => break,
                answer = self.api.bootstrap_with(&self.request) => answer,
            };
            let next = match answer {
                Ok(answer) => self.on_success(answer),
                Err(err) => self.on_failure(err)?,
            };
            debug!(
                next_refresh_in = %humantime::format_duration(round(next.delay)),
                "next bundle refresh scheduled"
            );
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(next.delay) => {}
            }
        }
        self.state
            .send_replace(RunnerState::Offline(OfflineReason::ShuttingDown));
        self.metrics.set_online(false);
        Ok(())
    }

    /// Publishes the held bundle again without its expired entries, when any
    /// has expired.
    fn drop_expired(&self, now: OffsetDateTime) {
        let Some(online) = self.state.borrow().online() else {
            return;
        };
        if online.bundle.earliest_expiry().is_none_or(|e| e > now) {
            return;
        }
        let bundle = Arc::new(online.bundle.without_expired(now));
        info!(
            version = %bundle.version(),
            "an entry of the held bundle expired and is no longer handed to jobs"
        );
        self.state
            .send_replace(RunnerState::Online(Arc::new(Online {
                runner: online.runner.clone(),
                backend: online.backend,
                bundle,
                overrides: Arc::clone(&online.overrides),
                redactor: Arc::clone(&online.redactor),
            })));
    }

    fn on_success(&mut self, answer: BootstrapResponse) -> Next {
        let now = OffsetDateTime::now_utc();
        let interval = self
            .refresh_override
            .unwrap_or(Duration::from_secs(answer.bundle.refresh_after_s));
        let runner = answer.runner;
        let bundle = SecretBundle::from_wire(answer.bundle);
        let overrides = LocalOverrides::collect(
            self.local.dotenv.clone(),
            self.local
                .process_env
                .iter()
                .map(|(k, v)| (k.clone(), v.expose_secret().to_owned())),
            &bundle.names(),
        );
        self.log_shadowed(&overrides, &bundle);
        self.log_local_only_key(&overrides, &bundle, runner.backend);
        let redactor = Arc::new(self.redactor(&bundle, &overrides));
        if let Some(slot) = &self.log_redactor {
            slot.set(Arc::clone(&redactor));
        }
        let previous = self.state.borrow().online();
        let changed = previous
            .as_ref()
            .is_some_and(|p| p.bundle.version() != bundle.version());
        let bundle = Arc::new(bundle.without_expired(now));
        let schedule = Schedule {
            interval,
            lead: self.timers.expiry_lead,
            min: self.timers.min_refresh,
        };
        let delay = schedule.next_refresh(now, bundle.earliest_expiry(), schedule::draw());
        if previous.is_none() {
            info!(
                runner_id = %runner.id,
                runner_name = %runner.name,
                backend = %runner.backend,
                bundle_version = %bundle.version(),
                entries = bundle.len(),
                "online: the bundle is held in memory and jobs are claimed"
            );
        } else if changed {
            info!(bundle_version = %bundle.version(), "the bundle changed; new jobs get the new values");
        }
        self.state
            .send_replace(RunnerState::Online(Arc::new(Online {
                backend: runner.backend,
                runner,
                bundle,
                overrides: Arc::new(overrides),
                redactor,
            })));
        self.metrics.bundle_fetched(changed);
        self.metrics.set_online(true);
        self.backoff.reset();
        self.logged_offline = None;
        Next { delay }
    }

    fn on_failure(&mut self, err: spedy_client::Error) -> Result<Next, Error> {
        let failure = classify(&err);
        self.metrics.refresh_failed(failure.reason);
        let delay = match failure.action {
            Action::Retry => self.retry(&err, failure.reason),
            Action::InvalidToken => {
                self.go_offline(OfflineReason::InvalidToken);
                if self.log_once("invalid_token") {
                    error!(
                        reason = failure.reason,
                        "the platform refused the runner token (revoked or unknown): no new jobs are \
                         claimed, running jobs finish, and the bundle was dropped. Create a new token \
                         with `spedy-runner setup` and restart the runner with it; if this token turns \
                         valid again, the runner goes online by itself"
                    );
                }
                self.timers.invalid_token_recheck
            }
            Action::KeyMissing { link } => {
                self.go_offline(OfflineReason::AnthropicKeyMissing { link: link.clone() });
                if self.log_once("anthropic_key_missing") {
                    let link = link
                        .as_deref()
                        .unwrap_or("the Secrets tab of the platform's settings");
                    if self.has_local_key() {
                        warn!(
                            link,
                            "the vault has no ANTHROPIC_API_KEY, so the platform withholds the bundle \
                             and no jobs are claimed, although this host sets one locally. Store the \
                             key in the vault (Secrets tab); the runner goes online by itself within a \
                             minute, and the local value keeps winning until you remove its line"
                        );
                    } else {
                        warn!(
                            link,
                            "the vault has no ANTHROPIC_API_KEY, so the platform withholds the bundle: \
                             no jobs are claimed. Add the key in the Secrets tab; the runner goes online \
                             by itself within a minute"
                        );
                    }
                }
                // Never less often than a refresh interval set locally, so a
                // runner told to refresh every 30 s also rechecks that often.
                self.timers
                    .key_missing_recheck
                    .min(self.refresh_override.unwrap_or(Duration::MAX))
            }
            Action::Fatal => return Err(Error::Platform(err)),
        };
        Ok(Next { delay })
    }

    /// A transient failure: keep what is held, back off.
    fn retry(&mut self, err: &spedy_client::Error, reason: &'static str) -> Duration {
        let holding = self.state.borrow().is_online();
        if !holding {
            self.go_offline(OfflineReason::Unreachable);
        }
        let mut delay = self
            .backoff
            .next_delay()
            .max(err.retry_after().unwrap_or_default());
        // Wake up when a held entry expires, so it stops being handed out
        // then, not at the next attempt.
        let expiry = self
            .state
            .borrow()
            .online()
            .and_then(|o| o.bundle.earliest_expiry());
        if let Some(until) =
            expiry.and_then(|at| Duration::try_from(at - OffsetDateTime::now_utc()).ok())
        {
            delay = delay.min(until.max(self.timers.min_refresh));
        }
        let attempt = self.backoff.attempts();
        let error = format!("{err:#}");
        if holding {
            warn!(reason, attempt, %error, retry_in = %humantime::format_duration(round(delay)),
                "bundle refresh failed; the last good bundle keeps serving");
        } else {
            warn!(reason, attempt, %error, retry_in = %humantime::format_duration(round(delay)),
                "bootstrap failed; no jobs are claimed until it succeeds");
        }
        delay
    }

    /// Publishes an offline state, dropping the held bundle.
    fn go_offline(&mut self, reason: OfflineReason) {
        let was_online = self.state.borrow().is_online();
        self.state.send_replace(RunnerState::Offline(reason));
        self.metrics.set_online(false);
        if was_online {
            self.metrics.bundle_dropped();
        }
    }

    /// Whether this host sets ANTHROPIC_API_KEY itself (the `.env` or the
    /// process environment): the migration is half done.
    fn has_local_key(&self) -> bool {
        let name = spedy_api::ANTHROPIC_API_KEY;
        self.local.dotenv.iter().any(|e| e.key == name)
            || self.local.process_env.iter().any(|(k, _)| k == name)
    }

    /// Whether `reason` was not logged yet in this offline episode.
    fn log_once(&mut self, reason: &'static str) -> bool {
        if self.logged_offline == Some(reason) {
            return false;
        }
        self.logged_offline = Some(reason);
        true
    }

    /// Logs once when the Anthropic key comes only from this host, with the
    /// migration's first step.
    fn log_local_only_key(
        &mut self,
        overrides: &LocalOverrides,
        bundle: &SecretBundle,
        backend: Backend,
    ) {
        let local_only = backend == Backend::AnthropicApi
            && overrides.get(ANTHROPIC_API_KEY).is_some()
            && !bundle.names().contains(&ANTHROPIC_API_KEY);
        if local_only
            && self
                .logged_shadowed
                .insert(format!("{ANTHROPIC_API_KEY} (local only)"))
        {
            info!(
                name = ANTHROPIC_API_KEY,
                "the vault has no {ANTHROPIC_API_KEY}; jobs get this host's local value. Store it in \
                 the vault (Settings → Runners → Secrets), then remove the local line"
            );
        }
    }

    fn log_shadowed(&mut self, overrides: &LocalOverrides, bundle: &SecretBundle) {
        for name in overrides.shadowed(bundle) {
            if self.logged_shadowed.insert(name.clone()) {
                info!(
                    name = %name,
                    "a local value shadows the platform's {name}: the local one is used. Once the vault \
                     holds the value you want, remove the local line (the .env file, or the environment)"
                );
            }
        }
    }

    /// One redactor over every value the runner holds: the bundle, the local
    /// overrides and the runner token.
    fn redactor(&self, bundle: &SecretBundle, overrides: &LocalOverrides) -> Redactor {
        let values = bundle
            .entries()
            .iter()
            .map(|e| (e.env.as_str(), e.value.expose_secret()))
            .chain(
                overrides
                    .entries()
                    .iter()
                    .map(|o| (o.name.as_str(), o.value.expose_secret())),
            )
            .chain([("SPEDY_RUNNER_TOKEN", self.token.expose())]);
        Redactor::from_pairs(values)
    }
}

/// Rounds a delay to milliseconds for logging.
fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX))
}

/// The bootstrap body: the names (never the values) of what this host holds
/// locally, so a host whose Anthropic key is still only local is not gated by
/// `409 anthropic_key_missing` (see `BootstrapRequest`).
fn bootstrap_request(local: &LocalSources) -> BootstrapRequest {
    let no_bundle: &[&str] = &[];
    let overrides = LocalOverrides::collect(
        local.dotenv.clone(),
        local
            .process_env
            .iter()
            .map(|(k, v)| (k.clone(), v.expose_secret().to_owned())),
        no_bundle,
    );
    BootstrapRequest {
        local_env: overrides.names().into_iter().map(str::to_owned).collect(),
    }
}
