//! The job benchmarks of issue 4 (and issue 5's injection comparison). Each
//! figure is printed side by side with its baseline, measured in the same
//! run; nothing here asserts a time.
//!
//! - **Job overhead:** 20 trivial jobs (`probe exit 0`), one at a time, end
//!   to end from `POST /jobs` to the platform seeing `complete`, through the
//!   local platform and an in-process supervisor; once with the `stdin`
//!   hand-off and once with `env` injection. Baseline: the same image and
//!   command straight through the engine (bollard create, start, wait,
//!   remove). Medians and ratios.
//! - **Throughput:** 100 trivial jobs with a pool of 8, against the same
//!   containers run directly 8 at a time. Jobs/s and the ratio.
//! - **Idle:** RSS of the real `spedy-runner run` (release build) after it
//!   ran one job and then idled `SPEDY_BENCH_IDLE_S` seconds (default 60).
//!
//! Run: `cargo bench -p spedy-supervisor --bench jobs`. Knobs:
//! `SPEDY_BENCH_IDLE_S` (idle seconds), `SPEDY_BENCH_ONLY` (`overhead`,
//! `throughput` or `idle`), `SPEDY_RUNNER_BIN` (the release binary; built
//! with `cargo build --release` when absent).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptionsBuilder, StartContainerOptions,
};
use futures_util::StreamExt;
use spedy_api::{Backend, JobSpec, JobStatus, RunnerToken, Scope};
use spedy_client::Client;
use spedy_docker::{Engine, Injection};
use spedy_supervisor::{Config, JobSettings, LocalSources, RunnerState, Supervisor, Timers};
use spedy_testkit::docker::{
    RUNNER_LABEL, probe_image, remove_containers, require_engine, unique_runner_id,
};
use spedy_testkit::platform::TestPlatform;
use tokio_util::sync::CancellationToken;

/// The trivial job: the probe exits 0 at once.
const TRIVIAL: [&str; 3] = ["/bin/probe", "exit", "0"];
const OVERHEAD_JOBS: usize = 20;
const THROUGHPUT_JOBS: usize = 100;
const THROUGHPUT_POOL: u32 = 8;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let only = std::env::var("SPEDY_BENCH_ONLY").unwrap_or_default();
    runtime.block_on(async {
        let docker = require_engine().await;
        let image = probe_image().await;
        println!("spedy-supervisor job benchmarks (probe image {image})\n");
        if only.is_empty() || only == "overhead" {
            overhead(&docker, &image).await;
        }
        if only.is_empty() || only == "throughput" {
            throughput(&docker, &image).await;
        }
        if only.is_empty() || only == "idle" {
            idle(&image).await;
        }
    });
}

// ---------------------------------------------------------------- overhead

async fn overhead(docker: &Docker, image: &str) {
    let label = unique_runner_id();
    // One warm-up run each, so image and engine caches are equally warm.
    direct_run(docker, image, &label).await;
    let mut direct = Vec::new();
    for _ in 0..OVERHEAD_JOBS {
        let t = Instant::now();
        direct_run(docker, image, &label).await;
        direct.push(t.elapsed());
    }
    let direct = median(direct);
    let stdin = runner_latency(image, Injection::Stdin).await;
    let env = runner_latency(image, Injection::Env).await;
    println!("job overhead: {OVERHEAD_JOBS} trivial jobs one at a time, median end to end");
    println!(
        "  direct engine (create, start, wait, remove)   {}",
        ms(direct)
    );
    println!(
        "  runner, stdin hand-off (enqueue → complete)    {}   {:.2}x direct",
        ms(stdin),
        ratio(stdin, direct)
    );
    println!(
        "  runner, env injection  (enqueue → complete)    {}   {:.2}x direct",
        ms(env),
        ratio(env, direct)
    );
    println!(
        "  stdin / env                                    {:.2}x\n",
        ratio(stdin, env)
    );
    remove_containers(&label).await;
}

