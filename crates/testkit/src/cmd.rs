//! `RunnerCmd`: drives the real `spedy-runner` binary from a test, like
//! ripgrep's `TestCommand`.
//!
//! A `RunnerCmd` is a plain description (program, arguments, environment,
//! folder, stdin, timeout) that can be run many times, turned into a
//! [`std::process::Command`] for a pseudo-terminal (rexpect), or printed.
//!
//! It is hermetic by default: the variables a runner reads from its own
//! environment (`SPEDY_*`, the legacy secret names, `DOCKER_HOST`, the Claude
//! login's `CLAUDE_CONFIG_DIR`) are removed from what the child inherits, and
//! colours are turned off (`NO_COLOR=1`), so a developer's shell never changes
//! a test's outcome. A test sets what it needs with [`RunnerCmd::env`].
//!
//! The binary's path is a parameter: `CARGO_BIN_EXE_spedy-runner` exists only
//! for the tests of the root package, so tests elsewhere use
//! [`RunnerCmd::locate`], which looks next to the test executable.
//!
//! Invariant: stdin is always a pipe (empty unless [`RunnerCmd::stdin`] is
//! set), never the terminal the tests run in, so "no TTY" is deterministic.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Variables removed from the inherited environment of every `RunnerCmd`.
pub const HERMETIC_REMOVE: &[&str] = &[
    "SPEDY_API_URL",
    "SPEDY_RUNNER_TOKEN",
    "SPEDY_RUNNER_TOKEN_FILE",
    "SPEDY_ADMIN_TOKEN",
    "SPEDY_ENV_FILE",
    "SPEDY_CONFIG",
    "SPEDY_POOL_SIZE",
    "SPEDY_REFRESH_INTERVAL",
    "SPEDY_HEALTH_ADDR",
    "SPEDY_LOG",
    "SPEDY_LOG_FORMAT",
    "SPEDY_SHUTDOWN_GRACE",
    "SPEDY_INJECTION",
    "SPEDY_JOB_MEMORY",
    "SPEDY_JOB_CPUS",
    "SPEDY_JOB_PIDS",
    "SPEDY_CA_FILE",
    "RUST_LOG",
    "ANTHROPIC_API_KEY",
    "GITHUB_TOKEN",
    "BITBUCKET_TOKEN",
    "DOCKER_HOST",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "XDG_CONFIG_HOME",
];

/// How long a run may take before it is killed (a hung test fails instead
/// of hanging the suite).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);

/// A command line for the real `spedy-runner` binary.
#[derive(Clone)]
pub struct RunnerCmd {
    program: PathBuf,
    args: Vec<OsString>,
    /// `None` removes the variable.
    envs: Vec<(OsString, Option<OsString>)>,
    dir: Option<PathBuf>,
    stdin: Vec<u8>,
    timeout: Duration,
}

impl RunnerCmd {
    /// A command for the binary at `program`, hermetic as the module says.
    ///
    /// In the root package's tests: `RunnerCmd::new(env!("CARGO_BIN_EXE_spedy-runner"))`.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        let mut envs: Vec<(OsString, Option<OsString>)> = HERMETIC_REMOVE
            .iter()
            .map(|k| (OsString::from(k), None))
            .collect();
        envs.push(("NO_COLOR".into(), Some("1".into())));
        Self {
            program: program.into(),
            args: Vec::new(),
            envs,
            dir: None,
            stdin: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A command for `spedy-runner` found next to the running test executable
    /// (`target/<profile>/spedy-runner`), for tests outside the root package.
    ///
    /// Panics with a hint when the binary has not been built.
    pub fn locate() -> Self {
        Self::new(assert_cmd::cargo::cargo_bin("spedy-runner"))
    }

    /// Adds one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets a variable in the child's environment.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.envs
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes a variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.envs.push((key.as_ref().to_owned(), None));
        self
    }

    /// Runs the child in `dir` (the default `.env` is `dir/.env`).
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Bytes written to the child's stdin (a pipe, never a terminal).
    pub fn stdin(&mut self, bytes: impl Into<Vec<u8>>) -> &mut Self {
        self.stdin = bytes.into();
        self
    }

