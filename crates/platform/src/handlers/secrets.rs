//! The vault's admin routes: `GET /secrets`, `PUT /secrets/{env}`,
//! `DELETE /secrets/{env}`; and [`decrypt_all`] for bootstrap.
//!
//! Write-only: no route returns a value. Listing decrypts each entry in
//! memory only to compute its masked preview. Every write seals the value
//! with a fresh nonce and the env name as associated data, and bumps the
//! generation counter behind the bundle's `version`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rusqlite::{Connection, OptionalExtension, params};
use secrecy::ExposeSecret;
use spedy_api::env::{MAX_SECRET_VALUE_LEN, validate_env_name};
use spedy_api::{
    ANTHROPIC_API_KEY, BundleSecret, GitProvider, PutSecretRequest, Scope, SecretEntry, SecretKind,
    SecretList,
};

use crate::Platform;
use crate::auth::AdminCaller;
use crate::db::{self, fmt_time, now, parse_time, parse_time_opt};
use crate::error::{Error, Result};
use crate::http::{ApiFailure, JsonBody, PathParam};
use crate::vault::{Sealed, Vault, mask};

/// The wire name of a kind.
pub fn kind_str(kind: SecretKind) -> &'static str {
    match kind {
        SecretKind::Anthropic => "anthropic",
        SecretKind::Git => "git",
        SecretKind::Mcp => "mcp",
        SecretKind::Custom => "custom",
    }
}

fn parse_kind(s: &str) -> Result<SecretKind> {
    match s {
        "anthropic" => Ok(SecretKind::Anthropic),
        "git" => Ok(SecretKind::Git),
        "mcp" => Ok(SecretKind::Mcp),
        "custom" => Ok(SecretKind::Custom),
        other => Err(Error::Corrupt {
            what: format!("secret kind {other:?}"),
        }),
    }
}

fn parse_scope(s: &str) -> Result<Scope> {
    s.parse().map_err(|_| Error::Corrupt {
        what: format!("scope {s:?}"),
    })
}

/// The provider of a `git` vault entry, told by its env name.
fn provider_of(kind: SecretKind, env: &str) -> Option<GitProvider> {
    if kind != SecretKind::Git {
        return None;
    }
    [GitProvider::Github, GitProvider::Bitbucket]
        .into_iter()
        .find(|p| p.env_name() == env)
}

struct Row {
    env: String,
    kind: SecretKind,
    scope: Scope,
    sealed: Sealed,
    created_at: String,
    rotated_at: Option<String>,
    last_used_at: Option<String>,
}

fn rows(conn: &Connection) -> Result<Vec<Row>> {
    select(conn, None)
}

/// Every row, or the one named `only`.
fn select(conn: &Connection, only: Option<&str>) -> Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(
        "SELECT env, kind, scope, nonce, ciphertext, created_at, rotated_at, last_used_at
         FROM secrets WHERE ?1 IS NULL OR env = ?1 ORDER BY env",
    )?;
    let raw = stmt
        .query_map([only], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter()
        .map(
            |(env, kind, scope, nonce, ciphertext, created_at, rotated_at, last_used_at)| {
                Ok(Row {
                    kind: parse_kind(&kind)?,
                    scope: parse_scope(&scope)?,
                    env,
                    sealed: Sealed { nonce, ciphertext },
                    created_at,
                    rotated_at,
                    last_used_at,
                })
            },
        )
        .collect()
}

fn entry(row: &Row, masked: String) -> Result<SecretEntry> {
    Ok(SecretEntry {
        env: row.env.clone(),
        kind: row.kind,
        provider: provider_of(row.kind, &row.env),
        scope: row.scope.clone(),
        masked,
        created_at: parse_time(&row.created_at)?,
        rotated_at: parse_time_opt(row.rotated_at.clone())?,
        last_used_at: parse_time_opt(row.last_used_at.clone())?,
    })
}

/// Every vault entry decrypted, for bootstrap. One entry that fails to open
/// fails the whole bundle (naming the entry, never a value).
pub fn decrypt_all(conn: &Connection, vault: &Vault) -> Result<Vec<BundleSecret>> {
    rows(conn)?
        .into_iter()
        .map(|row| {
            let value = vault.open_string(&row.env, &row.sealed)?;
            Ok(BundleSecret {
                provider: provider_of(row.kind, &row.env),
                env: row.env,
                value,
                kind: row.kind,
                scope: row.scope,
                expires_at: None,
            })
        })
        .collect()
}

