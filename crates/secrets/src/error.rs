//! The crate's one error type.
//!
//! Every error names the file and line and says what was expected. None ever
//! carries a value or a key from the file: a line may be a pasted secret, so
//! the message describes the line's shape instead of quoting it.

use std::path::PathBuf;

/// What can go wrong in this crate (reading and parsing the local `.env`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("malformed line {line} in {path}: expected UTF-8 text")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The first line with an invalid byte (1-based).
        line: usize,
    },
    /// A line does not follow the `.env` rules.
    #[error("malformed line {line} in {path}: expected {expected}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where the statement starts (1-based).
        line: usize,
        /// What the parser expected, e.g. `KEY=VALUE`.
        expected: &'static str,
    },
    /// `${NAME:?message}` or `${NAME?message}` found no value for `NAME`.
    #[error("line {line} in {path}: required variable {name} is missing a value")]
    MissingRequired {
        /// The file.
        path: PathBuf,
        /// Where the statement starts (1-based).
        line: usize,
        /// The variable that must be set.
        name: String,
    },
}

/// The `.env` errors, under the name the architecture uses.
pub type DotenvError = Error;
