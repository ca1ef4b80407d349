//! The runner's settings: what the user typed or set ([`SettingsArgs`], clap),
//! then the checked and typed values, each with where it came from
//! ([`Settings`], [`Setting`], [`Source`]).
//!
//! Precedence, highest first (`shared/design/runner.md`): a command-line flag,
//! the process environment, the `SPEDY_*` lines of the local `.env` file,
//! `config.toml`, the platform's values (pool size, refresh interval, known
//! only after bootstrap, so a setting here is `None` when it defers to them),
//! built-in defaults.
//!
//! [`Settings::resolve`] does file I/O (the `.env`, `config.toml`, the token
//! file) but no network call, and checks every value first: the token
//! format, the URL scheme, durations, the pool size. An error names the
//! setting and where its value came from (flag, env var, or `file:line`),
//! never the value of a secret.
//!
//! The `.env` file is parsed by `spedy_secrets::dotenv` (Docker Compose's
//! rules) and never loaded into the process environment. Its `SPEDY_*` lines
//! are settings; every other line is a local override for jobs
//! ([`Settings::local_env`]).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;
use spedy_api::RunnerToken;
use spedy_secrets::DotenvError;
use spedy_secrets::dotenv::{self, DotenvEntry};
use url::Url;

/// The platform URL when nothing sets one.
pub const DEFAULT_API_URL: &str = "https://api.spedy.ai";
/// The `.env` file read when nothing names one.
pub const DEFAULT_ENV_FILE: &str = ".env";
/// The health and metrics address.
pub const DEFAULT_HEALTH_ADDR: &str = "127.0.0.1:9477";
/// How long running jobs may take after the first signal.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(600);
/// The system-wide config file, read when no user config file exists.
pub const SYSTEM_CONFIG: &str = "/etc/spedy-runner/config.toml";
/// The largest pool size accepted.
pub const MAX_POOL_SIZE: u32 = 64;
/// The env name of the runner token (no flag on purpose: a flag would show in `ps`).
pub const TOKEN_ENV: &str = "SPEDY_RUNNER_TOKEN";

/// Settings every command shares; each flag has an environment twin.
///
/// The runner token has no flag, so it never shows in `ps`: set
/// SPEDY_RUNNER_TOKEN (in the environment or the `.env` file), or point
/// `--token-file` at a file that holds it.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Settings (flag, or its environment twin)")]
pub struct SettingsArgs {
    /// The platform's URL (https, or http on a loopback address only)
    /// [default: https://api.spedy.ai]
    #[arg(long, env = "SPEDY_API_URL", global = true, value_name = "URL")]
    pub api_url: Option<String>,

    /// A file holding the runner token (`rnt_…`). Without it, the token comes
    /// from SPEDY_RUNNER_TOKEN, in the environment or the `.env` file.
    #[arg(
        long,
        env = "SPEDY_RUNNER_TOKEN_FILE",
        global = true,
        value_name = "PATH"
    )]
    pub token_file: Option<PathBuf>,

    /// The local `.env` file: its SPEDY_* lines are settings, every other line
    /// is a local override handed to jobs. Parsed, never loaded into the
    /// environment. [default: ./.env, skipped when absent]
    #[arg(long, env = "SPEDY_ENV_FILE", global = true, value_name = "PATH")]
    pub env_file: Option<PathBuf>,

    /// The config file. [default: $XDG_CONFIG_HOME/spedy-runner/config.toml,
    /// then /etc/spedy-runner/config.toml]
    #[arg(long, env = "SPEDY_CONFIG", global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// How many jobs may run at once, 1 to 64. [default: the platform's value
    /// for this runner]
    #[arg(long, env = "SPEDY_POOL_SIZE", global = true, value_name = "N")]
    pub pool_size: Option<String>,

    /// How often the secret bundle is fetched again (`90s`, `15m`).
    /// [default: the platform's `refresh_after_s`, 15m]
    #[arg(
        long,
        env = "SPEDY_REFRESH_INTERVAL",
        global = true,
        value_name = "DURATION"
    )]
    pub refresh_interval: Option<String>,

    /// Where `/healthz`, `/readyz` and `/metrics` are served; port 0 picks a
    /// free port. [default: 127.0.0.1:9477]
    #[arg(long, env = "SPEDY_HEALTH_ADDR", global = true, value_name = "ADDR")]
    pub health_addr: Option<String>,

    /// Log format, `text` or `json`. [default: text on a terminal, json
    /// otherwise]. The level comes from SPEDY_LOG (EnvFilter syntax, RUST_LOG
    /// as a fallback), which wins over -v/-q.
    #[arg(long, env = "SPEDY_LOG_FORMAT", global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// How long running jobs may take to finish after the first SIGTERM or
    /// SIGINT, before they are stopped and reported `cancelled`. [default: 10m]
    #[arg(
        long,
        env = "SPEDY_SHUTDOWN_GRACE",
        global = true,
        value_name = "DURATION"
    )]
    pub shutdown_grace: Option<String>,

    /// How secrets reach a job's container: `stdin` (handed to the job's init
    /// over stdin, never in the container's config) or `env` (plain container
    /// env, visible to `docker inspect`). [default: stdin]
    #[arg(long, env = "SPEDY_INJECTION", global = true, value_name = "MODE")]
    pub injection: Option<String>,

    /// Memory limit of each job container (`512m`, `4g`); swap is off. [default: 4g]
    #[arg(long, env = "SPEDY_JOB_MEMORY", global = true, value_name = "SIZE")]
    pub job_memory: Option<String>,

    /// CPU limit of each job container, in CPUs (`1.5`), at most the host's
    /// CPU count. [default: no limit]
    #[arg(long, env = "SPEDY_JOB_CPUS", global = true, value_name = "CPUS")]
    pub job_cpus: Option<String>,

    /// Process (and thread) limit of each job container. [default: 1024]
    #[arg(long, env = "SPEDY_JOB_PIDS", global = true, value_name = "N")]
    pub job_pids: Option<String>,

    /// An extra CA certificate (PEM) to trust, for a platform behind a TLS
    /// proxy.
    #[arg(long, env = "SPEDY_CA_FILE", global = true, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// More log output (-v debug, -vv trace). SPEDY_LOG wins over it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Less log output (-q warnings and errors only, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// The process environment, under this name.
    Env(String),
    /// A line of the local `.env` file.
    DotEnv {
        /// The file.
        path: PathBuf,
        /// The line, counting from 1.
        line: usize,
    },
    /// The config file.
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The line, counting from 1, when known.
        line: Option<usize>,
    },
    /// The built-in default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("the command line"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::DotEnv { path, line } => write!(f, "{}:{line}", path.display()),
            Source::ConfigFile {
                path,
                line: Some(line),
            } => write!(f, "{}:{line}", path.display()),
            Source::ConfigFile { path, line: None } => write!(f, "{}", path.display()),
            Source::Default => f.write_str("the default"),
        }
    }
}

