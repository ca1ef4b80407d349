//! The checks `doctor` runs, in the order it shows them: local settings, the
//! platform, its readiness checklist, Docker, the Claude login (local_claude
//! only) and the migration of legacy variables.
//!
//! Each gatherer returns [`Check`]s and never fails: what goes wrong is a
//! check with status `fail` and a hint. A later check that depends on an
//! earlier one (the token needs the platform) is left out when its ground is
//! missing, so one cause shows as one failure.
//!
//! The runner's backend is not a local setting: it is what the platform
//! says. Readiness marks the Anthropic key `not_needed` exactly when the
//! runner's backend is local_claude, so doctor reads it from there (no
//! bootstrap, which would pull every secret into this process).

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use spedy_api::{
    CHECK_ANTHROPIC_KEY, CHECK_GIT_INTEGRATIONS, CheckStatus, GitProvider, LEGACY_ENV_NAMES,
    Readiness, ReadinessCheck,
};
use spedy_client::Client;

use super::claude;
use super::{Check, Status};
use crate::settings::{Settings, SettingsArgs, Source};

/// What the caller chose.
pub struct Options {
    /// Run the Docker self-audit (starts a throwaway container).
    pub audit: bool,
}

/// The restart steps of the migration, printed as they are to be typed.
pub const RESTART_STEPS: &str =
    "docker compose pull\ndocker compose up -d --force-recreate spedy-supervisor";

/// How long the platform checks wait for an answer.
const PLATFORM_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the Docker self-audit may take (it builds a small image the
/// first time, then runs one throwaway container).
const AUDIT_TIMEOUT: Duration = Duration::from_secs(90);

/// "(from X)", or "(the default)".
fn from(source: &Source) -> String {
    match source {
        Source::Default => "(the default)".to_owned(),
        s => format!("(from {s})"),
    }
}

/// Runs every check.
pub async fn gather(global: &SettingsArgs, options: &Options) -> Vec<Check> {
    let mut checks = Vec::new();
    let settings = match Settings::resolve(global) {
        Ok(s) => {
            checks.extend(local(&s));
            Some(s)
        }
        Err(e) => {
            checks.push(
                Check::new("settings", "Local settings", Status::Fail, e.to_string()).hint(
                    "Fix the setting named above; `spedy-runner --help` lists every setting.",
                ),
            );
            None
        }
    };
    let readiness = match &settings {
        Some(s) => platform(s, &mut checks).await,
        None => None,
    };
    if let Some(r) = &readiness {
        checks.extend(r.checks.iter().map(readiness_check));
    }
    checks.extend(docker(options.audit).await);
    if readiness.as_ref().is_some_and(is_local_claude) {
        checks.push(claude_login(settings.as_ref()));
    }
    let env_set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    checks.push(migration(settings.as_ref(), readiness.as_ref(), &env_set));
    checks
}

/// Local settings: where each came from, the token's format, the `.env` mode.
fn local(s: &Settings) -> Vec<Check> {
    let env_file =
        std::fs::canonicalize(&s.env_file.value).unwrap_or_else(|_| s.env_file.value.clone());
    let mut lines = vec![
        format!("platform URL: {} {}", base_url(s), from(&s.api_url.source)),
        match &s.token {
            Some(t) => format!("runner token: rnt_… {}", from(&t.source)),
            None => "runner token: not set".to_owned(),
        },
        if s.env_file_found {
            format!(
                ".env file: {} {}",
                env_file.display(),
                from(&s.env_file.source)
            )
        } else {
            format!(".env file: {} (not found)", env_file.display())
        },
    ];
    if let Some(c) = &s.config_file {
        lines.push(format!(
            "config file: {} {}",
            c.value.display(),
            from(&c.source)
        ));
    }
    if let Some(p) = &s.pool_size {
        lines.push(format!("pool size: {} {}", p.value, from(&p.source)));
    }
    let mut settings = Check::new("settings", "Local settings", Status::Ok, lines.join("\n"));
    if !s.unknown.is_empty() {
        let names: Vec<String> = s
            .unknown
            .iter()
            .map(|(n, src)| format!("{n} at {src}"))
            .collect();
        settings.status = Status::Warn;
        settings
            .detail
            .push_str(&format!("\nunknown settings: {}", names.join(", ")));
        settings =
            settings.hint("Check the spelling of the unknown SPEDY_* names, or remove them.");
    }
    let token = match &s.token {
        Some(_) => Check::new(
            "token_format",
            "Runner token format",
            Status::Ok,
            "rnt_ followed by 40 letters and digits",
        ),
        None => Check::new("token_format", "Runner token format", Status::Fail, "no runner token is set")
            .hint("Create one with `spedy-runner setup`; it writes SPEDY_RUNNER_TOKEN into the .env file."),
    };
    vec![settings, token, env_file_mode(s)]
}

fn env_file_mode(s: &Settings) -> Check {
    let path = &s.env_file.value;
    let label = ".env file permissions";
    if !s.env_file_found {
        return Check::new(
            "env_file_mode",
            label,
            Status::Ok,
            format!("no file at {}", path.display()),
        );
    }
    match std::fs::metadata(path) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 == 0 {
                Check::new(
                    "env_file_mode",
                    label,
                    Status::Ok,
                    format!("mode {mode:04o}"),
                )
            } else {
                Check::new(
                    "env_file_mode",
                    label,
                    Status::Warn,
                    format!(
                        "mode {mode:04o}: group or others can read it, and the runner token in it"
                    ),
                )
                .hint(format!("chmod 600 {}", path.display()))
            }
        }
        Err(e) => Check::new(
            "env_file_mode",
            label,
            Status::Fail,
            format!("cannot read {}: {e}", path.display()),
        ),
    }
}

