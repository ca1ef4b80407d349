//! The local platform for tests: spawned in-process on `127.0.0.1:0` with a
//! temporary data folder that lives as long as the [`TestPlatform`], plus
//! admin helpers that speak HTTP with plain reqwest (deliberately not
//! `spedy-client`, so the client's own tests are checked against an
//! independent caller).
//!
//! Every helper panics with a message naming the call and the answer when
//! the platform does not answer as the contract says: these are test helpers,
//! and a failed precondition should fail the test loudly.
//!
//! ```no_run
//! # async fn demo() {
//! use spedy_api::{Backend, Scope};
//! use spedy_testkit::platform::TestPlatform;
//!
//! let platform = TestPlatform::builder().refresh_after_s(1).start().await;
//! platform.put_secret("ANTHROPIC_API_KEY", "sk-ant-test", Scope::Org).await;
//! let (runner_id, token) = platform.create_runner("host-1", 2, Backend::AnthropicApi).await;
//! # let _ = (runner_id, token);
//! # }
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use spedy_api::{
    AdminToken, Backend, CreateRunnerResponse, CreatedJob, GitProvider, IntegrationList, JobSpec,
    JobView, Readiness, RunnerToken, Scope, SecretEntry, SecretKind, SecretList,
};
use spedy_platform::{PlatformConfig, RunningPlatform};
use tempfile::TempDir;

/// Settings for [`TestPlatform`]; start with [`TestPlatform::builder`].
#[derive(Debug, Clone)]
pub struct TestPlatformBuilder {
    refresh_after_s: u64,
    max_claim_wait_s: u64,
    public_url: Option<String>,
}

impl Default for TestPlatformBuilder {
    fn default() -> Self {
        TestPlatformBuilder {
            refresh_after_s: spedy_platform::config::DEFAULT_REFRESH_AFTER_S,
            max_claim_wait_s: 5,
            public_url: None,
        }
    }
}

impl TestPlatformBuilder {
    /// The `refresh_after_s` sent with every bundle (default 900).
    pub fn refresh_after_s(mut self, secs: u64) -> Self {
        self.refresh_after_s = secs;
        self
    }

    /// The longest a claim is held open (default 5 s, to keep tests fast).
    pub fn max_claim_wait_s(mut self, secs: u64) -> Self {
        self.max_claim_wait_s = secs;
        self
    }

    /// A public URL for links and `env_snippet` (default `http://<addr>`).
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into());
        self
    }

    /// Starts the platform.
    pub async fn start(self) -> TestPlatform {
        let dir = tempfile::Builder::new()
            .prefix("spedy-platform-test-")
            .tempdir()
            .expect("creating the platform's temporary data folder");
        let mut config = PlatformConfig::new(dir.path());
        config.refresh_after_s = self.refresh_after_s;
        config.max_claim_wait_s = self.max_claim_wait_s;
        config.public_url = self.public_url;
        let running = spedy_platform::spawn(config.clone())
            .await
            .expect("starting the local platform on 127.0.0.1:0");
        config.addr = running.addr;
        config.admin_token = Some(running.admin_token.clone());
        TestPlatform {
            addr: running.addr,
            admin_token: running.admin_token.clone(),
            running: Some(running),
            config,
            http: reqwest::Client::new(),
            dir,
        }
    }
}

/// The local platform running in-process for one test.
pub struct TestPlatform {
    addr: SocketAddr,
    admin_token: AdminToken,
    /// `None` between [`TestPlatform::stop`] and [`TestPlatform::resume`].
    running: Option<RunningPlatform>,
    /// What a restart reuses: the same address, data folder and admin token.
    config: PlatformConfig,
    http: reqwest::Client,
    /// Removed when the `TestPlatform` is dropped (declared last: dropped last).
    dir: TempDir,
}

impl std::fmt::Debug for TestPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPlatform")
            .field("addr", &self.addr)
            .field("data_dir", &self.dir.path())
            .field("running", &self.running.is_some())
            .finish()
    }
}

impl TestPlatform {
    /// Starts a platform with the default settings.
    pub async fn start() -> TestPlatform {
        Self::builder().start().await
    }

    /// Settings for a platform.
    pub fn builder() -> TestPlatformBuilder {
        TestPlatformBuilder::default()
    }

