//! `spedy-runner doctor`: is this host ready to run jobs, and if not, why.
//!
//! Owns the report: each check is data ([`Check`]: an id, a label, a status,
//! a detail and a fix hint), gathered by `checks` and shown as a table with
//! ✓ ⚠ ✗ or as JSON (`--json`). The exit code is 0 when ready, 1 with
//! warnings only, 2 when a check failed.
//!
//! Invariant: no value of a secret is ever shown. A check names variables,
//! says where each setting came from (flag, env var, `file:line`), and shows
//! tokens as their prefix (`rnt_…`).

use std::io::IsTerminal;
use std::process::ExitCode;

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

use crate::exit;
use crate::settings::SettingsArgs;

mod checks;
pub mod claude;

/// What `--help` shows after the options (the variant's doc comment in
/// `cli/mod.rs` is the summary).
const AFTER_HELP: &str = concat!(
    "Looks at, in order: the local settings (found, where each came from, the
token's format, the .env file's permissions); the platform (reachable over
TLS, or plain http on loopback, with the latency; the token accepted); the
platform's readiness checklist (ANTHROPIC_API_KEY in the vault, GitHub /
Bitbucket from Integrations, with links); Docker (reachable, its version
and API version, and a self-audit that starts a throwaway container along
the real secret hand-off and checks that neither `docker inspect` nor the
engine's files hold the value); the Claude login when the platform says
the runner's backend is local_claude; and legacy variables
(ANTHROPIC_API_KEY, GITHUB_TOKEN, BITBUCKET_TOKEN) still set locally, with
the migration steps.

No secret value is ever printed: only names, the platform's masked
previews and where each setting came from.

The backend is the one the platform reports: its readiness marks the
Anthropic key \"not needed\" for local_claude runners.

Exit codes: 0 ready; 1 warnings only (not ready); 2 a check failed.

Examples:

  spedy-runner doctor
  spedy-runner doctor --json | jq '.checks[] | select(.status != \"ok\")'
  spedy-runner doctor --no-audit   # skip the throwaway container\n\n",
    claude::where_help!()
);

/// Arguments of the command; `--help` shows [`AFTER_HELP`].
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct Args {
    /// Print the report as JSON (one object: `ready`, `status`, `checks`).
    #[arg(long)]
    pub json: bool,

    /// Skip the Docker self-audit (which starts a throwaway container).
    #[arg(long)]
    pub no_audit: bool,
}

/// The status of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In place.
    Ok,
    /// Not in place; the host is not ready, but nothing is broken.
    Warn,
    /// Broken.
    Fail,
}

impl Status {
    /// ✓, ⚠ or ✗.
    pub fn symbol(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Warn => "⚠",
            Status::Fail => "✗",
        }
    }
}

