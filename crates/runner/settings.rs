//! The runner's settings: what the user typed or set (`SettingsArgs`, clap),
//! then checked and typed values with where each came from (`Settings`).
//! (Being built; see the supervisor issue.)

/// Settings every command shares; each flag has an environment twin.
#[derive(Debug, Clone, clap::Args)]
pub struct SettingsArgs {
    /// The platform's URL (https, or http on a loopback address).
    #[arg(long, env = "SPEDY_API_URL", global = true)]
    pub api_url: Option<String>,
}
