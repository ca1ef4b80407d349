//! The supervisor's checked configuration: built by `spedy-runner run` from
//! its `Settings`, or by a test with sub-second timers.
//!
//! Everything here is already checked; the supervisor does no parsing. Every
//! timer is a field so tests can shrink it (`Timers`, `JobSettings`).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;
use spedy_api::RunnerToken;
use spedy_docker::{Injection, Limits};
use spedy_secrets::RedactorHandle;
use spedy_secrets::dotenv::DotenvEntry;

/// How long running jobs may take to finish after the first signal.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(600);
/// The health and metrics address.
pub const DEFAULT_HEALTH_ADDR: &str = "127.0.0.1:9477";

/// How jobs are run: what the claimer and each job task need.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// How the entitled secrets reach the container.
    pub injection: Injection,
    /// Memory, CPU and pids limits of each job container.
    pub limits: Limits,
    /// How long a stopped container gets before it is killed.
    pub stop_grace: Duration,
    /// How often a running job sends a heartbeat.
    pub heartbeat_interval: Duration,
    /// How long a claim may be held open by the platform (long-poll).
    pub claim_wait_s: u64,
    /// A log batch is sent when it reaches this many bytes…
    pub log_batch_max_bytes: usize,
    /// …or when this much time has passed since its first chunk.
    pub log_flush_interval: Duration,
    /// How many chunks may wait to be shipped before reading the container
    /// stops (Docker then holds the output).
    pub log_buffer_chunks: usize,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            injection: Injection::Stdin,
            limits: Limits::default(),
            stop_grace: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(5),
            claim_wait_s: 25,
            log_batch_max_bytes: 64 * 1024,
            log_flush_interval: Duration::from_millis(500),
            log_buffer_chunks: 256,
        }
    }
}

/// The refresher's timers, injectable so tests run in well under a second.
#[derive(Debug, Clone)]
pub struct Timers {
    /// How often to check again while the vault lacks the Anthropic key
    /// (`409`). One minute.
    pub key_missing_recheck: Duration,
    /// How often to check again while the token is refused (`401`), in case
    /// it turns valid. Five minutes: slowly, it is most likely revoked.
    pub invalid_token_recheck: Duration,
    /// The first delay after a transient failure; it doubles up to `backoff_cap`.
    pub backoff_base: Duration,
    /// The longest delay between two attempts after transient failures.
    pub backoff_cap: Duration,
    /// A refresh comes this long before an entry's `expires_at` (or at half
    /// its remaining lifetime when that is sooner). Five minutes.
    pub expiry_lead: Duration,
    /// The shortest delay between two refreshes, whatever the schedule says,
    /// so a bundle full of expired entries cannot make the runner spin.
    pub min_refresh: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            key_missing_recheck: Duration::from_secs(60),
            invalid_token_recheck: Duration::from_secs(300),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            expiry_lead: Duration::from_secs(300),
            min_refresh: Duration::from_secs(1),
        }
    }
}

/// What the runner holds locally besides its settings: the `.env` file's
/// other lines and the process environment, from which the local overrides
/// are drawn at each refresh (they depend on the names the bundle delivers).
#[derive(Default, Clone)]
pub struct LocalSources {
    /// The `.env` lines that are not `SPEDY_*` settings, in file order.
    pub dotenv: Vec<DotenvEntry>,
    /// The runner's own environment (names and values), read once at start.
    pub process_env: Vec<(String, SecretString)>,
}

impl fmt::Debug for LocalSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSources")
            .field("dotenv_lines", &self.dotenv.len())
            .field("process_env_vars", &self.process_env.len())
            .finish()
    }
}

/// The supervisor's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The platform client (base URL, extra CA, timeouts already set).
    pub client: spedy_client::Client,
    /// The runner token.
    pub token: RunnerToken,
    /// The local `.env` lines and the process environment.
    pub local: LocalSources,
    /// Overrides the platform's pool size (`SPEDY_POOL_SIZE`).
    pub pool_size: Option<u32>,
    /// Overrides the platform's `refresh_after_s` (`SPEDY_REFRESH_INTERVAL`).
    pub refresh_interval: Option<Duration>,
    /// Where `/healthz`, `/readyz` and `/metrics` are served; `None` serves
    /// nothing. Port 0 picks a free port (see `Supervisor::health_addr`).
    pub health_addr: Option<SocketAddr>,
    /// How long running jobs may take after the first signal.
    pub shutdown_grace: Duration,
    /// How jobs are run.
    pub jobs: JobSettings,
    /// The refresher's timers.
    pub timers: Timers,
    /// The log writer's redactor, rebuilt at each refresh; `None` when no
    /// redacting log writer is installed (tests).
    pub log_redactor: Option<RedactorHandle>,
}
