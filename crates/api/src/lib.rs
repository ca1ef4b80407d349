//! The Spedy platform API contract (v1) as Rust types.
//!
//! This crate owns the wire format that the runner and the platform share:
//! every request and response body of `shared/design/platform-api.md`, the
//! error body, and the two token newtypes. It does no I/O: the client
//! (`spedy-client`) and the local platform (`spedy-platform`) both build on it,
//! so the contract lives in one place.
//!
//! # Layout
//! - [`token`]: [`RunnerToken`] and [`AdminToken`], checked when parsed, never
//!   shown by `Debug` or `Display`.
//! - [`error`]: the error body and its codes.
//! - [`runner`]: bootstrap, the bundle and readiness.
//! - [`job`]: jobs, claims, logs, heartbeats and completion.
//! - [`admin`]: runner tokens, the vault, integrations and the job queue as
//!   an admin sees them.
//! - [`env`]: the rule for a valid environment variable name.
//!
//! # Secrets
//! Secret values deserialize straight into [`secrecy::SecretString`]. Where a
//! type must also be serialized (the platform sends the bundle, the client
//! sends a new secret value), the field goes through [`expose`], the one
//! place that reveals a value to a serializer.

#![warn(missing_docs)]

pub mod admin;
pub mod env;
pub mod error;
pub mod expose;
pub mod job;
pub mod runner;
pub mod token;

pub use admin::*;
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use job::*;
pub use runner::*;
pub use token::{AdminToken, RunnerToken, TokenError};
