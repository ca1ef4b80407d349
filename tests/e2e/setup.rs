//! `spedy-runner setup` end to end: the wizard in a real pseudo-terminal
//! (rexpect) and the unattended path, against the real local platform
//! served from this test process over 127.0.0.1.
//!
//! Every test checks what the `.env` file holds afterwards (or that it was
//! not touched), and that no canary of the vault or the `.env` appears in
//! setup's output.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::fs;
use std::os::unix::fs::PermissionsExt;

use rexpect::process::WaitStatus;
use spedy_api::{Backend, RunnerToken};
use spedy_testkit::canary::{assert_absent, canary};

use self::fixture::Host;

/// A host folder with a local platform; shared with `doctor`'s tests.
pub mod fixture {
    use std::path::PathBuf;

    use secrecy::SecretString;
    use spedy_api::{
        Backend, CreateRunnerRequest, CreateRunnerResponse, GithubIntegrationRequest,
        PutSecretRequest,
    };
    use spedy_client::{AdminApi, Client};
    use spedy_platform::{PlatformConfig, RunningPlatform};
    use spedy_testkit::cmd::RunnerCmd;
    use tempfile::TempDir;

    /// A temporary runner folder (also `HOME`) and a platform on port 0.
    pub struct Host {
        pub platform: RunningPlatform,
        pub admin: AdminApi,
        pub dir: TempDir,
        _data: TempDir,
    }

    impl Host {
        pub async fn start() -> Host {
            let data = tempfile::tempdir().expect("a temp data dir");
            let platform = spedy_platform::spawn(PlatformConfig::new(data.path()))
                .await
                .expect("the local platform starts");
            let admin = Client::builder(&platform.url())
                .build()
                .expect("a client")
                .admin(platform.admin_token.clone());
            Host {
                platform,
                admin,
                dir: tempfile::tempdir().expect("a temp runner dir"),
                _data: data,
            }
        }

        pub fn url(&self) -> String {
            self.platform.url()
        }

        pub fn env_path(&self) -> PathBuf {
            self.dir.path().join(".env")
        }

        /// `spedy-runner` run in the host folder, with `HOME` there too.
        pub fn cmd(&self) -> RunnerCmd {
            let mut cmd = RunnerCmd::new(env!("CARGO_BIN_EXE_spedy-runner"));
            cmd.current_dir(self.dir.path())
                .env("HOME", self.dir.path())
                .env("SPEDY_LOG", "warn");
            cmd
        }

        pub async fn put_key(&self, value: &str) {
            self.put_secret("ANTHROPIC_API_KEY", value).await;
        }

        pub async fn put_secret(&self, env: &str, value: &str) {
            let req = PutSecretRequest {
                value: SecretString::from(value),
                kind: None,
                scope: None,
            };
            self.admin
                .put_secret(env, &req)
                .await
                .expect("put a secret");
        }

        pub async fn connect_github(&self, token: &str) {
            let req = GithubIntegrationRequest::Token {
                token: SecretString::from(token),
            };
            self.admin.put_github(&req).await.expect("connect github");
        }

        pub async fn create_runner(&self, backend: Backend) -> CreateRunnerResponse {
            let req = CreateRunnerRequest {
                name: "fixture".into(),
                pool_size: 1,
                backend,
            };
            self.admin
                .create_runner(&req)
                .await
                .expect("create a runner")
        }
    }
}

