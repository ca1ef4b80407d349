//! `spedy-runner setup`. (Being built; see its issue.)

use std::process::ExitCode;

use crate::settings::SettingsArgs;

/// Arguments of `spedy-runner setup`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `spedy-runner setup`.
pub async fn run(args: Args, global: SettingsArgs) -> anyhow::Result<ExitCode> {
    let _ = (args, global);
    anyhow::bail!("`spedy-runner setup` is not built yet")
}
