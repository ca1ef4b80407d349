//! The platform's settings: [`PlatformConfig`] for the library, and the
//! binary's clap [`Args`] (each flag with its environment twin, as the
//! contract's last section lists them) checked into a config.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;
use spedy_api::AdminToken;

use crate::error::{Error, Result};

/// The default listen address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8787";
/// The default `refresh_after_s` sent with every bundle (15 minutes).
pub const DEFAULT_REFRESH_AFTER_S: u64 = 900;
/// The default longest time a claim is held open, in seconds.
pub const DEFAULT_MAX_CLAIM_WAIT_S: u64 = 30;

/// What the platform needs to open and serve.
#[derive(Clone)]
pub struct PlatformConfig {
    /// Where to listen (port 0 = any free port).
    pub addr: SocketAddr,
    /// The data folder: `platform.db` and, unless `master_key` is set, `master.key`.
    pub data_dir: PathBuf,
    /// The vault key, base64 of 32 bytes; `None` uses `<data>/master.key`.
    pub master_key: Option<SecretString>,
    /// The admin token; `None` keeps the stored one or generates one on first start.
    pub admin_token: Option<AdminToken>,
    /// The base URL for `env_snippet` and links; `None` is `http://<listen address>`.
    pub public_url: Option<String>,
    /// The `refresh_after_s` sent with every bundle.
    pub refresh_after_s: u64,
    /// The longest a claim is held open, whatever `wait_s` asks.
    pub max_claim_wait_s: u64,
}

impl PlatformConfig {
    /// Defaults for a data folder: `127.0.0.1:0`, a key file, a generated admin
    /// token, a 900 s refresh and 30 s claims.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        PlatformConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            master_key: None,
            admin_token: None,
            public_url: None,
            refresh_after_s: DEFAULT_REFRESH_AFTER_S,
            max_claim_wait_s: DEFAULT_MAX_CLAIM_WAIT_S,
        }
    }
}

impl std::fmt::Debug for PlatformConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformConfig")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field("master_key", &self.master_key.as_ref().map(|_| "<set>"))
            .field("admin_token", &self.admin_token)
            .field("public_url", &self.public_url)
            .field("refresh_after_s", &self.refresh_after_s)
            .field("max_claim_wait_s", &self.max_claim_wait_s)
            .finish()
    }
}

/// The local Spedy platform: the runner API with an encrypted vault, for
/// development, demos and tests.
///
/// Every setting is a flag with an environment twin. The vault key and the
/// admin token are best given through the environment (flags show in `ps`).
///
/// Examples:
///   spedy-platform
///   SPEDY_PLATFORM_ADDR=127.0.0.1:0 SPEDY_PLATFORM_DATA_DIR=/tmp/p spedy-platform
#[derive(Debug, clap::Parser)]
#[command(name = "spedy-platform", version)]
pub struct Args {
    /// Listen address (port 0 = any free port; the chosen address is printed).
    #[arg(long, env = "SPEDY_PLATFORM_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: SocketAddr,
    /// Data folder (SQLite database, key file) [default: the OS data dir,
    /// e.g. ~/.local/share/spedy-platform].
    #[arg(long, env = "SPEDY_PLATFORM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Vault key, base64 of 32 bytes [default: generated into <data>/master.key].
    #[arg(long, env = "SPEDY_PLATFORM_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// Admin token (sat_…) [default: generated on first start, printed once, kept hashed].
    #[arg(long, env = "SPEDY_PLATFORM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Public base URL for env snippets and links [default: http://<listen address>].
    #[arg(long, env = "SPEDY_PLATFORM_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The refresh_after_s sent with every bundle.
    #[arg(long, env = "SPEDY_PLATFORM_REFRESH_AFTER_S", default_value_t = DEFAULT_REFRESH_AFTER_S)]
    pub refresh_after_s: u64,
    /// The longest a claim long-poll is held open, in seconds.
    #[arg(long, env = "SPEDY_PLATFORM_MAX_CLAIM_WAIT_S", default_value_t = DEFAULT_MAX_CLAIM_WAIT_S)]
    pub max_claim_wait_s: u64,
    /// Log format.
    #[arg(
        long,
        env = "SPEDY_PLATFORM_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

/// How the binary writes its log (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl TryFrom<Args> for PlatformConfig {
    type Error = Error;

    fn try_from(args: Args) -> Result<Self> {
        let data_dir = match args.data_dir {
            Some(dir) => dir,
            None => dirs::data_dir()
                .ok_or(Error::NoDataDir)?
                .join("spedy-platform"),
        };
        let admin_token = args
            .admin_token
            .map(|t| {
                AdminToken::parse(&t).map_err(|e| Error::BadSetting {
                    name: "SPEDY_PLATFORM_ADMIN_TOKEN",
                    reason: e.to_string(),
                })
            })
            .transpose()?;
        let public_url = args.public_url.map(|u| u.trim_end_matches('/').to_owned());
        Ok(PlatformConfig {
            addr: args.addr,
            data_dir,
            master_key: args.master_key.map(SecretString::from),
            admin_token,
            public_url,
            refresh_after_s: args.refresh_after_s,
            max_claim_wait_s: args.max_claim_wait_s,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn a_malformed_admin_token_is_refused_without_echoing_it() {
        let args = Args::parse_from([
            "spedy-platform",
            "--data-dir",
            "/tmp/x",
            "--admin-token",
            "sat_SECRETbutshort",
        ]);
        let err = PlatformConfig::try_from(args).err().unwrap().to_string();
        assert!(err.contains("SPEDY_PLATFORM_ADMIN_TOKEN"), "{err}");
        assert!(!err.contains("SECRET"), "{err}");
    }
}
