//! `spedy-runner run` as a process, against the local platform (in-process)
//! and the real Docker engine (issue 3): settings errors refuse to start,
//! an unreachable platform at start, a revoked token, the key gate, rotation
//! reaching the next job, and the canary test (a canary in the vault and in
//! the local `.env` appears nowhere: not in stdout/stderr in either log
//! format at debug level, not in a file the runner writes, not in
//! `/proc/<pid>/environ`).
//!
//! The in-process tests in `crates/supervisor/tests/core_*.rs` cover the
//! same paths with sub-second timers and a misbehaving proxy; these check
//! that the binary wires them up.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use spedy_api::{Backend, JobSpec, JobStatus, RunnerToken, Scope, SecretKind};
use spedy_testkit::canary::{assert_absent, canary};
use spedy_testkit::cmd::RunnerCmd;
use spedy_testkit::docker::{probe_image, require_engine};
use spedy_testkit::platform::TestPlatform;
use tempfile::TempDir;

/// How long any wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// A host folder (the runner's working folder, HOME and XDG dirs) with a
/// `.env`, and the command that runs `spedy-runner run` in it.
struct Host {
    dir: TempDir,
    cmd: RunnerCmd,
}

impl Host {
    /// A host whose `.env` holds `dotenv`; the platform and token as given.
    fn new(url: &str, token: Option<&RunnerToken>, dotenv: &str) -> Host {
        let dir = tempfile::Builder::new()
            .prefix("spedy-e2e-run-")
            .tempdir()
            .expect("a temp folder");
        std::fs::write(dir.path().join(".env"), dotenv).expect("write .env");
        let mut cmd = RunnerCmd::new(env!("CARGO_BIN_EXE_spedy-runner"));
        cmd.arg("run")
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("xdg"))
            .env("SPEDY_API_URL", url)
            .env("SPEDY_ENV_FILE", dir.path().join(".env"))
            .env("SPEDY_HEALTH_ADDR", "127.0.0.1:0")
            .env("SPEDY_SHUTDOWN_GRACE", "5s");
        if let Some(token) = token {
            cmd.env("SPEDY_RUNNER_TOKEN", token.expose());
        }
        Host { dir, cmd }
    }

    fn env(&mut self, k: &str, v: &str) -> &mut Self {
        self.cmd.env(k, v);
        self
    }

    fn spawn(&self) -> Running {
        Running::spawn(&self.cmd)
    }

    fn env_path(&self) -> PathBuf {
        self.dir.path().join(".env")
    }
}

