//! The runner's secrets in memory: the bundle, the local `.env`, the
//! local-wins merge, which values each job is entitled to, and redaction.
//!
//! This crate does no network and no Docker I/O. It never loads anything into
//! the process environment and never writes a value to disk. Every type that
//! holds a value keeps it in a [`secrecy::SecretString`] (zeroized on drop)
//! and writes its `Debug` by hand, showing names and counts only.
//!
//! # Layout
//! - [`set`]: [`SecretSet`], the named values one job receives.
//! - [`redact`]: [`Redactor`], one aho-corasick matcher over every value and
//!   its encoded forms ([`forms`]), replacing each by `[REDACTED:NAME]`.
//! - [`stream`]: [`StreamRedactor`], the same over a stream in pieces.
//! - [`log`]: [`RedactorHandle`] and [`RedactingMakeWriter`], the redacting
//!   tracing writer that shares its matcher with the job log streams.

#![warn(missing_docs)]

mod finder;
pub mod forms;
pub mod log;
pub mod redact;
pub mod set;
pub mod stream;

pub use forms::MIN_SECRET_LEN;
pub use log::{RedactingMakeWriter, RedactingWriter, RedactorHandle};
pub use redact::Redactor;
pub use set::SecretSet;
pub use stream::StreamRedactor;
