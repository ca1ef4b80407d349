//! Acting on setup's answers: create the runner token, show and write the
//! `.env` snippet, show the readiness checklist, and wait for it when asked.
//!
//! Order matters for "nothing is lost": everything that can be checked
//! locally (the existing token, a writable folder) is checked before the
//! platform creates a token, and the file is written only after it did.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use comfy_table::{ContentArrangement, Table, presets};
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::ExposeSecret;
use spedy_api::{
    Backend, CHECK_ANTHROPIC_KEY, CHECK_GIT_INTEGRATIONS, CheckStatus, CreateRunnerRequest,
    Readiness, RunnerToken,
};
use spedy_client::{Client, Error as ApiError};

use super::{Answers, Target, Wait, envfile};
use crate::cli::doctor::claude;
use crate::exit;

/// Acts on the answers as the module says.
pub async fn act(
    answers: Answers,
    target: Target,
    existing: Option<usize>,
) -> anyhow::Result<ExitCode> {
    if let (Some(line), false) = (existing, answers.replace_token) {
        bail!(
            "{}:{line} already holds a SPEDY_RUNNER_TOKEN; nothing was changed\n\nPass --force to replace it.",
            target.env_file.display()
        );
    }
    check_writable(&target.env_file)?;
    let client = client(&target)?;
    let request = CreateRunnerRequest {
        name: answers.name.clone(),
        pool_size: answers.pool_size,
        backend: answers.backend,
    };
    let spinner = spinner(&format!("Creating the runner token on {}…", target.api_url));
    let created = client
        .admin(answers.admin_token.clone())
        .create_runner(&request)
        .await;
    spinner.finish_and_clear();
    let created = created.map_err(|e| refused(e, &target))?;
    println!(
        "✓ Created runner {:?} ({}).",
        answers.name, created.runner_id
    );

    let snippet = created.env_snippet.expose_secret();
    println!("\nThe .env snippet for this host:\n");
    for line in snippet.lines() {
        println!("    {}", shown_line(line, target.interactive));
    }
    let current = envfile::read_current(&target.env_file)?;
    envfile::write_atomic(&target.env_file, &envfile::merge(&current, snippet))?;
    println!(
        "\n✓ Wrote it to {} (mode 0600; its other lines are kept).",
        target.env_file.display()
    );
    if std::env::var_os(envfile::TOKEN_KEY).is_some_and(|v| !v.is_empty()) {
        println!(
            "⚠ {} is also set in this shell's environment, and wins over the .env file: unset it.",
            envfile::TOKEN_KEY
        );
    }

    println!("\nReadiness:");
    print!("{}", checklist(&created.readiness));
    if answers.backend == Backend::LocalClaude {
        print_claude_login(&target);
    }
    if created.readiness.ready {
        println!(
            "\nReady. Check this host with `spedy-runner doctor`, then start it with `spedy-runner run`."
        );
        return Ok(exit::OK);
    }
    explain_not_ready(&created.readiness);
    let wait = match answers.wait {
        Wait::Always => true,
        Wait::Never => false,
        Wait::Ask => ask_to_wait().await,
    };
    if wait {
        wait_until_ready(&client, created.token, answers.recheck_every).await?;
    } else {
        println!("Run `spedy-runner doctor` to check again.");
    }
    Ok(exit::OK)
}

/// Fails early, before a token exists, when the `.env`'s folder is missing
/// or not writable.
fn check_writable(env_file: &Path) -> anyhow::Result<()> {
    let dir = match env_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".env.spedy-setup.")
        .tempfile_in(dir)
        .map(drop)
        .with_context(|| format!("cannot write {}; nothing was created", env_file.display()))
}

fn client(target: &Target) -> anyhow::Result<Client> {
    let mut builder = Client::builder(target.api_url.as_str());
    if let Some(ca) = &target.ca_file {
        builder = builder.extra_ca_pem(ca.clone());
    }
    builder
        .build()
        .with_context(|| format!("cannot use the platform at {}", target.api_url))
}

/// The error for a failed token creation; nothing was written.
fn refused(e: ApiError, target: &Target) -> anyhow::Error {
    match e {
        ApiError::InvalidToken => anyhow::anyhow!(
            "the platform refused the admin token: it is unknown, malformed or revoked; nothing was written\n\n\
             Copy a valid admin token (sat_…) from Settings → Runners and run setup again."
        ),
        ApiError::Forbidden => anyhow::anyhow!(
            "this token may not create runners (is it a runner token?); nothing was written\n\n\
             Use an admin token (sat_…) from Settings → Runners."
        ),
        e => anyhow::Error::new(e).context(format!(
            "could not create the runner token on {}; nothing was written",
            target.api_url
        )),
    }
}

/// A snippet line as shown: the token in full on a terminal (shown once, as
/// the platform intends), as `rnt_…` elsewhere (logs of unattended runs).
fn shown_line(line: &str, interactive: bool) -> String {
    match (interactive, envfile::line_key(line)) {
        (false, Some(envfile::TOKEN_KEY)) => {
            format!("{}={}…", envfile::TOKEN_KEY, RunnerToken::PREFIX)
        }
        _ => line.to_owned(),
    }
}