/// `GET /secrets`: names, kinds, scopes, masked previews and timestamps.
pub async fn list(
    State(platform): State<Platform>,
    _admin: AdminCaller,
) -> Result<Json<SecretList>, ApiFailure> {
    let shared = platform.shared.clone();
    let secrets = platform
        .shared
        .db
        .call(move |conn| {
            rows(conn)?
                .iter()
                .map(|row| {
                    let masked = match shared.vault.open_string(&row.env, &row.sealed) {
                        Ok(v) => mask(v.expose_secret()),
                        Err(_) => {
                            tracing::warn!(env = %row.env, "vault entry cannot be decrypted");
                            "****".to_owned()
                        }
                    };
                    entry(row, masked)
                })
                .collect::<Result<Vec<_>>>()
        })
        .await?;
    Ok(Json(SecretList { secrets }))
}

fn validate_value(value: &str) -> Result<(), ApiFailure> {
    if value.is_empty() {
        return Err(ApiFailure::invalid("value", "must not be empty"));
    }
    if value.contains('\0') {
        return Err(ApiFailure::invalid(
            "value",
            "must not contain a NUL character",
        ));
    }
    if value.len() > MAX_SECRET_VALUE_LEN {
        return Err(ApiFailure::invalid(
            "value",
            format!("is over {MAX_SECRET_VALUE_LEN} bytes (64 KiB)"),
        ));
    }
    Ok(())
}

/// `PUT /secrets/{env}`: create or rotate; answers the entry as listed.
pub async fn put(
    State(platform): State<Platform>,
    _admin: AdminCaller,
    PathParam(env): PathParam,
    JsonBody(req): JsonBody<PutSecretRequest>,
) -> Result<Json<SecretEntry>, ApiFailure> {
    validate_env_name(&env).map_err(|e| ApiFailure::invalid("env", e))?;
    validate_value(req.value.expose_secret())?;
    let kind = req.kind.unwrap_or(if env == ANTHROPIC_API_KEY {
        SecretKind::Anthropic
    } else {
        SecretKind::Custom
    });
    let scope = req.scope.unwrap_or(Scope::Org);
    let masked = mask(req.value.expose_secret());
    let sealed = platform
        .shared
        .vault
        .seal(&env, req.value.expose_secret().as_bytes())?;
    let name = env.clone();
    let (entry, rotated) = platform
        .shared
        .db
        .call(move |conn| write(conn, &name, kind, &scope, &sealed, masked))
        .await?;
    tracing::info!(env = %env, rotated, "secret written");
    Ok(Json(entry))
}

fn write(
    conn: &mut Connection,
    env: &str,
    kind: SecretKind,
    scope: &Scope,
    sealed: &Sealed,
    masked: String,
) -> Result<(SecretEntry, bool)> {
    let tx = conn.transaction()?;
    let stamp = fmt_time(now());
    let exists = tx
        .query_row("SELECT 1 FROM secrets WHERE env = ?1", [env], |_| Ok(()))
        .optional()?
        .is_some();
    if exists {
        tx.execute(
            "UPDATE secrets SET kind = ?2, scope = ?3, nonce = ?4, ciphertext = ?5, rotated_at = ?6
             WHERE env = ?1",
            params![
                env,
                kind_str(kind),
                scope.to_string(),
                sealed.nonce,
                sealed.ciphertext,
                stamp
            ],
        )?;
    } else {
        tx.execute(
            "INSERT INTO secrets (env, kind, scope, nonce, ciphertext, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                env,
                kind_str(kind),
                scope.to_string(),
                sealed.nonce,
                sealed.ciphertext,
                stamp
            ],
        )?;
    }
    db::bump_generation(&tx)?;
    let row = select(&tx, Some(env))?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Corrupt {
            what: format!("secret {env} vanished while written"),
        })?;
    let listed = entry(&row, masked)?;
    tx.commit()?;
    Ok((listed, exists))
}

/// `DELETE /secrets/{env}` → `204`, or `404` when there is no such entry.
pub async fn delete(
    State(platform): State<Platform>,
    _admin: AdminCaller,
    PathParam(env): PathParam,
) -> Result<StatusCode, ApiFailure> {
    let name = env.clone();
    let removed = platform
        .shared
        .db
        .call(move |conn| {
            let tx = conn.transaction()?;
            let n = tx.execute("DELETE FROM secrets WHERE env = ?1", [&name])?;
            if n > 0 {
                db::bump_generation(&tx)?;
            }
            tx.commit()?;
            Ok::<_, Error>(n > 0)
        })
        .await?;
    if !removed {
        return Err(ApiFailure::not_found(format!("no secret named {env}")));
    }
    tracing::info!(env = %env, "secret deleted");
    Ok(StatusCode::NO_CONTENT)
}
