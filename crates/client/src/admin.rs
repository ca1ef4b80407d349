//! [`AdminApi`]: the endpoints the Settings pages and the setup wizard call
//! with a `sat_…` admin token.
//!
//! Owns the mapping of each admin route of the contract to a typed call:
//! runner tokens, readiness, the vault (write-only), integrations and the job
//! queue. Bodies that carry a secret (a value for the vault, an integration
//! token) are encoded into wiped buffers; the answer of
//! [`AdminApi::create_runner`], which holds the new token, is read into one.

use std::fmt;

use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use spedy_api::{
    AdminToken, Backend, BitbucketIntegrationRequest, CreateRunnerRequest, CreateRunnerResponse,
    CreatedJob, GitProvider, GithubIntegrationRequest, IntegrationList, JobSpec, JobView,
    PutSecretRequest, Readiness, SecretEntry, SecretList,
};

use crate::client::{Auth, Body, Call, Client, DEFAULT_BODY_LIMIT, JOB_VIEW_BODY_LIMIT};
use crate::error::Error;

/// The admin endpoints. Cheap to clone; `Debug` never shows the token.
#[derive(Clone)]
pub struct AdminApi {
    client: Client,
    auth: Auth,
}

impl fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminApi")
            .field("client", &self.client)
            .field("auth", &self.auth)
            .finish()
    }
}

impl AdminApi {
    pub(crate) fn new(client: Client, token: &AdminToken) -> Self {
        AdminApi {
            client,
            auth: Auth::admin(token),
        }
    }

