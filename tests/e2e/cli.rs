//! The command line as a user meets it: `--help` of every subcommand, the
//! exit code of a usage error, `completions` for each shell and the man page,
//! and `install.sh` run into a temporary prefix (with the binary this build
//! made, through `SPEDY_INSTALL_BINARY`, so nothing is rebuilt).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::cargo_bin_cmd;
use predicates::prelude::*;

/// Every subcommand a user can type.
const SUBCOMMANDS: &[&str] = &["setup", "run", "doctor", "demo", "completions"];

#[test]
fn the_top_level_help_names_every_subcommand_and_the_exit_codes() {
    let out = cargo_bin_cmd!("spedy-runner")
        .arg("--help")
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for sub in SUBCOMMANDS {
        assert!(
            text.contains(sub),
            "`--help` does not name `{sub}`:\n{text}"
        );
    }
    assert!(
        text.contains("Exit codes"),
        "`--help` does not document the exit codes:\n{text}"
    );
}

#[test]
fn every_subcommand_has_its_own_help() {
    for sub in SUBCOMMANDS {
        cargo_bin_cmd!("spedy-runner")
            .args([sub, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "Usage: spedy-runner {sub}"
            )));
    }
}

#[test]
fn an_unknown_subcommand_is_a_usage_error_with_exit_code_2() {
    cargo_bin_cmd!("spedy-runner")
        .arg("frobnicate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unrecognized subcommand 'frobnicate'",
        ));
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F _spedy__runner"),
        ("zsh", "#compdef spedy-runner"),
        ("fish", "complete -c spedy-runner"),
    ] {
        cargo_bin_cmd!("spedy-runner")
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains(marker));
    }
}

#[test]
fn the_man_page_is_roff_that_names_the_subcommands() {
    let out = cargo_bin_cmd!("spedy-runner")
        .args(["completions", "man"])
        .assert()
        .success();
    let page = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        page.starts_with(".ie") || page.contains(".TH spedy-runner"),
        "not a man page:\n{page}"
    );
    for sub in SUBCOMMANDS {
        assert!(page.contains(sub), "the man page does not name `{sub}`");
    }
}

#[test]
fn an_unknown_completion_target_is_a_usage_error() {
    cargo_bin_cmd!("spedy-runner")
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected bash"));
}

// ---- install.sh ----------------------------------------------------------

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs install.sh with `args`, the given extra environment, and this build's
/// binary as `SPEDY_INSTALL_BINARY` unless the caller sets the variable itself.
fn install_sh(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg(workspace().join("install.sh")).args(args);
    cmd.env("SPEDY_INSTALL_BINARY", env!("CARGO_BIN_EXE_spedy-runner"));
    cmd.env_remove("SPEDY_RELEASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("sh runs install.sh")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .expect("the file exists")
        .permissions()
        .mode()
        & 0o777
}

struct Layout {
    tmp: tempfile::TempDir,
    prefix: PathBuf,
    dir: PathBuf,
}

impl Layout {
    fn new() -> Layout {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let prefix = tmp.path().join("prefix");
        let dir = tmp.path().join("runner");
        Layout { tmp, prefix, dir }
    }

    fn args(&self) -> [String; 4] {
        [
            "--prefix".into(),
            self.prefix.display().to_string(),
            "--dir".into(),
            self.dir.display().to_string(),
        ]
    }

    fn run(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let args = self.args();
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        install_sh(&all, env)
    }

    fn binary(&self) -> PathBuf {
        self.prefix.join("bin/spedy-runner")
    }
}

#[test]
fn install_sh_installs_the_binary_and_lays_out_the_runner_folder() {
    let l = Layout::new();
    let out = l.run(&[], &[("SPEDY_DOCKER_GID", "4242")]);
    assert!(out.status.success(), "{}", text(&out));

    assert_eq!(
        fs::read(l.binary()).expect("the binary is installed"),
        fs::read(env!("CARGO_BIN_EXE_spedy-runner")).expect("the built binary"),
    );
    assert_eq!(mode(&l.binary()), 0o755);
    let man = l.prefix.join("share/man/man1/spedy-runner.1");
    assert!(fs::metadata(&man).expect("the man page is installed").len() > 0);
    assert!(
        l.prefix
            .join("share/bash-completion/completions/spedy-runner")
            .is_file()
    );

    let env_file = l.dir.join(".env");
    assert_eq!(fs::read(&env_file).expect(".env exists"), b"");
    assert_eq!(mode(&env_file), 0o600, ".env must be private");
    let compose = fs::read_to_string(l.dir.join("compose.yml")).expect("compose.yml exists");
    assert!(compose.contains("spedy-supervisor:"));
    assert!(
        compose.contains("${SPEDY_DOCKER_GID:-4242}"),
        "the socket's group is filled in"
    );

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("spedy-runner setup"),
        "the next step is printed:\n{stdout}"
    );

    // The installed binary runs.
    Command::new(l.binary())
        .arg("--version")
        .output()
        .map(|o| assert!(o.status.success()))
        .expect("the installed binary starts");
}