/// The platform: reachable (and how fast), then the token accepted. Returns
/// the readiness when the token was accepted.
/// The platform URL as people write it (no trailing slash).
fn base_url(s: &Settings) -> &str {
    s.api_url.value.as_str().trim_end_matches('/')
}

async fn platform(s: &Settings, checks: &mut Vec<Check>) -> Option<Readiness> {
    let url = base_url(s);
    let label = "Platform reachable";
    let mut builder = Client::builder(url)
        .connect_timeout(PLATFORM_TIMEOUT)
        .read_timeout(PLATFORM_TIMEOUT);
    if let Some(ca) = &s.ca_file {
        builder = builder.extra_ca_pem(ca.value.clone());
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::new("platform", label, Status::Fail, first_line(&e)).hint(
                "Use an https:// URL (plain http only on loopback); behind a TLS proxy, set --ca-file.",
            ));
            return None;
        }
    };
    let started = Instant::now();
    if let Err(e) = client.healthz().await {
        checks.push(
            Check::new(
                "platform",
                label,
                Status::Fail,
                format!("{url}: {}", first_line(&e)),
            )
            .hint(format!(
                "Check SPEDY_API_URL and this host's network: curl {url}/healthz"
            )),
        );
        return None;
    }
    let ms = started.elapsed().as_millis();
    let how = if url.starts_with("https://") {
        "over TLS"
    } else {
        "over plain http (loopback)"
    };
    checks.push(Check::new(
        "platform",
        label,
        Status::Ok,
        format!("{url} answered in {ms} ms {how}"),
    ));

    let Some(token) = &s.token else { return None };
    let label = "Runner token accepted";
    match client.runner(token.value.clone()).readiness().await {
        Ok(r) => {
            checks.push(Check::new(
                "token",
                label,
                Status::Ok,
                "the platform accepted the runner token",
            ));
            Some(r)
        }
        Err(spedy_client::Error::InvalidToken) => {
            checks.push(
                Check::new(
                    "token",
                    label,
                    Status::Fail,
                    "the platform refused the runner token: it is unknown or was revoked",
                )
                .hint("Create a new token with `spedy-runner setup`."),
            );
            None
        }
        Err(e) => {
            checks.push(Check::new("token", label, Status::Fail, first_line(&e)));
            None
        }
    }
}

