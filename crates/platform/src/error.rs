//! The crate's one error type: what can stop the platform from opening or
//! serving. Request-level failures are answered with the contract's error
//! body instead (see [`crate::http::ApiFailure`]).
//!
//! No variant ever carries a secret value, a token or key material: messages
//! name files, addresses and env names only.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the platform could not open or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder of the data folder could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The SQLite database failed.
    #[error("database error")]
    Db(#[from] rusqlite::Error),
    /// The configured or stored master key is not base64 of 32 bytes.
    #[error("the vault key in {origin} is not base64 of 32 bytes")]
    BadMasterKey {
        /// Where the key came from (`SPEDY_PLATFORM_MASTER_KEY` or a path).
        origin: String,
    },
    /// The master key does not open this data folder's vault.
    #[error("the vault key does not open the vault in {data_dir}")]
    WrongMasterKey {
        /// The data folder.
        data_dir: PathBuf,
    },
    /// The vault could not encrypt or decrypt an entry.
    #[error("vault entry {entry} cannot be decrypted")]
    Decrypt {
        /// The entry's name (an env name or `integration:<provider>`).
        entry: String,
    },
    /// The admin token exists only as a hash, and none was configured.
    #[error(
        "the admin token of {data_dir} is stored only as a hash; configure it (SPEDY_PLATFORM_ADMIN_TOKEN) to start in-process"
    )]
    AdminTokenRequired {
        /// The data folder.
        data_dir: PathBuf,
    },
    /// Stored data does not have the expected shape.
    #[error("corrupt record in the database: {what}")]
    Corrupt {
        /// Which record.
        what: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("the server failed")]
    Serve(#[source] std::io::Error),
    /// A blocking database task panicked or was cancelled.
    #[error("a database task did not finish")]
    Task,
    /// A setting has a bad value (the value itself is not repeated).
    #[error("{name} is invalid: {reason}")]
    BadSetting {
        /// The setting's environment name.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// No data folder was given and the OS has none.
    #[error("no data folder: set SPEDY_PLATFORM_DATA_DIR")]
    NoDataDir,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
