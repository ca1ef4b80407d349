//! The local Spedy platform: the runner API contract
//! (`shared/design/platform-api.md`) served for real, with an encrypted vault
//! in SQLite, so the runner can be run and tested end to end on one machine.
//!
//! It is a library (tests and `spedy-runner demo` run it in-process with
//! [`spawn`]) and the `spedy-platform` binary.
//!
//! # Layout
//! - [`config`]: [`PlatformConfig`] and the binary's flags.
//! - [`vault`]: AES-256-GCM under the master key; masked previews.
//! - [`db`]: the SQLite schema and the async bridge to the connection.
//! - [`auth`]: token hashes and the route guards.
//! - [`http`]: the error body, the JSON extractor, unknown routes.
//! - [`routes`]: the one route table the router and `docs/openapi.yaml` agree on.
//! - `handlers`: one module per area (runners, secrets, integrations, jobs).
//!
//! # Theory of operation
//! [`Platform::open`] creates the data folder, loads or creates the master
//! key, opens the database and checks the key against a stored key-check
//! record, then settles the admin token (configured, stored as a hash, or
//! generated and handed back once by [`Platform::admin_token_created`]).
//! [`serve`] runs axum until the injected shutdown future completes; claims
//! held in a long-poll are released at once (answered `204`), and in-flight
//! requests finish. Every state lives in the database, so a restart on the
//! same data folder and key keeps tokens, secrets, integrations and jobs.
//!
//! Secrets: values are decrypted only in `POST /runners/bootstrap` (to send
//! them) and in `GET /secrets` (to compute masked previews in memory). No
//! value or token is logged; logs carry ids and env names only.

#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
mod handlers;
pub mod http;
pub mod routes;
pub mod vault;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use config::PlatformConfig;
pub use error::{Error, Result};
use spedy_api::AdminToken;

use crate::db::Db;
use crate::vault::Vault;

/// An opened platform: cheap to clone (an `Arc` inside); the router's state.
#[derive(Clone)]
pub struct Platform {
    shared: Arc<Shared>,
    admin_token_created: Option<AdminToken>,
}

/// What every request shares.
struct Shared {
    db: Db,
    vault: Vault,
    config: PlatformConfig,
    /// SHA-256 of the admin token.
    admin_hash: [u8; 32],
    /// The base of `env_snippet` and links; [`serve`] fills in the bound
    /// address when no public URL was configured.
    public_url: RwLock<String>,
    /// Woken by every enqueue; claims waiting in a long-poll listen to it.
    jobs_ready: Notify,
    /// Cancelled when the server shuts down, so held claims return at once.
    stopping: CancellationToken,
}

impl Platform {
    /// Opens the data folder (creating it, the key file and the database as
    /// needed) and settles the admin token.
    pub fn open(config: PlatformConfig) -> Result<Platform> {
        create_data_dir(&config.data_dir)?;
        let vault = Vault::open(&config.data_dir, config.master_key.as_ref())?;
        let db = Db::open(&config.data_dir)?;
        check_key(&db, &vault, &config)?;
        let (admin_hash, admin_token_created) = settle_admin_token(&db, &config)?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.addr));
        tracing::info!(data_dir = %config.data_dir.display(), "platform opened");
        Ok(Platform {
            shared: Arc::new(Shared {
                db,
                vault,
                admin_hash,
                public_url: RwLock::new(public_url),
                jobs_ready: Notify::new(),
                stopping: CancellationToken::new(),
                config,
            }),
            admin_token_created,
        })
    }

    /// The admin token, only when this start generated it (first start with
    /// none configured). It is stored only as a hash: show it once.
    pub fn admin_token_created(&self) -> Option<AdminToken> {
        self.admin_token_created.clone()
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &PlatformConfig {
        &self.shared.config
    }

    /// The axum router serving every route of [`routes::ROUTES`].
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone())
    }

    /// The public base URL (links, `env_snippet`).
    pub fn public_url(&self) -> String {
        self.shared
            .public_url
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_bound_addr(&self, addr: SocketAddr) {
        if self.shared.config.public_url.is_none() {
            let mut url = self
                .shared
                .public_url
                .write()
                .unwrap_or_else(|p| p.into_inner());
            *url = format!("http://{addr}");
        }
    }
}

/// Creates the data folder (0700), and narrows an existing one that others
/// may enter: it holds the vault, and its key file unless one is configured.
fn create_data_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let io = |source| Error::Io {
        path: dir.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let mode = std::fs::metadata(dir).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
            Ok(()) => {
                tracing::info!(data_dir = %dir.display(), "data folder narrowed to mode 0700")
            }
            Err(e) => tracing::warn!(
                data_dir = %dir.display(),
                error = %e,
                "the data folder is open to others and cannot be narrowed to mode 0700"
            ),
        }
    }
    Ok(())
}