    /// The client this handle uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends a call and expects one of `ok` statuses with a JSON answer.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        call: Call<'_>,
        ok: &[StatusCode],
        limit: usize,
        kind: Body,
    ) -> Result<T, Error> {
        let endpoint = call.endpoint;
        let resp = self.client.send(call.auth(&self.auth)).await?;
        Client::expect_status(endpoint, &resp, ok)?;
        self.client.read_json(endpoint, resp, limit, kind).await
    }

    /// Sends a call and expects a success with nothing to read.
    async fn empty(&self, call: Call<'_>) -> Result<(), Error> {
        let endpoint = call.endpoint;
        let resp = self.client.send(call.auth(&self.auth)).await?;
        self.client.discard(endpoint, resp).await
    }

    /// `POST /runners/tokens`: creates a runner and its token (shown once).
    /// Works even when the Anthropic key is missing; the answer's readiness
    /// says so.
    pub async fn create_runner(
        &self,
        request: &CreateRunnerRequest,
    ) -> Result<CreateRunnerResponse, Error> {
        let call =
            Call::new("POST /runners/tokens", Method::POST, &["runners", "tokens"]).json(request);
        self.json(
            call,
            &[StatusCode::CREATED, StatusCode::OK],
            DEFAULT_BODY_LIMIT,
            Body::Secret,
        )
        .await
    }

    /// `DELETE /runners/tokens/{runner_id}`: revokes a runner's token.
    pub async fn delete_runner(&self, runner_id: &str) -> Result<(), Error> {
        let segments = ["runners", "tokens", runner_id];
        self.empty(Call::new(
            "DELETE /runners/tokens/{runner_id}",
            Method::DELETE,
            &segments,
        ))
        .await
    }

    /// `GET /runners/readiness`: the checklist, for `backend` when given
    /// (`?backend=…`, what the wizard shows before a runner exists).
    pub async fn readiness(&self, backend: Option<Backend>) -> Result<Readiness, Error> {
        let mut call = Call::new(
            "GET /runners/readiness",
            Method::GET,
            &["runners", "readiness"],
        );
        call.query = backend.map(|b| ("backend", b.as_str()));
        self.json(call, &[StatusCode::OK], DEFAULT_BODY_LIMIT, Body::Plain)
            .await
    }

    /// `GET /secrets`: the vault's entries, masked; never a value.
    pub async fn list_secrets(&self) -> Result<SecretList, Error> {
        let call = Call::new("GET /secrets", Method::GET, &["secrets"]);
        self.json(call, &[StatusCode::OK], DEFAULT_BODY_LIMIT, Body::Plain)
            .await
    }

    /// `PUT /secrets/{env}`: writes (or rotates) a value; answers the entry
    /// as listed.
    pub async fn put_secret(
        &self,
        env: &str,
        request: &PutSecretRequest,
    ) -> Result<SecretEntry, Error> {
        let segments = ["secrets", env];
        let secrets = [request.value.expose_secret()];
        let call =
            Call::new("PUT /secrets/{env}", Method::PUT, &segments).secret_json(request, &secrets);
        self.json(
            call,
            &[StatusCode::OK, StatusCode::CREATED],
            DEFAULT_BODY_LIMIT,
            Body::Plain,
        )
        .await
    }

    /// `DELETE /secrets/{env}`.
    pub async fn delete_secret(&self, env: &str) -> Result<(), Error> {
        let segments = ["secrets", env];
        self.empty(Call::new(
            "DELETE /secrets/{env}",
            Method::DELETE,
            &segments,
        ))
        .await
    }

    /// `GET /integrations`: the connected git providers; never a token.
    pub async fn integrations(&self) -> Result<IntegrationList, Error> {
        let call = Call::new("GET /integrations", Method::GET, &["integrations"]);
        self.json(call, &[StatusCode::OK], DEFAULT_BODY_LIMIT, Body::Plain)
            .await
    }

    /// `PUT /integrations/github`: a GitHub App installation or a fixed
    /// token. Answers the integrations as listed.
    pub async fn put_github(
        &self,
        request: &GithubIntegrationRequest,
    ) -> Result<IntegrationList, Error> {
        let token = match request {
            GithubIntegrationRequest::Token { token } => Some(token.expose_secret()),
            GithubIntegrationRequest::App { .. } => None,
        };
        let secrets: Vec<&str> = token.into_iter().collect();
        let call = Call::new(
            "PUT /integrations/github",
            Method::PUT,
            &["integrations", "github"],
        )
        .secret_json(request, &secrets);
        self.json(
            call,
            &[StatusCode::OK, StatusCode::CREATED],
            DEFAULT_BODY_LIMIT,
            Body::Plain,
        )
        .await
    }

    /// `PUT /integrations/bitbucket`: a fixed token. Answers the
    /// integrations as listed.
    pub async fn put_bitbucket(
        &self,
        request: &BitbucketIntegrationRequest,
    ) -> Result<IntegrationList, Error> {
        let secrets = [request.token.expose_secret()];
        let call = Call::new(
            "PUT /integrations/bitbucket",
            Method::PUT,
            &["integrations", "bitbucket"],
        )
        .secret_json(request, &secrets);
        self.json(
            call,
            &[StatusCode::OK, StatusCode::CREATED],
            DEFAULT_BODY_LIMIT,
            Body::Plain,
        )
        .await
    }

    /// `DELETE /integrations/{provider}`.
    pub async fn delete_integration(&self, provider: GitProvider) -> Result<(), Error> {
        let segments = ["integrations", provider.as_str()];
        self.empty(Call::new(
            "DELETE /integrations/{provider}",
            Method::DELETE,
            &segments,
        ))
        .await
    }

    /// `POST /jobs`: queues a job; answers its id.
    pub async fn enqueue(&self, job: &JobSpec) -> Result<CreatedJob, Error> {
        let call = Call::new("POST /jobs", Method::POST, &["jobs"]).json(job);
        self.json(
            call,
            &[StatusCode::CREATED, StatusCode::OK],
            DEFAULT_BODY_LIMIT,
            Body::Plain,
        )
        .await
    }

    /// `GET /jobs/{id}`: where a job stands, with its whole log (so the cap
    /// is 32 MiB).
    pub async fn job(&self, id: &str) -> Result<JobView, Error> {
        let segments = ["jobs", id];
        let call = Call::new("GET /jobs/{id}", Method::GET, &segments);
        self.json(call, &[StatusCode::OK], JOB_VIEW_BODY_LIMIT, Body::Plain)
            .await
    }

    /// `POST /jobs/{id}/cancel`: asks the runner to stop the job (its next
    /// heartbeat answers `cancel: true`).
    pub async fn cancel_job(&self, id: &str) -> Result<(), Error> {
        let segments = ["jobs", id, "cancel"];
        self.empty(Call::new("POST /jobs/{id}/cancel", Method::POST, &segments))
            .await
    }
}
