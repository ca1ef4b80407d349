//! `/healthz`, bootstrap, readiness, and runner tokens (create, revoke).
//!
//! Bootstrap is the only place a secret's plaintext leaves the platform. It
//! runs in one transaction: the gate (`409 anthropic_key_missing`), the
//! vault entries decrypted, the integrations' tokens (a GitHub App gets a
//! freshly minted one), `last_used_at` on each delivered vault entry, and the
//! bundle `version` read from the generation counter.
//!
//! The GitHub App token minting is a LOCAL STAND-IN: it makes no GitHub call
//! and returns `ghs_` plus 36 random characters, valid 60 minutes. Such a
//! token does not work against GitHub; it lets the runner's refresh and
//! expiry logic run end to end.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rusqlite::{Connection, params};
use secrecy::SecretString;
use serde::Deserialize;
use spedy_api::{
    ANTHROPIC_API_KEY, Backend, BootstrapRequest, BootstrapResponse, BundleSecret,
    CreateRunnerRequest, CreateRunnerResponse, ErrorCode, GitProvider, Readiness, RunnerInfo,
    SecretKind, WireBundle,
};
use time::Duration;

use super::{Links, has_anthropic_key, integrations, readiness as checklist, secrets};
use crate::Platform;
use crate::auth::{self, AdminCaller, AnyCaller, Caller, RunnerCaller};
use crate::db::{self, fmt_time, now};
use crate::http::{ApiFailure, JsonBody, OptionalJsonBody, PathParam, QueryParams};
use crate::vault::Vault;

/// How long a minted GitHub App installation token is valid.
pub const INSTALLATION_TOKEN_TTL: Duration = Duration::minutes(60);
/// The most jobs a runner may run at once.
pub const MAX_POOL_SIZE: u32 = 64;
/// The longest runner name.
pub const MAX_RUNNER_NAME: usize = 128;

/// `GET /healthz`: no auth.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// `POST /runners/bootstrap`.
pub async fn bootstrap(
    State(platform): State<Platform>,
    RunnerCaller(runner): RunnerCaller,
    OptionalJsonBody(request): OptionalJsonBody<BootstrapRequest>,
) -> Result<Json<BootstrapResponse>, ApiFailure> {
    let local_key = request
        .unwrap_or_default()
        .local_env
        .iter()
        .any(|name| name == ANTHROPIC_API_KEY);
    let links = Links::of(&platform);
    let refresh_after_s = platform.config().refresh_after_s;
    let shared = platform.shared.clone();
    let runner_id = runner.id.clone();
    let bundle = platform
        .shared
        .db
        .call(move |conn| build_bundle(conn, &shared.vault, &runner, local_key, &links.secrets))
        .await;
    let (runner, secrets, version) = match bundle {
        Ok(b) => b,
        Err(failure) => {
            tracing::warn!(runner_id = %runner_id, status = %failure.status(), "bootstrap refused");
            return Err(failure);
        }
    };
    tracing::info!(runner_id = %runner.id, secrets = secrets.len(), %version, "bundle delivered");
    Ok(Json(BootstrapResponse {
        runner,
        bundle: WireBundle {
            version,
            issued_at: now(),
            refresh_after_s,
            secrets,
        },
    }))
}

type Built = (RunnerInfo, Vec<BundleSecret>, String);

/// `local_key`: the runner declared that it holds `ANTHROPIC_API_KEY` locally
/// (a host set up before the vault), so the gate lets the bundle through.
fn build_bundle(
    conn: &mut Connection,
    vault: &Vault,
    runner: &RunnerInfo,
    local_key: bool,
    secrets_link: &str,
) -> Result<Built, ApiFailure> {
    let tx = conn.transaction()?;
    if runner.backend == Backend::AnthropicApi && !local_key && !has_anthropic_key(&tx)? {
        return Err(ApiFailure::new(
            ErrorCode::AnthropicKeyMissing,
            format!(
                "this runner's backend is anthropic_api and the vault has no {ANTHROPIC_API_KEY}; add it in the Secrets tab"
            ),
        )
        .link(secrets_link));
    }
    let mut delivered = integrations::delivered_tokens(&tx, vault)?;
    let git_envs: Vec<&'static str> = delivered.iter().map(|s| s.env_static).collect();
    let vault_entries = secrets::decrypt_all(&tx, vault)?;
    let stamp = fmt_time(now());
    let mut out = Vec::with_capacity(vault_entries.len() + delivered.len());
    for entry in vault_entries {
        // Git tokens come from the active integration, not the vault.
        if git_envs.contains(&entry.env.as_str()) {
            continue;
        }
        tx.prepare_cached("UPDATE secrets SET last_used_at = ?1 WHERE env = ?2")?
            .execute(params![stamp, entry.env])?;
        out.push(entry);
    }
    if delivered.iter().any(|d| d.minted) {
        db::bump_generation(&tx)?;
    }
    out.extend(delivered.drain(..).map(|d| d.secret));
    let version = format!("g{}", db::generation(&tx)?);
    tx.commit()?;
    Ok((runner.clone(), out, version))
}

