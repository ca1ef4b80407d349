//! Finding the host's Claude login, for the `local_claude` backend (Claude
//! Max/Pro): `setup` checks it when that backend is chosen, `doctor` when the
//! platform says the runner uses it.
//!
//! Where it looks, in order (also in `setup --help` and `doctor --help`):
//! 1. `CLAUDE_CODE_OAUTH_TOKEN` in the process environment or the `.env` file
//!    (the long-lived token `claude setup-token` prints);
//! 2. `$CLAUDE_CONFIG_DIR/.credentials.json` when `CLAUDE_CONFIG_DIR` is set,
//!    else `~/.claude/.credentials.json`: Claude Code's login on Linux, a
//!    JSON object with `claudeAiOauth.accessToken`.
//!
//! Nothing read here is ever shown or kept: the answer is where the login
//! is, by name or path. A `~/.claude.json` with an `oauthAccount` but no
//! credentials file (macOS keeps them in the Keychain) gets a hint.

use std::path::{Path, PathBuf};

/// The variable `claude setup-token`'s token goes in.
pub const OAUTH_TOKEN_ENV: &str = "CLAUDE_CODE_OAUTH_TOKEN";

/// Where the help text says the login is looked for (a macro, so that
/// `concat!` can put it into a command's help).
macro_rules! where_help {
    () => {
        "The Claude login (local_claude backend) is looked for in CLAUDE_CODE_OAUTH_TOKEN \
         (environment or .env, from `claude setup-token`), then in \
         $CLAUDE_CONFIG_DIR/.credentials.json, or ~/.claude/.credentials.json when \
         CLAUDE_CONFIG_DIR is unset."
    };
}
pub(crate) use where_help;

/// What the search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaudeLogin {
    /// The OAuth token variable is set (in `where_`: "the environment" or ".env").
    TokenVariable {
        /// Where it is set.
        where_: &'static str,
    },
    /// A credentials file with an access token.
    CredentialsFile(PathBuf),
    /// No login; the paths looked at and an optional hint.
    Missing {
        /// The credentials file that was looked for.
        looked_at: PathBuf,
        /// Why it did not count, when it exists.
        reason: Option<String>,
    },
}

impl ClaudeLogin {
    /// Whether a login was found.
    pub fn is_present(&self) -> bool {
        !matches!(self, ClaudeLogin::Missing { .. })
    }

    /// One line for a person: where the login is, or what was looked at.
    pub fn describe(&self) -> String {
        match self {
            ClaudeLogin::TokenVariable { where_ } => {
                format!("{OAUTH_TOKEN_ENV} is set in {where_}")
            }
            ClaudeLogin::CredentialsFile(p) => format!("found {}", p.display()),
            ClaudeLogin::Missing { looked_at, reason } => match reason {
                Some(r) => format!("{}: {r}", looked_at.display()),
                None => format!("no {OAUTH_TOKEN_ENV} and no {}", looked_at.display()),
            },
        }
    }

    /// How to get one.
    pub fn hint(&self) -> &'static str {
        "Log in with `claude` (Claude Code) as the user that runs spedy-runner, or run \
         `claude setup-token` and put CLAUDE_CODE_OAUTH_TOKEN=… in the .env file."
    }
}

/// Looks for the login as the module says. `var` reads the process
/// environment, `dotenv_names` are the names the `.env` file sets, `home` is
/// the user's home folder.
pub fn find(
    var: &dyn Fn(&str) -> Option<String>,
    dotenv_names: &[&str],
    home: Option<&Path>,
) -> ClaudeLogin {
    if var(OAUTH_TOKEN_ENV).is_some_and(|v| !v.trim().is_empty()) {
        return ClaudeLogin::TokenVariable {
            where_: "the environment",
        };
    }
    if dotenv_names.contains(&OAUTH_TOKEN_ENV) {
        return ClaudeLogin::TokenVariable {
            where_: "the .env file",
        };
    }
    let dir = match var("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => home.unwrap_or(Path::new("~")).join(".claude"),
    };
    let file = dir.join(".credentials.json");
    match std::fs::read(&file) {
        Ok(bytes) if has_access_token(&bytes) => ClaudeLogin::CredentialsFile(file),
        Ok(_) => ClaudeLogin::Missing {
            looked_at: file,
            reason: Some("holds no claudeAiOauth.accessToken".into()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keychain = home.is_some_and(|h| account_without_file(&h.join(".claude.json")));
            ClaudeLogin::Missing {
                looked_at: file,
                reason: keychain.then(|| {
                    "missing, though ~/.claude.json records a login (its credentials may be \
                     in a keychain, which jobs cannot use)"
                        .into()
                }),
            }
        }
        Err(e) => ClaudeLogin::Missing {
            looked_at: file,
            reason: Some(format!("cannot be read ({})", e.kind())),
        },
    }
}

/// Whether the bytes are a JSON object with `claudeAiOauth.accessToken` a
/// non-empty string. The parsed value is dropped at once.
fn has_access_token(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| {
        v.get("claudeAiOauth")
            .and_then(|o| o.get("accessToken"))
            .and_then(|t| t.as_str())
            .is_some_and(|t| !t.is_empty())
    })
}

fn account_without_file(config: &Path) -> bool {
    std::fs::read(config).is_ok_and(|b| {
        serde_json::from_slice::<serde_json::Value>(&b)
            .is_ok_and(|v| v.get("oauthAccount").is_some_and(|a| !a.is_null()))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn no_var(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_token_variable_wins_and_is_named_not_shown() {
        let var = |k: &str| (k == OAUTH_TOKEN_ENV).then(|| "CANARY_value".to_owned());
        let found = find(&var, &[], None);
        assert!(found.is_present());
        assert!(!found.describe().contains("CANARY"));
        assert!(find(&no_var, &[OAUTH_TOKEN_ENV], None).is_present());
    }

    #[test]
    fn a_credentials_file_with_an_access_token_counts() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".claude");
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join(".credentials.json");
        std::fs::write(&file, r#"{"claudeAiOauth":{"accessToken":"CANARY_tok"}}"#).unwrap();
        let found = find(&no_var, &[], Some(home.path()));
        assert_eq!(found, ClaudeLogin::CredentialsFile(file));
        assert!(!found.describe().contains("CANARY"));
    }

    #[test]
    fn claude_config_dir_moves_the_file() {
        let cfg = tempfile::tempdir().unwrap();
        std::fs::write(
            cfg.path().join(".credentials.json"),
            r#"{"claudeAiOauth":{"accessToken":"x"}}"#,
        )
        .unwrap();
        let dir = cfg.path().to_string_lossy().into_owned();
        let var = move |k: &str| (k == "CLAUDE_CONFIG_DIR").then(|| dir.clone());
        assert!(find(&var, &[], Some(Path::new("/nonexistent"))).is_present());
    }

    #[test]
    fn a_missing_or_empty_login_says_where_it_looked() {
        let home = tempfile::tempdir().unwrap();
        let found = find(&no_var, &[], Some(home.path()));
        assert!(!found.is_present());
        assert!(found.describe().contains(".claude/.credentials.json"));
        std::fs::write(
            home.path().join(".claude.json"),
            r#"{"oauthAccount":{"x":1}}"#,
        )
        .unwrap();
        assert!(
            find(&no_var, &[], Some(home.path()))
                .describe()
                .contains("keychain")
        );
        std::fs::create_dir(home.path().join(".claude")).unwrap();
        std::fs::write(home.path().join(".claude/.credentials.json"), "{}").unwrap();
        assert!(
            find(&no_var, &[], Some(home.path()))
                .describe()
                .contains("no claudeAiOauth")
        );
    }
}
