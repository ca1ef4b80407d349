//! [`Engine`]: the one bollard client of the runner, and what it knows about
//! the engine behind it.
//!
//! Owns connecting (`DOCKER_HOST` or the local socket, always with version
//! negotiation: bollard 0.21 asks for API 1.53 and this engine speaks 1.41,
//! crate-notes §1), the engine's identity ([`EngineInfo`]) and the list of
//! containers whose removal failed because the engine was gone; every later
//! [`Engine::run`] and [`Engine::sweep_orphans`] retries them first.

use std::fmt;
use std::sync::{Arc, Mutex};

use bollard::query_parameters::RemoveContainerOptionsBuilder;
use bollard::{API_DEFAULT_VERSION, Docker};

use crate::Error;

/// Seconds bollard waits for the response headers of one call. Long calls
/// (attach, wait, pull) only need their headers within it (crate-notes §1).
const CLIENT_TIMEOUT_S: u64 = 120;

/// The socket used when `DOCKER_HOST` is unset.
pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// A connected Docker engine. Cheap to clone: clones share the client and
/// the list of containers still to remove.
#[derive(Clone)]
pub struct Engine {
    pub(crate) docker: Docker,
    /// `unix:///…` or `tcp://…`, for messages.
    host: String,
    /// Containers whose removal failed because the engine did not answer.
    /// Pushed by a job's exit path, drained (and retried) by the next run or
    /// sweep; lost when the runner exits, which the orphan sweep at the next
    /// start covers.
    leftovers: Arc<Mutex<Vec<String>>>,
    /// The init volume (`initvol`), prepared by the first `stdin`-path job;
    /// `None` inside means the per-job upload is used.
    pub(crate) init_volume: Arc<tokio::sync::OnceCell<Option<String>>>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// Who the engine is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineInfo {
    /// The engine's version, e.g. `20.10.24+dfsg1`.
    pub version: String,
    /// The highest API version it speaks, e.g. `1.41`.
    pub api_version: String,
    /// The API version in use after negotiation, e.g. `1.41`.
    pub negotiated_api_version: String,
    /// `linux`, …
    pub os: String,
    /// `amd64`, …
    pub arch: String,
    /// Where the engine is: `unix:///var/run/docker.sock`, `tcp://…`.
    pub host: String,
}

impl Engine {
    /// Connects through `DOCKER_HOST` (`unix://` or `tcp://`/`http://`) or,
    /// when it is unset or empty, the local socket, and negotiates the API
    /// version. Fails with a message naming the socket or address, and
    /// hinting at `docker info`, when the engine does not answer.
    pub async fn connect() -> Result<Engine, Error> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_SOCKET.to_owned());
        Engine::connect_to(&host).await
    }

    /// Connects to the engine at `host` (`unix:///path`, `tcp://host:port`
    /// or `http://host:port`) and negotiates the API version.
    pub async fn connect_to(host: &str) -> Result<Engine, Error> {
        let host = host.trim().to_owned();
        let unreachable = |source| Error::Unreachable {
            host: host.clone(),
            source,
        };
        let docker = if let Some(path) = host.strip_prefix("unix://") {
            Docker::connect_with_unix(path, CLIENT_TIMEOUT_S, API_DEFAULT_VERSION)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(&host, CLIENT_TIMEOUT_S, API_DEFAULT_VERSION)
        } else {
            return Err(Error::UnsupportedHost { host });
        }
        .map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        Ok(Engine {
            docker,
            host,
            leftovers: Arc::default(),
            init_volume: Arc::default(),
        })
    }

    /// Whether `stdin`-path jobs get `spedy-init` from the shared read-only
    /// init volume (the default) or by an upload into each container (about
    /// 130 ms more per job on the reference engine; no volume is created).
    pub fn with_init_volume(mut self, enabled: bool) -> Engine {
        self.init_volume = Arc::new(if enabled {
            tokio::sync::OnceCell::new()
        } else {
            tokio::sync::OnceCell::new_with(Some(None))
        });
        self
    }

    /// The address this engine was reached at.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The underlying bollard client (for benchmarks that compare with the
    /// plain engine, and for tests).
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Asks the engine who it is.
    pub async fn info(&self) -> Result<EngineInfo, Error> {
        let v = self
            .docker
            .version()
            .await
            .map_err(|source| Error::Unreachable {
                host: self.host.clone(),
                source,
            })?;
        let negotiated = self.docker.client_version();
        Ok(EngineInfo {
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
            negotiated_api_version: format!(
                "{}.{}",
                negotiated.major_version, negotiated.minor_version
            ),
            os: v.os.unwrap_or_default(),
            arch: v.arch.unwrap_or_default(),
            host: self.host.clone(),
        })
    }

    /// Force-removes a container (and its anonymous volumes). A container
    /// that is already gone counts as removed. When the engine does not
    /// answer, the id is kept and retried by the next run or sweep.
    pub(crate) async fn remove(&self, id: &str) -> bool {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => true,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => true,
            Err(e) => {
                tracing::warn!(container = id, error = %e,
                    "could not remove the job's container; will retry");
                self.leftovers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(id.to_owned());
                false
            }
        }
    }

    /// Retries the removals that failed while the engine was gone.
    pub(crate) async fn retry_leftovers(&self) {
        let pending: Vec<String> = std::mem::take(
            &mut *self
                .leftovers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for id in pending {
            if self.remove(&id).await {
                tracing::info!(container = %id, "removed a container left by an engine outage");
            }
        }
    }
}
