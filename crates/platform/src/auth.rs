//! Who is calling: bearer tokens, their hashes, and the extractors that
//! guard the routes.
//!
//! Tokens are `rnt_`/`sat_` plus 40 characters of `[A-Za-z0-9]` (238 bits of
//! entropy), so a plain SHA-256 is a sound way to keep them: the database
//! holds only hashes. The admin hash is compared in constant time; a runner
//! token is looked up by its hash and the found hash compared again in
//! constant time. A missing, malformed, unknown or revoked token gets
//! `401 invalid_token`; a valid token on a route for the other kind gets
//! `403 forbidden`.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::distr::{Alphanumeric, SampleString};
use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use spedy_api::token::TOKEN_BODY_LEN;
use spedy_api::{AdminToken, Backend, RunnerInfo, RunnerToken};
use subtle::ConstantTimeEq;

use crate::Platform;
use crate::error::{Error, Result};
use crate::http::ApiFailure;

/// The SHA-256 of a token, as stored.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn random_body(len: usize) -> String {
    // `rand::rng()` is a CSPRNG (ChaCha, seeded from the OS).
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

/// A fresh runner token.
pub fn new_runner_token() -> RunnerToken {
    RunnerToken::parse(&format!("rnt_{}", random_body(TOKEN_BODY_LEN)))
        .expect("a generated token has the checked format")
}

/// A fresh admin token.
pub fn new_admin_token() -> AdminToken {
    AdminToken::parse(&format!("sat_{}", random_body(TOKEN_BODY_LEN)))
        .expect("a generated token has the checked format")
}

/// A fresh id with a prefix (`run_`, `job_`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", random_body(20))
}

/// A random string of `[A-Za-z0-9]`.
pub fn random_alnum(len: usize) -> String {
    random_body(len)
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A runner, by its token.
    Runner(RunnerInfo),
    /// An admin.
    Admin,
}

/// Extractor for admin routes.
pub struct AdminCaller;

/// Extractor for runner routes.
pub struct RunnerCaller(pub RunnerInfo);

/// Extractor for routes open to both kinds.
pub struct AnyCaller(pub Caller);

impl FromRequestParts<Platform> for AnyCaller {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, state: &Platform) -> Result<Self, ApiFailure> {
        authenticate(parts, state).await.map(AnyCaller)
    }
}

impl FromRequestParts<Platform> for AdminCaller {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, state: &Platform) -> Result<Self, ApiFailure> {
        match authenticate(parts, state).await? {
            Caller::Admin => Ok(AdminCaller),
            Caller::Runner(_) => Err(ApiFailure::forbidden(
                "this route needs an admin token (sat_…), not a runner token",
            )),
        }
    }
}

impl FromRequestParts<Platform> for RunnerCaller {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, state: &Platform) -> Result<Self, ApiFailure> {
        match authenticate(parts, state).await? {
            Caller::Runner(info) => Ok(RunnerCaller(info)),
            Caller::Admin => Err(ApiFailure::forbidden(
                "this route needs a runner token (rnt_…), not an admin token",
            )),
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

async fn authenticate(parts: &Parts, state: &Platform) -> Result<Caller, ApiFailure> {
    let token = bearer(parts).ok_or_else(ApiFailure::invalid_token)?;
    if AdminToken::is_well_formed(token) {
        let hash = hash_token(token);
        return if bool::from(hash.ct_eq(&state.shared.admin_hash)) {
            Ok(Caller::Admin)
        } else {
            Err(ApiFailure::invalid_token())
        };
    }
    if RunnerToken::is_well_formed(token) {
        let hash = hash_token(token);
        let found = state
            .shared
            .db
            .call(move |conn| find_runner(conn, &hash))
            .await?;
        return found
            .map(Caller::Runner)
            .ok_or_else(ApiFailure::invalid_token);
    }
    Err(ApiFailure::invalid_token())
}

fn find_runner(conn: &Connection, hash: &[u8; 32]) -> Result<Option<RunnerInfo>> {
    let row = conn
        .query_row(
            "SELECT id, name, pool_size, backend, token_hash FROM runners
             WHERE token_hash = ?1 AND revoked_at IS NULL",
            [hash.as_slice()],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u32>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((id, name, pool_size, backend, stored)) = row else {
        return Ok(None);
    };
    if !bool::from(stored.as_slice().ct_eq(hash.as_slice())) {
        return Ok(None);
    }
    Ok(Some(RunnerInfo {
        id,
        name,
        pool_size,
        backend: parse_backend(&backend)?,
    }))
}

/// A stored backend name read back.
pub fn parse_backend(s: &str) -> Result<Backend> {
    match s {
        "anthropic_api" => Ok(Backend::AnthropicApi),
        "local_claude" => Ok(Backend::LocalClaude),
        other => Err(Error::Corrupt {
            what: format!("runner backend {other:?}"),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_distinct() {
        let a = new_runner_token();
        let b = new_runner_token();
        assert_ne!(a, b);
        assert!(RunnerToken::is_well_formed(a.expose()));
        assert!(AdminToken::is_well_formed(new_admin_token().expose()));
        assert_ne!(hash_token(a.expose()), hash_token(b.expose()));
    }
}