/// The median latency of [`OVERHEAD_JOBS`] jobs run one at a time through the
/// platform and an in-process supervisor using `injection`.
async fn runner_latency(image: &str, injection: Injection) -> Duration {
    let bench = Bench::start(1, injection).await;
    bench.run_one(image).await; // warm-up
    let mut times = Vec::new();
    for _ in 0..OVERHEAD_JOBS {
        let t = Instant::now();
        bench.run_one(image).await;
        times.push(t.elapsed());
    }
    bench.stop().await;
    median(times)
}

// -------------------------------------------------------------- throughput

async fn throughput(docker: &Docker, image: &str) {
    let label = unique_runner_id();
    let t = Instant::now();
    futures_util::stream::iter(0..THROUGHPUT_JOBS)
        .map(|_| direct_run(docker, image, &label))
        .buffer_unordered(THROUGHPUT_POOL as usize)
        .collect::<Vec<()>>()
        .await;
    let direct = THROUGHPUT_JOBS as f64 / t.elapsed().as_secs_f64();

    let bench = Bench::start(THROUGHPUT_POOL, Injection::Stdin).await;
    let t = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..THROUGHPUT_JOBS {
        ids.push(bench.platform.enqueue(trivial_spec(image)).await);
    }
    for id in &ids {
        bench.wait_final(id).await;
    }
    let runner = THROUGHPUT_JOBS as f64 / t.elapsed().as_secs_f64();
    bench.stop().await;
    println!("throughput: {THROUGHPUT_JOBS} trivial jobs, {THROUGHPUT_POOL} at a time");
    println!("  direct engine                                 {direct:7.2} jobs/s");
    println!(
        "  runner (stdin hand-off, pool {THROUGHPUT_POOL})               {runner:7.2} jobs/s   {:.2}x direct\n",
        runner / direct
    );
    remove_containers(&label).await;
}

// -------------------------------------------------------------------- idle

async fn idle(image: &str) {
    let idle_s: u64 = std::env::var("SPEDY_BENCH_IDLE_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let Some(bin) = runner_binary() else {
        println!("idle: no release spedy-runner binary could be built; skipped\n");
        return;
    };
    let platform = platform_with_key().await;
    let (runner_id, token) = platform
        .create_runner("bench-idle", 1, Backend::AnthropicApi)
        .await;
    let home = tempfile::TempDir::new().expect("a folder for the runner");
    let mut child = Command::new(&bin)
        .arg("run")
        .current_dir(home.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SPEDY_API_URL", platform.url())
        .env("SPEDY_RUNNER_TOKEN", token.expose())
        .env("SPEDY_HEALTH_ADDR", "127.0.0.1:0")
        .env("SPEDY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start spedy-runner run");
    let pid = child.id();
    // One job first: the runner is online and has run the whole job path.
    let id = platform.enqueue(trivial_spec(image)).await;
    let view = loop {
        if let Ok(Some(status)) = child.try_wait() {
            println!("idle: spedy-runner exited early ({status}); skipped\n");
            return;
        }
        let view = platform.job(&id).await;
        if view.status.is_final() {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let after_job = rss_kib(pid);
    tokio::time::sleep(Duration::from_secs(idle_s)).await;
    let idle_rss = rss_kib(pid);
    let peak = status_field(pid, "VmHWM:");
    let (anon, file) = (status_field(pid, "RssAnon:"), status_field(pid, "RssFile:"));
    let threads = status_field(pid, "Threads:");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let status = child.wait().expect("wait for spedy-runner");
    println!("idle: the real `spedy-runner run` ({})", bin.display());
    println!(
        "  first job                                      {:?}",
        view.status
    );
    println!(
        "  RSS after one job                              {:7.2} MiB",
        mib(after_job)
    );
    println!(
        "  RSS after {idle_s:>3} s idle                          {:7.2} MiB   (goal ≤ 12 MiB)",
        mib(idle_rss)
    );
    println!(
        "    of which heap and stacks (RssAnon)           {:7.2} MiB, {threads} threads",
        mib(anon)
    );
    println!(
        "    of which mapped binary (RssFile)             {:7.2} MiB",
        mib(file)
    );
    println!(
        "  peak RSS (VmHWM)                               {:7.2} MiB",
        mib(peak)
    );
    println!("  exit after SIGTERM                             {status}\n");
    remove_containers(&runner_id).await;
}

/// The release `spedy-runner`: `SPEDY_RUNNER_BIN`, or next to this bench's
/// target folder, built with cargo when it is not there yet.
fn runner_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("SPEDY_RUNNER_BIN") {
        return Some(PathBuf::from(bin));
    }
    // <target>/release/deps/jobs-<hash>
    let exe = std::env::current_exe().ok()?;
    let release = exe.parent()?.parent()?.to_path_buf();
    let bin = release.join("spedy-runner");
    if !bin.exists() {
        println!("building the release spedy-runner for the idle benchmark…");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let target = release.parent()?.to_path_buf();
        let ok = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--bin",
                "spedy-runner",
                "-p",
                "spedy-runner",
            ])
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
    }
    bin.exists().then_some(bin)
}

fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

// ----------------------------------------------------------------- helpers

/// The baseline: one container straight through the engine, like the
/// runner's job containers (labelled, log driver `none`), without the runner.
async fn direct_run(docker: &Docker, image: &str, label: &str) {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(TRIVIAL.iter().map(|s| (*s).to_owned()).collect()),
        labels: Some(HashMap::from([(RUNNER_LABEL.to_owned(), label.to_owned())])),
        host_config: Some(HostConfig {
            auto_remove: Some(false),
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .expect("create")
        .id;
    docker
        .start_container(&id, None::<StartContainerOptions>)
        .await
        .expect("start");
    // A non-zero exit comes back as an error; this one exits 0.
    let _ = docker.wait_container(&id, None).next().await;
    docker
        .remove_container(
            &id,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .expect("remove");
}

fn trivial_spec(image: &str) -> JobSpec {
    JobSpec {
        image: image.to_owned(),
        command: Some(TRIVIAL.iter().map(|s| (*s).to_owned()).collect()),
        env: Default::default(),
        repo: None,
        scope: None,
        timeout_s: 60,
    }
}

async fn platform_with_key() -> TestPlatform {
    let platform = TestPlatform::start().await;
    platform
        .put_secret("ANTHROPIC_API_KEY", "sk-ant-bench-0123456789", Scope::Org)
        .await;
    platform
}

/// A platform and an in-process supervisor with `pool` slots.
struct Bench {
    platform: TestPlatform,
    runner_id: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), spedy_supervisor::Error>>,
}

impl Bench {
    async fn start(pool: u32, injection: Injection) -> Bench {
        let platform = platform_with_key().await;
        let (runner_id, token): (String, RunnerToken) = platform
            .create_runner("bench", pool, Backend::AnthropicApi)
            .await;
        let config = Config {
            client: Client::builder(&platform.url()).build().expect("client"),
            token,
            local: LocalSources::default(),
            pool_size: None,
            refresh_interval: None,
            health_addr: None,
            shutdown_grace: Duration::from_secs(10),
            jobs: JobSettings {
                injection,
                ..JobSettings::default()
            },
            timers: Timers::default(),
            log_redactor: None,
        };
        let engine = Engine::connect().await.expect("engine");
        let supervisor = Supervisor::new(config, engine);
        let mut state = supervisor.state();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(supervisor.run(shutdown.clone(), CancellationToken::new()));
        state
            .wait_for(RunnerState::is_online)
            .await
            .expect("the runner comes online");
        Bench {
            platform,
            runner_id,
            shutdown,
            task,
        }
    }

    async fn run_one(&self, image: &str) {
        let id = self.platform.enqueue(trivial_spec(image)).await;
        self.wait_final(&id).await;
    }

    /// Polls every 2 ms: the poll adds at most that to a latency.
    async fn wait_final(&self, id: &str) {
        loop {
            let view = self.platform.job(id).await;
            if view.status.is_final() {
                assert_eq!(view.status, JobStatus::Succeeded, "{view:?}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
        remove_containers(&self.runner_id).await;
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn ms(d: Duration) -> String {
    format!("{:8.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
