//! Shared by the `jobs_*` test binaries: a local platform with a runner
//! token and secrets, the probe image, and an in-process supervisor with
//! sub-second timers, started and stopped like `spedy-runner run` does.

#![allow(dead_code)]

pub mod engine_proxy;
pub mod proxy;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spedy_api::{Backend, GitProvider, JobSpec, JobView, Repo, RunnerToken, Scope, SecretKind};
use spedy_client::Client;
use spedy_docker::{Engine, Injection, Limits};
use spedy_supervisor::{Config, JobSettings, LocalSources, RunnerState, Supervisor, Timers};
use spedy_testkit::canary::canary;
use spedy_testkit::platform::TestPlatform;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long any one job of these tests may take before a test fails.
pub const JOB_PATIENCE: Duration = Duration::from_secs(60);

/// The secrets planted in the vault and the integrations, by env name.
pub struct Planted {
    pub anthropic: String,
    pub github: String,
    pub bitbucket: String,
    /// `FEATURE_FLAG_X`, scoped `project:proj_a`.
    pub project_a: String,
    /// `ORG_MCP_TOKEN`, scoped `org`.
    pub org_mcp: String,
}

impl Planted {
    pub fn values(&self) -> [&str; 5] {
        [
            &self.anthropic,
            &self.github,
            &self.bitbucket,
            &self.project_a,
            &self.org_mcp,
        ]
    }
}

/// A platform with one runner token and planted secrets.
pub struct Fixture {
    pub platform: TestPlatform,
    pub token: RunnerToken,
    /// The runner's id, as the platform made it: unique to this test, so its
    /// containers can be found by label.
    pub runner_id: String,
    pub image: String,
    pub planted: Planted,
}

impl Fixture {
    /// A fresh platform whose vault holds the Anthropic key, a project-scoped
    /// and an org-scoped custom variable, with GitHub and Bitbucket connected.
    pub async fn new(pool_size: u32) -> Fixture {
        // `RUST_LOG=spedy_supervisor=debug` shows the supervisor's events.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        spedy_testkit::docker::require_engine().await;
        let image = spedy_testkit::docker::probe_image().await;
        let platform = TestPlatform::start().await;
        let planted = Planted {
            anthropic: canary("ANTHROPIC"),
            github: canary("GITHUB"),
            bitbucket: canary("BITBUCKET"),
            project_a: canary("PROJECT_A"),
            org_mcp: canary("ORG_MCP"),
        };
        let p = &platform;
        p.put_secret_kind(
            "ANTHROPIC_API_KEY",
            &planted.anthropic,
            SecretKind::Anthropic,
            Scope::Org,
        )
        .await;
        let proj_a = Scope::Project("proj_a".into());
        p.put_secret_kind(
            "FEATURE_FLAG_X",
            &planted.project_a,
            SecretKind::Custom,
            proj_a,
        )
        .await;
        p.put_secret_kind(
            "ORG_MCP_TOKEN",
            &planted.org_mcp,
            SecretKind::Mcp,
            Scope::Org,
        )
        .await;
        p.put_github_token(&planted.github).await;
        p.put_bitbucket(&planted.bitbucket).await;
        let (runner_id, token) = p
            .create_runner("jobs-test", pool_size, Backend::AnthropicApi)
            .await;
        Fixture {
            platform,
            token,
            runner_id,
            image,
            planted,
        }
    }

    /// The platform's base URL.
    pub fn url(&self) -> String {
        self.platform.url()
    }

    /// Starts an in-process supervisor against `base_url` (the platform or a
    /// proxy in front of it) and waits until it is online.
    pub async fn start_runner(
        &self,
        base_url: &str,
        jobs: JobSettings,
        pool: Option<u32>,
    ) -> Runner {
        let engine = Engine::connect()
            .await
            .expect("connect to the Docker engine");
        self.start_runner_on(engine, base_url, jobs, pool).await
    }

    /// [`Fixture::start_runner`] on a given engine connection.
    pub async fn start_runner_on(
        &self,
        engine: Engine,
        base_url: &str,
        jobs: JobSettings,
        pool: Option<u32>,
    ) -> Runner {
        let client = Client::builder(base_url)
            .build()
            .expect("a client for the test platform");
        let config = Config {
            client,
            token: self.token.clone(),
            local: LocalSources::default(),
            pool_size: pool,
            refresh_interval: None,
            health_addr: None,
            shutdown_grace: Duration::from_secs(5),
            jobs,
            timers: fast_timers(),
            log_redactor: None,
        };
        let supervisor = Supervisor::new(config, engine);
        let mut state = supervisor.state();
        let shutdown = CancellationToken::new();
        let force = CancellationToken::new();
        let task = tokio::spawn(supervisor.run(shutdown.clone(), force.clone()));
        tokio::time::timeout(
            Duration::from_secs(20),
            state.wait_for(RunnerState::is_online),
        )
        .await
        .expect("the runner comes online within 20 s")
        .expect("the state has a writer");
        Runner {
            shutdown,
            force,
            task,
            state,
        }
    }