    /// Kills the child when it runs longer than `timeout`.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// The same command as a `std::process::Command` (for a pseudo-terminal).
    /// Stdin, stdout and stderr are left for the caller to set.
    pub fn to_command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        cmd
    }

    /// Runs the command to its end and captures its output.
    ///
    /// Panics when the binary cannot be started.
    pub fn output(&self) -> RunOutput {
        let mut cmd = assert_cmd::Command::from_std(self.to_command());
        cmd.write_stdin(self.stdin.clone()).timeout(self.timeout);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot start {self}: {e}"));
        RunOutput {
            command: self.to_string(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs the command and panics, showing the command line, stdout and
    /// stderr, unless it exits with `code`.
    #[track_caller]
    pub fn assert_exit_code(&self, code: i32) -> RunOutput {
        let out = self.output();
        if out.code != Some(code) {
            panic!("expected exit code {code}\n{out}");
        }
        out
    }
}

impl fmt::Display for RunnerCmd {
    /// The command line with the variables it sets (values included: tests
    /// plant canaries, never real secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.envs {
            if let Some(v) = v {
                write!(f, "{}={} ", k.to_string_lossy(), v.to_string_lossy())?;
            }
        }
        write!(f, "{}", self.program.display())?;
        for a in &self.args {
            write!(f, " {}", a.to_string_lossy())?;
        }
        Ok(())
    }
}

impl fmt::Debug for RunnerCmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunnerCmd({self})")
    }
}

/// What a finished run printed, and how it ended.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The command line, for messages.
    pub command: String,
    /// The exit code; `None` when a signal ended it (or the timeout killed it).
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl RunOutput {
    /// Stdout then stderr, for searches that do not care where a line went.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Panics, showing the whole output, unless stdout or stderr contains `needle`.
    #[track_caller]
    pub fn assert_contains(&self, needle: &str) -> &Self {
        if !self.combined().contains(needle) {
            panic!("expected the output to contain {needle:?}\n{self}");
        }
        self
    }

    /// Panics, showing the whole output, when stdout or stderr contains `needle`.
    #[track_caller]
    pub fn assert_not_contains(&self, needle: &str) -> &Self {
        if self.combined().contains(needle) {
            panic!("expected the output not to contain {needle:?}\n{self}");
        }
        self
    }
}

impl fmt::Display for RunOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.command)?;
        match self.code {
            Some(c) => writeln!(f, "exit code: {c}")?,
            None => writeln!(f, "exit code: none (killed by a signal or the timeout)")?,
        }
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runner_cmd_runs_any_program_hermetically_and_reports_its_output() {
        // `sh` stands in for the runner: the mechanics are the same.
        let mut cmd = RunnerCmd::new("/bin/sh");
        cmd.args([
            "-c",
            "echo out:$X:${SPEDY_API_URL-unset}; cat; echo err >&2; exit 3",
        ])
        .env("X", "1")
        .stdin("piped");
        let out = cmd.assert_exit_code(3);
        assert_eq!(out.stdout, "out:1:unset\npiped");
        assert_eq!(out.stderr, "err\n");
        out.assert_contains("err").assert_not_contains("CANARY");
    }

    #[test]
    fn a_wrong_exit_code_panics_with_the_output() {
        let mut cmd = RunnerCmd::new("/bin/sh");
        cmd.args(["-c", "echo visible; exit 0"]);
        let err = std::panic::catch_unwind(|| {
            cmd.assert_exit_code(2);
        })
        .expect_err("exit 0 is not 2");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("expected exit code 2"), "{msg}");
        assert!(msg.contains("visible"), "{msg}");
    }

    #[test]
    fn a_hung_child_is_killed_at_the_timeout() {
        let mut cmd = RunnerCmd::new("/bin/sh");
        cmd.args(["-c", "exec sleep 30"])
            .timeout(Duration::from_millis(200));
        let out = cmd.output();
        assert_eq!(out.code, None);
    }
}
