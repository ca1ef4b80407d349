//! [`Engine::run`]: one job, one container, from the image check to the
//! container's removal.
//!
//! # Theory of operation
//! The verified bollard sequence (crate-notes §1), with the hand-off in it:
//! 1. retry the removals an engine outage left behind;
//! 2. make sure the image is here; pull it when it is not (a failed pull is
//!    the job's `error`, not the runner's);
//! 3. create the container: labels `io.spedy.runner` and `io.spedy.job`, log
//!    driver `none` (the redacted stream is the only copy of the output),
//!    `auto_remove` off (the exit code must stay readable), limits, never
//!    privileged, the default bridge network. On the `stdin` path it holds
//!    no secret and its entrypoint is `/.spedy/init`; on the `env` path the
//!    secrets are in its `Env`;
//! 4. `stdin` path: `spedy-init` comes from the read-only init volume
//!    mounted at `/.spedy` (see `initvol`), or, when that volume cannot be
//!    prepared, is uploaded into the created container (in-memory tar);
//! 5. attach (stdout, stderr, and stdin on the `stdin` path) *before* start,
//!    so no output is lost, and without `logs=true`: with the log driver
//!    `none` dockerd cannot replay logs and silently ends such an attach;
//! 6. start; `stdin` path: write the frame, close stdin;
//! 7. pump the output (redacted, with backpressure) until the stream ends,
//!    racing a cancel and the timeout: either one sends SIGTERM, waits
//!    `stop_grace`, sends SIGKILL, and lets the pump deliver what is left;
//! 8. wait for the exit code (a non-zero exit is an `Err` from bollard,
//!    crate-notes §1.2), inspect for the OOM flag;
//! 9. **always** remove the container, on this function's exit path (not in
//!    `Drop`, which cannot await). When the engine is gone the id is kept
//!    and retried by the next run; the orphan sweep covers a runner exit.
//!
//! Do not drop the future of [`Engine::run`] to stop a job: cancel its token,
//! so that step 9 runs.
//!
//! # Errors versus outcomes
//! The engine *answering* "no" (404 image, 400 bad command at start, 409) is
//! the job's problem: an [`Outcome`] with status `error` and the engine's
//! message. The engine *not answering* (connection refused or broken
//! mid-job) is [`Error::Engine`]: the caller reports the job `error` with the
//! error's text and may back off; the next run works again once the engine
//! is back.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bollard::container::{AttachContainerResults, LogOutput};
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ImageInspect};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    InspectContainerOptions, KillContainerOptionsBuilder, StartContainerOptions,
    UploadToContainerOptionsBuilder,
};
use futures_util::{Stream, StreamExt};
use secrecy::ExposeSecret;
use spedy_api::{FinalStatus, LogChunk};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::handoff::{self, INIT_PATH};
use crate::initvol;
use crate::output::Pump;
use crate::{Engine, Error, Injection, JOB_LABEL, Outcome, RUNNER_LABEL, RunSpec};

/// After the kill, how long the pump may still take to deliver the output
/// that was already on its way (a stalled consumer cannot hold the job).
const DRAIN_PATIENCE: Duration = Duration::from_secs(5);

/// Why a job's path ends before its container has run to an exit code.
pub(crate) enum Stop {
    /// The job cannot run: report this outcome.
    Job(Outcome),
    /// The engine is gone.
    Engine(Error),
}

type Step<T> = Result<T, Stop>;

/// Sorts a bollard error: the engine's own "no" is the job's outcome
/// (`context: <engine message>`); anything else means the engine is gone.
fn classify(call: &'static str, e: DockerError, context: &str) -> Stop {
    match e {
        DockerError::DockerResponseServerError { message, .. } => {
            Stop::Job(Outcome::error(format!("{context}: {}", message.trim())))
        }
        DockerError::DockerStreamError { error } => {
            Stop::Job(Outcome::error(format!("{context}: {}", error.trim())))
        }
        source => Stop::Engine(Error::Engine { call, source }),
    }
}

fn settle(step: Step<Outcome>) -> Result<Outcome, Error> {
    match step {
        Ok(o) | Err(Stop::Job(o)) => Ok(o),
        Err(Stop::Engine(e)) => Err(e),
    }
}

/// The attach stream of a container.
type Frames = Pin<Box<dyn Stream<Item = Result<LogOutput, DockerError>> + Send>>;

/// How the output pump ended.
enum End {
    /// The container exited by itself.
    Exited,
    /// It was stopped: cancelled or timed out.
    Stopped(FinalStatus),
}

