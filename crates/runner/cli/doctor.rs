//! `spedy-runner doctor`. (Being built; see its issue.)

use std::process::ExitCode;

use crate::settings::SettingsArgs;

/// Arguments of `spedy-runner doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `spedy-runner doctor`.
pub async fn run(args: Args, global: SettingsArgs) -> anyhow::Result<ExitCode> {
    let _ = (args, global);
    anyhow::bail!("`spedy-runner doctor` is not built yet")
}