/// A checked value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

impl<T> Setting<T> {
    fn new(value: T, source: Source) -> Self {
        Setting { value, source }
    }
}

/// The log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// How secrets reach a job's container (mapped onto `spedy_docker::Injection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectionMode {
    /// Over the container's stdin, to the job's init.
    Stdin,
    /// As plain container env.
    Env,
}

/// The checked settings. Secrets inside (the token, the `.env` values) are
/// in `secrecy` types; `Debug` shows no value.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The platform URL.
    pub api_url: Setting<Url>,
    /// The runner token; `None` when nothing sets one (see [`Settings::token`]).
    pub token: Option<Setting<RunnerToken>>,
    /// The `.env` file, and whether it exists.
    pub env_file: Setting<PathBuf>,
    /// Whether the `.env` file was found and read.
    pub env_file_found: bool,
    /// The config file that was read, if any.
    pub config_file: Option<Setting<PathBuf>>,
    /// The pool size; `None` defers to the platform.
    pub pool_size: Option<Setting<u32>>,
    /// The refresh interval; `None` defers to the platform.
    pub refresh_interval: Option<Setting<Duration>>,
    /// Where health and metrics are served.
    pub health_addr: Setting<SocketAddr>,
    /// The log format.
    pub log_format: Setting<LogFormat>,
    /// How long running jobs may take after the first signal.
    pub shutdown_grace: Setting<Duration>,
    /// How secrets reach job containers.
    pub injection: Setting<InjectionMode>,
    /// Memory limit of each job container, in bytes.
    pub job_memory: Option<Setting<u64>>,
    /// CPU limit of each job container, in CPUs.
    pub job_cpus: Option<Setting<f64>>,
    /// Process limit of each job container.
    pub job_pids: Option<Setting<i64>>,
    /// An extra CA certificate to trust.
    pub ca_file: Option<Setting<PathBuf>>,
    /// The `.env` lines that are not `SPEDY_*` settings: local overrides.
    pub local_env: Vec<DotenvEntry>,
    /// `SPEDY_*` names in the `.env` or the config file that no setting has
    /// (likely typos), with where they are; `run` and `doctor` warn.
    pub unknown: Vec<(String, Source)>,
}