/// The runner token written into `text`, checked for format.
fn written_token(text: &str) -> RunnerToken {
    let line = text
        .lines()
        .find(|l| l.starts_with("SPEDY_RUNNER_TOKEN="))
        .unwrap_or_else(|| panic!("no SPEDY_RUNNER_TOKEN line in:\n{text}"));
    RunnerToken::parse(&line["SPEDY_RUNNER_TOKEN=".len()..]).expect("a well-formed token")
}

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn setup_without_a_terminal_or_flags_exits_2_naming_the_missing_flags() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = spedy_testkit::cmd::RunnerCmd::new(env!("CARGO_BIN_EXE_spedy-runner"));
    cmd.current_dir(dir.path())
        .env("HOME", dir.path())
        .arg("setup");
    let out = cmd.assert_exit_code(2);
    for flag in [
        "--yes",
        "--backend",
        "--admin-token-file",
        "SPEDY_ADMIN_TOKEN",
    ] {
        assert!(out.stderr.contains(flag), "{flag} not named\n{out}");
    }
    assert!(!dir.path().join(".env").exists(), "nothing is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unattended_setup_writes_the_env_file_keeps_its_lines_and_prints_the_checklist() {
    let host = Host::start().await;
    let key = canary("VAULT_KEY");
    let local = canary("LOCAL");
    host.put_key(&key).await;
    host.connect_github(&canary("GH")).await;
    let env = host.env_path();
    fs::write(&env, format!("# my host\nMY_FLAG={local}\n")).unwrap();

    let out = host
        .cmd()
        .args([
            "setup",
            "--yes",
            "--backend",
            "anthropic-api",
            "--pool-size",
            "2",
        ])
        .args(["--name", "host-a", "--api-url", &host.url()])
        .env("SPEDY_ADMIN_TOKEN", host.platform.admin_token.expose())
        .assert_exit_code(0);

    let text = fs::read_to_string(&env).unwrap();
    assert!(
        text.starts_with(&format!("# my host\nMY_FLAG={local}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("SPEDY_API_URL={}", host.url())),
        "{text}"
    );
    let token = written_token(&text);
    assert_eq!(mode(&env), 0o600);
    let readiness = spedy_client::Client::builder(&host.url())
        .build()
        .unwrap()
        .runner(token.clone())
        .readiness()
        .await
        .expect("the platform accepts the written token");
    assert!(readiness.ready);
    out.assert_contains("Created runner \"host-a\"")
        .assert_contains("SPEDY_RUNNER_TOKEN=rnt_…")
        .assert_contains("ANTHROPIC_API_KEY in the vault")
        .assert_contains("✓ github")
        .assert_contains("Ready.");
    let admin = host.platform.admin_token.expose().to_owned();
    assert_absent(
        "setup's output",
        out.combined().as_bytes(),
        &[&key, &local, token.expose(), &admin],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unattended_setup_with_the_key_missing_creates_the_token_and_exits_0_with_the_link() {
    let host = Host::start().await;
    let out = host
        .cmd()
        .args([
            "setup",
            "--yes",
            "--backend",
            "anthropic-api",
            "--api-url",
            &host.url(),
        ])
        .env("SPEDY_ADMIN_TOKEN", host.platform.admin_token.expose())
        .assert_exit_code(0);
    written_token(&fs::read_to_string(host.env_path()).unwrap());
    out.assert_contains("⚠")
        .assert_contains("will not go online until ANTHROPIC_API_KEY is in the vault")
        .assert_contains("/settings/runners/secrets")
        .assert_contains("spedy-runner doctor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unattended_setup_with_wait_returns_once_the_key_reaches_the_vault() {
    let host = Host::start().await;
    host.connect_github(&canary("GH")).await;
    let mut cmd = host.cmd();
    cmd.args(["setup", "--yes", "--wait", "--backend", "anthropic-api"])
        .args(["--recheck-every", "100ms", "--api-url", &host.url()])
        .env("SPEDY_ADMIN_TOKEN", host.platform.admin_token.expose())
        .timeout(std::time::Duration::from_secs(60));
    let run = tokio::task::spawn_blocking(move || cmd.output());
    // Once the token exists (the .env is written), the key arrives.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !host.env_path().exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "setup never wrote the .env"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let late = canary("LATE_KEY");
    host.put_key(&late).await;
    let out = run.await.unwrap();
    assert_eq!(out.code, Some(0), "{out}");
    out.assert_contains("will not go online")
        .assert_contains("Ready.");
    assert_absent("setup's output", out.combined().as_bytes(), &[&late]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unattended_setup_never_replaces_an_existing_token_without_force() {
    let host = Host::start().await;
    let old = host.create_runner(Backend::AnthropicApi).await;
    let before = format!("SPEDY_RUNNER_TOKEN={}\nOTHER=1\n", old.token.expose());
    fs::write(host.env_path(), &before).unwrap();
    let mut cmd = host.cmd();
    cmd.args([
        "setup",
        "--yes",
        "--backend",
        "local-claude",
        "--api-url",
        &host.url(),
    ])
    .env("SPEDY_ADMIN_TOKEN", host.platform.admin_token.expose());
    let out = cmd.assert_exit_code(2);
    out.assert_contains("--force")
        .assert_not_contains(old.token.expose());
    assert_eq!(
        fs::read_to_string(host.env_path()).unwrap(),
        before,
        "untouched"
    );

    let out = cmd.arg("--force").assert_exit_code(0);
    // Local Claude: the key is not needed, and the host's login is checked.
    out.assert_contains("not needed")
        .assert_contains("Claude login for the local backend")
        .assert_contains(".claude/.credentials.json");
    let after = fs::read_to_string(host.env_path()).unwrap();
    assert_ne!(written_token(&after), old.token);
    assert!(after.contains("OTHER=1\n"), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unattended_setup_with_a_refused_admin_token_says_so_and_writes_nothing() {
    let host = Host::start().await;
    let unknown = format!("sat_{}", "A".repeat(40));
    let token_file = host.dir.path().join("admin-token");
    fs::write(&token_file, &unknown).unwrap();
    let out = host
        .cmd()
        .args([
            "setup",
            "--yes",
            "--backend",
            "anthropic-api",
            "--api-url",
            &host.url(),
        ])
        .arg("--admin-token-file")
        .arg(&token_file)
        .assert_exit_code(2);
    out.assert_contains("refused the admin token")
        .assert_contains("nothing was written")
        .assert_not_contains(&unknown);
    assert!(!host.env_path().exists());

    fs::write(&token_file, "sat_short").unwrap();
    let out = host
        .cmd()
        .args([
            "setup",
            "--yes",
            "--backend",
            "anthropic-api",
            "--api-url",
            &host.url(),
        ])
        .arg("--admin-token-file")
        .arg(&token_file)
        .assert_exit_code(2);
    out.assert_contains("is malformed")
        .assert_not_contains("sat_short");
    assert!(!host.env_path().exists());
}

/// The wizard under a pseudo-terminal; `script` drives it and returns how
/// it ended. Runs on a blocking thread so the platform keeps serving.
async fn in_pty<F>(host: &Host, extra: &[&str], script: F) -> (String, WaitStatus)
where
    F: FnOnce(&mut rexpect::session::PtySession) -> Result<String, rexpect::error::Error>
        + Send
        + 'static,
{
    let mut cmd = host.cmd();
    cmd.args([
        "setup",
        "--api-url",
        &host.url(),
        "--recheck-every",
        "200ms",
    ])
    .args(extra)
    .env("TERM", "xterm")
    .env_remove("NO_COLOR");
    let command = cmd.to_command();
    tokio::task::spawn_blocking(move || {
        let mut p = rexpect::session::spawn_command(command, Some(20_000)).expect("spawn in a pty");
        let mut seen = match script(&mut p) {
            Ok(seen) => seen,
            Err(e) => {
                let rest = p.exp_eof().unwrap_or_default();
                panic!("the wizard did not go as scripted: {e}\n--- output after the last match ---\n{rest}");
            }
        };
        seen.push_str(&p.exp_eof().unwrap_or_default());
        let status = p.process().wait().expect("wait for the wizard");
        (seen, status)
    })
    .await
    .expect("the pty thread")
}

/// Steps 1 and 2 with the defaults, then the admin token and a name.
fn answer_to_create(
    p: &mut rexpect::session::PtySession,
    admin: &str,
    name: &str,
) -> Result<(), rexpect::error::Error> {
    p.exp_string("AI backend")?;
    p.exp_string("Local Claude")?;
    p.send("\r")?;
    p.flush()?;
    p.exp_string("Pool size")?;
    p.send_line("2")?;
    p.exp_string("Review & Connect")?;
    p.exp_string("Admin token")?;
    p.send_line(admin)?;
    p.exp_string("Runner name")?;
    p.send_line(name)?;
    p.exp_string("Create the runner token")?;
    p.send("y")?;
    p.flush()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wizard_in_a_terminal_creates_the_token_and_shows_the_exact_snippet() {
    let host = Host::start().await;
    let key = canary("VAULT_KEY");
    host.put_key(&key).await;
    host.connect_github(&canary("GH")).await;
    let admin = host.platform.admin_token.expose().to_owned();
    let (out, status) = in_pty(&host, &[], move |p| {
        answer_to_create(p, &admin, "pty-host")?;
        let shown = p.exp_string("Wrote it to")?;
        p.exp_string("Ready.")?;
        Ok(shown)
    })
    .await;
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "{status:?}\n{out}"
    );
    let text = fs::read_to_string(host.env_path()).unwrap();
    let token = written_token(&text);
    assert_eq!(mode(&host.env_path()), 0o600);
    assert_absent("the wizard's output", out.as_bytes(), &[&key]);
    // On a terminal the snippet is shown as the platform sent it, token included.
    let line = format!("SPEDY_RUNNER_TOKEN={}", token.expose());
    assert!(out.contains(&line), "the exact snippet is shown:\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wizard_waits_for_a_missing_key_and_turns_green_once_it_is_in_the_vault() {
    let host = Host::start().await;
    host.connect_github(&canary("GH")).await;
    let admin = host.platform.admin_token.expose().to_owned();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let run = in_pty(&host, &[], move |p| {
        answer_to_create(p, &admin, "waiting-host")?;
        p.exp_string("will not go online until ANTHROPIC_API_KEY is in the vault")?;
        p.exp_string("/settings/runners/secrets")?;
        p.exp_string("Wait here and re-check")?;
        p.send("y")?;
        p.flush()?;
        p.exp_string("Waiting for the checklist")?;
        tx.send(()).expect("tell the test to write the key");
        done_rx.recv().expect("the key is written");
        p.exp_string("Ready.")
    });
    let writer = async {
        let rx = tokio::task::spawn_blocking(move || rx.recv().is_ok());
        if rx.await.unwrap_or(false) {
            host.put_key(&canary("LATE_KEY")).await;
            done_tx.send(()).expect("tell the wizard");
        }
    };
    let ((out, status), ()) = tokio::join!(run, writer);
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "{status:?}\n{out}"
    );
    written_token(&fs::read_to_string(host.env_path()).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wizard_with_a_refused_admin_token_says_so_and_writes_nothing() {
    let host = Host::start().await;
    fs::write(host.env_path(), "KEEP=1\n").unwrap();
    let unknown = format!("sat_{}", "B".repeat(40));
    let (out, status) = in_pty(&host, &[], move |p| {
        answer_to_create(p, &unknown, "bad-admin")?;
        p.exp_string("refused the admin token")
    })
    .await;
    assert!(
        matches!(status, WaitStatus::Exited(_, 2)),
        "{status:?}\n{out}"
    );
    assert_eq!(fs::read_to_string(host.env_path()).unwrap(), "KEEP=1\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_in_the_middle_of_the_wizard_writes_nothing() {
    let host = Host::start().await;
    fs::write(host.env_path(), "KEEP=1\n").unwrap();
    let (out, status) = in_pty(&host, &[], |p| {
        p.exp_string("AI backend")?;
        p.exp_string("Local Claude")?;
        p.send("\r")?;
        p.flush()?;
        p.exp_string("Pool size")?;
        p.send_control('c')?;
        p.exp_string("nothing was written")
    })
    .await;
    assert!(
        matches!(status, WaitStatus::Exited(_, 130)),
        "{status:?}\n{out}"
    );
    assert_eq!(fs::read_to_string(host.env_path()).unwrap(), "KEEP=1\n");
    let leftovers: Vec<_> = fs::read_dir(host.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [".env"], "no temporary file is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_at_the_hidden_admin_token_prompt_writes_nothing() {
    let host = Host::start().await;
    let (out, status) = in_pty(&host, &["--backend", "local-claude"], |p| {
        p.exp_string("Pool size")?;
        p.send_line("3")?;
        p.exp_string("Admin token")?;
        p.send("sat_partial")?;
        p.flush()?;
        p.send_control('c')?;
        p.exp_string("nothing was written")
    })
    .await;
    assert!(
        matches!(status, WaitStatus::Exited(_, 130)),
        "{status:?}\n{out}"
    );
    assert!(!host.env_path().exists(), "nothing is written");
}