    /// `http://127.0.0.1:PORT` (or the configured public URL).
    pub fn url(&self) -> String {
        self.config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.addr))
    }

    /// The bound address (kept across restarts).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin token.
    pub fn admin_token(&self) -> &AdminToken {
        &self.admin_token
    }

    /// The data folder (database, key file).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A plain reqwest client for hand-made requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A request to `path` (e.g. `/secrets`) carrying the admin token.
    pub fn admin_request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("http://{}{path}", self.addr))
            .bearer_auth(self.admin_token.expose())
    }

    /// A request to `path` carrying `token` (any string, for bad-token tests).
    pub fn request_with(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http
            .request(method, format!("http://{}{path}", self.addr))
            .bearer_auth(token)
    }

    async fn send(&self, what: &str, req: RequestBuilder, want: StatusCode) -> reqwest::Response {
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: no answer from the local platform: {e}"));
        if resp.status() != want {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            panic!("{what}: expected {want}, got {status}: {body}");
        }
        resp
    }

    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        req: RequestBuilder,
        want: StatusCode,
    ) -> T {
        self.send(what, req, want)
            .await
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: answer is not the contract's JSON: {e}"))
    }

    /// `POST /runners/tokens`: a new runner and its token.
    pub async fn create_runner(
        &self,
        name: &str,
        pool_size: u32,
        backend: Backend,
    ) -> (String, RunnerToken) {
        let created = self.create_runner_full(name, pool_size, backend).await;
        (created.runner_id, created.token)
    }

    /// `POST /runners/tokens`, the whole answer (snippet and readiness too).
    pub async fn create_runner_full(
        &self,
        name: &str,
        pool_size: u32,
        backend: Backend,
    ) -> CreateRunnerResponse {
        let body = json!({"name": name, "pool_size": pool_size, "backend": backend});
        let req = self
            .admin_request(Method::POST, "/runners/tokens")
            .json(&body);
        self.send_json("POST /runners/tokens", req, StatusCode::CREATED)
            .await
    }

    /// `DELETE /runners/tokens/{id}`: the token stops working at once.
    pub async fn revoke_runner(&self, runner_id: &str) {
        let req = self.admin_request(Method::DELETE, &format!("/runners/tokens/{runner_id}"));
        self.send("DELETE /runners/tokens/{id}", req, StatusCode::NO_CONTENT)
            .await;
    }

    /// `PUT /secrets/{env}` with the default kind.
    pub async fn put_secret(&self, env: &str, value: &str, scope: Scope) -> SecretEntry {
        self.put_secret_body(env, json!({"value": value, "scope": scope}))
            .await
    }

    /// `PUT /secrets/{env}` with an explicit kind.
    pub async fn put_secret_kind(
        &self,
        env: &str,
        value: &str,
        kind: SecretKind,
        scope: Scope,
    ) -> SecretEntry {
        self.put_secret_body(env, json!({"value": value, "kind": kind, "scope": scope}))
            .await
    }

    async fn put_secret_body(&self, env: &str, body: Value) -> SecretEntry {
        let req = self
            .admin_request(Method::PUT, &format!("/secrets/{env}"))
            .json(&body);
        self.send_json("PUT /secrets/{env}", req, StatusCode::OK)
            .await
    }

    /// `DELETE /secrets/{env}`.
    pub async fn delete_secret(&self, env: &str) {
        let req = self.admin_request(Method::DELETE, &format!("/secrets/{env}"));
        self.send("DELETE /secrets/{env}", req, StatusCode::NO_CONTENT)
            .await;
    }

    /// `GET /secrets`.
    pub async fn list_secrets(&self) -> SecretList {
        let req = self.admin_request(Method::GET, "/secrets");
        self.send_json("GET /secrets", req, StatusCode::OK).await
    }

    /// `PUT /integrations/github` as an App installation (tokens minted at
    /// every bootstrap by the platform's local stand-in).
    pub async fn put_github_app(&self, installation_id: u64) -> IntegrationList {
        self.put_integration(
            "github",
            json!({"type": "app", "installation_id": installation_id}),
        )
        .await
    }

    /// `PUT /integrations/github` with a fixed token.
    pub async fn put_github_token(&self, token: &str) -> IntegrationList {
        self.put_integration("github", json!({"type": "token", "token": token}))
            .await
    }

    /// `PUT /integrations/bitbucket`.
    pub async fn put_bitbucket(&self, token: &str) -> IntegrationList {
        self.put_integration("bitbucket", json!({"token": token}))
            .await
    }

    async fn put_integration(&self, provider: &str, body: Value) -> IntegrationList {
        let req = self
            .admin_request(Method::PUT, &format!("/integrations/{provider}"))
            .json(&body);
        self.send_json("PUT /integrations/{provider}", req, StatusCode::OK)
            .await
    }

    /// `DELETE /integrations/{provider}`.
    pub async fn delete_integration(&self, provider: GitProvider) {
        let req = self.admin_request(
            Method::DELETE,
            &format!("/integrations/{}", provider.as_str()),
        );
        self.send(
            "DELETE /integrations/{provider}",
            req,
            StatusCode::NO_CONTENT,
        )
        .await;
    }

    /// `GET /integrations`.
    pub async fn integrations(&self) -> IntegrationList {
        let req = self.admin_request(Method::GET, "/integrations");
        self.send_json("GET /integrations", req, StatusCode::OK)
            .await
    }

    /// `GET /runners/readiness?backend=…` with the admin token.
    pub async fn readiness(&self, backend: Backend) -> Readiness {
        let req = self.admin_request(
            Method::GET,
            &format!("/runners/readiness?backend={}", backend.as_str()),
        );
        self.send_json("GET /runners/readiness", req, StatusCode::OK)
            .await
    }

    /// `POST /jobs`: the new job's id.
    pub async fn enqueue(&self, spec: JobSpec) -> String {
        let req = self.admin_request(Method::POST, "/jobs").json(&spec);
        let created: CreatedJob = self.send_json("POST /jobs", req, StatusCode::CREATED).await;
        created.id
    }

    /// `GET /jobs/{id}`.
    pub async fn job(&self, id: &str) -> JobView {
        let req = self.admin_request(Method::GET, &format!("/jobs/{id}"));
        self.send_json("GET /jobs/{id}", req, StatusCode::OK).await
    }

    /// Polls `GET /jobs/{id}` (every 50 ms) until the job is final; panics
    /// with the last view after `timeout`.
    pub async fn wait_job_final(&self, id: &str, timeout: Duration) -> JobView {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let view = self.job(id).await;
            if view.status.is_final() {
                return view;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("job {id} not final after {timeout:?}; last seen: {view:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `POST /jobs/{id}/cancel`.
    pub async fn cancel_job(&self, id: &str) {
        let req = self.admin_request(Method::POST, &format!("/jobs/{id}/cancel"));
        self.send("POST /jobs/{id}/cancel", req, StatusCode::NO_CONTENT)
            .await;
    }

    /// Stops the platform (graceful: in-flight requests finish); the address
    /// and data folder are kept for [`TestPlatform::resume`].
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running
                .shutdown()
                .await
                .expect("stopping the local platform");
        }
    }

    /// Starts the platform again on the same address, data folder, key and
    /// admin token.
    pub async fn resume(&mut self) {
        if self.running.is_some() {
            return;
        }
        // The port was just released; a few quick retries cover a slow close.
        let mut last = None;
        for _ in 0..50 {
            match spedy_platform::spawn(self.config.clone()).await {
                Ok(running) => {
                    self.running = Some(running);
                    return;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "restarting the local platform on {}: {:?}",
            self.addr,
            last.map(|e| e.to_string())
        );
    }

    /// [`TestPlatform::stop`] then [`TestPlatform::resume`].
    pub async fn restart(&mut self) {
        self.stop().await;
        self.resume().await;
    }

    /// Stops the platform and removes its data folder.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec {
            image: "img:1".into(),
            command: None,
            env: Default::default(),
            repo: None,
            scope: None,
            timeout_s: 10,
        }
    }

    #[tokio::test]
    async fn the_helpers_drive_every_admin_route_and_survive_a_restart() {
        let mut p = TestPlatform::builder().refresh_after_s(1).start().await;
        assert_eq!(p.url(), format!("http://{}", p.addr()));
        assert!(p.data_dir().join("platform.db").exists());
        let entry = p
            .put_secret("ANTHROPIC_API_KEY", "sk-ant-0123456789abcd", Scope::Org)
            .await;
        assert_eq!(entry.masked, "sk-a****abcd");
        p.put_secret_kind("MCP_X", "v", SecretKind::Mcp, Scope::Project("p".into()))
            .await;
        p.delete_secret("MCP_X").await;
        assert_eq!(p.list_secrets().await.secrets.len(), 1);
        p.put_github_app(5).await;
        p.put_github_token("ghp_abcdefghijklmnop").await;
        let list = p.put_bitbucket("bb_abcdefghijklmnop").await;
        assert_eq!(list.integrations.len(), 2);
        p.delete_integration(GitProvider::Bitbucket).await;
        assert_eq!(p.integrations().await.integrations.len(), 1);
        assert!(p.readiness(Backend::AnthropicApi).await.ready);
        let (runner_id, token) = p.create_runner("host", 2, Backend::AnthropicApi).await;
        let queued = p.enqueue(spec()).await;
        p.cancel_job(&queued).await;
        let view = p.wait_job_final(&queued, Duration::from_secs(5)).await;
        assert_eq!(view.status, spedy_api::JobStatus::Cancelled);

        let waiting = p.enqueue(spec()).await;
        p.restart().await;
        assert_eq!(p.job(&waiting).await.status, spedy_api::JobStatus::Queued);
        let boot = p
            .request_with(Method::POST, "/runners/bootstrap", token.expose())
            .send()
            .await
            .unwrap();
        assert_eq!(boot.status(), StatusCode::OK);
        let body: Value = boot.json().await.unwrap();
        assert_eq!(body["bundle"]["refresh_after_s"], 1);
        p.revoke_runner(&runner_id).await;
        let boot = p
            .request_with(Method::POST, "/runners/bootstrap", token.expose())
            .send()
            .await
            .unwrap();
        assert_eq!(boot.status(), StatusCode::UNAUTHORIZED);
        p.shutdown().await;
    }

    #[tokio::test]
    async fn a_stopped_platform_refuses_connections_until_it_resumes() {
        let mut p = TestPlatform::start().await;
        p.stop().await;
        let down = p.http().get(format!("{}/healthz", p.url())).send().await;
        assert!(down.is_err(), "nothing listens while stopped");
        p.resume().await;
        let up = p
            .http()
            .get(format!("{}/healthz", p.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(up.status(), StatusCode::OK);
    }
}