/// Why the settings are refused. Names the setting and where its value came
/// from; never holds a secret's value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A value is malformed or out of range.
    #[error("invalid {setting} from {origin}: {reason}")]
    Invalid {
        /// The setting, named as the user set it (flag or env name).
        setting: String,
        /// Where the value came from.
        origin: Source,
        /// What is wrong (never a secret's value).
        reason: String,
    },
    /// No runner token is set.
    #[error(
        "no runner token: set SPEDY_RUNNER_TOKEN (in the environment or the .env file) or pass --token-file\n\nCreate a token with `spedy-runner setup`."
    )]
    MissingToken,
    /// A file named by a setting cannot be read.
    #[error("cannot read {what} {} (named by {origin})", path.display())]
    Read {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Where the path came from.
        origin: Source,
        /// The I/O error.
        #[source]
        err: std::io::Error,
    },
    /// The `.env` file is malformed (the error names `file:line`).
    #[error(transparent)]
    DotEnv(#[from] DotenvError),
    /// The config file is malformed.
    #[error("malformed config file {}: {message}", location(path, *line))]
    Config {
        /// The file.
        path: PathBuf,
        /// The line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

fn location(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{}:{l}", path.display()),
        None => path.display().to_string(),
    }
}

/// One setting's names: for messages, the process env, the `.env` and the
/// config file.
struct Key {
    flag: &'static str,
    env: &'static str,
    toml: &'static str,
}

const fn key(flag: &'static str, env: &'static str, toml: &'static str) -> Key {
    Key { flag, env, toml }
}

const API_URL: Key = key("--api-url", "SPEDY_API_URL", "api_url");
const TOKEN_FILE: Key = key("--token-file", "SPEDY_RUNNER_TOKEN_FILE", "token_file");
const ENV_FILE: Key = key("--env-file", "SPEDY_ENV_FILE", "env_file");
const CONFIG: Key = key("--config", "SPEDY_CONFIG", "config");
const POOL_SIZE: Key = key("--pool-size", "SPEDY_POOL_SIZE", "pool_size");
const REFRESH: Key = key(
    "--refresh-interval",
    "SPEDY_REFRESH_INTERVAL",
    "refresh_interval",
);
const HEALTH: Key = key("--health-addr", "SPEDY_HEALTH_ADDR", "health_addr");
const LOG_FORMAT: Key = key("--log-format", "SPEDY_LOG_FORMAT", "log_format");
const GRACE: Key = key("--shutdown-grace", "SPEDY_SHUTDOWN_GRACE", "shutdown_grace");
const INJECTION: Key = key("--injection", "SPEDY_INJECTION", "injection");
const JOB_MEMORY: Key = key("--job-memory", "SPEDY_JOB_MEMORY", "job_memory");
const JOB_CPUS: Key = key("--job-cpus", "SPEDY_JOB_CPUS", "job_cpus");
const JOB_PIDS: Key = key("--job-pids", "SPEDY_JOB_PIDS", "job_pids");
const CA_FILE: Key = key("--ca-file", "SPEDY_CA_FILE", "ca_file");
const TOKEN: Key = key("SPEDY_RUNNER_TOKEN", TOKEN_ENV, "token");

/// Every setting that a `.env` line or the config file may hold.
const FILE_KEYS: [&Key; 14] = [
    &API_URL,
    &TOKEN_FILE,
    &POOL_SIZE,
    &REFRESH,
    &HEALTH,
    &LOG_FORMAT,
    &GRACE,
    &INJECTION,
    &JOB_MEMORY,
    &JOB_CPUS,
    &JOB_PIDS,
    &CA_FILE,
    &TOKEN,
    &CONFIG,
];

/// `SPEDY_*` names that are read elsewhere (logging, the `.env` location
/// itself) and so are not unknown when found in a file.
const OTHER_KNOWN: [&str; 2] = ["SPEDY_LOG", "SPEDY_ENV_FILE"];

/// A raw value before checking, with its source.
type Raw = (String, Source);

/// What the lower layers hold: the `.env`'s SPEDY_* lines and the config file.
struct Layers {
    dotenv: HashMap<String, (String, Source)>,
    config: HashMap<String, (String, Source)>,
}

impl Layers {
    fn get(&self, key: &Key) -> Option<Raw> {
        self.dotenv
            .get(key.env)
            .or_else(|| self.config.get(key.toml))
            .cloned()
    }
}

/// The process environment as [`Settings::resolve_with`] sees it.
pub trait Environment {
    /// The value of a variable, if set and valid UTF-8.
    fn var(&self, name: &str) -> Option<String>;
    /// The system-wide config file.
    fn system_config(&self) -> PathBuf {
        PathBuf::from(SYSTEM_CONFIG)
    }
}

/// The real process environment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Settings {
    /// Resolves and checks the settings from `args` (flags and their env
    /// twins), the `.env` file, the config file and the defaults.
    pub fn resolve(args: &SettingsArgs) -> Result<Settings, SettingsError> {
        Self::resolve_with(args, &ProcessEnv)
    }

    /// [`Settings::resolve`] with a given environment (for tests).
    pub fn resolve_with(
        args: &SettingsArgs,
        env: &dyn Environment,
    ) -> Result<Settings, SettingsError> {
        let env_file = pick_path(&args.env_file, &ENV_FILE, env)
            .unwrap_or_else(|| Setting::new(PathBuf::from(DEFAULT_ENV_FILE), Source::Default));
        let (dotenv_settings, local_env, env_file_found) = read_env_file(&env_file, env)?;
        let mut unknown = Vec::new();
        let dotenv = split_known(dotenv_settings, &mut unknown);
        let config_file = find_config(args, env, &dotenv)?;
        let config = match &config_file {
            Some(file) => read_config(&file.value, &mut unknown)?,
            None => HashMap::new(),
        };
        let layers = Layers { dotenv, config };
        let lookup = |flag: &Option<String>, key: &Key| pick(flag.as_deref(), key, env, &layers);

        let api_url = lookup(&args.api_url, &API_URL)
            .unwrap_or_else(|| (DEFAULT_API_URL.to_owned(), Source::Default));
        let health = lookup(&args.health_addr, &HEALTH)
            .unwrap_or_else(|| (DEFAULT_HEALTH_ADDR.to_owned(), Source::Default));
        Ok(Settings {
            api_url: check(&API_URL, api_url, parse_url)?,
            token: resolve_token(args, env, &layers)?,
            env_file,
            env_file_found,
            pool_size: check_opt(&POOL_SIZE, lookup(&args.pool_size, &POOL_SIZE), parse_pool)?,
            refresh_interval: check_opt(&REFRESH, lookup(&args.refresh_interval, &REFRESH), |s| {
                parse_duration(s, Duration::from_secs(1))
            })?,
            health_addr: check(&HEALTH, health, parse_addr)?,
            log_format: resolve_log_format(lookup(&args.log_format, &LOG_FORMAT))?,
            shutdown_grace: check_opt(&GRACE, lookup(&args.shutdown_grace, &GRACE), |s| {
                parse_duration(s, Duration::ZERO)
            })?
            .unwrap_or_else(|| Setting::new(DEFAULT_SHUTDOWN_GRACE, Source::Default)),
            injection: check_opt(
                &INJECTION,
                lookup(&args.injection, &INJECTION),
                parse_injection,
            )?
            .unwrap_or_else(|| Setting::new(InjectionMode::Stdin, Source::Default)),
            job_memory: check_opt(
                &JOB_MEMORY,
                lookup(&args.job_memory, &JOB_MEMORY),
                parse_size,
            )?,
            job_cpus: check_opt(&JOB_CPUS, lookup(&args.job_cpus, &JOB_CPUS), parse_cpus)?,
            job_pids: check_opt(&JOB_PIDS, lookup(&args.job_pids, &JOB_PIDS), parse_pids)?,
            ca_file: resolve_ca_file(args, env, &layers)?,
            config_file,
            local_env,
            unknown,
        })
    }

    /// The runner token, or the error that says how to set one.
    pub fn token(&self) -> Result<&Setting<RunnerToken>, SettingsError> {
        self.token.as_ref().ok_or(SettingsError::MissingToken)
    }
}