/// One item of the platform's checklist as a doctor check.
fn readiness_check(item: &ReadinessCheck) -> Check {
    let link = item.link.as_deref().unwrap_or("the Spedy settings");
    let (status, detail, hint) = match (item.id.as_str(), item.status) {
        (_, CheckStatus::NotNeeded) => (
            Status::Ok,
            "not needed (backend local_claude)".to_owned(),
            None,
        ),
        (CHECK_GIT_INTEGRATIONS, CheckStatus::Ok) => {
            (Status::Ok, format!("connected: {}", providers(item)), None)
        }
        (CHECK_GIT_INTEGRATIONS, CheckStatus::Warn) => (
            Status::Warn,
            "no GitHub or Bitbucket integration is connected".to_owned(),
            Some(format!("Connect one under Integrations: {link}")),
        ),
        (CHECK_ANTHROPIC_KEY, CheckStatus::Warn) => (
            Status::Warn,
            "missing: the runner will not go online until the key is in the vault".to_owned(),
            Some(format!("Add ANTHROPIC_API_KEY in the Secrets tab: {link}")),
        ),
        (_, CheckStatus::Ok) => (Status::Ok, "in place".to_owned(), None),
        (_, CheckStatus::Warn) => (
            Status::Warn,
            "missing".to_owned(),
            Some(format!("Fix it: {link}")),
        ),
    };
    let mut check = Check::new(&item.id, &item.label, status, detail);
    check.hint = hint;
    check
}

fn providers(item: &ReadinessCheck) -> String {
    let names: Vec<&str> = item
        .providers
        .iter()
        .flatten()
        .map(|p| p.as_str())
        .collect();
    if names.is_empty() {
        "yes".to_owned()
    } else {
        names.join(", ")
    }
}

fn is_local_claude(r: &Readiness) -> bool {
    r.checks
        .iter()
        .any(|c| c.id == CHECK_ANTHROPIC_KEY && c.status == CheckStatus::NotNeeded)
}

/// Docker: reachable, versions, and the hand-off self-audit.
async fn docker(audit: bool) -> Vec<Check> {
    let label = "Docker engine";
    let engine = match spedy_docker::Engine::connect().await {
        Ok(e) => e,
        Err(e) => {
            return vec![Check::new("docker", label, Status::Fail, first_line(&e)).hint(
                "Start the engine, or point DOCKER_HOST at it (unix:///var/run/docker.sock); \
                 `docker info` shows the problem. The user running spedy-runner needs access to the socket.",
            )];
        }
    };
    let mut checks = vec![match engine.info().await {
        Ok(i) => Check::new(
            "docker",
            label,
            Status::Ok,
            format!(
                "Docker {} (API {}, using {}) at {}",
                i.version, i.api_version, i.negotiated_api_version, i.host
            ),
        ),
        Err(e) => Check::new("docker", label, Status::Fail, first_line(&e))
            .hint("`docker info` shows the problem."),
    }];
    if audit && checks[0].status == Status::Ok {
        let label = "Secret hand-off self-audit";
        checks.push(match tokio::time::timeout(AUDIT_TIMEOUT, handoff_audit(&engine)).await {
            Ok(check) => check,
            Err(_) => Check::new(
                "docker_audit",
                label,
                Status::Fail,
                format!("did not finish within {} s", AUDIT_TIMEOUT.as_secs()),
            )
            .hint("`docker ps -a --filter label=io.spedy.job=self-audit` shows what is left; run doctor again."),
        });
    }
    checks
}

