//! `spedy-runner setup`: the three-step wizard that creates this host's
//! runner token and writes it into the `.env` file.
//!
//! Two halves, so that the logic needs no terminal:
//! - `wizard` collects the answers into a plain [`Answers`], from flags,
//!   the environment, defaults and (on a terminal) prompts;
//! - `connect` acts on them: creates the token, shows the platform's `.env`
//!   snippet, writes it (`envfile`), shows the readiness checklist and,
//!   when asked, waits for it to turn green.
//!
//! Invariants:
//! - The `.env` file is written once, atomically, and only after every
//!   answer is in and the platform created the token: a refused admin token,
//!   a "no" or a Ctrl-C before that leaves it untouched.
//! - An existing `SPEDY_RUNNER_TOKEN` is replaced only when the admin says so
//!   at the prompt, or passes `--force`; `--yes` alone refuses, before any
//!   token is created.
//! - The wizard never asks for the Anthropic key or a git token, and never
//!   shows a secret of the vault or of the `.env` file. The one secret it
//!   shows is the new runner token, inside the snippet, and only on a
//!   terminal (unattended output shows `rnt_…`, so CI logs never hold it).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use spedy_api::{AdminToken, Backend};
use url::Url;

use crate::exit;
use crate::settings::{DEFAULT_API_URL, DEFAULT_ENV_FILE, MAX_POOL_SIZE, Settings, SettingsArgs};

mod connect;
pub(crate) mod envfile;
mod wizard;

/// What `--help` shows after the options (the variant's doc comment in
/// `cli/mod.rs` is the summary).
const AFTER_HELP: &str = concat!(
    "1. AI backend: \"Anthropic API (platform-managed)\", where jobs use the
   ANTHROPIC_API_KEY kept in the platform's vault, or \"Local Claude
   installation (Max/Pro)\", where jobs use this host's Claude login.
2. Configuration: the pool size, how many jobs run in parallel (1 to 64;
   the default is half this host's CPUs, at least 1).
3. Review & Connect: a summary; the admin token (hidden input, or
   SPEDY_ADMIN_TOKEN, or --admin-token-file); the runner name (default:
   the host name); the platform creates the runner token; the exact .env
   snippet it returns is shown and written into the .env file (mode 0600,
   its other lines kept, only SPEDY_API_URL and SPEDY_RUNNER_TOKEN
   replaced); then the readiness checklist: ANTHROPIC_API_KEY in the vault,
   GitHub / Bitbucket from Integrations, each with the link that fixes it.

The wizard never asks for the Anthropic key or a git token: they live in
the platform's vault and Integrations. When the key is missing, the token
is still created, and the wizard offers to wait until the key is there
(Ctrl-C leaves the wait; setup still succeeds).

An existing SPEDY_RUNNER_TOKEN in the .env file is never replaced without
asking; unattended, pass --force to replace it.

Unattended (no terminal): pass --yes, --backend and an admin token
(SPEDY_ADMIN_TOKEN or --admin-token-file); --pool-size and --name default
as above. Setup then prints the checklist and exits 0 without waiting
(unless --wait). Without a terminal and without those, it exits 2 naming
the missing flags. On a terminal the token is shown inside the snippet;
otherwise it is shown as rnt_… (it is in the file).

Examples:

  spedy-runner setup
  spedy-runner setup --env-file /opt/spedy/.env
  SPEDY_ADMIN_TOKEN=sat_… spedy-runner setup --yes --backend anthropic-api \\
      --pool-size 4 --name build-host-1\n\n",
    crate::cli::doctor::claude::where_help!()
);

/// Arguments of the command; `--help` shows [`AFTER_HELP`].
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct Args {
    /// The AI backend of this runner's jobs.
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub backend: Option<BackendArg>,

    /// The runner's name on the platform. [default: this host's name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// A file holding the admin token (sat_…). Without it, the token comes
    /// from SPEDY_ADMIN_TOKEN, or a hidden prompt on a terminal.
    #[arg(long, value_name = "PATH")]
    pub admin_token_file: Option<PathBuf>,

    /// Ask nothing that a flag or a default answers (pool size, name), and
    /// do not ask to confirm. Needed without a terminal.
    #[arg(short, long)]
    pub yes: bool,

    /// Replace an existing SPEDY_RUNNER_TOKEN in the .env file without asking.
    #[arg(long)]
    pub force: bool,

    /// When the checklist is not green, wait and re-check until it is
    /// (Ctrl-C leaves), without asking.
    #[arg(long)]
    pub wait: bool,

    /// How often the wait re-checks readiness.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration, hide = true)]
    pub recheck_every: Duration,
}

/// `--backend` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// Anthropic API (platform-managed): the key comes from the vault.
    AnthropicApi,
    /// Local Claude installation (Max/Pro): this host's Claude login.
    LocalClaude,
}

