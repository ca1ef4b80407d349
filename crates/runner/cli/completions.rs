//! `spedy-runner completions <shell>`: shell completions (clap_complete) and
//! the man page (clap_mangen), both generated from the clap definition.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// Arguments of `spedy-runner completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to print completions for, or `man` for the man page.
    ///
    /// Examples:
    ///   spedy-runner completions bash > /etc/bash_completion.d/spedy-runner
    ///   spedy-runner completions man > /usr/local/share/man/man1/spedy-runner.1
    #[arg(value_parser = parse_target)]
    pub target: Target,
}

/// What to print.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// Completions for a shell.
    Shell(Shell),
    /// The man page (roff).
    Man,
}

fn parse_target(s: &str) -> Result<Target, String> {
    if s == "man" {
        return Ok(Target::Man);
    }
    s.parse::<Shell>()
        .map(Target::Shell)
        .map_err(|_| format!("expected bash, elvish, fish, powershell, zsh or man, not {s:?}"))
}

/// Prints the completions or the man page to stdout.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    // Render into memory first: clap_complete panics on a write error, and a
    // closed pipe (`spedy-runner completions fish | head`) is not a bug.
    let mut out = Vec::new();
    match args.target {
        Target::Shell(shell) => {
            clap_complete::generate(shell, &mut cmd, "spedy-runner", &mut out);
        }
        Target::Man => clap_mangen::Man::new(cmd).render(&mut out)?,
    }
    match io::stdout().lock().write_all(&out) {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    Ok(crate::exit::OK)
}
