//! `POST /runners/bootstrap` and `GET /runners/readiness`: who the runner is,
//! the bundle of secrets it receives, and the readiness checklist.

use std::fmt;
use std::str::FromStr;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

/// Which AI backend a runner's jobs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The Anthropic API, with the key from the vault.
    AnthropicApi,
    /// The host's own Claude Max/Pro login; no `ANTHROPIC_API_KEY` needed.
    LocalClaude,
}

impl Backend {
    /// The wire name (`anthropic_api`, `local_claude`).
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::AnthropicApi => "anthropic_api",
            Backend::LocalClaude => "local_claude",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a bundle entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// The Anthropic API key.
    Anthropic,
    /// A git provider's token (GitHub, Bitbucket).
    Git,
    /// An MCP server's credential.
    Mcp,
    /// Anything else a job needs.
    Custom,
}

/// A git hosting provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GitProvider {
    /// GitHub (`GITHUB_TOKEN`).
    Github,
    /// Bitbucket (`BITBUCKET_TOKEN`).
    Bitbucket,
}

impl GitProvider {
    /// The wire name (`github`, `bitbucket`).
    pub fn as_str(self) -> &'static str {
        match self {
            GitProvider::Github => "github",
            GitProvider::Bitbucket => "bitbucket",
        }
    }

    /// The env name the provider's token is delivered under.
    pub fn env_name(self) -> &'static str {
        match self {
            GitProvider::Github => "GITHUB_TOKEN",
            GitProvider::Bitbucket => "BITBUCKET_TOKEN",
        }
    }
}

impl fmt::Display for GitProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may receive a value: the whole org, or one project's jobs.
/// On the wire: `"org"` or `"project:<id>"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every job of the org.
    Org,
    /// Only the jobs of this project.
    Project(String),
}

/// Why a scope string is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a scope is `org` or `project:<id>`, not {0:?}")]
pub struct ScopeError(String);

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "org" => Ok(Scope::Org),
            _ => match s.strip_prefix("project:") {
                Some(id) if !id.is_empty() && !id.contains(char::is_whitespace) => {
                    Ok(Scope::Project(id.to_owned()))
                }
                _ => Err(ScopeError(s.to_owned())),
            },
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Org => f.write_str("org"),
            Scope::Project(id) => write!(f, "project:{id}"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Who the runner is, as the platform knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerInfo {
    /// `run_…`
    pub id: String,
    /// The name given at token creation.
    pub name: String,
    /// How many jobs may run at once.
    pub pool_size: u32,
    /// The AI backend.
    pub backend: Backend,
}

/// One delivered secret. `Debug` shows everything but the value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleSecret {
    /// The env name the job sees.
    pub env: String,
    /// The plaintext, held in memory only.
    #[serde(serialize_with = "crate::expose::secret")]
    pub value: SecretString,
    /// What the entry is for.
    pub kind: SecretKind,
    /// The provider, for `git` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<GitProvider>,
    /// Who may receive it.
    pub scope: Scope,
    /// When the value stops working (minted GitHub App tokens).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub expires_at: Option<OffsetDateTime>,
}

/// The bundle as it crosses the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireBundle {
    /// Opaque; changes whenever any delivered value changes.
    pub version: String,
    /// When the platform issued it.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// How long the runner should wait before the next bootstrap.
    pub refresh_after_s: u64,
    /// The secrets.
    pub secrets: Vec<BundleSecret>,
}

/// Optional body of `POST /runners/bootstrap` (an extension of contract v1;
/// an empty body means the same as `{}`).
///
/// `local_env` names the values the runner holds locally (its `.env` lines
/// and legacy variables), never the values. A host set up before the vault
/// existed has `ANTHROPIC_API_KEY` only locally: declaring the name lets the
/// platform deliver the rest of the bundle instead of answering
/// `409 anthropic_key_missing`, so the host keeps working while its admin
/// migrates at their own pace. The name alone grants nothing: the key still
/// comes from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapRequest {
    /// Env names the runner holds locally.
    #[serde(default)]
    pub local_env: Vec<String>,
}

/// `200` answer of `POST /runners/bootstrap`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootstrapResponse {
    /// Who the runner is.
    pub runner: RunnerInfo,
    /// What it may hand to jobs.
    pub bundle: WireBundle,
}

/// The status of one readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// In place.
    Ok,
    /// Missing; the runner is not ready.
    Warn,
    /// Not needed under this backend.
    NotNeeded,
}

/// One line of the readiness checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessCheck {
    /// `anthropic_key` or `git_integrations`.
    pub id: String,
    /// What a person reads.
    pub label: String,
    /// The status.
    pub status: CheckStatus,
    /// Where to fix it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The connected git providers (`git_integrations` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<GitProvider>>,
}

/// `GET /runners/readiness`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// True when no check is `warn`.
    pub ready: bool,
    /// The checklist.
    pub checks: Vec<ReadinessCheck>,
}

/// The id of the Anthropic readiness check.
pub const CHECK_ANTHROPIC_KEY: &str = "anthropic_key";
/// The id of the git integrations readiness check.
pub const CHECK_GIT_INTEGRATIONS: &str = "git_integrations";
/// The env name of the Anthropic key.
pub const ANTHROPIC_API_KEY: &str = "ANTHROPIC_API_KEY";
/// Env names a runner host set locally before the vault existed.
pub const LEGACY_ENV_NAMES: [&str; 3] = [ANTHROPIC_API_KEY, "GITHUB_TOKEN", "BITBUCKET_TOKEN"];

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn the_contract_example_parses_and_hides_values_in_debug() {
        let json = r#"{
          "runner": {"id": "run_1", "name": "build-host-1", "pool_size": 4, "backend": "anthropic_api"},
          "bundle": {
            "version": "v1", "issued_at": "2026-12-03T12:00:00Z", "refresh_after_s": 900,
            "secrets": [
              {"env": "ANTHROPIC_API_KEY", "value": "sk-ant-CANARY", "kind": "anthropic", "scope": "org"},
              {"env": "GITHUB_TOKEN", "value": "ghs_CANARY", "kind": "git", "provider": "github", "scope": "org",
               "expires_at": "2026-12-03T13:00:00Z"},
              {"env": "FEATURE_FLAG_X", "value": "1", "kind": "custom", "scope": "project:proj_42"}
            ]
          }
        }"#;
        let b: BootstrapResponse = serde_json::from_str(json).unwrap();
        assert_eq!(b.runner.backend, Backend::AnthropicApi);
        assert_eq!(b.bundle.secrets[1].provider, Some(GitProvider::Github));
        assert!(b.bundle.secrets[1].expires_at.is_some());
        assert_eq!(b.bundle.secrets[2].scope, Scope::Project("proj_42".into()));
        assert_eq!(b.bundle.secrets[0].value.expose_secret(), "sk-ant-CANARY");
        let debug = format!("{b:?}");
        assert!(!debug.contains("CANARY"), "{debug}");
        let back = serde_json::to_string(&b).unwrap();
        assert!(
            back.contains("sk-ant-CANARY"),
            "the platform serializes values"
        );
    }

    #[test]
    fn scopes_parse_strictly() {
        assert_eq!("org".parse::<Scope>().unwrap(), Scope::Org);
        assert_eq!(
            "project:p1".parse::<Scope>().unwrap(),
            Scope::Project("p1".into())
        );
        for bad in ["", "project:", "Org", "team:x", "project:a b"] {
            assert!(bad.parse::<Scope>().is_err(), "{bad:?}");
        }
    }
}
