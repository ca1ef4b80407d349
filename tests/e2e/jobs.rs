//! `spedy-runner run` with jobs, driving the real binary against the local
//! platform (in-process) and the real Docker engine (issue 4, items 7 and 8):
//! SIGTERM with jobs running (they finish within the grace period or are
//! cancelled after it), a second signal, and `kill -9` followed by a restart
//! (the orphan is removed and its job reported).
//!
//! The runner's own timers are its defaults here (a 10 s stop grace for a
//! job that ignores SIGTERM, as the probe does when it is PID 1), so these
//! tests take seconds, not milliseconds; the in-process tests in
//! `crates/supervisor/tests/jobs_*.rs` cover the same paths with sub-second
//! timers.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use spedy_api::{Backend, JobSpec, JobStatus, JobView, RunnerToken, Scope};
use spedy_testkit::cmd::RunnerCmd;
use spedy_testkit::docker::{containers_with_label, job_containers, probe_image, require_engine};
use spedy_testkit::platform::TestPlatform;
use tempfile::TempDir;

/// A platform with the Anthropic key in the vault and one runner token.
struct Fixture {
    platform: TestPlatform,
    runner_id: String,
    token: RunnerToken,
    image: String,
}

impl Fixture {
    async fn new(pool_size: u32) -> Fixture {
        require_engine().await;
        let image = probe_image().await;
        let platform = TestPlatform::start().await;
        platform
            .put_secret(
                "ANTHROPIC_API_KEY",
                "sk-ant-e2e-jobs-0123456789",
                Scope::Org,
            )
            .await;
        let (runner_id, token) = platform
            .create_runner("e2e-jobs", pool_size, Backend::AnthropicApi)
            .await;
        Fixture {
            platform,
            runner_id,
            token,
            image,
        }
    }

    /// Enqueues `probe <steps>`.
    async fn enqueue(&self, steps: &[&str]) -> String {
        let mut command = vec!["/bin/probe".to_owned()];
        command.extend(steps.iter().map(|s| (*s).to_owned()));
        self.platform
            .enqueue(JobSpec {
                image: self.image.clone(),
                command: Some(command),
                env: BTreeMap::new(),
                repo: None,
                scope: None,
                timeout_s: 120,
            })
            .await
    }

