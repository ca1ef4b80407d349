//! `spedy-runner doctor` end to end against healthy and broken hosts: no
//! platform, a revoked token, no Docker, legacy variables, a readable `.env`,
//! the local_claude backend; in text (insta snapshots, with ports, latencies,
//! paths and versions filtered) and in JSON. Every test plants canaries in
//! the vault and the `.env` and checks they never show.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use spedy_api::Backend;
use spedy_testkit::canary::{assert_absent, canary};
use spedy_testkit::cmd::RunOutput;

use crate::setup::fixture::Host;

/// Filters that make the text report stable: ports, latencies, temporary
/// paths, Docker versions, and the table padding that their lengths change.
fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
        (r"\d+ ms", "[N] ms"),
        (r"/tmp/\.tmp[A-Za-z0-9]+", "[HOST]"),
        (
            r"Docker \S+ \(API [\d.]+, using [\d.]+\) at \S+",
            "Docker [VERSION] (API [API], using [API]) at [ENGINE]",
        ),
        (r"[─═]+", "─"),
        (r" +([│┆])", " $1"),
    ]
}

fn snapshot(name: &str, out: &RunOutput) {
    insta::with_settings!({ filters => filters(), prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(name, out.stdout);
    });
}

/// A `.env` for `host` with `token` and a planted local canary line.
fn write_env(host: &Host, token: &str, extra: &str) {
    let text = format!(
        "SPEDY_API_URL={}\nSPEDY_RUNNER_TOKEN={token}\n{extra}",
        host.url()
    );
    fs::write(host.env_path(), text).unwrap();
    fs::set_permissions(host.env_path(), fs::Permissions::from_mode(0o600)).unwrap();
}

fn json(out: &RunOutput) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn status_of<'a>(report: &'a Value, id: &str) -> &'a str {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == id))
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

