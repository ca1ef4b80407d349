//! The command line: what the user typed (clap derive), and the dispatch to one
//! module per subcommand. Parsing does no I/O; each subcommand turns its
//! arguments into checked settings itself.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit;
use crate::logging::LogHandle;
use crate::settings::SettingsArgs;

pub mod completions;
pub mod demo;
pub mod doctor;
pub mod healthcheck;
pub mod run;
pub mod setup;

/// Runs Spedy's AI coding agents on this host.
///
/// A runner host keeps two settings, SPEDY_API_URL and SPEDY_RUNNER_TOKEN.
/// Everything else (the Anthropic key, git tokens, MCP credentials) comes from
/// the platform at start-up, lives in memory only, and reaches only the
/// containers of the jobs that are entitled to it.
///
/// Start with `spedy-runner setup`, check with `spedy-runner doctor`, and run
/// with `spedy-runner run`. `spedy-runner demo` shows the whole path on this
/// machine, with no account.
#[derive(Debug, Parser)]
#[command(name = "spedy-runner", version, after_long_help = exit::HELP)]
pub struct Cli {
    /// Settings shared by every command.
    #[command(flatten)]
    pub global: SettingsArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create this host's runner token: a three-step wizard.
    Setup(setup::Args),
    /// Run the supervisor: bootstrap, claim jobs, run each in its own container.
    Run(run::Args),
    /// Check whether this host is ready to run jobs.
    Doctor(doctor::Args),
    /// Run the whole path on this machine against an in-process local platform.
    Demo(demo::Args),
    /// Print shell completions or the man page.
    Completions(completions::Args),
    /// Check the local supervisor's /healthz (the container image's HEALTHCHECK).
    ///
    /// Hidden: a `FROM scratch` image has no shell or curl, so the binary
    /// checks itself.
    #[command(hide = true)]
    Healthcheck(healthcheck::Args),
}

/// Runs the chosen command.
pub async fn run(cli: Cli, log: LogHandle) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Setup(args) => setup::run(args, cli.global).await,
        Command::Run(args) => run::run(args, cli.global, log).await,
        Command::Doctor(args) => doctor::run(args, cli.global).await,
        Command::Demo(args) => demo::run(args, cli.global, log).await,
        Command::Completions(args) => completions::run(args),
        Command::Healthcheck(args) => healthcheck::run(args, cli.global).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