impl From<BackendArg> for Backend {
    fn from(b: BackendArg) -> Backend {
        match b {
            BackendArg::AnthropicApi => Backend::AnthropicApi,
            BackendArg::LocalClaude => Backend::LocalClaude,
        }
    }
}

/// The product's names of the two backends.
pub fn backend_title(b: Backend) -> &'static str {
    match b {
        Backend::AnthropicApi => "Anthropic API (platform-managed)",
        Backend::LocalClaude => "Local Claude installation (Max/Pro)",
    }
}

/// Whether the wait for readiness happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Ask on the terminal.
    Ask,
    /// Wait without asking (`--wait`).
    Always,
    /// Do not wait (`--yes`, or no terminal).
    Never,
}

/// Everything setup needs to act: what the wizard collected.
#[derive(Debug)]
pub struct Answers {
    /// The AI backend.
    pub backend: Backend,
    /// How many jobs run at once.
    pub pool_size: u32,
    /// The runner's name.
    pub name: String,
    /// The admin token that creates the runner token.
    pub admin_token: AdminToken,
    /// Whether an existing SPEDY_RUNNER_TOKEN may be replaced.
    pub replace_token: bool,
    /// Whether to wait for readiness.
    pub wait: Wait,
    /// How often the wait re-checks.
    pub recheck_every: Duration,
}

/// Where setup connects and writes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The platform.
    pub api_url: Url,
    /// The `.env` file to write.
    pub env_file: PathBuf,
    /// An extra CA certificate to trust.
    pub ca_file: Option<PathBuf>,
    /// Whether prompts, spinners and the plain token may be shown.
    pub interactive: bool,
}

/// The default pool size: half the host's CPUs, at least 1, at most 64.
/// Agent jobs build and test code, so each gets about two cores.
pub fn default_pool_size() -> u32 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cpus / 2)
        .unwrap_or(MAX_POOL_SIZE)
        .clamp(1, MAX_POOL_SIZE)
}

/// This host's name, the default runner name.
pub fn default_name() -> String {
    let name = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_owned();
    if name.is_empty() {
        "spedy-runner".to_owned()
    } else {
        name
    }
}

/// Where setup connects and writes: the settings when they resolve, else
/// the flags, their env twins and the defaults (setup must work on a host
/// whose current settings are broken, since it is how they get fixed).
fn target(global: &SettingsArgs, interactive: bool) -> anyhow::Result<Target> {
    if let Ok(s) = Settings::resolve(global) {
        return Ok(Target {
            api_url: s.api_url.value,
            env_file: s.env_file.value,
            ca_file: s.ca_file.map(|c| c.value),
            interactive,
        });
    }
    let raw = global.api_url.as_deref().unwrap_or(DEFAULT_API_URL);
    let api_url =
        Url::parse(raw).map_err(|e| anyhow::anyhow!("invalid --api-url / SPEDY_API_URL: {e}"))?;
    Ok(Target {
        api_url,
        env_file: global
            .env_file
            .clone()
            .unwrap_or_else(|| DEFAULT_ENV_FILE.into()),
        ca_file: global.ca_file.clone(),
        interactive,
    })
}

/// Runs `spedy-runner setup`.
pub async fn run(args: Args, global: SettingsArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let target = target(&global, interactive)?;
    let current = envfile::read_current(&target.env_file)?;
    let existing = envfile::existing_token_line(&current);
    let plan = wizard::Plan::new(&args, &global, &target, existing);
    if let (false, Err(missing)) = (interactive, plan.unattended_ready()) {
        eprintln!(
            "error: setup needs a terminal to ask its questions, or these flags: {}\n\n\
             Run it on a terminal, or pass them, e.g.:\n  \
             SPEDY_ADMIN_TOKEN=sat_… spedy-runner setup --yes --backend anthropic-api",
            missing.join(", ")
        );
        return Ok(exit::failure());
    }
    let Some(answers) = wizard::collect(plan).await? else {
        return Ok(exit::failure());
    };
    connect::act(answers, target, existing).await
}