    async fn wait_final(&self, id: &str, runner: &Runner) -> JobView {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let view = self.platform.job(id).await;
            if view.status.is_final() {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} still {:?}; runner log:\n{}",
                view.status,
                runner.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `n` containers of this runner exist.
    async fn wait_containers(&self, n: usize, runner: &Runner) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while job_containers(&self.runner_id).await.len() < n {
            assert!(
                Instant::now() < deadline,
                "{n} job containers never ran; runner log:\n{}",
                runner.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Starts `spedy-runner run` for this runner.
    fn start_runner(&self, extra: &[(&str, &str)]) -> Runner {
        let dir = TempDir::new().expect("a folder for the runner");
        let log_path = dir.path().join("runner.log");
        let log = File::create(&log_path).expect("the runner's log file");
        let mut cmd = RunnerCmd::new(env!("CARGO_BIN_EXE_spedy-runner"));
        cmd.arg("run")
            .current_dir(dir.path())
            .env("SPEDY_API_URL", self.platform.url())
            .env("SPEDY_RUNNER_TOKEN", self.token.expose())
            .env("SPEDY_HEALTH_ADDR", "127.0.0.1:0")
            .env("SPEDY_LOG_FORMAT", "text")
            .env("SPEDY_LOG", "info");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd
            .to_command()
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file, twice"))
            .stderr(log)
            .spawn()
            .expect("start spedy-runner run");
        Runner {
            child,
            log_path,
            _dir: dir,
        }
    }
}

/// A running `spedy-runner run`; killed if a test ends while it runs.
struct Runner {
    child: Child,
    log_path: PathBuf,
    _dir: TempDir,
}

impl Runner {
    fn signal(&self, signal: Signal) {
        kill_process(Pid::from_child(&self.child), signal).expect("signal the runner");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits for the exit, at most `limit`.
    async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the runner") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the runner did not exit within {limit:?}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_three_jobs_running_finishes_or_cancels_them_reports_all_and_exits_0() {
    let fx = Fixture::new(3).await;
    let mut runner = fx.start_runner(&[("SPEDY_SHUTDOWN_GRACE", "3s")]);
    let short_a = fx
        .enqueue(&["print", "a done", "sleep", "1500", "exit", "0"])
        .await;
    let short_b = fx
        .enqueue(&["print", "b done", "sleep", "1500", "exit", "0"])
        .await;
    let long = fx
        .enqueue(&["print", "long started", "sleep", "600000"])
        .await;
    fx.wait_containers(3, &runner).await;

    runner.signal(Signal::TERM);
    let late = fx.enqueue(&["exit", "0"]).await;
    let status = runner.wait_exit(Duration::from_secs(40)).await;
    let log = runner.log();
    assert_eq!(
        status.code(),
        Some(0),
        "exit code after a clean drain; log:\n{log}"
    );

    for (id, text) in [(&short_a, "a done\n"), (&short_b, "b done\n")] {
        let view = fx.platform.job(id).await;
        assert_eq!(view.status, JobStatus::Succeeded, "{view:?}\nlog:\n{log}");
        assert_eq!(view.log, text);
    }
    let view = fx.platform.job(&long).await;
    assert_eq!(
        view.status,
        JobStatus::Cancelled,
        "cancelled after the grace: {view:?}\nlog:\n{log}"
    );
    assert_eq!(view.log, "long started\n");
    assert_eq!(
        fx.platform.job(&late).await.status,
        JobStatus::Queued,
        "no claim after SIGTERM"
    );
    assert!(
        containers_with_label(&fx.runner_id).await.is_empty(),
        "no container is left; log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_running_jobs_at_once_and_still_exits_0() {
    let fx = Fixture::new(2).await;
    let mut runner = fx.start_runner(&[("SPEDY_SHUTDOWN_GRACE", "10m")]);
    let a = fx.enqueue(&["print", "a", "sleep", "600000"]).await;
    let b = fx.enqueue(&["print", "b", "sleep", "600000"]).await;
    fx.wait_containers(2, &runner).await;

    runner.signal(Signal::TERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = Instant::now();
    runner.signal(Signal::INT);
    let status = runner.wait_exit(Duration::from_secs(40)).await;
    let log = runner.log();
    assert_eq!(status.code(), Some(0), "log:\n{log}");
    assert!(
        second.elapsed() < Duration::from_secs(30),
        "the second signal does not wait for the 10 minute grace: {:?}",
        second.elapsed()
    );
    for id in [&a, &b] {
        let view = fx.platform.job(id).await;
        assert_eq!(view.status, JobStatus::Cancelled, "{view:?}\nlog:\n{log}");
    }
    assert!(
        containers_with_label(&fx.runner_id).await.is_empty(),
        "log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_job_then_a_restart_removes_the_orphan_and_reports_runner_restarted() {
    let fx = Fixture::new(1).await;
    let mut first = fx.start_runner(&[("SPEDY_LOG", "info")]);
    let id = fx.enqueue(&["print", "doomed", "sleep", "600000"]).await;
    fx.wait_containers(1, &first).await;

    first.signal(Signal::KILL);
    first.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(
        job_containers(&fx.runner_id).await.len(),
        1,
        "kill -9 leaves the job's container behind"
    );
    assert_eq!(fx.platform.job(&id).await.status, JobStatus::Running);

    let mut second = fx.start_runner(&[("SPEDY_LOG", "info")]);
    let view = fx.wait_final(&id, &second).await;
    assert_eq!(view.status, JobStatus::Error, "{view:?}");
    assert_eq!(view.error.as_deref(), Some("runner restarted"));
    assert!(
        containers_with_label(&fx.runner_id).await.is_empty(),
        "the orphan is removed; log:\n{}",
        second.log()
    );
    // The restarted runner goes on with new jobs.
    let next = fx.enqueue(&["print", "alive", "exit", "0"]).await;
    let view = fx.wait_final(&next, &second).await;
    assert_eq!(
        (view.status, view.log.as_str()),
        (JobStatus::Succeeded, "alive\n")
    );
    second.signal(Signal::TERM);
    let status = second.wait_exit(Duration::from_secs(40)).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", second.log());
}