/// The flag-or-env value of a setting and which of the two it came from.
/// clap merges a flag with its env twin; when the env var holds the same
/// value, the value is attributed to the env var (the two agree anyway).
fn flag_or_env(value: Option<&str>, key: &Key, env: &dyn Environment) -> Option<Raw> {
    let value = value?;
    let source = match env.var(key.env) {
        Some(v) if v == value => Source::Env(key.env.to_owned()),
        _ => Source::Flag,
    };
    Some((value.to_owned(), source))
}

fn pick(flag: Option<&str>, key: &Key, env: &dyn Environment, layers: &Layers) -> Option<Raw> {
    flag_or_env(flag, key, env).or_else(|| layers.get(key))
}

fn pick_path(flag: &Option<PathBuf>, key: &Key, env: &dyn Environment) -> Option<Setting<PathBuf>> {
    let path = flag.as_ref()?;
    let source = match env.var(key.env) {
        Some(v) if Path::new(&v) == path => Source::Env(key.env.to_owned()),
        _ => Source::Flag,
    };
    Some(Setting::new(path.clone(), source))
}

fn invalid(key: &Key, source: Source, reason: impl Into<String>) -> SettingsError {
    let setting = match source {
        Source::Flag => key.flag,
        Source::ConfigFile { .. } => key.toml,
        _ => key.env,
    };
    SettingsError::Invalid {
        setting: setting.to_owned(),
        origin: source,
        reason: reason.into(),
    }
}