impl Engine {
    /// Runs `spec` in a new container, sends its redacted output on `out`,
    /// and returns how it ended. `cancel` stops the container (SIGTERM,
    /// `stop_grace`, SIGKILL) and ends the job `cancelled`. The container is
    /// removed whatever happens. See the module doc for errors versus
    /// outcomes.
    pub async fn run(
        &self,
        spec: RunSpec,
        out: mpsc::Sender<LogChunk>,
        cancel: CancellationToken,
    ) -> Result<Outcome, Error> {
        self.run_observed(spec, out, cancel, None).await
    }

    /// [`Engine::run`], telling `started` the container's id once it runs
    /// and its secrets are handed over (used by the self-audit).
    #[tracing::instrument(skip_all, fields(job_id = %spec.job_id))]
    pub(crate) async fn run_observed(
        &self,
        spec: RunSpec,
        out: mpsc::Sender<LogChunk>,
        cancel: CancellationToken,
        started: Option<oneshot::Sender<String>>,
    ) -> Result<Outcome, Error> {
        self.retry_leftovers().await;
        let id = match self.prepare(&spec, &cancel).await {
            Ok(id) => id,
            Err(stop) => return settle(Err(stop)),
        };
        let result = self.drive(&id, &spec, out, &cancel, started).await;
        if self.remove(&id).await {
            tracing::debug!(container = %short(&id), "container removed");
        }
        settle(result)
    }