async fn handoff_audit(engine: &spedy_docker::Engine) -> Check {
    use spedy_docker::AuditStatus;
    let label = "Secret hand-off self-audit";
    let report = engine.self_audit().await;
    let count = |s| report.checks.iter().filter(|c| c.status == s).count();
    let failed: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.status == AuditStatus::Fail)
        .collect();
    let skipped: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.status == AuditStatus::Skipped)
        .map(|c| format!("skipped {}: {}", c.label, c.detail))
        .collect();
    let mut detail = format!(
        "a throwaway container received a canary over stdin; {} checks passed, {} skipped, {} failed",
        count(AuditStatus::Pass),
        skipped.len(),
        failed.len()
    );
    for line in skipped.iter().chain(failed.iter().map(|c| &c.detail)) {
        detail.push('\n');
        detail.push_str(line);
    }
    if failed.is_empty() {
        Check::new("docker_audit", label, Status::Ok, detail)
    } else {
        let fixes: Vec<&str> = failed.iter().filter_map(|c| c.fix.as_deref()).collect();
        Check::new("docker_audit", label, Status::Fail, detail).hint(if fixes.is_empty() {
            "Set SPEDY_INJECTION=env only for images where the hand-off cannot work.".to_owned()
        } else {
            fixes.join("\n")
        })
    }
}

fn claude_login(s: Option<&Settings>) -> Check {
    let names: Vec<&str> = s
        .map(|s| s.local_env.iter().map(|e| e.key.as_str()).collect())
        .unwrap_or_default();
    let home = dirs::home_dir();
    let found = claude::find(&|k| std::env::var(k).ok(), &names, home.as_deref());
    let label = "Claude login (local_claude)";
    if found.is_present() {
        Check::new("claude_login", label, Status::Ok, found.describe())
    } else {
        Check::new("claude_login", label, Status::Warn, found.describe()).hint(found.hint())
    }
}

/// Where a legacy name is set locally: `.env:line` and/or the environment.
fn legacy_places(s: Option<&Settings>, name: &str, env_set: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut places = Vec::new();
    if let Some(s) = s {
        for e in s.local_env.iter().filter(|e| e.key == name) {
            places.push(format!("{}:{}", s.env_file.value.display(), e.line));
        }
    }
    if env_set(name) {
        places.push("the process environment".to_owned());
    }
    places
}

/// Whether the platform already delivers `name`, per its readiness.
fn vault_holds(r: &Readiness, name: &str) -> bool {
    let item = |id: &str| r.checks.iter().find(|c| c.id == id);
    match name {
        spedy_api::ANTHROPIC_API_KEY => {
            item(CHECK_ANTHROPIC_KEY).is_some_and(|c| c.status == CheckStatus::Ok)
        }
        _ => item(CHECK_GIT_INTEGRATIONS).is_some_and(|c| {
            let provider = if name == GitProvider::Bitbucket.env_name() {
                GitProvider::Bitbucket
            } else {
                GitProvider::Github
            };
            c.providers.iter().flatten().any(|p| *p == provider)
        }),
    }
}

/// Legacy variables set locally, whether the vault holds each, the steps.
/// `env_set` tells whether a name is set in the process environment.
fn migration(s: Option<&Settings>, r: Option<&Readiness>, env_set: &dyn Fn(&str) -> bool) -> Check {
    let label = "Migration of local secrets";
    let mut lines = Vec::new();
    let mut pending = false;
    for name in LEGACY_ENV_NAMES {
        let places = legacy_places(s, name, env_set);
        if places.is_empty() {
            continue;
        }
        let state = match r {
            Some(r) if vault_holds(r, name) => "the platform already delivers it",
            Some(_) => {
                pending = true;
                "not on the platform yet"
            }
            None => {
                pending = true;
                "unknown whether the platform delivers it (platform not checked)"
            }
        };
        lines.push(format!("{name} set in {}: {state}", places.join(" and ")));
    }
    if lines.is_empty() {
        return Check::new(
            "migration",
            label,
            Status::Ok,
            "no legacy variables set locally",
        );
    }
    lines.push("local values win over the platform's until their lines are removed".to_owned());
    let secrets_link = r
        .and_then(|r| r.checks.iter().find(|c| c.id == CHECK_ANTHROPIC_KEY))
        .and_then(|c| c.link.clone())
        .unwrap_or_else(|| "Settings → Runners → Secrets".to_owned());
    let hint = format!(
        "1. Store the key in the vault: {secrets_link} (git tokens come from Integrations)\n\
         2. Restart the supervisor once:\n   {}\n\
         Then remove the local lines; until then the local values win.",
        RESTART_STEPS.replace('\n', "\n   ")
    );
    let status = if pending { Status::Warn } else { Status::Ok };
    Check::new("migration", label, status, lines.join("\n")).hint(hint)
}