/// A host that is ready: key in the vault, GitHub connected, token in a
/// 0600 `.env` with a local canary line. Returns the canaries.
async fn healthy_host() -> (Host, Vec<String>) {
    let host = Host::start().await;
    let key = canary("VAULT_KEY");
    let local = canary("LOCAL");
    host.put_key(&key).await;
    host.connect_github(&canary("GH")).await;
    let runner = host.create_runner(Backend::AnthropicApi).await;
    write_env(&host, runner.token.expose(), &format!("MY_FLAG={local}\n"));
    let token = runner.token.expose().to_owned();
    (host, vec![key, local, token])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_on_a_healthy_host_is_ready_and_exits_0_in_text_and_json() {
    let (host, canaries) = healthy_host().await;
    let canaries: Vec<&str> = canaries.iter().map(String::as_str).collect();
    let out = host
        .cmd()
        .args(["doctor", "--no-audit"])
        .assert_exit_code(0);
    assert_absent("doctor's output", out.combined().as_bytes(), &canaries);
    out.assert_contains("Ready: this host can run jobs.");
    snapshot("doctor_healthy", &out);

    let out = host
        .cmd()
        .args(["doctor", "--json", "--no-audit"])
        .assert_exit_code(0);
    let report = json(&out);
    assert_eq!(report["ready"], true);
    assert_eq!(report["status"], "ok");
    for id in [
        "settings",
        "token_format",
        "env_file_mode",
        "platform",
        "token",
        "anthropic_key",
        "git_integrations",
        "docker",
        "migration",
    ] {
        assert_eq!(status_of(&report, id), "ok", "{id}: {report:#}");
    }
    assert_absent("doctor's JSON", out.combined().as_bytes(), &canaries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_runs_the_secret_hand_off_self_audit_in_a_throwaway_container() {
    let (host, canaries) = healthy_host().await;
    let canaries: Vec<&str> = canaries.iter().map(String::as_str).collect();
    let out = host
        .cmd()
        .args(["doctor", "--json"])
        .timeout(std::time::Duration::from_secs(240))
        .output();
    let report = json(&out);
    assert_eq!(status_of(&report, "docker_audit"), "ok", "{report:#}");
    assert_eq!(out.code, Some(0), "{out}");
    assert_absent("doctor's JSON", out.combined().as_bytes(), &canaries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_without_a_platform_fails_with_exit_2_and_says_how_to_check() {
    let host = Host::start().await;
    let runner = host.create_runner(Backend::AnthropicApi).await;
    let url = host.url();
    // A port that nothing listens on: bind one, then free it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    fs::write(
        host.env_path(),
        format!(
            "SPEDY_API_URL=http://{closed}\nSPEDY_RUNNER_TOKEN={}\n",
            runner.token.expose()
        ),
    )
    .unwrap();
    fs::set_permissions(host.env_path(), fs::Permissions::from_mode(0o600)).unwrap();
    let out = host
        .cmd()
        .args(["doctor", "--no-audit"])
        .assert_exit_code(2);
    out.assert_contains("✗")
        .assert_contains(&format!("curl http://{closed}/healthz"))
        .assert_not_contains(&url);
    snapshot("doctor_no_platform", &out);
    let report = json(
        &host
            .cmd()
            .args(["doctor", "--json", "--no-audit"])
            .assert_exit_code(2),
    );
    assert_eq!(status_of(&report, "platform"), "fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_with_a_revoked_token_fails_and_points_at_setup() {
    let host = Host::start().await;
    host.put_key(&canary("VAULT_KEY")).await;
    let runner = host.create_runner(Backend::AnthropicApi).await;
    host.admin
        .delete_runner(&runner.runner_id)
        .await
        .expect("revoke");
    write_env(&host, runner.token.expose(), "");
    let out = host
        .cmd()
        .args(["doctor", "--no-audit"])
        .assert_exit_code(2);
    out.assert_contains("refused the runner token")
        .assert_contains("spedy-runner setup");
    snapshot("doctor_revoked_token", &out);
    let report = json(
        &host
            .cmd()
            .args(["doctor", "--json", "--no-audit"])
            .assert_exit_code(2),
    );
    assert_eq!(status_of(&report, "token"), "fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_without_docker_fails_naming_the_socket() {
    let host = Host::start().await;
    host.put_key(&canary("VAULT_KEY")).await;
    host.connect_github(&canary("GH")).await;
    let runner = host.create_runner(Backend::AnthropicApi).await;
    write_env(&host, runner.token.expose(), "");
    let out = host
        .cmd()
        .arg("doctor")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .assert_exit_code(2);
    out.assert_contains("/nonexistent/docker.sock")
        .assert_contains("docker info");
    snapshot("doctor_no_docker", &out);
    let report = json(
        &host
            .cmd()
            .args(["doctor", "--json"])
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .assert_exit_code(2),
    );
    assert_eq!(status_of(&report, "docker"), "fail");
    assert_eq!(status_of(&report, "token"), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_lists_legacy_variables_by_name_with_the_migration_steps_and_never_their_values() {
    let host = Host::start().await;
    host.connect_github(&canary("GH")).await;
    let runner = host.create_runner(Backend::AnthropicApi).await;
    let local_key = canary("LOCAL_KEY");
    let local_gh = canary("LOCAL_GH");
    write_env(
        &host,
        runner.token.expose(),
        &format!("ANTHROPIC_API_KEY={local_key}\nGITHUB_TOKEN={local_gh}\n"),
    );
    let env_bb = canary("ENV_BB");
    let out = host
        .cmd()
        .args(["doctor", "--no-audit"])
        .env("BITBUCKET_TOKEN", &env_bb)
        .assert_exit_code(1);
    assert_absent(
        "doctor's output",
        out.combined().as_bytes(),
        &[&local_key, &local_gh, &env_bb],
    );
    out.assert_contains("ANTHROPIC_API_KEY set in")
        .assert_contains("not on the platform yet")
        .assert_contains("GITHUB_TOKEN set in")
        .assert_contains("the platform already delivers it")
        .assert_contains("BITBUCKET_TOKEN set in the process environment")
        .assert_contains("docker compose pull")
        .assert_contains("docker compose up -d --force-recreate spedy-supervisor")
        .assert_contains("local values win");
    snapshot("doctor_legacy_variables", &out);
    let report = json(
        &host
            .cmd()
            .args(["doctor", "--json", "--no-audit"])
            .assert_exit_code(1),
    );
    assert_eq!(status_of(&report, "migration"), "warn");
    assert_eq!(status_of(&report, "anthropic_key"), "warn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_warns_when_others_can_read_the_env_file() {
    let host = Host::start().await;
    host.put_key(&canary("VAULT_KEY")).await;
    host.connect_github(&canary("GH")).await;
    let runner = host.create_runner(Backend::AnthropicApi).await;
    write_env(&host, runner.token.expose(), "");
    fs::set_permissions(host.env_path(), fs::Permissions::from_mode(0o644)).unwrap();
    let out = host
        .cmd()
        .args(["doctor", "--no-audit"])
        .assert_exit_code(1);
    out.assert_contains("mode 0644")
        .assert_contains("chmod 600");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_claude_login_when_the_backend_is_local_claude() {
    let host = Host::start().await;
    host.connect_github(&canary("GH")).await;
    let runner = host.create_runner(Backend::LocalClaude).await;
    write_env(&host, runner.token.expose(), "");
    let out = host
        .cmd()
        .args(["doctor", "--no-audit"])
        .assert_exit_code(1);
    out.assert_contains("not needed")
        .assert_contains("Claude login")
        .assert_contains("claude setup-token");

    let claude = host.dir.path().join(".claude");
    fs::create_dir(&claude).unwrap();
    let secret = canary("CLAUDE");
    fs::write(
        claude.join(".credentials.json"),
        format!(r#"{{"claudeAiOauth":{{"accessToken":"{secret}"}}}}"#),
    )
    .unwrap();
    let out = host
        .cmd()
        .args(["doctor", "--no-audit"])
        .assert_exit_code(0);
    out.assert_contains(".claude/.credentials.json");
    assert_absent("doctor's output", out.combined().as_bytes(), &[&secret]);
}

#[test]
fn doctor_with_a_malformed_env_line_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let secret = canary("LOCAL");
    fs::write(
        dir.path().join(".env"),
        format!("GOOD={secret}\nthis is not an assignment\n"),
    )
    .unwrap();
    let mut cmd = spedy_testkit::cmd::RunnerCmd::new(env!("CARGO_BIN_EXE_spedy-runner"));
    cmd.current_dir(dir.path())
        .env("HOME", dir.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["doctor", "--no-audit"]);
    let out = cmd.assert_exit_code(2);
    out.assert_contains(".env").assert_contains("line 2");
    assert_absent("doctor's output", out.combined().as_bytes(), &[&secret]);
}

#[test]
fn doctor_without_any_settings_fails_and_says_to_run_setup() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = spedy_testkit::cmd::RunnerCmd::new(env!("CARGO_BIN_EXE_spedy-runner"));
    cmd.current_dir(dir.path())
        .env("HOME", dir.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["doctor", "--no-audit"]);
    let out = cmd.assert_exit_code(2);
    out.assert_contains("no runner token")
        .assert_contains("spedy-runner setup");
}