    /// Steps 2 to 4: image, create, init volume or upload. Returns the container's id; a
    /// container created here is removed by the caller, except when the
    /// upload fails, which removes it itself.
    async fn prepare(&self, spec: &RunSpec, cancel: &CancellationToken) -> Step<String> {
        let image = self.ensure_image(&spec.image, cancel).await?;
        let volume = match spec.injection {
            Injection::Stdin => self.init_volume(&spec.image, &spec.runner_id).await,
            Injection::Env => None,
        };
        let mut body = container_body(spec, &image)?;
        if let (Some(volume), Some(host)) = (&volume, body.host_config.as_mut()) {
            host.mounts = Some(vec![initvol::job_mount(volume)]);
        }
        let options = CreateContainerOptionsBuilder::new()
            .name(&container_name(&spec.job_id))
            .build();
        let id = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| classify("create", e, "could not create the job's container"))?
            .id;
        tracing::debug!(container = %short(&id), injection = %spec.injection, "container created");
        if spec.injection == Injection::Stdin && volume.is_none() {
            let options = UploadToContainerOptionsBuilder::new().path("/").build();
            let tar = bollard::body_full(handoff::init_tar());
            if let Err(e) = self
                .docker
                .upload_to_container(&id, Some(options), tar)
                .await
            {
                self.remove(&id).await;
                return Err(classify(
                    "upload",
                    e,
                    "could not put spedy-init into the container",
                ));
            }
        }
        Ok(id)
    }

    /// Inspects the image, pulling it first when it is missing.
    async fn ensure_image(&self, image: &str, cancel: &CancellationToken) -> Step<ImageInspect> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => return Ok(inspect),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(classify("inspect image", e, &format!("image {image}"))),
        }
        tracing::info!(image, "image not present; pulling it");
        let context = format!("image {image} is not present and could not be pulled");
        let (from_image, tag) = split_tag(image);
        let options = CreateImageOptionsBuilder::new()
            .from_image(from_image)
            .tag(tag)
            .build();
        let pull = async {
            let mut progress = self.docker.create_image(Some(options), None, None);
            while let Some(step) = progress.next().await {
                step?;
            }
            Ok::<(), DockerError>(())
        };
        tokio::select! {
            pulled = pull => pulled.map_err(|e| classify("pull", e, &context))?,
            () = cancel.cancelled() => return Err(Stop::Job(Outcome::cancelled_before_start())),
        }
        self.docker
            .inspect_image(image)
            .await
            .map_err(|e| classify("inspect image", e, &context))
    }

    /// Steps 5 to 8 on a created container.
    async fn drive(
        &self,
        id: &str,
        spec: &RunSpec,
        out: mpsc::Sender<LogChunk>,
        cancel: &CancellationToken,
        started: Option<oneshot::Sender<String>>,
    ) -> Step<Outcome> {
        let Some((mut output, started_at)) = self.launch(id, spec, cancel).await? else {
            return Ok(Outcome::cancelled_before_start());
        };
        if let Some(started) = started {
            let _ = started.send(id.to_owned());
        }
        let mut pump = Pump::new(out, &spec.redactor);
        let end = self
            .follow(id, spec, &mut pump, &mut output, cancel, started_at)
            .await;
        let code = self.exit_code(id).await?;
        let duration = started_at.elapsed();
        let report = pump.into_report();
        let oom = self.oom_killed(id).await;
        let status = match end {
            End::Stopped(why) => why,
            End::Exited if code == 0 => FinalStatus::Succeeded,
            End::Exited => FinalStatus::Failed,
        };
        let error = explain(status, code, oom, spec, &report.stderr_head);
        Ok(Outcome {
            status,
            exit_code: Some(code),
            duration,
            error,
        })
    }

    /// Attaches, starts, and hands the secrets over on the `stdin` path.
    /// `None` when the job was cancelled before the start.
    async fn launch(
        &self,
        id: &str,
        spec: &RunSpec,
        cancel: &CancellationToken,
    ) -> Step<Option<(Frames, Instant)>> {
        let stdin = spec.injection == Injection::Stdin;
        let options = AttachContainerOptionsBuilder::new()
            .stream(true)
            // Not `logs`: the log driver is `none`, which cannot replay, and
            // dockerd then ends the attach at once (with stdin never wired).
            // Attaching before start loses nothing anyway.
            .logs(false)
            .stdin(stdin)
            .stdout(true)
            .stderr(true)
            .build();
        let AttachContainerResults { output, mut input } = self
            .docker
            .attach_container(id, Some(options))
            .await
            .map_err(|e| classify("attach", e, "could not attach to the job's container"))?;
        if cancel.is_cancelled() {
            return Ok(None);
        }
        self.docker
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(|e| classify("start", e, "could not start the job's container"))?;
        let started_at = Instant::now();
        if stdin {
            let frame = handoff::encode(&spec.secrets);
            let handed = async {
                input.write_all(&frame).await?;
                input.flush().await?;
                // Half-close: with `stdin_once`, dockerd then closes the
                // container's stdin, and the job sees EOF after the frame.
                input.shutdown().await
            };
            if let Err(e) = handed.await {
                tracing::warn!(error = %e, "could not hand the secrets over on stdin");
            }
        }
        Ok(Some((output, started_at)))
    }

    /// Pumps the output until the container exits, or until a cancel or the
    /// timeout; then stops it and lets the pump deliver what is left.
    async fn follow(
        &self,
        id: &str,
        spec: &RunSpec,
        pump: &mut Pump,
        output: &mut Frames,
        cancel: &CancellationToken,
        started_at: Instant,
    ) -> End {
        let drain = pump.run(output);
        tokio::pin!(drain);
        // A timeout too large for the clock (`timeout_s` is a u64 from the
        // platform) means no timeout.
        let far = Duration::from_secs(100 * 365 * 24 * 3600);
        let deadline = started_at
            .checked_add(spec.timeout)
            .unwrap_or_else(|| started_at + far);
        let deadline = tokio::time::Instant::from_std(deadline);
        let end = tokio::select! {
            biased;
            r = &mut drain => { log_stream_end(r); End::Exited }
            () = cancel.cancelled() => End::Stopped(FinalStatus::Cancelled),
            () = tokio::time::sleep_until(deadline) => End::Stopped(FinalStatus::TimedOut),
        };
        if let End::Stopped(why) = end {
            tracing::info!(status = %why, "stopping the job's container");
            let patience = spec.stop_grace + DRAIN_PATIENCE;
            let (_, drained) = tokio::join!(
                self.stop(id, spec.stop_grace),
                tokio::time::timeout(patience, &mut drain)
            );
            match drained {
                Ok(r) => log_stream_end(r),
                Err(_) => tracing::warn!("the job's last output was not delivered in time"),
            }
        }
        end
    }

    /// SIGTERM, up to `grace` for the container to exit, then SIGKILL.
    async fn stop(&self, id: &str, grace: Duration) {
        if !grace.is_zero() {
            let _ = self.kill(id, "SIGTERM").await;
            let exited = async {
                let mut wait = self.docker.wait_container(id, None);
                wait.next().await
            };
            if tokio::time::timeout(grace, exited).await.is_ok() {
                return;
            }
        }
        if let Err(e) = self.kill(id, "SIGKILL").await {
            tracing::debug!(error = %e, "SIGKILL not delivered (the container may be gone)");
        }
    }

    async fn kill(&self, id: &str, signal: &str) -> Result<(), DockerError> {
        let options = KillContainerOptionsBuilder::new().signal(signal).build();
        self.docker.kill_container(id, Some(options)).await
    }

    /// The exit code of an exited container. A non-zero code comes back as
    /// `DockerContainerWaitError` (crate-notes §1.2).
    async fn exit_code(&self, id: &str) -> Step<i64> {
        let waited = self.docker.wait_container(id, None).next().await;
        match waited {
            Some(Ok(r)) => Ok(r.status_code),
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(classify("wait", e, "could not read the job's exit code")),
            None => {
                let inspect = self
                    .docker
                    .inspect_container(id, None::<InspectContainerOptions>)
                    .await
                    .map_err(|e| classify("inspect", e, "could not read the job's exit code"))?;
                Ok(inspect.state.and_then(|s| s.exit_code).unwrap_or(-1))
            }
        }
    }

    async fn oom_killed(&self, id: &str) -> bool {
        let inspect = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await;
        inspect
            .ok()
            .and_then(|i| i.state)
            .and_then(|s| s.oom_killed)
            .unwrap_or(false)
    }
}