/// A GitHub App installation token: the local stand-in (no GitHub call).
pub fn mint_installation_token() -> (SecretString, time::OffsetDateTime) {
    let token = format!("ghs_{}", auth::random_alnum(36));
    (SecretString::from(token), now() + INSTALLATION_TOKEN_TTL)
}

/// A git entry of the bundle.
pub fn git_secret(
    provider: GitProvider,
    value: SecretString,
    expires_at: Option<time::OffsetDateTime>,
) -> BundleSecret {
    BundleSecret {
        env: provider.env_name().to_owned(),
        value,
        kind: SecretKind::Git,
        provider: Some(provider),
        scope: spedy_api::Scope::Org,
        expires_at,
    }
}

/// `?backend=` on `GET /runners/readiness`, for admin tokens.
#[derive(Debug, Deserialize)]
pub struct ReadinessQuery {
    /// The backend to check for; `anthropic_api` when absent.
    pub backend: Option<Backend>,
}

/// `GET /runners/readiness`: a runner gets the checklist for its own backend;
/// an admin for `?backend=` (default `anthropic_api`).
pub async fn readiness(
    State(platform): State<Platform>,
    AnyCaller(caller): AnyCaller,
    QueryParams(query): QueryParams<ReadinessQuery>,
) -> Result<Json<Readiness>, ApiFailure> {
    let backend = match caller {
        Caller::Runner(info) => info.backend,
        Caller::Admin => query.backend.unwrap_or(Backend::AnthropicApi),
    };
    let links = Links::of(&platform);
    let readiness = platform
        .shared
        .db
        .call(move |conn| checklist(conn, backend, &links))
        .await?;
    Ok(Json(readiness))
}

fn validate_runner(req: &CreateRunnerRequest) -> Result<(), ApiFailure> {
    let name = req.name.trim();
    if name.is_empty() {
        return Err(ApiFailure::invalid("name", "must not be empty"));
    }
    if name.chars().count() > MAX_RUNNER_NAME || name.chars().any(char::is_control) {
        return Err(ApiFailure::invalid(
            "name",
            format!("at most {MAX_RUNNER_NAME} printable characters"),
        ));
    }
    if !(1..=MAX_POOL_SIZE).contains(&req.pool_size) {
        return Err(ApiFailure::invalid(
            "pool_size",
            format!("must be between 1 and {MAX_POOL_SIZE}"),
        ));
    }
    Ok(())
}

/// `POST /runners/tokens` → `201`. Created even when the Anthropic key is missing.
pub async fn create_token(
    State(platform): State<Platform>,
    _admin: AdminCaller,
    JsonBody(req): JsonBody<CreateRunnerRequest>,
) -> Result<(StatusCode, Json<CreateRunnerResponse>), ApiFailure> {
    validate_runner(&req)?;
    let token = auth::new_runner_token();
    let hash = auth::hash_token(token.expose());
    let runner_id = auth::new_id("run_");
    let links = Links::of(&platform);
    let id = runner_id.clone();
    let readiness = platform
        .shared
        .db
        .call(move |conn| {
            conn.execute(
                "INSERT INTO runners (id, name, pool_size, backend, token_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    req.name.trim(),
                    req.pool_size,
                    req.backend.as_str(),
                    hash.as_slice(),
                    fmt_time(now())
                ],
            )?;
            checklist(conn, req.backend, &links)
        })
        .await?;
    tracing::info!(runner_id = %runner_id, "runner token created");
    let env_snippet = SecretString::from(format!(
        "SPEDY_API_URL={}\nSPEDY_RUNNER_TOKEN={}\n",
        platform.public_url(),
        token.expose()
    ));
    Ok((
        StatusCode::CREATED,
        Json(CreateRunnerResponse {
            runner_id,
            token,
            env_snippet,
            readiness,
        }),
    ))
}

/// `DELETE /runners/tokens/{runner_id}` → `204`; the token stops working at once.
pub async fn delete_token(
    State(platform): State<Platform>,
    _admin: AdminCaller,
    PathParam(runner_id): PathParam,
) -> Result<StatusCode, ApiFailure> {
    let id = runner_id.clone();
    let found: bool = platform
        .shared
        .db
        .call(move |conn| {
            conn.execute(
                "UPDATE runners SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                params![fmt_time(now()), id],
            )?;
            let exists: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM runners WHERE id = ?1)",
                [&id],
                |r| r.get(0),
            )?;
            Ok::<_, ApiFailure>(exists)
        })
        .await?;
    if !found {
        return Err(ApiFailure::not_found(format!("no runner {runner_id}")));
    }
    tracing::info!(runner_id = %runner_id, "runner token revoked");
    Ok(StatusCode::NO_CONTENT)
}