fn check<T>(
    key: &Key,
    (raw, source): Raw,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Setting<T>, SettingsError> {
    match parse(raw.trim()) {
        Ok(value) => Ok(Setting::new(value, source)),
        Err(reason) => Err(invalid(key, source, reason)),
    }
}

fn check_opt<T>(
    key: &Key,
    raw: Option<Raw>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<Setting<T>>, SettingsError> {
    raw.map(|raw| check(key, raw, parse)).transpose()
}

/// Reads the `.env` file: its SPEDY_* lines (as raw settings) and the rest
/// (local overrides). A missing file is fine unless it was named explicitly.
#[allow(clippy::type_complexity)]
fn read_env_file(
    file: &Setting<PathBuf>,
    env: &dyn Environment,
) -> Result<(Vec<(String, String, Source)>, Vec<DotenvEntry>, bool), SettingsError> {
    let text = match std::fs::read_to_string(&file.value) {
        Ok(text) => zeroize::Zeroizing::new(text),
        Err(err)
            if err.kind() == std::io::ErrorKind::NotFound && file.source == Source::Default =>
        {
            return Ok((Vec::new(), Vec::new(), false));
        }
        Err(err) => {
            return Err(SettingsError::Read {
                what: "the .env file",
                path: file.value.clone(),
                origin: file.source.clone(),
                err,
            });
        }
    };
    // `${VAR}` in the file is interpolated from the process environment, as
    // Compose does.
    let entries = dotenv::parse(&text, &file.value, |name| env.var(name))?;
    let mut settings = Vec::new();
    let mut local = Vec::new();
    for entry in entries {
        if entry.key.starts_with("SPEDY_") {
            let source = Source::DotEnv {
                path: file.value.clone(),
                line: entry.line,
            };
            settings.push((
                entry.key.clone(),
                entry.value.expose_secret().to_owned(),
                source,
            ));
        } else {
            local.push(entry);
        }
    }
    Ok((settings, local, true))
}

/// Keeps the `.env` settings that exist (the last line of a name wins, as in
/// Compose) and lists the unknown ones.
fn split_known(
    lines: Vec<(String, String, Source)>,
    unknown: &mut Vec<(String, Source)>,
) -> HashMap<String, (String, Source)> {
    let mut known = HashMap::new();
    for (name, value, source) in lines {
        if FILE_KEYS.iter().any(|k| k.env == name) {
            known.insert(name, (value, source));
        } else if !OTHER_KNOWN.contains(&name.as_str()) {
            unknown.push((name, source));
        }
    }
    known
}

fn find_config(
    args: &SettingsArgs,
    env: &dyn Environment,
    dotenv: &HashMap<String, (String, Source)>,
) -> Result<Option<Setting<PathBuf>>, SettingsError> {
    let named = pick_path(&args.config, &CONFIG, env).or_else(|| {
        dotenv
            .get(CONFIG.env)
            .map(|(v, s)| Setting::new(PathBuf::from(v), s.clone()))
    });
    if let Some(file) = named {
        if !file.value.is_file() {
            return Err(SettingsError::Read {
                what: "the config file",
                path: file.value.clone(),
                origin: file.source.clone(),
                err: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        return Ok(Some(file));
    }
    let user = env
        .var("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| env.var("HOME").map(|h| Path::new(&h).join(".config")))
        .map(|dir| dir.join("spedy-runner").join("config.toml"));
    let found = user
        .into_iter()
        .chain([env.system_config()])
        .find(|p| p.is_file());
    Ok(found.map(|p| Setting::new(p, Source::Default)))
}

/// Reads the config file into raw values keyed by their TOML names, each
/// with its line.
fn read_config(
    path: &Path,
    unknown: &mut Vec<(String, Source)>,
) -> Result<HashMap<String, (String, Source)>, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|err| SettingsError::Read {
        what: "the config file",
        path: path.to_owned(),
        origin: Source::Default,
        err,
    })?;
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let table: std::collections::BTreeMap<String, toml::Spanned<toml::Value>> =
        toml::from_str(&text).map_err(|e| SettingsError::Config {
            path: path.to_owned(),
            line: e.span().map(|s| line_of(s.start)),
            message: e.message().trim().to_owned(),
        })?;
    let mut out = HashMap::new();
    for (name, value) in table {
        let line = line_of(value.span().start);
        let source = Source::ConfigFile {
            path: path.to_owned(),
            line: Some(line),
        };
        if name == "token" {
            return Err(SettingsError::Config {
                path: path.to_owned(),
                line: Some(line),
                message: "the runner token does not belong in config.toml: set SPEDY_RUNNER_TOKEN or `token_file`".into(),
            });
        }
        if !FILE_KEYS.iter().any(|k| k.toml == name) || name == "config" {
            unknown.push((name, source));
            continue;
        }
        let raw = match value.into_inner() {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => {
                return Err(SettingsError::Config {
                    path: path.to_owned(),
                    line: Some(line),
                    message: format!(
                        "`{name}` is a string or a number, not a {}",
                        other.type_str()
                    ),
                });
            }
        };
        out.insert(name, (raw, source));
    }
    Ok(out)
}

fn resolve_token(
    args: &SettingsArgs,
    env: &dyn Environment,
    layers: &Layers,
) -> Result<Option<Setting<RunnerToken>>, SettingsError> {
    let parse = |raw: &str, source: Source| {
        RunnerToken::parse(raw)
            .map(|t| Setting::new(t, source.clone()))
            .map_err(|e| invalid(&TOKEN, source, e.to_string()))
    };
    // Highest first: --token-file (or its env twin), SPEDY_RUNNER_TOKEN in
    // the environment, then the .env's token, then a token file named in the
    // .env or the config file.
    if let Some(file) = pick_path(&args.token_file, &TOKEN_FILE, env) {
        return read_token_file(&file).map(Some);
    }
    if let Some(value) = env.var(TOKEN_ENV) {
        let value = zeroize::Zeroizing::new(value);
        return parse(&value, Source::Env(TOKEN_ENV.to_owned())).map(Some);
    }
    if let Some((value, source)) = layers.dotenv.get(TOKEN_ENV) {
        return parse(value, source.clone()).map(Some);
    }
    if let Some((path, source)) = layers.get(&TOKEN_FILE) {
        return read_token_file(&Setting::new(PathBuf::from(path), source)).map(Some);
    }
    Ok(None)
}

fn read_token_file(file: &Setting<PathBuf>) -> Result<Setting<RunnerToken>, SettingsError> {
    let text = std::fs::read_to_string(&file.value)
        .map(zeroize::Zeroizing::new)
        .map_err(|err| SettingsError::Read {
            what: "the token file",
            path: file.value.clone(),
            origin: file.source.clone(),
            err,
        })?;
    RunnerToken::parse(&text)
        .map(|t| Setting::new(t, file.source.clone()))
        .map_err(|e| {
            invalid(
                &TOKEN,
                file.source.clone(),
                format!("the token in {} is malformed: {e}", file.value.display()),
            )
        })
}

fn resolve_ca_file(
    args: &SettingsArgs,
    env: &dyn Environment,
    layers: &Layers,
) -> Result<Option<Setting<PathBuf>>, SettingsError> {
    let ca = pick_path(&args.ca_file, &CA_FILE, env).or_else(|| {
        layers
            .get(&CA_FILE)
            .map(|(v, s)| Setting::new(PathBuf::from(v), s))
    });
    match ca {
        Some(file) if !file.value.is_file() => Err(invalid(
            &CA_FILE,
            file.source.clone(),
            format!("no such file: {}", file.value.display()),
        )),
        other => Ok(other),
    }
}

fn resolve_log_format(raw: Option<Raw>) -> Result<Setting<LogFormat>, SettingsError> {
    match raw {
        Some(raw) => check(&LOG_FORMAT, raw, parse_log_format),
        None => {
            use std::io::IsTerminal;
            let format = if std::io::stderr().is_terminal() {
                LogFormat::Text
            } else {
                LogFormat::Json
            };
            Ok(Setting::new(format, Source::Default))
        }
    }
}

/// Parses a log format name (`text`, `json`).
pub fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("expected `text` or `json`, got {s:?}")),
    }
}

fn parse_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL must not hold credentials".into());
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(format!(
            "plain http is only allowed for a loopback address, use https for {}",
            url.host_str().unwrap_or("this host")
        )),
        other => Err(format!("the scheme must be https, not {other}")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn parse_pool(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=MAX_POOL_SIZE).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number from 1 to {MAX_POOL_SIZE}, got {s:?}"
        )),
    }
}

