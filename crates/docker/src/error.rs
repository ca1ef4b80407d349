//! The crate's one [`Error`] type: what can go wrong *around* a job (the
//! engine cannot be reached, a call to it fails on the way). What goes wrong
//! *with* a job (a missing image, a command that does not exist, a refused
//! create) is not an error: it is an [`Outcome`](crate::Outcome) with status
//! `error` or `failed`, so the caller reports it and goes on.
//!
//! No message here ever holds a secret value: the engine's answers name
//! images, containers and commands, never the hand-off's contents.

/// What went wrong talking to the Docker engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine did not answer at all (socket missing, daemon down,
    /// permission denied).
    #[error(
        "cannot reach the docker engine at {host}\n\n\
         Is the engine running, and may this user use it? `docker info` shows the problem."
    )]
    Unreachable {
        /// The socket or address tried (`unix:///var/run/docker.sock`, `tcp://…`).
        host: String,
        /// The client's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// `DOCKER_HOST` names a scheme this runner does not speak.
    #[error("unsupported DOCKER_HOST {host}: use unix:///path/to/docker.sock or tcp://host:port")]
    UnsupportedHost {
        /// The value of `DOCKER_HOST`.
        host: String,
    },
    /// A call to the engine failed on the way (the connection broke, the
    /// engine went away mid-job). The container, if any, is removed when the
    /// engine is back (the next run retries) or by the orphan sweep.
    #[error("docker engine call `{call}` failed")]
    Engine {
        /// Which call: `create`, `attach`, `wait`, …
        call: &'static str,
        /// The client's error.
        #[source]
        source: bollard::errors::Error,
    },
}

impl Error {
    /// Whether trying again later may help: always true today, since every
    /// variant except a bad `DOCKER_HOST` means the engine is (for now) not
    /// there.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Error::UnsupportedHost { .. })
    }
}
