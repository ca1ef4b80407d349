//! `spedy-runner run`. (Being built; see its issue.)

use std::process::ExitCode;

use crate::logging::LogHandle;
use crate::settings::SettingsArgs;

/// Arguments of `spedy-runner run`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `spedy-runner run`.
pub async fn run(args: Args, global: SettingsArgs, log: LogHandle) -> anyhow::Result<ExitCode> {
    let _ = (args, global, log);
    anyhow::bail!("`spedy-runner run` is not built yet")
}
