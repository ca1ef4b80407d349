//! The job queue: the runner's claim (long-poll), logs, heartbeat and
//! complete; the admin's enqueue, get and cancel.
//!
//! # Theory of operation
//! A job is `queued`, then `running` once claimed, then final (`succeeded`,
//! `failed`, `timed_out`, `cancelled`, `error`). A claim takes the oldest
//! queued job with one `UPDATE … RETURNING` on the single connection, so each
//! job goes to exactly one claimer. A claim with nothing to take waits on a
//! `Notify` that every enqueue wakes, up to `min(wait_s, max_claim_wait_s)`,
//! and answers `204` when nothing came (or when the server shuts down).
//!
//! A runner may only touch the jobs it claimed: another runner's job is `403`,
//! an unknown id `404`. Logs are stored once per `(job, seq)`; `complete`
//! keeps the first result. An admin cancel finishes a queued job at once and
//! marks a running one, which the runner learns at its next heartbeat.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rusqlite::{Connection, OptionalExtension, params};
use spedy_api::env::validate_env_name;
use spedy_api::{
    ClaimRequest, ClaimResponse, CompleteRequest, CreatedJob, HeartbeatResponse, Job, JobSpec,
    JobStatus, JobView, LogBatch,
};
use tokio::time::Instant;

use crate::Platform;
use crate::auth::{self, AdminCaller, RunnerCaller};
use crate::db::{fmt_time, now};
use crate::error::{Error, Result};
use crate::http::{ApiFailure, JsonBody, OptionalJsonBody, PathParam};

fn status_str(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Queued => "queued",
        JobStatus::Running => "running",
        JobStatus::Succeeded => "succeeded",
        JobStatus::Failed => "failed",
        JobStatus::TimedOut => "timed_out",
        JobStatus::Cancelled => "cancelled",
        JobStatus::Error => "error",
    }
}

fn parse_status(s: &str) -> Result<JobStatus> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| Error::Corrupt {
        what: format!("job status {s:?}"),
    })
}

