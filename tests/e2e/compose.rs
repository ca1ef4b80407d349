//! The Docker Compose stack, for real: `docker/compose.yml` plus the offline
//! overlay `docker/compose.local.yml`, run by this machine's compose tool
//! (`docker compose` v2 or `docker-compose` v1), with the images built
//! offline by `docker/build-offline.sh` (static binaries from this workspace,
//! `FROM scratch`; no registry). It brings the stack up under a unique
//! project name, runs a job, does the migration of the Anthropic key from the
//! `.env` into the vault with `up -d --force-recreate spedy-supervisor`, runs
//! another job, and brings everything down with no container left.
//!
//! The static build goes into `<target dir>/static` (its own target dir,
//! since `+crt-static` changes every artifact), debug profile without debug
//! info; a warm rebuild takes seconds, a cold one a few minutes.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use spedy_api::{
    AdminToken, Backend, CreateRunnerRequest, JobSpec, JobStatus, JobView, PutSecretRequest,
};
use spedy_client::{AdminApi, Client};
use spedy_testkit::canary::{assert_absent, canary};
use spedy_testkit::docker::{containers_with_label, probe_image, require_engine};

/// Tags of the offline-built images (kept between runs; rebuilt each run,
/// which is quick when nothing changed).
const RUNNER_IMAGE: &str = "spedy-runner:e2e";
const PLATFORM_IMAGE: &str = "spedy-platform:e2e";
/// How long one job may take from enqueue to complete.
const JOB_WAIT: Duration = Duration::from_secs(90);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// This build's target dir: the parent of the profile folder that holds the
/// binary under test (`<target>/debug/spedy-runner`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_spedy-runner"))
        .parent()
        .and_then(Path::parent)
        .expect("the binary lives in <target>/<profile>/")
        .to_owned()
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Builds the static binaries and both images with docker/build-offline.sh.
fn build_images() {
    let started = Instant::now();
    let out = Command::new("sh")
        .arg(workspace().join("docker/build-offline.sh"))
        .args(["--profile", "dev", "--target-dir"])
        .arg(target_dir().join("static"))
        .args([
            "--runner-image",
            RUNNER_IMAGE,
            "--platform-image",
            PLATFORM_IMAGE,
        ])
        .env(
            "CARGO",
            std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
        )
        .stdin(Stdio::null())
        .output()
        .expect("sh runs docker/build-offline.sh");
    assert!(
        out.status.success(),
        "building the images offline failed:\n{}",
        show(&out)
    );
    eprintln!(
        "compose test: images built in {:.0}s",
        started.elapsed().as_secs_f64()
    );
}

/// The machine's compose tool: `docker compose` (v2) or `docker-compose` (v1).
fn compose_tool() -> Vec<String> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works("docker", &["compose", "version"]) {
        vec!["docker".into(), "compose".into()]
    } else if works("docker-compose", &["version"]) {
        vec!["docker-compose".into()]
    } else {
        panic!(
            "this test needs Docker Compose: neither `docker compose version` nor \
             `docker-compose version` works (install docker-compose, e.g. `apt-get install docker-compose`)"
        )
    }
}

/// A free TCP port on loopback for the platform's published port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a free port")
        .port()
}

fn random_alnum(n: usize) -> String {
    // Reuse the canary generator's randomness; keep only its random tail.
    let c = canary("X");
    c.rsplit('_').next().expect("a canary has a random tail")[..n].to_owned()
}

/// One compose project in a temporary folder; `down -v` on drop.
struct Stack {
    tool: Vec<String>,
    project: String,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    admin_token: String,
    port: u16,
}

impl Stack {
    fn new() -> Stack {
        let dir = tempfile::tempdir().expect("a temporary folder");
        for file in ["compose.yml", "compose.local.yml"] {
            fs::copy(workspace().join("docker").join(file), dir.path().join(file))
                .expect("copying the compose files");
        }
        let socket_gid = fs::metadata("/var/run/docker.sock")
            .map(|m| m.gid())
            .unwrap_or(0);
        let port = free_port();
        let admin_token = format!("sat_{}", random_alnum(24) + &random_alnum(16));
        let env = vec![
            ("SPEDY_RUNNER_IMAGE".into(), RUNNER_IMAGE.into()),
            ("SPEDY_PLATFORM_IMAGE".into(), PLATFORM_IMAGE.into()),
            ("SPEDY_DOCKER_GID".into(), socket_gid.to_string()),
            ("SPEDY_PLATFORM_PORT".into(), port.to_string()),
            ("SPEDY_PLATFORM_ADMIN_TOKEN".into(), admin_token.clone()),
            ("SPEDY_STOP_GRACE_PERIOD".into(), "30s".into()),
        ];
        let stack = Stack {
            tool: compose_tool(),
            project: format!("spedy-e2e-{}", random_alnum(10).to_lowercase()),
            dir,
            env,
            admin_token,
            port,
        };
        stack.write_env("");
        stack
    }

    /// Writes the stack's `.env` (mode 0600, as install.sh lays it out).
    fn write_env(&self, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(".env");
        fs::write(&path, text).expect("writing .env");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod .env");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.tool[0]);
        cmd.args(&self.tool[1..])
            .args([
                "-p",
                &self.project,
                "-f",
                "compose.yml",
                "-f",
                "compose.local.yml",
            ])
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the compose tool runs")
    }

