//! The request handlers, one module per area of the contract, and what they
//! share: deep links and the readiness checklist.

pub mod integrations;
pub mod jobs;
pub mod runners;
pub mod secrets;

use rusqlite::Connection;
use spedy_api::{
    ANTHROPIC_API_KEY, Backend, CHECK_ANTHROPIC_KEY, CHECK_GIT_INTEGRATIONS, CheckStatus,
    GitProvider, Readiness, ReadinessCheck,
};

use crate::Platform;
use crate::error::Result;

/// The Secrets tab.
pub fn secrets_link(platform: &Platform) -> String {
    format!("{}/settings/runners/secrets", platform.public_url())
}

/// The Integrations page.
pub fn integrations_link(platform: &Platform) -> String {
    format!("{}/settings/integrations", platform.public_url())
}

/// Whether the vault holds `ANTHROPIC_API_KEY` (in any scope).
pub fn has_anthropic_key(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM secrets WHERE env = ?1)",
        [ANTHROPIC_API_KEY],
        |r| r.get(0),
    )?)
}

/// The connected git providers, in order.
pub fn connected_providers(conn: &Connection) -> Result<Vec<GitProvider>> {
    let mut stmt = conn.prepare("SELECT provider FROM integrations ORDER BY provider")?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names
        .iter()
        .filter_map(|n| match n.as_str() {
            "github" => Some(GitProvider::Github),
            "bitbucket" => Some(GitProvider::Bitbucket),
            _ => None,
        })
        .collect())
}

/// Links are computed outside the blocking closure (they need the platform).
pub struct Links {
    /// The Secrets tab.
    pub secrets: String,
    /// The Integrations page.
    pub integrations: String,
}

impl Links {
    /// The links for this platform's public URL.
    pub fn of(platform: &Platform) -> Links {
        Links {
            secrets: secrets_link(platform),
            integrations: integrations_link(platform),
        }
    }
}

/// The readiness checklist for a runner with `backend`.
pub fn readiness(conn: &Connection, backend: Backend, links: &Links) -> Result<Readiness> {
    let anthropic = match backend {
        Backend::LocalClaude => CheckStatus::NotNeeded,
        Backend::AnthropicApi if has_anthropic_key(conn)? => CheckStatus::Ok,
        Backend::AnthropicApi => CheckStatus::Warn,
    };
    let providers = connected_providers(conn)?;
    let git = if providers.is_empty() {
        CheckStatus::Warn
    } else {
        CheckStatus::Ok
    };
    let checks = vec![
        ReadinessCheck {
            id: CHECK_ANTHROPIC_KEY.to_owned(),
            label: "ANTHROPIC_API_KEY in the vault".to_owned(),
            status: anthropic,
            link: Some(links.secrets.clone()),
            providers: None,
        },
        ReadinessCheck {
            id: CHECK_GIT_INTEGRATIONS.to_owned(),
            label: "GitHub / Bitbucket from Integrations".to_owned(),
            status: git,
            link: Some(links.integrations.clone()),
            providers: Some(providers),
        },
    ];
    Ok(Readiness {
        ready: checks.iter().all(|c| c.status != CheckStatus::Warn),
        checks,
    })
}