fn log_stream_end(r: Result<(), DockerError>) {
    if let Err(e) = r {
        tracing::warn!(error = %e, "the job's output stream broke");
    }
}

/// The outcome's error text: the OOM kill, the timeout, or `spedy-init`'s
/// own message when it could not start the command.
fn explain(
    status: FinalStatus,
    code: i64,
    oom: bool,
    spec: &RunSpec,
    stderr_head: &str,
) -> Option<String> {
    if oom {
        let limit = spec
            .limits
            .memory_bytes
            .map_or(String::new(), |b| format!(" of {b} bytes"));
        return Some(format!(
            "the job ran out of memory (limit{limit}) and was killed"
        ));
    }
    match status {
        FinalStatus::TimedOut => Some(format!(
            "the job ran longer than its timeout of {:.1?} and was stopped",
            spec.timeout
        )),
        FinalStatus::Failed
            if spec.injection == Injection::Stdin && (125..=127).contains(&code) =>
        {
            stderr_head
                .lines()
                .find(|l| l.starts_with("spedy-init: "))
                .map(str::to_owned)
        }
        _ => None,
    }
}

/// The create body for `spec`; `image` gives the entrypoint and command on
/// the `stdin` path.
fn container_body(spec: &RunSpec, image: &ImageInspect) -> Step<ContainerCreateBody> {
    let labels = HashMap::from([
        (RUNNER_LABEL.to_owned(), spec.runner_id.clone()),
        (JOB_LABEL.to_owned(), spec.job_id.clone()),
    ]);
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        labels: Some(labels),
        tty: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        host_config: Some(host_config(spec)),
        ..Default::default()
    };
    match spec.injection {
        Injection::Env => {
            // Residual copies: these strings and the request body are not
            // zeroized (crate-notes §2); this path is the weaker one.
            env.extend(
                spec.secrets
                    .iter()
                    .map(|(name, value)| format!("{name}={}", value.expose_secret())),
            );
            body.cmd = spec.command.clone();
        }
        Injection::Stdin => {
            let config = image.config.as_ref();
            let entrypoint = config
                .and_then(|c| c.entrypoint.clone())
                .unwrap_or_default();
            let cmd = config.and_then(|c| c.cmd.clone()).unwrap_or_default();
            let argv = handoff::job_argv(spec.command.as_deref(), &entrypoint, &cmd).ok_or_else(|| {
                Stop::Job(Outcome::error(format!(
                    "nothing to run: the job names no command and image {} has no ENTRYPOINT or CMD",
                    spec.image
                )))
            })?;
            body.entrypoint = Some(vec![INIT_PATH.to_owned()]);
            body.cmd = Some(argv);
            body.open_stdin = Some(true);
            body.stdin_once = Some(true);
            body.attach_stdin = Some(true);
        }
    }
    body.env = Some(env);
    Ok(body)
}

/// Limits, log driver `none`, no auto-remove, never privileged.
fn host_config(spec: &RunSpec) -> HostConfig {
    HostConfig {
        auto_remove: Some(false),
        privileged: Some(false),
        memory: spec.limits.memory_bytes,
        memory_swap: spec.limits.memory_bytes,
        nano_cpus: spec.limits.nano_cpus,
        pids_limit: spec.limits.pids,
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        ..Default::default()
    }
}

/// `spedy-<job id>-<8 hex>`: readable in `docker ps`, unique even when a job
/// id comes back.
fn container_name(job_id: &str) -> String {
    let clean: String = job_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "spedy-{clean}-{:08x}",
        nanos ^ std::process::id().rotate_left(16)
    )
}

/// `name[:tag]` → (`name`, `tag`), with `latest` when no tag is given (an
/// empty tag would pull every tag). A digest reference keeps its digest.
fn split_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

/// The first 12 characters of a container id, as `docker ps` shows it.
pub(crate) fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn image_references_are_split_into_name_and_tag() {
        assert_eq!(split_tag("alpine"), ("alpine", "latest"));
        assert_eq!(split_tag("alpine:3"), ("alpine", "3"));
        assert_eq!(
            split_tag("localhost:5000/team/img"),
            ("localhost:5000/team/img", "latest")
        );
        assert_eq!(
            split_tag("localhost:5000/img:v1"),
            ("localhost:5000/img", "v1")
        );
        assert_eq!(split_tag("img@sha256:abc"), ("img@sha256:abc", ""));
    }

    #[test]
    fn container_names_are_valid_and_carry_the_job_id() {
        let n = container_name("job_01 x/y");
        assert!(n.starts_with("spedy-job_01-x-y-"), "{n}");
        assert!(
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        );
    }
}