fn parse_duration(s: &str, min: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("expected a duration such as `90s` or `15m`, got {s:?} ({e})"))?;
    if d < min {
        return Err(format!(
            "must be at least {}, got {s:?}",
            humantime::format_duration(min)
        ));
    }
    Ok(d)
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("expected an address such as `127.0.0.1:9477`, got {s:?}"))
}

fn parse_injection(s: &str) -> Result<InjectionMode, String> {
    match s.to_ascii_lowercase().as_str() {
        "stdin" => Ok(InjectionMode::Stdin),
        "env" => Ok(InjectionMode::Env),
        _ => Err(format!("expected `stdin` or `env`, got {s:?}")),
    }
}

/// Parses a size in bytes with an optional binary suffix (`512m`, `4g`, `100k`).
fn parse_size(s: &str) -> Result<u64, String> {
    let err = || format!("expected a size such as `512m` or `4g`, got {s:?}");
    let lower = s.to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, mult) = match lower.char_indices().last() {
        Some((i, 'k')) => (&lower[..i], 1u64 << 10),
        Some((i, 'm')) => (&lower[..i], 1 << 20),
        Some((i, 'g')) => (&lower[..i], 1 << 30),
        Some((i, 't')) => (&lower[..i], 1 << 40),
        _ => (lower, 1),
    };
    let n: u64 = digits.trim().parse().map_err(|_| err())?;
    let bytes = n.checked_mul(mult).ok_or_else(err)?;
    if bytes < 6 << 20 {
        return Err(format!("Docker needs at least 6m, got {s:?}"));
    }
    Ok(bytes)
}

fn parse_cpus(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(c) if c.is_finite() && c > 0.0 && c <= 1024.0 => Ok(c),
        _ => Err(format!(
            "expected a number of CPUs above 0 such as `1.5`, got {s:?}"
        )),
    }
}

