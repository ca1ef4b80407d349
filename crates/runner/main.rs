//! `spedy-runner`: parse the command line, install logging, run the command,
//! and turn its result into an exit code. Everything else lives in `cli/`.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod exit;
mod harden;
mod logging;
mod settings;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // The commands that hold a bundle become non-dumpable before reading any.
    if matches!(cli.command, cli::Command::Run(_) | cli::Command::Demo(_))
        && let Err(err) = harden::harden()
    {
        eprintln!("error: cannot make the process non-dumpable: {err}");
        return exit::failure();
    }
    let service = matches!(cli.command, cli::Command::Run(_));
    let redactor = logging::install(&cli.global, service);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return exit::failure();
        }
    };
    match runtime.block_on(cli::run(cli, redactor)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            exit::failure()
        }
    }
}
