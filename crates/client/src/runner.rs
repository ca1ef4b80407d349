//! [`RunnerApi`]: the endpoints a runner calls with its `rnt_…` token.
//!
//! Owns the mapping of each runner-facing route of the contract to a typed
//! call: bootstrap, readiness, claim (long-poll), logs, heartbeat, complete.
//! Retries are not done here; the caller decides with
//! [`Error::is_transient`] and [`crate::backoff::Backoff`].

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use spedy_api::{
    BootstrapRequest, BootstrapResponse, ClaimRequest, ClaimResponse, CompleteRequest,
    HeartbeatResponse, Job, LogBatch, Readiness, RunnerToken,
};

use crate::builder::CLAIM_MARGIN;
use crate::client::{Auth, BOOTSTRAP_BODY_LIMIT, Body, Call, Client, DEFAULT_BODY_LIMIT};
use crate::error::Error;

/// The runner-facing endpoints. Cheap to clone; `Debug` never shows the
/// token.
#[derive(Clone)]
pub struct RunnerApi {
    client: Client,
    auth: Auth,
}

impl fmt::Debug for RunnerApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunnerApi")
            .field("client", &self.client)
            .field("auth", &self.auth)
            .finish()
    }
}

impl RunnerApi {
    pub(crate) fn new(client: Client, token: &RunnerToken) -> Self {
        RunnerApi {
            client,
            auth: Auth::runner(token),
        }
    }

    /// The client this handle uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `POST /runners/bootstrap`: who this runner is and its secret bundle.
    ///
    /// An answer over 1 MiB is refused ([`Error::BodyTooLarge`]). The
    /// answer's bytes are held in a wiped buffer and dropped before this
    /// returns; the values end up in `SecretString`s.
    pub async fn bootstrap(&self) -> Result<BootstrapResponse, Error> {
        self.bootstrap_with(&BootstrapRequest::default()).await
    }

    /// `POST /runners/bootstrap`, declaring the env names the runner holds
    /// locally (never their values): a host whose `ANTHROPIC_API_KEY` is
    /// only local still gets the rest of its bundle instead of `409`.
    pub async fn bootstrap_with(
        &self,
        request: &BootstrapRequest,
    ) -> Result<BootstrapResponse, Error> {
        const EP: &str = "POST /runners/bootstrap";
        let call = Call::new(EP, Method::POST, &["runners", "bootstrap"])
            .auth(&self.auth)
            .json(request);
        let resp = self.client.send(call).await?;
        Client::expect_status(EP, &resp, &[StatusCode::OK])?;
        self.client
            .read_json(EP, resp, BOOTSTRAP_BODY_LIMIT, Body::Secret)
            .await
    }

    /// `GET /runners/readiness`: the checklist for this runner.
    pub async fn readiness(&self) -> Result<Readiness, Error> {
        const EP: &str = "GET /runners/readiness";
        let call = Call::new(EP, Method::GET, &["runners", "readiness"]).auth(&self.auth);
        let resp = self.client.send(call).await?;
        Client::expect_status(EP, &resp, &[StatusCode::OK])?;
        self.client
            .read_json(EP, resp, DEFAULT_BODY_LIMIT, Body::Plain)
            .await
    }

    /// `POST /runners/jobs/claim`: waits up to `wait_s` seconds for a job.
    /// `Ok(None)` when none came (`204`). The answer may take `wait_s` plus
    /// [`CLAIM_MARGIN`] before [`Error::Timeout`].
    pub async fn claim(&self, wait_s: u64) -> Result<Option<Job>, Error> {
        const EP: &str = "POST /runners/jobs/claim";
        let mut call = Call::new(EP, Method::POST, &["runners", "jobs", "claim"])
            .auth(&self.auth)
            .json(&ClaimRequest { wait_s });
        call.wait = Some(Duration::from_secs(wait_s).saturating_add(CLAIM_MARGIN));
        let resp = self.client.send(call).await?;
        match resp.status() {
            StatusCode::NO_CONTENT => {
                self.client.discard(EP, resp).await?;
                Ok(None)
            }
            StatusCode::OK => {
                let claimed: ClaimResponse = self
                    .client
                    .read_json(EP, resp, DEFAULT_BODY_LIMIT, Body::Plain)
                    .await?;
                Ok(Some(claimed.job))
            }
            other => Err(Error::protocol(
                EP,
                format!("unexpected status {}", other.as_u16()),
            )),
        }
    }

    /// `POST /runners/jobs/{id}/logs`: one batch of (already redacted)
    /// output. A repeated `seq` is ignored by the platform, so a retry never
    /// duplicates output.
    pub async fn logs(&self, job_id: &str, batch: &LogBatch) -> Result<(), Error> {
        const EP: &str = "POST /runners/jobs/{id}/logs";
        let segments = ["runners", "jobs", job_id, "logs"];
        let call = Call::new(EP, Method::POST, &segments)
            .auth(&self.auth)
            .json(batch);
        let resp = self.client.send(call).await?;
        Client::expect_status(EP, &resp, &[StatusCode::NO_CONTENT, StatusCode::OK])?;
        self.client.discard(EP, resp).await
    }

    /// `POST /runners/jobs/{id}/heartbeat`: still running; the answer says
    /// whether the job was cancelled.
    pub async fn heartbeat(&self, job_id: &str) -> Result<HeartbeatResponse, Error> {
        const EP: &str = "POST /runners/jobs/{id}/heartbeat";
        let segments = ["runners", "jobs", job_id, "heartbeat"];
        let call = Call::new(EP, Method::POST, &segments).auth(&self.auth);
        let resp = self.client.send(call).await?;
        Client::expect_status(EP, &resp, &[StatusCode::OK])?;
        self.client
            .read_json(EP, resp, DEFAULT_BODY_LIMIT, Body::Plain)
            .await
    }

    /// `POST /runners/jobs/{id}/complete`: the job's result. Idempotent on
    /// the platform: the first result is kept.
    pub async fn complete(&self, job_id: &str, result: &CompleteRequest) -> Result<(), Error> {
        const EP: &str = "POST /runners/jobs/{id}/complete";
        let segments = ["runners", "jobs", job_id, "complete"];
        let call = Call::new(EP, Method::POST, &segments)
            .auth(&self.auth)
            .json(result);
        let resp = self.client.send(call).await?;
        Client::expect_status(EP, &resp, &[StatusCode::NO_CONTENT, StatusCode::OK])?;
        self.client.discard(EP, resp).await
    }
}
