//! `spedy-runner demo`, the README's first command: it runs the whole path on
//! this machine (local platform, vault, runner token, supervisor, a job in a
//! locally built image) and shows the job's log with the key redacted. Also:
//! without a Docker engine it says how to fix that and exits 2.

use std::path::Path;
use std::time::Duration;

use spedy_testkit::cmd::RunnerCmd;
use spedy_testkit::docker::{containers_with_label, require_engine};

/// Every demo key starts with this (see `crates/runner/cli/demo.rs`).
const DEMO_KEY_PREFIX: &str = "sk-ant-demo-";

fn demo() -> RunnerCmd {
    let mut cmd = RunnerCmd::new(env!("CARGO_BIN_EXE_spedy-runner"));
    cmd.args(["demo", "--timeout", "60s"])
        .timeout(Duration::from_secs(150));
    cmd
}

/// The word after `marker` in `text`, e.g. the runner id after "runner ".
fn word_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let start = text.find(marker)? + marker.len();
    text[start..].split_whitespace().next()
}

#[tokio::test]
async fn the_demo_runs_a_job_shows_the_key_redacted_and_leaves_nothing_behind() {
    require_engine().await;
    let out = demo().assert_exit_code(0);
    let all = out.combined();

    out.assert_contains("ANTHROPIC_API_KEY=[REDACTED:ANTHROPIC_API_KEY]");
    out.assert_not_contains(DEMO_KEY_PREFIX);
    // The job listed its variables: the key is there, the other project's
    // secret is not (entitlement), and plain job env is not redacted.
    out.assert_contains("│ ANTHROPIC_API_KEY\n");
    out.assert_contains("OTHER_PROJECT_TOKEN is unset");
    out.assert_contains("│ DEMO_GREETING\n");
    out.assert_contains("ended: succeeded");

    let runner = word_after(&all, "✓ runner token created for runner ")
        .unwrap_or_else(|| panic!("the demo names its runner:\n{all}"));
    let left = containers_with_label(runner).await;
    assert!(
        left.is_empty(),
        "containers left behind by the demo: {left:?}"
    );

    let data = word_after(&all, "(temporary data in ")
        .map(|p| p.trim_end_matches(')'))
        .unwrap_or_else(|| panic!("the demo names its data folder:\n{all}"));
    assert!(
        !Path::new(data).exists(),
        "the demo's data folder {data} is still there"
    );
}

#[test]
fn without_a_docker_engine_the_demo_says_how_to_fix_it_and_exits_2() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let socket = dir.path().join("no-docker.sock");
    let out = demo()
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .assert_exit_code(2);
    out.assert_contains("no Docker engine answers");
    out.assert_contains("docker info");
    out.assert_contains("DOCKER_HOST");
    out.assert_not_contains("local platform at");
}
