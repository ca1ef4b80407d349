//! Git integrations: `GET /integrations`, `PUT /integrations/github`
//! (a GitHub App installation or a fixed token), `PUT /integrations/bitbucket`
//! (a token), `DELETE /integrations/{github,bitbucket}`; and [`delivered_tokens`] for
//! bootstrap.
//!
//! Integration tokens are sealed in the vault like secrets, under the
//! associated data `integration:<provider>` (env names cannot hold `:`).
//! A GitHub App integration stores only its installation id; bootstrap mints
//! a fresh installation token every time with the LOCAL STAND-IN in
//! [`super::runners::mint_installation_token`] (no GitHub call).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rusqlite::{Connection, params};
use secrecy::{ExposeSecret, SecretString};
use spedy_api::env::MAX_SECRET_VALUE_LEN;
use spedy_api::{
    BitbucketIntegrationRequest, BundleSecret, GitProvider, GithubIntegrationRequest, Integration,
    IntegrationList, IntegrationType,
};

use super::runners::{git_secret, mint_installation_token};
use crate::Platform;
use crate::auth::AdminCaller;
use crate::db::{self, fmt_time, now, parse_time};
use crate::error::{Error, Result};
use crate::http::{ApiFailure, JsonBody};
use crate::vault::{Sealed, Vault, mask};

fn aad(provider: GitProvider) -> String {
    format!("integration:{}", provider.as_str())
}

fn parse_provider(s: &str) -> Option<GitProvider> {
    match s {
        "github" => Some(GitProvider::Github),
        "bitbucket" => Some(GitProvider::Bitbucket),
        _ => None,
    }
}

struct Row {
    provider: GitProvider,
    kind: IntegrationType,
    installation_id: Option<u64>,
    sealed: Option<Sealed>,
    connected_at: String,
}

fn rows(conn: &Connection) -> Result<Vec<Row>> {
    let mut stmt = conn.prepare(
        "SELECT provider, type, installation_id, nonce, ciphertext, connected_at
         FROM integrations ORDER BY provider",
    )?;
    let raw = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter()
        .map(|(provider, kind, id, nonce, ciphertext, connected_at)| {
            let corrupt = |what: &str| Error::Corrupt {
                what: format!("integration {provider:?}: {what}"),
            };
            let kind = match kind.as_str() {
                "app" => IntegrationType::App,
                "token" => IntegrationType::Token,
                _ => return Err(corrupt("type")),
            };
            Ok(Row {
                provider: parse_provider(&provider).ok_or_else(|| corrupt("provider"))?,
                kind,
                installation_id: id.and_then(|i| u64::try_from(i).ok()),
                sealed: nonce
                    .zip(ciphertext)
                    .map(|(nonce, ciphertext)| Sealed { nonce, ciphertext }),
                connected_at,
            })
        })
        .collect()
}

/// A git token bootstrap delivers.
pub struct Delivered {
    /// `GITHUB_TOKEN` or `BITBUCKET_TOKEN`.
    pub env_static: &'static str,
    /// The bundle entry.
    pub secret: BundleSecret,
    /// Whether it was minted now (so the bundle version must move).
    pub minted: bool,
}

/// The tokens of every active integration: fixed tokens decrypted, GitHub App
/// installation tokens freshly minted (60 minutes).
pub fn delivered_tokens(conn: &Connection, vault: &Vault) -> Result<Vec<Delivered>> {
    rows(conn)?
        .into_iter()
        .map(|row| {
            let env_static = row.provider.env_name();
            match (row.kind, &row.sealed) {
                (IntegrationType::App, _) => {
                    let (token, expires_at) = mint_installation_token();
                    Ok(Delivered {
                        env_static,
                        secret: git_secret(row.provider, token, Some(expires_at)),
                        minted: true,
                    })
                }
                (IntegrationType::Token, Some(sealed)) => {
                    let token = vault.open_string(&aad(row.provider), sealed)?;
                    Ok(Delivered {
                        env_static,
                        secret: git_secret(row.provider, token, None),
                        minted: false,
                    })
                }
                (IntegrationType::Token, None) => Err(Error::Corrupt {
                    what: format!("integration {} has no token", row.provider),
                }),
            }
        })
        .collect()
}