#[test]
fn install_sh_run_twice_changes_nothing_and_keeps_the_env_file() {
    let l = Layout::new();
    let first = l.run(&[], &[("SPEDY_DOCKER_GID", "0")]);
    assert!(first.status.success(), "{}", text(&first));

    // The admin has filled in .env (and loosened its mode by mistake).
    let env_file = l.dir.join(".env");
    fs::write(&env_file, "SPEDY_API_URL=https://api.spedy.ai\n").expect("write .env");
    fs::set_permissions(&env_file, fs::Permissions::from_mode(0o644)).expect("chmod");
    let compose_before = fs::read(l.dir.join("compose.yml")).expect("compose.yml");

    let second = l.run(&[], &[("SPEDY_DOCKER_GID", "0")]);
    assert!(second.status.success(), "{}", text(&second));
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        stdout.contains(&format!("up to date: {}", l.binary().display())),
        "{stdout}"
    );
    assert!(
        !stdout.contains("installed:"),
        "nothing is rewritten the second time:\n{stdout}"
    );
    assert_eq!(
        fs::read_to_string(&env_file).expect(".env"),
        "SPEDY_API_URL=https://api.spedy.ai\n",
        "the admin's .env is kept"
    );
    assert_eq!(mode(&env_file), 0o600, "the mode is put back to 0600");
    assert_eq!(
        fs::read(l.dir.join("compose.yml")).expect("compose.yml"),
        compose_before
    );
}

#[test]
fn install_sh_keeps_an_edited_compose_file_and_writes_the_new_one_beside_it() {
    let l = Layout::new();
    assert!(l.run(&[], &[("SPEDY_DOCKER_GID", "0")]).status.success());
    let compose = l.dir.join("compose.yml");
    fs::write(&compose, "# mine\n").expect("edit compose.yml");

    let out = l.run(&[], &[("SPEDY_DOCKER_GID", "0")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read_to_string(&compose).expect("compose.yml"),
        "# mine\n"
    );
    assert!(l.dir.join("compose.yml.new").is_file());
    assert!(String::from_utf8_lossy(&out.stderr).contains("compose.yml.new"));
}

#[test]
fn install_sh_uninstall_removes_the_installed_files_and_keeps_the_runner_folder() {
    let l = Layout::new();
    assert!(l.run(&[], &[("SPEDY_DOCKER_GID", "0")]).status.success());

    let out = l.run(&["--uninstall"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!l.binary().exists(), "the binary is removed");
    assert!(!l.prefix.join("share/man/man1/spedy-runner.1").exists());
    assert!(
        l.dir.join(".env").is_file(),
        "the runner folder (and its token) stays"
    );

    let again = l.run(&["--uninstall"], &[]);
    assert!(
        again.status.success(),
        "uninstalling twice is fine: {}",
        text(&again)
    );
}

#[test]
fn install_sh_help_lists_its_options_and_a_bad_option_is_a_usage_error() {
    let out = install_sh(&["--help"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--prefix",
        "--dir",
        "--uninstall",
        "--help",
        "SPEDY_INSTALL_BINARY",
        "SPEDY_RELEASE_URL",
    ] {
        assert!(help.contains(opt), "--help does not mention {opt}:\n{help}");
    }
    let bad = install_sh(&["--frobnicate"], &[]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    let missing = install_sh(&["--prefix"], &[]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--prefix needs a folder"));
}

/// A release folder as install.sh expects it: the archive and its checksum.
fn release_dir(tmp: &Path, checksum_of: Option<&str>) -> PathBuf {
    let rel = tmp.join("release");
    let staging = tmp.join("staging/spedy-runner-x86_64-unknown-linux-gnu");
    fs::create_dir_all(&staging).expect("mkdir");
    fs::create_dir_all(&rel).expect("mkdir");
    fs::copy(
        env!("CARGO_BIN_EXE_spedy-runner"),
        staging.join("spedy-runner"),
    )
    .expect("copy");
    fs::copy(
        workspace().join("docker/compose.yml"),
        staging.join("compose.yml"),
    )
    .expect("copy");
    let archive = rel.join("spedy-runner-x86_64-unknown-linux-gnu.tar.gz");
    let tar = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(tmp.join("staging"))
        .arg("spedy-runner-x86_64-unknown-linux-gnu")
        .status()
        .expect("tar runs");
    assert!(tar.success());
    let sum = match checksum_of {
        Some(fixed) => fixed.to_owned(),
        None => {
            let out = Command::new("sha256sum")
                .arg(&archive)
                .output()
                .expect("sha256sum runs");
            String::from_utf8_lossy(&out.stdout)
                .split(' ')
                .next()
                .expect("a hash")
                .to_owned()
        }
    };
    fs::write(
        rel.join("spedy-runner-x86_64-unknown-linux-gnu.tar.gz.sha256"),
        format!("{sum}  spedy-runner-x86_64-unknown-linux-gnu.tar.gz\n"),
    )
    .expect("write the checksum");
    rel
}

#[test]
fn install_sh_installs_from_a_release_archive_whose_checksum_matches() {
    let l = Layout::new();
    let rel = release_dir(l.tmp.path(), None);
    let url = format!("file://{}", rel.display());
    let out = l.run(
        &[],
        &[("SPEDY_INSTALL_BINARY", ""), ("SPEDY_RELEASE_URL", &url)],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("checksum verified"));
    assert!(l.binary().is_file());
    assert!(
        l.dir.join("compose.yml").is_file(),
        "compose.yml comes from the archive"
    );
}

#[test]
fn install_sh_refuses_a_release_archive_whose_checksum_differs_and_installs_nothing() {
    let l = Layout::new();
    let wrong = "0".repeat(64);
    let rel = release_dir(l.tmp.path(), Some(&wrong));
    let url = format!("file://{}", rel.display());
    let out = l.run(
        &[],
        &[("SPEDY_INSTALL_BINARY", ""), ("SPEDY_RELEASE_URL", &url)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("checksum mismatch"),
        "{}",
        text(&out)
    );
    assert!(!l.binary().exists(), "nothing is installed");
    assert!(!l.dir.exists(), "no runner folder is laid out");
}

#[test]
fn install_sh_refuses_a_plain_http_release_url() {
    let l = Layout::new();
    let out = l.run(
        &[],
        &[
            ("SPEDY_INSTALL_BINARY", ""),
            ("SPEDY_RELEASE_URL", "http://example.invalid/r"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only https:// and file://"));
}