fn parse_pids(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a whole number of at least 1, got {s:?}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const TOKEN_A: &str = "rnt_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const TOKEN_B: &str = "rnt_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    /// A process environment made of a map, with no system config file.
    struct MapEnv(HashMap<String, String>, PathBuf);

    impl Environment for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
        fn system_config(&self) -> PathBuf {
            self.1.join("no-system-config.toml")
        }
    }

    /// A temp dir with an optional `.env` and `config.toml`, and an env that
    /// points XDG_CONFIG_HOME into it.
    struct Host {
        dir: tempfile::TempDir,
        env: HashMap<String, String>,
        args: SettingsArgs,
    }

    impl Host {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let mut env = HashMap::new();
            env.insert(
                "XDG_CONFIG_HOME".into(),
                dir.path().join("xdg").display().to_string(),
            );
            // An empty .env, named explicitly (the default ./.env depends on
            // the working folder, which tests share).
            std::fs::write(dir.path().join(".env"), "").unwrap();
            let args = SettingsArgs {
                env_file: Some(dir.path().join(".env")),
                ..Default::default()
            };
            Host { dir, env, args }
        }
        fn dotenv(self, text: &str) -> Self {
            std::fs::write(self.dir.path().join(".env"), text).unwrap();
            self
        }
        fn config(self, text: &str) -> Self {
            let dir = self.dir.path().join("xdg/spedy-runner");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("config.toml"), text).unwrap();
            self
        }
        /// Sets an env var; like clap, also mirrors it into the args when it
        /// is a flag's twin.
        fn env(mut self, name: &str, value: &str) -> Self {
            self.env.insert(name.into(), value.into());
            let v = Some(value.to_owned());
            match name {
                "SPEDY_POOL_SIZE" => self.args.pool_size = v,
                "SPEDY_REFRESH_INTERVAL" => self.args.refresh_interval = v,
                "SPEDY_API_URL" => self.args.api_url = v,
                "SPEDY_HEALTH_ADDR" => self.args.health_addr = v,
                "SPEDY_SHUTDOWN_GRACE" => self.args.shutdown_grace = v,
                _ => {}
            }
            self
        }
        fn resolve(&self) -> Result<Settings, SettingsError> {
            let env = MapEnv(self.env.clone(), self.dir.path().to_owned());
            // The env file arg counts as a flag here unless the env says so.
            Settings::resolve_with(&self.args, &env)
        }
        fn env_path(&self) -> PathBuf {
            self.dir.path().join(".env")
        }
    }

    #[test]
    fn with_nothing_set_the_defaults_apply_and_say_so() {
        let host = Host::new();
        let s = host.resolve().unwrap();
        assert_eq!(s.api_url.value.as_str(), "https://api.spedy.ai/");
        assert_eq!(s.api_url.source, Source::Default);
        assert!(s.token.is_none());
        assert!(matches!(s.token(), Err(SettingsError::MissingToken)));
        assert!(s.env_file_found && s.local_env.is_empty());
        assert_eq!(s.pool_size, None, "defers to the platform");
        assert_eq!(s.refresh_interval, None, "defers to the platform");
        assert_eq!(s.health_addr.value.to_string(), "127.0.0.1:9477");
        assert_eq!(s.shutdown_grace.value, Duration::from_secs(600));
        assert_eq!(s.injection.value, InjectionMode::Stdin);
        assert!(s.config_file.is_none());
    }

    #[test]
    fn a_flag_beats_the_env_which_beats_the_dotenv_which_beats_the_config_file() {
        let base = || {
            Host::new()
                .config("pool_size = 4\nrefresh_interval = \"10m\"\nshutdown_grace = \"1m\"\ninjection = \"env\"\n")
                .dotenv("# settings\nSPEDY_POOL_SIZE=3\nSPEDY_REFRESH_INTERVAL=5m\nSPEDY_SHUTDOWN_GRACE=30s\n")
                .env("SPEDY_POOL_SIZE", "2")
                .env("SPEDY_REFRESH_INTERVAL", "90s")
        };
        let mut host = base();
        host.args.pool_size = Some("1".into());
        let s = host.resolve().unwrap();
        assert_eq!(s.pool_size.as_ref().unwrap().value, 1);
        assert_eq!(s.pool_size.unwrap().source, Source::Flag);
        let refresh = s.refresh_interval.unwrap();
        assert_eq!(refresh.value, Duration::from_secs(90));
        assert_eq!(refresh.source, Source::Env("SPEDY_REFRESH_INTERVAL".into()));
        let grace = s.shutdown_grace;
        assert_eq!(grace.value, Duration::from_secs(30));
        assert_eq!(
            grace.source,
            Source::DotEnv {
                path: host.env_path(),
                line: 4
            }
        );
        let inj = s.injection;
        assert_eq!(inj.value, InjectionMode::Env);
        assert!(
            matches!(&inj.source, Source::ConfigFile { line: Some(4), .. }),
            "{:?}",
            inj.source
        );
        assert_eq!(base().resolve().unwrap().pool_size.unwrap().value, 2);
    }

    #[test]
    fn dotenv_settings_are_split_from_the_local_overrides() {
        let host = Host::new().dotenv(&format!(
            "SPEDY_API_URL=http://127.0.0.1:8787\nSPEDY_RUNNER_TOKEN={TOKEN_A}\nANTHROPIC_API_KEY=sk-local-value\nSPEDY_TYPO=1\n"
        ));
        let s = host.resolve().unwrap();
        assert!(s.env_file_found);
        assert_eq!(s.api_url.value.as_str(), "http://127.0.0.1:8787/");
        let token = s.token().unwrap();
        assert_eq!(token.value.expose(), TOKEN_A);
        assert_eq!(
            token.source,
            Source::DotEnv {
                path: host.env_path(),
                line: 2
            }
        );
        let names: Vec<_> = s.local_env.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            names,
            ["ANTHROPIC_API_KEY"],
            "SPEDY_* lines are never forwarded"
        );
        assert_eq!(s.unknown.len(), 1);
        assert_eq!(s.unknown[0].0, "SPEDY_TYPO");
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("sk-local-value") && !shown.contains(&TOKEN_A[4..]),
            "{shown}"
        );
    }

    #[test]
    fn the_token_env_var_beats_the_dotenv_and_a_token_file_beats_both() {
        let host = Host::new()
            .dotenv(&format!("SPEDY_RUNNER_TOKEN={TOKEN_A}\n"))
            .env(TOKEN_ENV, TOKEN_B);
        let s = host.resolve().unwrap();
        assert_eq!(s.token().unwrap().value.expose(), TOKEN_B);
        assert_eq!(s.token().unwrap().source, Source::Env(TOKEN_ENV.into()));

        let mut host = host;
        let file = host.dir.path().join("token");
        std::fs::write(&file, format!("{TOKEN_A}\n")).unwrap();
        host.args.token_file = Some(file);
        let s = host.resolve().unwrap();
        assert_eq!(s.token().unwrap().value.expose(), TOKEN_A);
        assert_eq!(s.token().unwrap().source, Source::Flag);
    }

    /// Each bad input and the words its error must hold; none may show a
    /// secret.
    #[test]
    fn bad_values_are_refused_naming_the_setting_and_where_it_came_from() {
        let secret_body = "SECRETSECRETSECRET";
        let cases: Vec<(Host, Vec<String>)> = vec![
            (
                Host::new().dotenv("A=1\nSPEDY_POOL_SIZE=0\n"),
                vec!["SPEDY_POOL_SIZE".into(), ".env:2".into(), "1 to 64".into()],
            ),
            (
                Host::new().env("SPEDY_POOL_SIZE", "65"),
                vec!["SPEDY_POOL_SIZE".into(), "env SPEDY_POOL_SIZE".into()],
            ),
            (
                Host::new().env("SPEDY_REFRESH_INTERVAL", "soon"),
                vec!["SPEDY_REFRESH_INTERVAL".into(), "`90s`".into()],
            ),
            (
                Host::new().env("SPEDY_REFRESH_INTERVAL", "10ms"),
                vec!["at least 1s".into()],
            ),
            (
                Host::new().env("SPEDY_API_URL", "http://platform.example.com"),
                vec!["SPEDY_API_URL".into(), "loopback".into()],
            ),
            (
                Host::new().env("SPEDY_API_URL", "ftp://x"),
                vec!["scheme must be https".into()],
            ),
            (
                Host::new().env(TOKEN_ENV, &format!("rnt_{secret_body}")),
                vec![
                    "SPEDY_RUNNER_TOKEN".into(),
                    "env SPEDY_RUNNER_TOKEN".into(),
                    "40 characters".into(),
                ],
            ),
            (
                Host::new().dotenv(&format!("SPEDY_RUNNER_TOKEN=xyz_{secret_body}\n")),
                vec![".env:1".into(), "starts with `rnt_`".into()],
            ),
            (
                Host::new().config("health_addr = \"nowhere\"\n"),
                vec!["health_addr".into(), "config.toml:1".into()],
            ),
            (
                Host::new().config("pool_size = [1]\n"),
                vec!["config.toml:1".into(), "string or a number".into()],
            ),
            (
                Host::new().config("pool_size = \n"),
                vec!["malformed config file".into(), "config.toml:1".into()],
            ),
            (
                Host::new().config(&format!("token = \"rnt_{secret_body}\"\n")),
                vec!["does not belong in config.toml".into()],
            ),
            (
                Host::new().env("SPEDY_SHUTDOWN_GRACE", "-1s"),
                vec!["SPEDY_SHUTDOWN_GRACE".into()],
            ),
        ];
        for (host, wants) in cases {
            let err = host.resolve().expect_err("must be refused").to_string();
            for want in &wants {
                assert!(err.contains(want.as_str()), "{err:?} lacks {want:?}");
            }
            assert!(!err.contains(secret_body), "{err:?} shows a secret");
        }
    }

    #[test]
    fn a_malformed_dotenv_line_refuses_to_start_naming_file_and_line() {
        let host = Host::new().dotenv("GOOD=1\nSECRET=fine\nthis line is not an assignment\n");
        let err = host.resolve().unwrap_err().to_string();
        let path = host.env_path().display().to_string();
        let names_line = err.contains(&format!("{path}:3")) || err.contains("line 3");
        assert!(err.contains(&path) && names_line, "{err}");
        assert!(!err.contains("fine"), "{err}");
    }

    #[test]
    fn a_named_env_file_or_config_file_that_is_missing_is_an_error() {
        let mut host = Host::new();
        host.args.env_file = Some(host.dir.path().join("nope.env"));
        let err = host.resolve().unwrap_err().to_string();
        assert!(
            err.contains("nope.env") && err.contains("the command line"),
            "{err}"
        );

        let mut host = Host::new();
        host.args.config = Some(host.dir.path().join("nope.toml"));
        let err = host.resolve().unwrap_err().to_string();
        assert!(err.contains("nope.toml"), "{err}");
    }

    #[test]
    fn a_flag_named_the_same_as_its_env_twin_is_attributed_to_the_env() {
        let host = Host::new().env("SPEDY_HEALTH_ADDR", "127.0.0.1:0");
        let s = host.resolve().unwrap();
        assert_eq!(
            s.health_addr.source,
            Source::Env("SPEDY_HEALTH_ADDR".into())
        );
    }

    #[test]
    fn sizes_cpus_and_pids_parse_with_their_units() {
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("2gb").unwrap(), 2 << 30);
        assert!(parse_size("1k").is_err(), "below Docker's minimum");
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_cpus("1.5").unwrap(), 1.5);
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("NaN").is_err());
        assert_eq!(parse_pids("128").unwrap(), 128);
        assert!(parse_pids("0").is_err());
    }

    #[test]
    fn loopback_http_is_accepted_in_every_spelling() {
        for ok in [
            "http://127.0.0.1:8787",
            "http://localhost:1",
            "http://[::1]:2",
            "https://api.spedy.ai",
        ] {
            assert!(parse_url(ok).is_ok(), "{ok}");
        }
        for bad in ["http://10.0.0.1", "http://user:pw@localhost", "not a url"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sources_display_as_a_person_reads_them() {
        assert_eq!(Source::Flag.to_string(), "the command line");
        assert_eq!(Source::Env("X".into()).to_string(), "env X");
        let p = PathBuf::from("/etc/x");
        assert_eq!(
            Source::DotEnv {
                path: p.clone(),
                line: 3
            }
            .to_string(),
            "/etc/x:3"
        );
        assert_eq!(
            Source::ConfigFile {
                path: p,
                line: None
            }
            .to_string(),
            "/etc/x"
        );
    }
}