fn check_key(db: &Db, vault: &Vault, config: &PlatformConfig) -> Result<()> {
    db.call_sync(|conn| {
        let nonce = db::meta_get(conn, "key_check_nonce")?;
        let ct = db::meta_get(conn, "key_check")?;
        match (nonce, ct) {
            (Some(nonce), Some(ciphertext)) => {
                let sealed = vault::Sealed { nonce, ciphertext };
                if vault.verify_key_check(&sealed) {
                    Ok(())
                } else {
                    Err(Error::WrongMasterKey {
                        data_dir: config.data_dir.clone(),
                    })
                }
            }
            _ => {
                let sealed = vault.key_check()?;
                db::meta_set(conn, "key_check_nonce", &sealed.nonce)?;
                db::meta_set(conn, "key_check", &sealed.ciphertext)
            }
        }
    })
}

fn settle_admin_token(db: &Db, config: &PlatformConfig) -> Result<([u8; 32], Option<AdminToken>)> {
    db.call_sync(|conn| {
        let stored = db::meta_get(conn, "admin_token_hash")?;
        if let Some(token) = &config.admin_token {
            let hash = auth::hash_token(token.expose());
            let same = stored
                .as_deref()
                .is_some_and(|s| bool::from(s.ct_eq(hash.as_slice())));
            if !same {
                db::meta_set(conn, "admin_token_hash", &hash)?;
                tracing::info!("admin token set from the configuration");
            }
            return Ok((hash, None));
        }
        if let Some(stored) = stored {
            let hash = <[u8; 32]>::try_from(stored.as_slice()).map_err(|_| Error::Corrupt {
                what: "admin token hash".into(),
            })?;
            return Ok((hash, None));
        }
        let token = auth::new_admin_token();
        let hash = auth::hash_token(token.expose());
        db::meta_set(conn, "admin_token_hash", &hash)?;
        tracing::info!("admin token generated");
        Ok((hash, Some(token)))
    })
}

/// Serves `platform` on `listener` until `shutdown` completes, then lets
/// in-flight requests finish (held claims return `204` at once).
pub async fn serve(
    listener: TcpListener,
    platform: Platform,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr().map_err(Error::Serve)?;
    platform.set_bound_addr(addr);
    let stopping = platform.shared.stopping.clone();
    let router = platform.router();
    tracing::info!(%addr, "serving");
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            tokio::select! {
                () = shutdown => {}
                () = stopping.cancelled() => {}
            }
            stopping.cancel();
        })
        .await
        .map_err(Error::Serve);
    platform.shared.stopping.cancel();
    tracing::info!("stopped");
    result
}

/// A platform serving in a tokio task (see [`spawn`]).
pub struct RunningPlatform {
    /// The bound address.
    pub addr: SocketAddr,
    /// The admin token: the configured one, or the one generated now.
    pub admin_token: AdminToken,
    /// The opened platform (for its public URL and config).
    pub platform: Platform,
    /// Cancels the server when dropped; [`RunningPlatform::shutdown`] takes it.
    stop: Option<DropGuard>,
    /// The serving task; awaited by [`RunningPlatform::shutdown`].
    task: Option<JoinHandle<Result<()>>>,
}

impl RunningPlatform {
    /// `http://ADDR` (or the configured public URL).
    pub fn url(&self) -> String {
        self.platform.public_url()
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(guard) = self.stop.take() {
            guard.disarm().cancel();
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|_| Error::Task)?,
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for RunningPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningPlatform")
            .field("addr", &self.addr)
            .field("admin_token", &self.admin_token)
            .finish_non_exhaustive()
    }
}

/// Opens the platform, binds `config.addr` (port 0 allowed) and serves in a
/// tokio task. The admin token must be configured unless this is the first
/// start of the data folder (then it is generated and returned).
pub async fn spawn(config: PlatformConfig) -> Result<RunningPlatform> {
    let configured = config.admin_token.clone();
    let data_dir = config.data_dir.clone();
    let platform = tokio::task::spawn_blocking(move || Platform::open(config))
        .await
        .map_err(|_| Error::Task)??;
    let admin_token = configured
        .or_else(|| platform.admin_token_created())
        .ok_or(Error::AdminTokenRequired { data_dir })?;
    let want = platform.shared.config.addr;
    let listener = TcpListener::bind(want)
        .await
        .map_err(|source| Error::Bind { addr: want, source })?;
    let addr = listener.local_addr().map_err(Error::Serve)?;
    platform.set_bound_addr(addr);
    let stop = CancellationToken::new();
    let signal = stop.clone();
    let task = tokio::spawn(serve(listener, platform.clone(), async move {
        signal.cancelled().await
    }));
    Ok(RunningPlatform {
        addr,
        admin_token,
        platform,
        stop: Some(stop.drop_guard()),
        task: Some(task),
    })
}