fn listed(conn: &Connection, vault: &Vault) -> Result<IntegrationList> {
    let integrations = rows(conn)?
        .into_iter()
        .map(|row| {
            let masked = row.sealed.as_ref().map(|sealed| {
                match vault.open_string(&aad(row.provider), sealed) {
                    Ok(token) => mask(token.expose_secret()),
                    Err(_) => {
                        tracing::warn!(provider = %row.provider, "integration token cannot be decrypted");
                        "****".to_owned()
                    }
                }
            });
            Ok(Integration {
                provider: row.provider,
                kind: row.kind,
                installation_id: row.installation_id,
                masked,
                connected_at: parse_time(&row.connected_at)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(IntegrationList { integrations })
}

/// `GET /integrations`: never a token, only masked previews.
pub async fn list(
    State(platform): State<Platform>,
    _admin: AdminCaller,
) -> Result<Json<IntegrationList>, ApiFailure> {
    let shared = platform.shared.clone();
    let list = platform
        .shared
        .db
        .call(move |conn| listed(conn, &shared.vault))
        .await?;
    Ok(Json(list))
}

fn validate_token(token: &SecretString) -> Result<(), ApiFailure> {
    let t = token.expose_secret();
    if t.trim().is_empty() {
        return Err(ApiFailure::invalid("token", "must not be empty"));
    }
    if t.contains('\0') || t.chars().any(char::is_whitespace) {
        return Err(ApiFailure::invalid(
            "token",
            "must not contain whitespace or a NUL character",
        ));
    }
    if t.len() > MAX_SECRET_VALUE_LEN {
        return Err(ApiFailure::invalid(
            "token",
            format!("is over {MAX_SECRET_VALUE_LEN} bytes"),
        ));
    }
    Ok(())
}

enum Connect {
    App(u64),
    Token(Sealed),
}

async fn connect(
    platform: &Platform,
    provider: GitProvider,
    how: Connect,
) -> Result<Json<IntegrationList>, ApiFailure> {
    let shared = platform.shared.clone();
    let list = platform
        .shared
        .db
        .call(move |conn| {
            let tx = conn.transaction()?;
            let (kind, id, nonce, ct) = match how {
                Connect::App(id) => ("app", i64::try_from(id).ok(), None, None),
                Connect::Token(s) => ("token", None, Some(s.nonce), Some(s.ciphertext)),
            };
            tx.execute(
                "INSERT INTO integrations (provider, type, installation_id, nonce, ciphertext, connected_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (provider) DO UPDATE SET type = excluded.type,
                   installation_id = excluded.installation_id, nonce = excluded.nonce,
                   ciphertext = excluded.ciphertext, connected_at = excluded.connected_at",
                params![provider.as_str(), kind, id, nonce, ct, fmt_time(now())],
            )?;
            db::bump_generation(&tx)?;
            let list = listed(&tx, &shared.vault)?;
            tx.commit()?;
            Ok::<_, Error>(list)
        })
        .await?;
    tracing::info!(provider = %provider, "integration connected");
    Ok(Json(list))
}

/// `PUT /integrations/github`: `{"type": "app", "installation_id"}` or
/// `{"type": "token", "token"}`; answers the list.
pub async fn put_github(
    State(platform): State<Platform>,
    _admin: AdminCaller,
    JsonBody(req): JsonBody<GithubIntegrationRequest>,
) -> Result<Json<IntegrationList>, ApiFailure> {
    let how = match req {
        GithubIntegrationRequest::App { installation_id } => {
            if installation_id == 0 || i64::try_from(installation_id).is_err() {
                return Err(ApiFailure::invalid(
                    "installation_id",
                    "must be a positive 63-bit integer",
                ));
            }
            Connect::App(installation_id)
        }
        GithubIntegrationRequest::Token { token } => {
            validate_token(&token)?;
            let sealed = platform
                .shared
                .vault
                .seal(&aad(GitProvider::Github), token.expose_secret().as_bytes())?;
            Connect::Token(sealed)
        }
    };
    connect(&platform, GitProvider::Github, how).await
}

/// `PUT /integrations/bitbucket`: `{"token"}`; answers the list.
pub async fn put_bitbucket(
    State(platform): State<Platform>,
    _admin: AdminCaller,
    JsonBody(req): JsonBody<BitbucketIntegrationRequest>,
) -> Result<Json<IntegrationList>, ApiFailure> {
    validate_token(&req.token)?;
    let sealed = platform.shared.vault.seal(
        &aad(GitProvider::Bitbucket),
        req.token.expose_secret().as_bytes(),
    )?;
    connect(&platform, GitProvider::Bitbucket, Connect::Token(sealed)).await
}

/// `DELETE /integrations/github` → `204`; `404` when it is not connected.
pub async fn delete_github(
    State(platform): State<Platform>,
    _admin: AdminCaller,
) -> Result<StatusCode, ApiFailure> {
    disconnect(&platform, GitProvider::Github).await
}

/// `DELETE /integrations/bitbucket` → `204`; `404` when it is not connected.
pub async fn delete_bitbucket(
    State(platform): State<Platform>,
    _admin: AdminCaller,
) -> Result<StatusCode, ApiFailure> {
    disconnect(&platform, GitProvider::Bitbucket).await
}

async fn disconnect(platform: &Platform, provider: GitProvider) -> Result<StatusCode, ApiFailure> {
    let removed = platform
        .shared
        .db
        .call(move |conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(
                "DELETE FROM integrations WHERE provider = ?1",
                [provider.as_str()],
            )?;
            if n > 0 {
                db::bump_generation(&tx)?;
            }
            tx.commit()?;
            Ok::<_, Error>(n > 0)
        })
        .await?;
    if !removed {
        return Err(ApiFailure::not_found(format!(
            "{provider} is not connected"
        )));
    }
    tracing::info!(provider = %provider, "integration removed");
    Ok(StatusCode::NO_CONTENT)
}