/// The first line of an error's message (its hint paragraph goes in `hint`).
fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn readiness(key: CheckStatus, providers: Vec<GitProvider>) -> Readiness {
        Readiness {
            ready: key != CheckStatus::Warn && !providers.is_empty(),
            checks: vec![
                ReadinessCheck {
                    id: CHECK_ANTHROPIC_KEY.into(),
                    label: "ANTHROPIC_API_KEY in the vault".into(),
                    status: key,
                    link: Some("http://p/settings/runners/secrets".into()),
                    providers: None,
                },
                ReadinessCheck {
                    id: CHECK_GIT_INTEGRATIONS.into(),
                    label: "GitHub / Bitbucket from Integrations".into(),
                    status: if providers.is_empty() {
                        CheckStatus::Warn
                    } else {
                        CheckStatus::Ok
                    },
                    link: Some("http://p/settings/integrations".into()),
                    providers: Some(providers),
                },
            ],
        }
    }

    #[test]
    fn readiness_items_map_to_checks_with_their_links() {
        let r = readiness(CheckStatus::Warn, vec![]);
        let checks: Vec<Check> = r.checks.iter().map(readiness_check).collect();
        assert_eq!(checks[0].status, Status::Warn);
        assert!(
            checks[0]
                .hint
                .as_deref()
                .unwrap()
                .contains("http://p/settings/runners/secrets")
        );
        assert_eq!(checks[1].status, Status::Warn);
        assert!(
            checks[1]
                .hint
                .as_deref()
                .unwrap()
                .contains("http://p/settings/integrations")
        );
        let r = readiness(CheckStatus::NotNeeded, vec![GitProvider::Github]);
        let checks: Vec<Check> = r.checks.iter().map(readiness_check).collect();
        assert_eq!(checks[0].detail, "not needed (backend local_claude)");
        assert_eq!(checks[1].detail, "connected: github");
        assert!(is_local_claude(&r));
    }

    #[test]
    fn the_vault_holds_a_legacy_name_when_readiness_says_so() {
        let r = readiness(CheckStatus::Ok, vec![GitProvider::Github]);
        assert!(vault_holds(&r, "ANTHROPIC_API_KEY"));
        assert!(vault_holds(&r, "GITHUB_TOKEN"));
        assert!(!vault_holds(&r, "BITBUCKET_TOKEN"));
        let r = readiness(CheckStatus::Warn, vec![]);
        assert!(!vault_holds(&r, "ANTHROPIC_API_KEY"));
    }

    #[test]
    fn legacy_variables_are_listed_by_name_with_the_vault_state_and_the_steps() {
        let none = migration(None, None, &|_| false);
        assert_eq!(none.status, Status::Ok);
        assert!(none.hint.is_none());

        let only_key = |n: &str| n == "ANTHROPIC_API_KEY";
        let held = readiness(CheckStatus::Ok, vec![GitProvider::Github]);
        let c = migration(None, Some(&held), &only_key);
        assert_eq!(
            c.status,
            Status::Ok,
            "the vault holds it: nothing is pending"
        );
        assert!(
            c.detail
                .contains("ANTHROPIC_API_KEY set in the process environment"),
            "{}",
            c.detail
        );
        assert!(
            c.detail.contains("until their lines are removed"),
            "{}",
            c.detail
        );
        let hint = c.hint.unwrap();
        assert!(hint.contains("docker compose pull"), "{hint}");
        assert!(
            hint.contains("docker compose up -d --force-recreate spedy-supervisor"),
            "{hint}"
        );

        let missing = readiness(CheckStatus::Warn, vec![]);
        let c = migration(None, Some(&missing), &only_key);
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("not on the platform yet"), "{}", c.detail);
        assert!(
            c.hint
                .unwrap()
                .contains("http://p/settings/runners/secrets")
        );
    }
}