/// `POST /runners/jobs/claim` body `{"wait_s"}` (an empty body waits 0 s):
/// `200 {"job"}` or `204`.
pub async fn claim(
    State(platform): State<Platform>,
    RunnerCaller(runner): RunnerCaller,
    OptionalJsonBody(req): OptionalJsonBody<ClaimRequest>,
) -> Result<Response, ApiFailure> {
    let wait_s = req
        .map_or(0, |r| r.wait_s)
        .min(platform.config().max_claim_wait_s);
    let deadline = Instant::now() + Duration::from_secs(wait_s);
    let shared = &platform.shared;
    loop {
        // Register for the wake-up before looking, so an enqueue between the
        // look and the wait is not missed.
        let notified = shared.jobs_ready.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let id = runner.id.clone();
        if let Some(job) = shared.db.call(move |conn| take_next(conn, &id)).await? {
            tracing::info!(job_id = %job.id, runner_id = %runner.id, "job claimed");
            return Ok(Json(ClaimResponse { job }).into_response());
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline) => break,
            () = shared.stopping.cancelled() => break,
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn take_next(conn: &Connection, runner_id: &str) -> Result<Option<Job>> {
    let row = conn
        .query_row(
            "UPDATE jobs SET status = 'running', runner_id = ?1, claimed_at = ?2
             WHERE rowid = (SELECT rowid FROM jobs WHERE status = 'queued' ORDER BY rowid LIMIT 1)
             RETURNING id, spec",
            params![runner_id, fmt_time(now())],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()?;
    row.map(|(id, spec)| {
        let spec: JobSpec = serde_json::from_str(&spec).map_err(|_| Error::Corrupt {
            what: format!("job {id} spec"),
        })?;
        Ok(Job { id, spec })
    })
    .transpose()
}

/// Checks that `job_id` exists and was claimed by `runner_id`; returns
/// `(status, cancel requested)`.
fn owned(
    conn: &Connection,
    job_id: &str,
    runner_id: &str,
) -> Result<(JobStatus, bool), ApiFailure> {
    let row = conn
        .query_row(
            "SELECT status, runner_id, cancel FROM jobs WHERE id = ?1",
            [job_id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            },
        )
        .optional()?;
    let Some((status, owner, cancel)) = row else {
        return Err(ApiFailure::not_found(format!("no job {job_id}")));
    };
    if owner.as_deref() != Some(runner_id) {
        return Err(ApiFailure::forbidden(format!(
            "job {job_id} was not claimed by this runner"
        )));
    }
    Ok((parse_status(&status)?, cancel))
}

/// `POST /runners/jobs/{id}/logs` → `204`; a repeated `seq` is ignored.
pub async fn logs(
    State(platform): State<Platform>,
    RunnerCaller(runner): RunnerCaller,
    PathParam(job_id): PathParam,
    JsonBody(batch): JsonBody<LogBatch>,
) -> Result<StatusCode, ApiFailure> {
    let seq =
        i64::try_from(batch.seq).map_err(|_| ApiFailure::invalid("seq", "must be below 2^63"))?;
    let text: String = batch.chunks.iter().map(|c| c.text.as_str()).collect();
    platform
        .shared
        .db
        .call(move |conn| {
            owned(conn, &job_id, &runner.id)?;
            conn.execute(
                "INSERT OR IGNORE INTO job_logs (job_id, seq, text) VALUES (?1, ?2, ?3)",
                params![job_id, seq, text],
            )?;
            Ok::<_, ApiFailure>(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /runners/jobs/{id}/heartbeat` → `200 {"cancel"}`.
pub async fn heartbeat(
    State(platform): State<Platform>,
    RunnerCaller(runner): RunnerCaller,
    PathParam(job_id): PathParam,
) -> Result<Json<HeartbeatResponse>, ApiFailure> {
    let (_, cancel) = platform
        .shared
        .db
        .call(move |conn| owned(conn, &job_id, &runner.id))
        .await?;
    Ok(Json(HeartbeatResponse { cancel }))
}

/// `POST /runners/jobs/{id}/complete` → `204`; the first result is kept.
pub async fn complete(
    State(platform): State<Platform>,
    RunnerCaller(runner): RunnerCaller,
    PathParam(job_id): PathParam,
    JsonBody(req): JsonBody<CompleteRequest>,
) -> Result<StatusCode, ApiFailure> {
    let duration_ms = i64::try_from(req.duration_ms)
        .map_err(|_| ApiFailure::invalid("duration_ms", "must be below 2^63"))?;
    let usage = req.usage.as_ref().map(serde_json::Value::to_string);
    let status = JobStatus::from(req.status);
    let id = job_id.clone();
    let first = platform
        .shared
        .db
        .call(move |conn| {
            owned(conn, &id, &runner.id)?;
            let n = conn.execute(
                "UPDATE jobs SET status = ?2, exit_code = ?3, duration_ms = ?4, error = ?5,
                   usage = ?6, finished_at = ?7
                 WHERE id = ?1 AND status = 'running'",
                params![
                    id,
                    status_str(status),
                    req.exit_code,
                    duration_ms,
                    req.error,
                    usage,
                    fmt_time(now())
                ],
            )?;
            Ok::<_, ApiFailure>(n > 0)
        })
        .await?;
    if first {
        tracing::info!(job_id = %job_id, status = status_str(status), "job completed");
    }
    Ok(StatusCode::NO_CONTENT)
}

fn validate_spec(spec: &JobSpec) -> Result<(), ApiFailure> {
    if spec.image.trim().is_empty() {
        return Err(ApiFailure::invalid("image", "must not be empty"));
    }
    if spec.timeout_s == 0 || i64::try_from(spec.timeout_s).is_err() {
        return Err(ApiFailure::invalid("timeout_s", "must be at least 1"));
    }
    if spec.command.as_ref().is_some_and(Vec::is_empty) {
        return Err(ApiFailure::invalid(
            "command",
            "must not be empty; use null to run the image's own command",
        ));
    }
    for name in spec.env.keys() {
        validate_env_name(name).map_err(|e| ApiFailure::invalid(&format!("env.{name}"), e))?;
    }
    Ok(())
}

/// `POST /jobs` (a job without `id`) → `201 {"id"}`; wakes waiting claims.
pub async fn enqueue(
    State(platform): State<Platform>,
    _admin: AdminCaller,
    JsonBody(spec): JsonBody<JobSpec>,
) -> Result<(StatusCode, Json<CreatedJob>), ApiFailure> {
    validate_spec(&spec)?;
    let id = auth::new_id("job_");
    let spec_json = serde_json::to_string(&spec).map_err(|_| Error::Corrupt {
        what: "job spec".into(),
    })?;
    let job_id = id.clone();
    platform
        .shared
        .db
        .call(move |conn| {
            conn.execute(
                "INSERT INTO jobs (id, spec, status, created_at) VALUES (?1, ?2, 'queued', ?3)",
                params![job_id, spec_json, fmt_time(now())],
            )?;
            Ok::<_, Error>(())
        })
        .await?;
    platform.shared.jobs_ready.notify_waiters();
    tracing::info!(job_id = %id, image = %spec.image, "job queued");
    Ok((StatusCode::CREATED, Json(CreatedJob { id })))
}

/// `GET /jobs/{id}`: status, exit code, the log (chunks in `seq` order),
/// usage and error.
pub async fn get(
    State(platform): State<Platform>,
    _admin: AdminCaller,
    PathParam(job_id): PathParam,
) -> Result<Json<JobView>, ApiFailure> {
    let view = platform
        .shared
        .db
        .call(move |conn| view(conn, &job_id))
        .await?;
    Ok(Json(view))
}

fn view(conn: &Connection, job_id: &str) -> Result<JobView, ApiFailure> {
    let row = conn
        .query_row(
            "SELECT status, exit_code, usage, error FROM jobs WHERE id = ?1",
            [job_id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            },
        )
        .optional()?;
    let Some((status, exit_code, usage, error)) = row else {
        return Err(ApiFailure::not_found(format!("no job {job_id}")));
    };
    let mut stmt = conn.prepare("SELECT text FROM job_logs WHERE job_id = ?1 ORDER BY seq")?;
    let log = stmt
        .query_map([job_id], |r| r.get::<_, String>(0))?
        .collect::<Result<String, _>>()?;
    let usage = usage.and_then(|u| serde_json::from_str(&u).ok());
    Ok(JobView {
        id: job_id.to_owned(),
        status: parse_status(&status)?,
        exit_code,
        log,
        usage,
        error,
    })
}

/// `POST /jobs/{id}/cancel` → `204`: a queued job is cancelled at once; a
/// running one is told at its next heartbeat; a finished one is left as is.
pub async fn cancel(
    State(platform): State<Platform>,
    _admin: AdminCaller,
    PathParam(job_id): PathParam,
) -> Result<StatusCode, ApiFailure> {
    let id = job_id.clone();
    let found = platform
        .shared
        .db
        .call(move |conn| {
            let stamp = fmt_time(now());
            conn.execute(
                "UPDATE jobs SET status = 'cancelled', cancel = 1, finished_at = ?2
                 WHERE id = ?1 AND status = 'queued'",
                params![id, stamp],
            )?;
            conn.execute(
                "UPDATE jobs SET cancel = 1 WHERE id = ?1 AND status = 'running'",
                [&id],
            )?;
            let exists: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM jobs WHERE id = ?1)",
                [&id],
                |r| r.get(0),
            )?;
            Ok::<_, Error>(exists)
        })
        .await?;
    if !found {
        return Err(ApiFailure::not_found(format!("no job {job_id}")));
    }
    tracing::info!(job_id = %job_id, "job cancel requested");
    Ok(StatusCode::NO_CONTENT)
}
