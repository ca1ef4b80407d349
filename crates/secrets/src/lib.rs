//! The runner's secrets in memory: the bundle, the local `.env`, the
//! local-wins merge, which values each job is entitled to, and redaction.
//!
//! This crate does no network and no Docker I/O. It never loads anything into
//! the process environment and never writes a value to disk. Every type that
//! holds a value keeps it in a [`secrecy::SecretString`] (zeroized on drop)
//! and writes its `Debug` by hand, showing names and counts only.
//!
//! # Layout
//! - [`bundle`]: [`SecretBundle`], the bootstrap's secrets in memory.
//! - [`dotenv`]: the local `.env`, parsed by Docker Compose's rules.
//! - [`overrides`]: [`LocalOverrides`], the `.env` lines and legacy process
//!   variables that win over platform values.
//! - [`entitle`]: [`entitled`], the one rule for which values a job receives,
//!   and [`redaction_set`].
//! - [`set`]: [`SecretSet`], the named values one job receives.
//! - [`redact`]: [`Redactor`], one matcher over every value and its encoded
//!   forms ([`forms`]), replacing each by `[REDACTED:NAME]`.
//! - [`stream`]: [`StreamRedactor`], the same over a stream in pieces.
//! - [`log`]: [`RedactorHandle`] and [`RedactingMakeWriter`], the redacting
//!   tracing writer that shares its matcher with the job log streams.
//! - [`error`]: the crate's [`Error`].

#![warn(missing_docs)]

pub mod bundle;
pub mod dotenv;
pub mod entitle;
pub mod error;
mod finder;
pub mod forms;
pub mod log;
pub mod overrides;
pub mod redact;
pub mod set;
pub mod stream;

pub use bundle::{BundleEntry, SecretBundle};
pub use dotenv::DotenvEntry;
pub use entitle::{entitled, entitled_at, redaction_set};
pub use error::{DotenvError, Error};
pub use forms::MIN_SECRET_LEN;
pub use log::{RedactingMakeWriter, RedactingWriter, RedactorHandle};
pub use overrides::{LocalOverride, LocalOverrides, OverrideSource};
pub use redact::Redactor;
pub use set::SecretSet;
pub use stream::StreamRedactor;