/// A running `spedy-runner run` whose output is collected; killed on drop.
struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Running {
    fn spawn(cmd: &RunnerCmd) -> Running {
        let mut command = cmd.to_command();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn spedy-runner run");
        let collect = |mut pipe: Box<dyn Read + Send>| {
            let buf = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&buf);
            std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().expect("lock").extend_from_slice(&chunk[..n]);
                }
            });
            buf
        };
        let stdout = collect(Box::new(child.stdout.take().expect("stdout")));
        let stderr = collect(Box::new(child.stderr.take().expect("stderr")));
        Running {
            child,
            stdout,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("lock")).into_owned()
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().expect("lock")).into_owned()
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits")).expect("pid")
    }

    /// Waits until stderr contains `needle`.
    async fn wait_log(&mut self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let err = self.stderr();
            if err.contains(needle) {
                return err;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the runner exited ({status}) before logging {needle:?}\n{err}");
            }
            assert!(
                start.elapsed() < PATIENCE,
                "no {needle:?} in stderr:\n{err}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The health address the runner logged.
    async fn health(&mut self) -> SocketAddr {
        let marker = "listening on http://";
        let err = self.wait_log(marker).await;
        let rest = &err[err.find(marker).expect("found") + marker.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
            .unwrap_or(rest.len());
        rest[..end].parse().expect("a socket address")
    }

    /// Waits until `/readyz` answers `status` (and `body`, when given).
    async fn wait_ready(&mut self, addr: SocketAddr, status: u16, body: &str) {
        let start = Instant::now();
        loop {
            let got = readyz(addr);
            if got.0 == status && got.1.contains(body) {
                return;
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("the runner exited ({exit})\n{}", self.stderr());
            }
            assert!(
                start.elapsed() < PATIENCE,
                "/readyz is {got:?}, not {status} {body:?}\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, signal: Signal) {
        kill_process(self.pid(), signal).expect("signal the runner");
    }

    /// SIGTERM, then the exit status.
    async fn terminate(&mut self) -> ExitStatus {
        self.signal(Signal::TERM);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader threads drain the pipes.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return status;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "no exit after SIGTERM\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET /readyz` over a plain socket: the status and the body.
fn readyz(addr: SocketAddr) -> (u16, String) {
    http_get(addr, "/readyz")
}

/// `GET path` over a plain socket (HTTP/1.0): the status and the body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, String::new());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .is_err()
    {
        return (0, String::new());
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// A platform with the Anthropic key and a runner token.
async fn platform_with_runner(key: &str) -> (TestPlatform, String, RunnerToken) {
    require_engine().await;
    let platform = TestPlatform::start().await;
    platform
        .put_secret_kind("ANTHROPIC_API_KEY", key, SecretKind::Anthropic, Scope::Org)
        .await;
    let (id, token) = platform
        .create_runner("e2e-run", 2, Backend::AnthropicApi)
        .await;
    (platform, id, token)
}

/// A job of the probe image running `probe <steps>`.
async fn probe_job(steps: &[&str]) -> JobSpec {
    let mut command = vec!["/bin/probe".to_owned()];
    command.extend(steps.iter().map(|s| (*s).to_owned()));
    JobSpec {
        image: probe_image().await,
        command: Some(command),
        env: Default::default(),
        repo: None,
        scope: None,
        timeout_s: 60,
    }
}

#[test]
fn a_malformed_env_line_refuses_to_start_and_names_file_and_line() {
    let host = Host::new(
        "http://127.0.0.1:9",
        None,
        "GOOD=1\nthis line has no equals sign\n",
    );
    let out = host.cmd.assert_exit_code(2);
    let err = out.combined();
    let path = host.env_path().display().to_string();
    assert!(err.contains(&path), "{err}");
    assert!(
        err.contains("line 2") || err.contains(&format!("{path}:2")),
        "{err}"
    );
}

#[test]
fn bad_settings_refuse_to_start_and_name_the_setting_and_its_source() {
    let token = "rnt_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let cases: [(&str, &str, &str, &[&str]); 4] = [
        (
            "SPEDY_POOL_SIZE",
            "0",
            "",
            &["SPEDY_POOL_SIZE", "env SPEDY_POOL_SIZE", "1 to 64"],
        ),
        (
            "SPEDY_REFRESH_INTERVAL",
            "soon",
            "",
            &["SPEDY_REFRESH_INTERVAL", "15m"],
        ),
        (
            "SPEDY_API_URL",
            "http://10.1.2.3",
            "",
            &["SPEDY_API_URL", "loopback"],
        ),
        (
            "UNUSED",
            "x",
            "A=1\nSPEDY_INJECTION=pigeon\n",
            &["SPEDY_INJECTION", ".env:2", "`stdin` or `env`"],
        ),
    ];
    for (name, value, dotenv, wants) in cases {
        let mut host = Host::new("http://127.0.0.1:9", None, dotenv);
        host.env("SPEDY_RUNNER_TOKEN", token).env(name, value);
        let out = host.cmd.assert_exit_code(2);
        let err = out.combined();
        for want in wants {
            assert!(err.contains(want), "{name}: {err}");
        }
        assert!(!err.contains(&token[4..]), "the token leaked: {err}");
    }
    // No token at all: the hint names the command that makes one.
    let host = Host::new("http://127.0.0.1:9", None, "");
    host.cmd
        .assert_exit_code(2)
        .assert_contains("SPEDY_RUNNER_TOKEN")
        .assert_contains("spedy-runner setup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_platform_at_start_is_retried_and_the_runner_comes_online_when_it_appears() {
    let (mut platform, _, token) = platform_with_runner(&canary("KEY")).await;
    platform.stop().await;
    let host = Host::new(&platform.url(), Some(&token), "");
    let mut runner = host.spawn();
    let health = runner.health().await;
    runner.wait_ready(health, 503, "unreachable").await;
    runner.wait_log("bootstrap failed").await;
    let (status, metrics) = http_get(health, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("spedy_runner_refresh_failures_total{reason=\"connect\"}")
            && metrics.contains("spedy_runner_online 0"),
        "{metrics}"
    );
    platform.resume().await;
    runner.wait_ready(health, 200, "online").await;
    let status = runner.terminate().await;
    assert_eq!(status.code(), Some(0), "{}", runner.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_while_running_stops_claims_at_the_next_refresh_and_sigterm_exits_0() {
    let (platform, runner_id, token) = platform_with_runner(&canary("KEY")).await;
    let mut host = Host::new(&platform.url(), Some(&token), "");
    host.env("SPEDY_REFRESH_INTERVAL", "1s");
    let mut runner = host.spawn();
    let health = runner.health().await;
    runner.wait_ready(health, 200, "online").await;
    platform.revoke_runner(&runner_id).await;
    runner.wait_ready(health, 503, "invalid_token").await;
    let job = platform.enqueue(probe_job(&["exit", "0"]).await).await;
    // Two more refresh intervals: nothing is claimed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(platform.job(&job).await.status, JobStatus::Queued);
    let err = runner.stderr();
    // The refresher says it once, with the fix (the claimer's own failed
    // claims may also carry the client's hint).
    let line = "the platform refused the runner token (revoked or unknown)";
    assert_eq!(err.matches(line).count(), 1, "logged once:\n{err}");
    assert!(err.contains("spedy-runner setup"), "{err}");
    let status = runner.terminate().await;
    assert_eq!(status.code(), Some(0), "{}", runner.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_removed_from_the_vault_takes_the_runner_offline_and_adding_it_back_brings_it_online()
{
    let (platform, _, token) = platform_with_runner(&canary("KEY")).await;
    let mut host = Host::new(&platform.url(), Some(&token), "");
    host.env("SPEDY_REFRESH_INTERVAL", "1s");
    let mut runner = host.spawn();
    let health = runner.health().await;
    runner.wait_ready(health, 200, "online").await;
    platform.delete_secret("ANTHROPIC_API_KEY").await;
    runner
        .wait_ready(health, 503, "anthropic_key_missing")
        .await;
    runner.wait_log("/settings/runners/secrets").await;
    platform
        .put_secret_kind(
            "ANTHROPIC_API_KEY",
            &canary("KEY"),
            SecretKind::Anthropic,
            Scope::Org,
        )
        .await;
    runner.wait_ready(health, 200, "online").await;
    let status = runner.terminate().await;
    assert_eq!(status.code(), Some(0), "{}", runner.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_reaches_the_next_job_within_one_refresh_interval_without_restart() {
    let (platform, _, token) = platform_with_runner(&canary("KEY")).await;
    // Values under 6 characters are not redacted, so the job log shows
    // which one the job received.
    platform.put_secret("ROTATED", "old5c", Scope::Org).await;
    let mut host = Host::new(&platform.url(), Some(&token), "");
    host.env("SPEDY_REFRESH_INTERVAL", "1s");
    let mut runner = host.spawn();
    let health = runner.health().await;
    runner.wait_ready(health, 200, "online").await;
    let first = platform
        .enqueue(probe_job(&["echo", "ROTATED"]).await)
        .await;
    let first = platform.wait_job_final(&first, PATIENCE).await;
    assert!(first.log.contains("ROTATED=old5c"), "{first:?}");
    platform.put_secret("ROTATED", "new5c", Scope::Org).await;
    // One interval (1 s ± 10%) and a margin for the bootstrap itself.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = platform
        .enqueue(probe_job(&["echo", "ROTATED"]).await)
        .await;
    let second = platform.wait_job_final(&second, PATIENCE).await;
    assert!(second.log.contains("ROTATED=new5c"), "{second:?}");
    let status = runner.terminate().await;
    assert_eq!(status.code(), Some(0), "{}", runner.stderr());
}

/// Every file under `dir` except `skip`, with its bytes.
fn files_under(dir: &Path, skip: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path != skip {
                out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out
}

/// The canary test, in one log format.
async fn canaries_appear_nowhere(format: &str) {
    let vault_key = canary("VAULT_KEY");
    let vault_custom = canary("VAULT_CUSTOM");
    let local_only = canary("LOCAL_ONLY");
    let local_shadow = canary("LOCAL_SHADOW");
    let all = [&vault_key, &vault_custom, &local_only, &local_shadow].map(String::as_str);
    let (platform, _, token) = platform_with_runner(&vault_key).await;
    platform
        .put_secret("VAULT_CUSTOM", &vault_custom, Scope::Org)
        .await;
    let dotenv = format!(
        "SPEDY_REFRESH_INTERVAL=1s\nLOCAL_ONLY={local_only}\nANTHROPIC_API_KEY=\"{local_shadow}\"\n"
    );
    let mut host = Host::new(&platform.url(), Some(&token), &dotenv);
    host.env("SPEDY_LOG_FORMAT", format)
        .env("SPEDY_LOG", "debug");
    let mut runner = host.spawn();
    let health = runner.health().await;
    runner.wait_ready(health, 200, "online").await;
    // A job that echoes every value it holds: its stream passes through the
    // runner too.
    let steps = [
        "echo",
        "VAULT_CUSTOM",
        "echo",
        "LOCAL_ONLY",
        "echo",
        "ANTHROPIC_API_KEY",
    ];
    let job = platform.enqueue(probe_job(&steps).await).await;
    let job = platform.wait_job_final(&job, PATIENCE).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    // Every value reached the job (the local ones too) and came back redacted.
    for name in ["VAULT_CUSTOM", "LOCAL_ONLY", "ANTHROPIC_API_KEY"] {
        assert!(
            job.log.contains(&format!("{name}=[REDACTED:")),
            "{name}: {job:?}"
        );
    }
    assert_absent("the job log the platform stored", job.log.as_bytes(), &all);
    // A couple of refreshes, so the refresh path is logged too.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let environ = std::fs::read(format!("/proc/{}/environ", runner.child.id()));
    match &environ {
        Ok(bytes) => assert_absent("/proc/<runner pid>/environ", bytes, &all),
        // Non-dumpable: only root may read it, which is stronger still.
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}"),
    }
    let status = runner.terminate().await;
    assert_eq!(status.code(), Some(0), "{}", runner.stderr());
    let (out, err) = (runner.stdout(), runner.stderr());
    assert!(
        err.contains("shadows the platform's ANTHROPIC_API_KEY"),
        "{err}"
    );
    assert!(
        err.contains("DEBUG") || err.contains("\"DEBUG\""),
        "debug level is on:\n{err}"
    );
    assert_absent("the runner's stdout", out.as_bytes(), &all);
    assert_absent("the runner's stderr", err.as_bytes(), &all);
    for (path, bytes) in files_under(host.dir.path(), &host.env_path()) {
        assert_absent(&path.display().to_string(), &bytes, &all);
    }
    if format == "json" {
        for line in err.lines().filter(|l| !l.trim().is_empty()) {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_in_the_vault_and_the_env_file_appear_nowhere_with_json_logs() {
    canaries_appear_nowhere("json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_in_the_vault_and_the_env_file_appear_nowhere_with_text_logs() {
    canaries_appear_nowhere("text").await;
}