    /// Enqueues a job of the probe image running `probe <steps>`.
    pub async fn enqueue(&self, steps: &[&str], edit: impl FnOnce(&mut JobSpec)) -> String {
        let mut command = vec!["/bin/probe".to_owned()];
        command.extend(steps.iter().map(|s| (*s).to_owned()));
        let mut spec = JobSpec {
            image: self.image.clone(),
            command: Some(command),
            env: BTreeMap::new(),
            repo: None,
            scope: None,
            timeout_s: 60,
        };
        edit(&mut spec);
        self.platform.enqueue(spec).await
    }

    /// The job as the platform sees it.
    pub async fn job(&self, id: &str) -> JobView {
        self.platform.job(id).await
    }

    /// Waits until the job has a final status.
    pub async fn wait_final(&self, id: &str) -> JobView {
        let start = Instant::now();
        loop {
            let view = self.job(id).await;
            if view.status.is_final() {
                return view;
            }
            assert!(
                start.elapsed() < JOB_PATIENCE,
                "job {id} still {:?} after {JOB_PATIENCE:?}",
                view.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the job is claimed (running).
    pub async fn wait_running(&self, id: &str) {
        let start = Instant::now();
        while !matches!(self.job(id).await.status, spedy_api::JobStatus::Running) {
            assert!(start.elapsed() < JOB_PATIENCE, "job {id} never ran");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the platform has stored `text` in the job's log.
    pub async fn wait_log(&self, id: &str, text: &str) {
        let start = Instant::now();
        while !self.job(id).await.log.contains(text) {
            assert!(
                start.elapsed() < JOB_PATIENCE,
                "job {id} never logged {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until `n` containers with this runner's label exist.
    pub async fn wait_containers(&self, n: usize) {
        let start = Instant::now();
        while job_containers(&self.runner_id).await.len() < n {
            assert!(start.elapsed() < JOB_PATIENCE, "{n} containers never ran");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Fails when a container of this runner is left (and removes it).
    pub async fn assert_no_containers(&self) {
        spedy_testkit::docker::assert_no_containers(&self.runner_id).await;
    }
}

impl Drop for Fixture {
    /// Removes this runner's containers even when the test failed half way
    /// (on a thread of its own: `Drop` cannot await).
    fn drop(&mut self) {
        let runner_id = self.runner_id.clone();
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the cleanup");
            rt.block_on(spedy_testkit::docker::remove_containers(&runner_id))
        });
        let _ = cleanup.join();
    }
}

pub use spedy_testkit::docker::job_containers;

/// A GitHub job of project `proj_a`.
pub fn github_in_project_a(spec: &mut JobSpec) {
    spec.repo = Some(Repo {
        url: "https://github.com/acme/app".into(),
        provider: GitProvider::Github,
    });
    spec.scope = Some(Scope::Project("proj_a".into()));
}

/// Sub-second job timers.
pub fn fast_jobs(injection: Injection) -> JobSettings {
    JobSettings {
        injection,
        limits: Limits {
            memory_bytes: Some(256 << 20),
            nano_cpus: None,
            pids: Some(256),
        },
        stop_grace: Duration::from_millis(500),
        heartbeat_interval: Duration::from_millis(200),
        claim_wait_s: 1,
        log_batch_max_bytes: 16 * 1024,
        log_flush_interval: Duration::from_millis(50),
        log_buffer_chunks: 32,
    }
}

fn fast_timers() -> Timers {
    Timers {
        backoff_base: Duration::from_millis(50),
        backoff_cap: Duration::from_millis(500),
        ..Timers::default()
    }
}

/// An in-process supervisor.
pub struct Runner {
    pub shutdown: CancellationToken,
    pub force: CancellationToken,
    pub task: JoinHandle<Result<(), spedy_supervisor::Error>>,
    pub state: watch::Receiver<RunnerState>,
}

impl Runner {
    /// Stops claiming, lets running jobs finish, and waits for the end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(JOB_PATIENCE, self.task)
            .await
            .expect("the runner stops")
            .expect("the runner task does not panic")
            .expect("the runner ends cleanly");
    }
}
