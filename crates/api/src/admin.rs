//! Admin endpoints: runner tokens, the vault, integrations and the job queue.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::job::{JobSpec, JobStatus};
use crate::runner::{Backend, GitProvider, Readiness, Scope, SecretKind};
use crate::token::RunnerToken;

/// Body of `POST /runners/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRunnerRequest {
    /// A name for the runner (the wizard defaults to the host name).
    pub name: String,
    /// How many jobs it may run at once (1 to 64).
    pub pool_size: u32,
    /// Its AI backend.
    pub backend: Backend,
}

/// `201` answer of `POST /runners/tokens`. The token is shown here once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateRunnerResponse {
    /// `run_…`
    pub runner_id: String,
    /// The new token.
    pub token: RunnerToken,
    /// The exact lines for the runner's `.env` (they hold the token).
    #[serde(serialize_with = "crate::expose::secret")]
    pub env_snippet: SecretString,
    /// The readiness checklist at creation time.
    pub readiness: Readiness,
}

/// One vault entry as listed: never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretEntry {
    /// The env name.
    pub env: String,
    /// What it is for.
    pub kind: SecretKind,
    /// The provider, for `git` entries.
    #[serde(default)]
    pub provider: Option<GitProvider>,
    /// Who may receive it.
    pub scope: Scope,
    /// First 4 and last 4 characters around `****`, or `****` under 12 characters.
    pub masked: String,
    /// When it was first written.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last overwritten.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub rotated_at: Option<OffsetDateTime>,
    /// When a bootstrap last delivered it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// `GET /secrets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretList {
    /// The entries, by env name.
    pub secrets: Vec<SecretEntry>,
}

/// Body of `PUT /secrets/{env}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PutSecretRequest {
    /// The new value.
    #[serde(serialize_with = "crate::expose::secret")]
    pub value: SecretString,
    /// What it is for; by default `anthropic` for `ANTHROPIC_API_KEY`, else `custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<SecretKind>,
    /// Who may receive it; `org` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// Body of `PUT /integrations/github`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GithubIntegrationRequest {
    /// A GitHub App installation: a fresh token is minted at every bootstrap.
    App {
        /// The installation id.
        installation_id: u64,
    },
    /// A fixed token.
    Token {
        /// The token.
        #[serde(serialize_with = "crate::expose::secret")]
        token: SecretString,
    },
}

/// Body of `PUT /integrations/bitbucket`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BitbucketIntegrationRequest {
    /// The token.
    #[serde(serialize_with = "crate::expose::secret")]
    pub token: SecretString,
}

/// How an integration authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationType {
    /// A GitHub App installation.
    App,
    /// A fixed token.
    Token,
}

/// One connected integration, as listed: never a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integration {
    /// The provider.
    pub provider: GitProvider,
    /// How it authenticates.
    #[serde(rename = "type")]
    pub kind: IntegrationType,
    /// For apps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation_id: Option<u64>,
    /// For tokens: the masked preview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked: Option<String>,
    /// When it was connected.
    #[serde(with = "time::serde::rfc3339")]
    pub connected_at: OffsetDateTime,
}

/// `GET /integrations`, and the answer of `PUT /integrations/{provider}`'s list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationList {
    /// The connected integrations.
    pub integrations: Vec<Integration>,
}

/// `201` answer of `POST /jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedJob {
    /// `job_…`
    pub id: String,
}

/// `GET /jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// `job_…`
    pub id: String,
    /// Where it stands.
    pub status: JobStatus,
    /// The exit code, once complete.
    pub exit_code: Option<i64>,
    /// The log as received, chunks in `seq` order.
    pub log: String,
    /// Token usage, once complete.
    pub usage: Option<serde_json::Value>,
    /// The runner's error text, for `error`.
    pub error: Option<String>,
}

/// Body of `POST /jobs`: a [`JobSpec`].
pub type NewJob = JobSpec;