/// The readiness checklist as a table: Item, Status (with the fixing link).
pub fn checklist(r: &Readiness) -> String {
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .force_no_tty()
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec!["Item", "Status"]);
    for c in &r.checks {
        let status = match (c.status, c.id.as_str()) {
            (CheckStatus::Ok, CHECK_GIT_INTEGRATIONS) => {
                let p: Vec<&str> = c.providers.iter().flatten().map(|p| p.as_str()).collect();
                if p.is_empty() {
                    "✓".to_owned()
                } else {
                    format!("✓ {}", p.join(", "))
                }
            }
            (CheckStatus::Ok, _) => "✓".to_owned(),
            (CheckStatus::NotNeeded, _) => "not needed".to_owned(),
            (CheckStatus::Warn, _) => match &c.link {
                Some(link) => format!("⚠ {link}"),
                None => "⚠".to_owned(),
            },
        };
        table.add_row(vec![c.label.clone(), status]);
    }
    format!("{table}\n")
}

fn print_claude_login(target: &Target) {
    let names: Vec<String> = envfile::read_current(&target.env_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| envfile::line_key(l).map(str::to_owned))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let found = claude::find(
        &|k| std::env::var(k).ok(),
        &names,
        dirs::home_dir().as_deref(),
    );
    if found.is_present() {
        println!("✓ Claude login for the local backend: {}", found.describe());
    } else {
        println!(
            "⚠ Claude login for the local backend: {}\n  {}",
            found.describe(),
            found.hint()
        );
    }
}

fn explain_not_ready(r: &Readiness) {
    for c in r.checks.iter().filter(|c| c.status == CheckStatus::Warn) {
        let link = c.link.as_deref().unwrap_or("the Spedy settings");
        match c.id.as_str() {
            CHECK_ANTHROPIC_KEY => println!(
                "\nThe runner token was created, but the runner will not go online until \
                 ANTHROPIC_API_KEY is in the vault.\nAdd it in the Secrets tab: {link}"
            ),
            CHECK_GIT_INTEGRATIONS => println!(
                "\nNo GitHub or Bitbucket integration is connected, so jobs cannot reach \
                 their repositories.\nConnect one under Integrations: {link}"
            ),
            _ => println!("\n{} is missing: {link}", c.label),
        }
    }
    println!();
}

async fn ask_to_wait() -> bool {
    let ask = tokio::task::spawn_blocking(|| {
        dialoguer::Confirm::with_theme(&dialoguer::theme::ColorfulTheme::default())
            .with_prompt("Wait here and re-check until it is ready? (Ctrl-C stops waiting)")
            .default(true)
            .interact()
            .unwrap_or(false)
    });
    tokio::select! {
        answer = ask => answer.unwrap_or(false),
        // Ctrl-C at this prompt: same as "no". The prompt's thread is left
        // blocked on the terminal; leave the process now.
        _ = tokio::signal::ctrl_c() => {
            let _ = console::Term::stderr().show_cursor();
            println!("\nRun `spedy-runner doctor` to check again.");
            std::process::exit(0);
        }
    }
}

/// Polls readiness with the new token until it is ready, under a spinner.
/// Ctrl-C leaves the wait; that is not a failure.
async fn wait_until_ready(
    client: &Client,
    token: RunnerToken,
    every: Duration,
) -> anyhow::Result<()> {
    let api = client.runner(token);
    let spinner = spinner("Waiting for the checklist to turn green… (Ctrl-C stops waiting)");
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => {
                spinner.finish_and_clear();
                println!("Stopped waiting. Run `spedy-runner doctor` to check again.");
                return Ok(());
            }
            () = tokio::time::sleep(every) => {}
        }
        match api.readiness().await {
            Ok(r) if r.ready => {
                spinner.finish_and_clear();
                println!("Readiness:");
                print!("{}", checklist(&r));
                println!("\nReady. Start the runner with `spedy-runner run`.");
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if e.is_transient() => {
                spinner.set_message(format!("Waiting… (last check: {})", first_line(&e)))
            }
            Err(e) => {
                spinner.finish_and_clear();
                return Err(anyhow::Error::new(e).context("re-checking readiness"));
            }
        }
    }
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

/// A spinner on stderr; hidden when stderr is not a terminal.
fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
        bar.set_style(style);
    }
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use spedy_api::{GitProvider, ReadinessCheck};

    use super::*;

    fn readiness(key: CheckStatus) -> Readiness {
        Readiness {
            ready: key != CheckStatus::Warn,
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
                    status: CheckStatus::Ok,
                    link: Some("http://p/settings/integrations".into()),
                    providers: Some(vec![GitProvider::Github]),
                },
            ],
        }
    }

    #[test]
    fn the_checklist_shows_a_warning_with_its_link() {
        let t = checklist(&readiness(CheckStatus::Warn));
        assert!(t.contains("⚠ http://p/settings/runners/secrets"), "{t}");
        assert!(t.contains("✓ github"), "{t}");
        let t = checklist(&readiness(CheckStatus::NotNeeded));
        assert!(t.contains("not needed"), "{t}");
    }

    #[test]
    fn the_token_line_is_masked_only_off_a_terminal() {
        let line = "SPEDY_RUNNER_TOKEN=rnt_abcdefghijABCDEFGHIJ0123456789abcdefghij";
        assert_eq!(shown_line(line, true), line);
        assert_eq!(shown_line(line, false), "SPEDY_RUNNER_TOKEN=rnt_…");
        assert_eq!(
            shown_line("SPEDY_API_URL=http://x", false),
            "SPEDY_API_URL=http://x"
        );
    }

    #[test]
    fn a_missing_folder_is_found_before_any_token_is_created() {
        let err = check_writable(Path::new("/nonexistent-spedy-dir/.env")).unwrap_err();
        assert!(
            format!("{err:#}").contains("nothing was created"),
            "{err:#}"
        );
        let dir = tempfile::tempdir().unwrap();
        check_writable(&dir.path().join(".env")).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the probe is removed"
        );
    }
}
