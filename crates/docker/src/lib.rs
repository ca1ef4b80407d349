//! `spedy-docker`: runs one job in one Docker container through bollard, and
//! keeps every secret value out of the engine's config and disk.
//!
//! It owns the container's whole life (create, hand-off, start, output,
//! stop, removal), the orphan sweep and the self-audit. It does not decide
//! which secrets a job gets (`spedy-secrets::entitled`), nor ship logs or
//! talk to the platform (`spedy-supervisor`).
//!
//! # Layout
//! - [`engine`]: [`Engine`], connecting and negotiating the API version.
//! - [`spec`]: [`RunSpec`], [`Limits`], [`Injection`], [`Outcome`].
//! - `run`: [`Engine::run`], one job from image check to removal.
//! - `handoff`: the static `spedy-init`, its tar, the secret frame.
//! - `initvol`: the read-only volume that carries `spedy-init` into jobs.
//! - `output`: attach frames to redacted UTF-8 chunks, with backpressure.
//! - `sweep`: [`Engine::sweep_orphans`].
//! - [`audit`]: [`Engine::self_audit`] for `doctor`.
//!
//! # Theory of operation
//! One call to [`Engine::run`] is one job; the supervisor runs each in a
//! task of its own and passes a bounded channel for the output and a
//! cancellation token. The call returns only once the container is removed
//! (or, when the engine vanished, once its removal is queued for the next
//! call). See `run.rs` for the sequence and the split between [`Error`] (the
//! engine is gone) and [`Outcome`] with status `error` (the job cannot run).
//!
//! Secrets reach the job in one of two ways ([`Injection`]):
//! - **`stdin`** (default): the container is created with no secret, the
//!   static `spedy-init` is mounted into it (a read-only volume, or else an
//!   upload into the created container) and made its entrypoint, the
//!   runner writes the secret set on the attached stdin in a
//!   length-prefixed frame and closes it; `spedy-init` puts the values into
//!   the environment of the job's command and `exec`s it. `docker inspect`
//!   shows `Path: /.spedy/init`, the job's command as `Args`, the non-secret
//!   env, and no value; nothing under `/var/lib/docker/containers/<id>/` or
//!   in the runtime's bundle holds one. The values exist only in the
//!   runner's memory and in the environment of the job's processes.
//! - **`env`**: the values are part of the container's `Env`: `docker
//!   inspect` shows them, and dockerd keeps them in `config.v2.json` (and the
//!   runtime in its bundle's `config.json`) from create until the container
//!   is removed, which happens right after the job.
//!
//! Both paths: log driver `none`, so the redacted stream is the only copy of
//! the output; containers are labelled and always removed.

#![warn(missing_docs)]

pub mod audit;
pub mod engine;
mod error;
mod handoff;
mod initvol;
mod output;
mod run;
pub mod spec;
mod sweep;

pub use audit::{AuditCheck, AuditReport, AuditStatus};
pub use engine::{Engine, EngineInfo};
pub use error::Error;
pub use handoff::INIT_PATH;
pub use spec::{Injection, InjectionParseError, Limits, Outcome, RunSpec};

/// The label naming the runner that owns a container.
pub const RUNNER_LABEL: &str = "io.spedy.runner";
/// The label naming the job a container runs.
pub const JOB_LABEL: &str = "io.spedy.job";