/// One check of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A stable id for scripts (`settings`, `platform`, `docker`, …).
    pub id: String,
    /// What was checked, for people.
    pub label: String,
    /// The result.
    pub status: Status,
    /// What was found (names, sources, versions; never a value).
    pub detail: String,
    /// How to fix it, or the next step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    /// A check with no hint.
    pub fn new(id: &str, label: &str, status: Status, detail: impl Into<String>) -> Self {
        Check {
            id: id.to_owned(),
            label: label.to_owned(),
            status,
            detail: detail.into(),
            hint: None,
        }
    }

    /// The same check with a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// True when every check is ok.
    pub ready: bool,
    /// The worst status.
    pub status: Status,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// A report over `checks`.
    pub fn new(checks: Vec<Check>) -> Self {
        let status = checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok);
        Report {
            ready: status == Status::Ok,
            status,
            checks,
        }
    }

    /// 0 ready, 1 warnings only, 2 a failure.
    pub fn exit_code(&self) -> ExitCode {
        match self.status {
            Status::Ok => exit::OK,
            Status::Warn => exit::NOT_READY,
            Status::Fail => exit::failure(),
        }
    }

    /// The report as a table, then the hints, then a one-line verdict.
    /// `width` wraps the table (a terminal); `None` never wraps (stable
    /// output for pipes and snapshots).
    pub fn to_text(&self, width: Option<u16>) -> String {
        let mut table = Table::new();
        table
            .load_style(presets::UTF8_FULL_CONDENSED)
            .force_no_tty();
        match width {
            Some(w) => table
                .set_width(w)
                .set_content_arrangement(ContentArrangement::Dynamic),
            None => table.set_content_arrangement(ContentArrangement::Disabled),
        };
        table.set_header(vec!["", "Check", "Detail"]);
        for c in &self.checks {
            table.add_row(vec![c.status.symbol(), &c.label, &c.detail]);
        }
        let mut out = format!("{table}\n");
        let hints: Vec<&Check> = self.checks.iter().filter(|c| c.hint.is_some()).collect();
        if !hints.is_empty() {
            out.push_str("\nNext steps:\n");
            for c in hints {
                let hint = c.hint.as_deref().unwrap_or_default();
                out.push_str(&format!("{} {} ({}):\n", c.status.symbol(), c.label, c.id));
                for line in hint.lines() {
                    out.push_str(&format!("    {line}\n"));
                }
            }
        }
        out.push('\n');
        out.push_str(&self.verdict());
        out.push('\n');
        out
    }

    fn verdict(&self) -> String {
        let count = |s| self.checks.iter().filter(|c| c.status == s).count();
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        match self.status {
            Status::Ok => "Ready: this host can run jobs.".into(),
            Status::Warn => format!(
                "Not ready: {} (exit code 1).",
                plural(count(Status::Warn), "warning")
            ),
            Status::Fail => format!(
                "Not ready: {} failed, {} (exit code 2).",
                plural(count(Status::Fail), "check"),
                plural(count(Status::Warn), "warning")
            ),
        }
    }
}

/// Runs `spedy-runner doctor`.
pub async fn run(args: Args, global: SettingsArgs) -> anyhow::Result<ExitCode> {
    let checks = checks::gather(
        &global,
        &checks::Options {
            audit: !args.no_audit,
        },
    )
    .await;
    let report = Report::new(checks);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let stdout = std::io::stdout();
        let width = stdout
            .is_terminal()
            .then(|| console::Term::stdout().size().1)
            .filter(|w| *w > 40);
        print!("{}", report.to_text(width));
    }
    Ok(report.exit_code())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Vec<Check> {
        vec![
            Check::new("settings", "Local settings", Status::Ok, "found"),
            Check::new(
                "anthropic_key",
                "ANTHROPIC_API_KEY in the vault",
                Status::Warn,
                "missing",
            )
            .hint("Add it: http://x/settings/runners/secrets"),
        ]
    }

    #[test]
    fn the_worst_status_decides_readiness_and_the_exit_code() {
        assert_eq!(Report::new(vec![]).status, Status::Ok);
        let warn = Report::new(sample());
        assert_eq!((warn.ready, warn.status), (false, Status::Warn));
        assert_eq!(warn.exit_code(), exit::NOT_READY);
        let mut checks = sample();
        checks.push(Check::new("docker", "Docker", Status::Fail, "gone"));
        let fail = Report::new(checks);
        assert_eq!(fail.exit_code(), exit::failure());
        assert!(fail.to_text(None).contains("1 check failed, 1 warning"));
    }

    #[test]
    fn the_text_shows_symbols_hints_and_a_verdict() {
        let text = Report::new(sample()).to_text(None);
        assert!(text.contains("✓") && text.contains("⚠"), "{text}");
        assert!(text.contains("Next steps:"), "{text}");
        assert!(
            text.contains("    Add it: http://x/settings/runners/secrets"),
            "{text}"
        );
        assert!(
            text.ends_with("Not ready: 1 warning (exit code 1).\n"),
            "{text}"
        );
    }

    #[test]
    fn the_json_has_stable_field_names() {
        let json = serde_json::to_value(Report::new(sample())).unwrap();
        assert_eq!(json["ready"], false);
        assert_eq!(json["status"], "warn");
        assert_eq!(json["checks"][0]["id"], "settings");
        assert_eq!(json["checks"][0]["status"], "ok");
        assert!(json["checks"][0].get("hint").is_none());
        assert_eq!(
            json["checks"][1]["hint"],
            "Add it: http://x/settings/runners/secrets"
        );
    }
}