    /// Runs and asserts success, with the stack's logs on failure.
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`compose {}` failed:\n{}\n--- stack logs\n{}",
            args.join(" "),
            show(&out),
            self.logs()
        );
        out
    }

    fn logs(&self) -> String {
        let out = self.run(&["logs", "--no-color"]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The ids of this project's containers (running or not).
    fn containers(&self) -> Vec<String> {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter"])
            .arg(format!("label=com.docker.compose.project={}", self.project))
            .output()
            .expect("docker ps runs");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--remove-orphans", "-t", "5"]);
    }
}

/// Waits until the platform's published port answers `/healthz`.
async fn wait_for_platform(stack: &Stack) -> Client {
    let client = Client::builder(&stack.url())
        .build()
        .expect("a platform client");
    let started = Instant::now();
    while client.healthz().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the platform did not answer on {} within 60s:\n{}",
            stack.url(),
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client
}

/// Enqueues the probe job and waits until it is final.
async fn run_job(admin: &AdminApi, stack: &Stack, image: &str) -> JobView {
    let spec = JobSpec {
        image: image.to_owned(),
        command: Some(
            ["/bin/probe", "names", "echo", "ANTHROPIC_API_KEY"]
                .map(String::from)
                .to_vec(),
        ),
        env: Default::default(),
        repo: None,
        scope: None,
        timeout_s: 60,
    };
    let id = admin.enqueue(&spec).await.expect("enqueueing a job").id;
    let started = Instant::now();
    loop {
        let view = admin.job(&id).await.expect("reading the job");
        if view.status.is_final() {
            return view;
        }
        assert!(
            started.elapsed() < JOB_WAIT,
            "job {id} is still {:?} after {JOB_WAIT:?}:\n{}",
            view.status,
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The env of the running supervisor container, as `docker inspect` shows it.
fn supervisor_env(stack: &Stack) -> String {
    let id = stack.ok(&["ps", "-q", "spedy-supervisor"]);
    let id = String::from_utf8_lossy(&id.stdout).trim().to_owned();
    assert!(!id.is_empty(), "the supervisor container runs");
    let out = Command::new("docker")
        .args(["inspect", "--format", "{{json .Config.Env}}", &id])
        .output()
        .expect("docker inspect runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_succeeded_with_redacted_key(view: &JobView, stack: &Stack, what: &str) {
    assert_eq!(
        view.status,
        JobStatus::Succeeded,
        "{what}: the job did not succeed: {view:?}\n{}",
        stack.logs()
    );
    assert!(
        view.log
            .contains("ANTHROPIC_API_KEY=[REDACTED:ANTHROPIC_API_KEY]"),
        "{what}: the job did not receive the key (or it was not redacted):\n{}",
        view.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_runs_jobs_across_the_migration_of_the_key_into_the_vault() {
    require_engine().await;
    let image = probe_image().await;
    build_images();
    let stack = Stack::new();

    // The local platform first: the runner token comes from it.
    stack.ok(&["up", "-d", "spedy-platform"]);
    let client = wait_for_platform(&stack).await;
    let admin =
        client.admin(AdminToken::parse(&stack.admin_token).expect("a well-formed admin token"));
    let created = admin
        .create_runner(&CreateRunnerRequest {
            name: "compose".into(),
            pool_size: 1,
            backend: Backend::AnthropicApi,
        })
        .await
        .expect("creating a runner token");
    let token = created.token.expose().to_owned();

    // Before the switch: a host set up the old way, with the key only in its
    // .env and an empty vault. It keeps working: the runner names its local
    // key at bootstrap, so the platform does not withhold the bundle.
    let legacy_key = canary("LEGACY_KEY");
    let vault_key = canary("VAULT_KEY");
    stack.write_env(&format!(
        "SPEDY_RUNNER_TOKEN={token}\nSPEDY_SHUTDOWN_GRACE=20s\nANTHROPIC_API_KEY={legacy_key}\n"
    ));
    stack.ok(&["up", "-d", "spedy-supervisor"]);
    assert!(supervisor_env(&stack).contains("ANTHROPIC_API_KEY="));
    let before = run_job(&admin, &stack, &image).await;
    assert_succeeded_with_redacted_key(&before, &stack, "before the migration");

    // The migration banner's two steps: store the key in the vault, remove
    // the line, and recreate the supervisor; the key now comes from the vault.
    admin
        .put_secret(
            "ANTHROPIC_API_KEY",
            &PutSecretRequest {
                value: SecretString::from(vault_key.clone()),
                kind: None,
                scope: None,
            },
        )
        .await
        .expect("storing the key in the vault");
    stack.write_env(&format!(
        "SPEDY_RUNNER_TOKEN={token}\nSPEDY_SHUTDOWN_GRACE=20s\n"
    ));
    stack.ok(&["up", "-d", "--force-recreate", "spedy-supervisor"]);
    assert!(
        !supervisor_env(&stack).contains("ANTHROPIC_API_KEY"),
        "the recreated supervisor still has the old line in its environment"
    );
    let after = run_job(&admin, &stack, &image).await;
    assert_succeeded_with_redacted_key(&after, &stack, "after the migration");

    // No value leaked into the job logs or the stack's own logs.
    let logs = stack.logs();
    for (place, text) in [
        ("job log 1", &before.log),
        ("job log 2", &after.log),
        ("stack logs", &logs),
    ] {
        assert_absent(place, text.as_bytes(), &[&legacy_key, &vault_key, &token]);
    }

    // Down, with nothing left: neither the stack's containers nor jobs'.
    stack.ok(&["down", "-v", "--remove-orphans", "-t", "20"]);
    assert_eq!(
        stack.containers(),
        Vec::<String>::new(),
        "compose containers left"
    );
    let jobs_left = containers_with_label(&created.runner_id).await;
    assert!(jobs_left.is_empty(), "job containers left: {jobs_left:?}");
}
