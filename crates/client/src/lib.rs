//! The client of the Spedy platform API (`shared/design/platform-api.md`).
//!
//! Owns every runner-facing and admin call of the contract, over reqwest with
//! rustls (no OpenSSL), with the contract's types from `spedy-api`. It does
//! not retry by itself: each call either succeeds or returns one typed
//! [`Error`], and [`Error::is_transient`] tells the caller whether a retry
//! (paced by [`backoff::Backoff`]) may help.
//!
//! ```no_run
//! # async fn demo(token: spedy_api::RunnerToken) -> Result<(), spedy_client::Error> {
//! let client = spedy_client::Client::builder("https://api.spedy.ai")
//!     .extra_ca_pem("/etc/spedy/corp-ca.pem")
//!     .build()?;
//! let runner = client.runner(token);
//! let boot = runner.bootstrap().await?;
//! if let Some(job) = runner.claim(25).await? {
//!     let _ = (boot, job);
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`builder`]: [`ClientBuilder`], the checks done once (URL scheme and
//!   host, extra CA, timeouts, user agent).
//! - `client`: [`Client`] and the request plumbing: timeouts, body caps,
//!   status mapping, decoding.
//! - `runner`: [`RunnerApi`] (bootstrap, readiness, claim, logs, heartbeat,
//!   complete).
//! - `admin`: [`AdminApi`] (runner tokens, readiness, secrets,
//!   integrations, jobs).
//! - [`error`]: [`Error`], one variant per contract code plus transport and
//!   setup failures.
//! - [`backoff`]: [`backoff::Backoff`], the workspace's one jittered
//!   exponential backoff.
//!
//! # Limits
//! - Connect timeout 10 s, read timeout 60 s (both settable); the claim
//!   long-poll waits `wait_s` + 10 s for its answer.
//! - Answers are capped while they stream, not only by `Content-Length`:
//!   1 MiB for bootstrap and most routes, 32 MiB for `GET /jobs/{id}` (it
//!   holds a whole log), 64 KiB for error bodies.
//! - Redirects are not followed; plain `http://` only for loopback hosts,
//!   which are also never sent through a proxy.
//!
//! # Secrets
//! The `Authorization` header is marked sensitive; `Debug` of every handle
//! shows only the token's prefix. No [`Error`] holds a token, a secret or a
//! quote of a response body (see the [`error`] module).

#![warn(missing_docs)]

mod admin;
pub mod backoff;
pub mod builder;
mod client;
pub mod error;
mod runner;

pub use admin::AdminApi;
pub use builder::ClientBuilder;
pub use client::{
    BOOTSTRAP_BODY_LIMIT, Client, DEFAULT_BODY_LIMIT, ERROR_BODY_LIMIT, JOB_VIEW_BODY_LIMIT,
};
pub use error::Error;
pub use runner::RunnerApi;
