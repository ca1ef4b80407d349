//! Collecting setup's answers: from flags, the environment and defaults
//! ([`Plan`]), and on a terminal from prompts (dialoguer), step by step as
//! the product titles them: AI backend, Configuration, Review & Connect.
//!
//! Owns no side effect but the prompts: the answers go into [`Answers`] and
//! `connect` acts on them. A Ctrl-C at a prompt restores the terminal
//! (echo, cursor), says that nothing was written, and exits 130.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use console::{Term, style};
use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Password, Select};
use spedy_api::{AdminToken, Backend};

use super::{Answers, Args, Target, Wait, backend_title, default_name, default_pool_size};
use crate::cli::doctor::claude;
use crate::settings::{MAX_POOL_SIZE, SettingsArgs};

/// The env name an admin token may come from.
pub const ADMIN_TOKEN_ENV: &str = "SPEDY_ADMIN_TOKEN";

/// What the flags, the environment and the defaults already answer.
#[derive(Debug)]
pub struct Plan {
    backend: Option<Backend>,
    pool_size: Option<String>,
    name: Option<String>,
    admin_token_file: Option<PathBuf>,
    admin_token_env: bool,
    yes: bool,
    force: bool,
    wait: bool,
    recheck_every: Duration,
    existing_token_line: Option<usize>,
    target: Target,
}

impl Plan {
    /// The plan for these arguments; `existing_token_line` is where the
    /// `.env` file already holds a SPEDY_RUNNER_TOKEN.
    pub fn new(
        args: &Args,
        global: &SettingsArgs,
        target: &Target,
        existing_token_line: Option<usize>,
    ) -> Self {
        Plan {
            backend: args.backend.map(Into::into),
            pool_size: global.pool_size.clone(),
            name: args.name.clone(),
            admin_token_file: args.admin_token_file.clone(),
            admin_token_env: std::env::var_os(ADMIN_TOKEN_ENV).is_some_and(|v| !v.is_empty()),
            yes: args.yes,
            force: args.force,
            wait: args.wait,
            recheck_every: args.recheck_every,
            existing_token_line,
            target: target.clone(),
        }
    }

    /// Without a terminal: `Ok` when the flags answer everything, else the
    /// flags that are missing.
    pub fn unattended_ready(&self) -> Result<(), Vec<String>> {
        let mut missing = Vec::new();
        if !self.yes {
            missing.push("--yes".to_owned());
        }
        if self.backend.is_none() {
            missing.push("--backend anthropic-api|local-claude".to_owned());
        }
        if self.admin_token_file.is_none() && !self.admin_token_env {
            missing.push(format!("--admin-token-file PATH (or {ADMIN_TOKEN_ENV})"));
        }
        if let (Some(line), false) = (self.existing_token_line, self.force) {
            missing.push(format!(
                "--force (to replace the SPEDY_RUNNER_TOKEN at {}:{line})",
                self.target.env_file.display()
            ));
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing)
        }
    }
}

/// Collects the answers; on a terminal through prompts, with Ctrl-C handled
/// as the module says. `None` when the admin declined (already said why).
pub async fn collect(plan: Plan) -> anyhow::Result<Option<Answers>> {
    if !plan.target.interactive {
        return unattended(plan).map(Some);
    }
    let saved = rustix::termios::tcgetattr(std::io::stdin()).ok();
    let prompts = tokio::task::spawn_blocking(move || prompt_all(plan));
    let answers = tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => cancelled(saved.as_ref()),
        answers = prompts => answers.context("the wizard stopped unexpectedly")?,
    };
    match answers {
        // Ctrl-C at a key prompt: console raises SIGINT and the prompt also
        // returns "read interrupted"; whichever is seen first, it is a cancel.
        Err(e) if is_interrupted(&e) => cancelled(saved.as_ref()),
        answers => answers,
    }
}

/// Whether a prompt ended because the user pressed Ctrl-C.
fn is_interrupted(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(c.downcast_ref::<dialoguer::Error>(),
            Some(dialoguer::Error::IO(io)) if io.kind() == std::io::ErrorKind::Interrupted)
            || c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::Interrupted)
    })
}

/// Restores the terminal (echo, cursor), says nothing was written, and
/// leaves with 130. A prompt's thread may still be blocked reading the
/// terminal, and the runtime would wait for it: so leave at once.
fn cancelled(saved: Option<&rustix::termios::Termios>) -> ! {
    if let Some(t) = saved {
        let _ =
            rustix::termios::tcsetattr(std::io::stdin(), rustix::termios::OptionalActions::Now, t);
    }
    let term = Term::stderr();
    let _ = term.show_cursor();
    let _ = term.write_line("\nSetup cancelled: nothing was written.");
    std::process::exit(130);
}

fn parse_pool(raw: &str) -> anyhow::Result<u32> {
    match raw.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_POOL_SIZE).contains(&n) => Ok(n),
        _ => bail!(
            "invalid --pool-size (or SPEDY_POOL_SIZE): expected a number from 1 to {MAX_POOL_SIZE}"
        ),
    }
}

fn admin_token_from(plan: &Plan) -> anyhow::Result<Option<AdminToken>> {
    if let Some(path) = &plan.admin_token_file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the admin token file {}", path.display()))?,
        );
        let token = AdminToken::parse(&text)
            .with_context(|| format!("the admin token in {} is malformed", path.display()))?;
        return Ok(Some(token));
    }
    match std::env::var(ADMIN_TOKEN_ENV) {
        Ok(v) if !v.is_empty() => {
            let v = zeroize::Zeroizing::new(v);
            let token = AdminToken::parse(&v)
                .with_context(|| format!("the admin token in {ADMIN_TOKEN_ENV} is malformed"))?;
            Ok(Some(token))
        }
        _ => Ok(None),
    }
}

fn unattended(plan: Plan) -> anyhow::Result<Answers> {
    let (Some(backend), Some(admin_token)) = (plan.backend, admin_token_from(&plan)?) else {
        bail!("setup without a terminal needs --backend and an admin token");
    };
    let pool_size = match &plan.pool_size {
        Some(raw) => parse_pool(raw)?,
        None => default_pool_size(),
    };
    if plan.existing_token_line.is_some() && !plan.force {
        bail!("the .env file already holds a SPEDY_RUNNER_TOKEN; pass --force to replace it");
    }
    Ok(Answers {
        backend,
        pool_size,
        name: plan.name.unwrap_or_else(default_name),
        admin_token,
        replace_token: plan.force,
        wait: if plan.wait { Wait::Always } else { Wait::Never },
        recheck_every: plan.recheck_every,
    })
}

fn heading(term: &Term, n: u8, title: &str) -> std::io::Result<()> {
    term.write_line("")?;
    term.write_line(&format!(
        "{} {}",
        style(format!("Step {n}/3 ·")).dim(),
        style(title).bold()
    ))
}

/// Every prompt, in order. Runs on a blocking thread.
fn prompt_all(plan: Plan) -> anyhow::Result<Option<Answers>> {
    let theme = ColorfulTheme::default();
    let term = Term::stderr();

    heading(&term, 1, "AI backend")?;
    let backend = match plan.backend {
        Some(b) => {
            term.write_line(&format!("  {}", backend_title(b)))?;
            b
        }
        None => {
            let choices = [Backend::AnthropicApi, Backend::LocalClaude];
            let i = Select::with_theme(&theme)
                .with_prompt("Which AI backend do this runner's jobs use?")
                .items(choices.map(backend_title))
                .default(0)
                .interact()?;
            choices[i]
        }
    };
    if backend == Backend::LocalClaude {
        let found = claude::find(&|k| std::env::var(k).ok(), &[], dirs::home_dir().as_deref());
        let mark = if found.is_present() { "✓" } else { "⚠" };
        term.write_line(&format!("  {mark} Claude login: {}", found.describe()))?;
        if !found.is_present() {
            term.write_line(&format!("    {}", found.hint()))?;
        }
    }

    heading(&term, 2, "Configuration")?;
    let pool_size = match (&plan.pool_size, plan.yes) {
        (Some(raw), _) => parse_pool(raw)?,
        (None, true) => default_pool_size(),
        (None, false) => Input::<u32>::with_theme(&theme)
            .with_prompt(format!(
                "Pool size: jobs that run in parallel (1-{MAX_POOL_SIZE})"
            ))
            .default(default_pool_size())
            .validate_with(|n: &u32| -> Result<(), String> {
                if (1..=MAX_POOL_SIZE).contains(n) {
                    Ok(())
                } else {
                    Err(format!("choose 1 to {MAX_POOL_SIZE}"))
                }
            })
            .interact_text()?,
    };
    if plan.pool_size.is_some() || plan.yes {
        term.write_line(&format!("  Pool size: {pool_size}"))?;
    }

    heading(&term, 3, "Review & Connect")?;
    review(&term, &theme, plan, backend, pool_size)
}

fn review(
    term: &Term,
    theme: &ColorfulTheme,
    plan: Plan,
    backend: Backend,
    pool_size: u32,
) -> anyhow::Result<Option<Answers>> {
    term.write_line(&format!("  Platform:   {}", plan.target.api_url))?;
    term.write_line(&format!("  AI backend: {}", backend_title(backend)))?;
    term.write_line(&format!("  Pool size:  {pool_size}"))?;
    term.write_line(&format!("  .env file:  {}", plan.target.env_file.display()))?;
    let admin_token = match admin_token_from(&plan)? {
        Some(t) => {
            let from = match &plan.admin_token_file {
                Some(p) => p.display().to_string(),
                None => ADMIN_TOKEN_ENV.to_owned(),
            };
            term.write_line(&format!("  Admin token: from {from}"))?;
            t
        }
        None => {
            let raw = zeroize::Zeroizing::new(
                Password::with_theme(theme)
                    .with_prompt("Admin token (sat_…, from Settings → Runners; hidden)")
                    .validate_with(|s: &String| {
                        AdminToken::parse(s).map(|_| ()).map_err(|e| e.to_string())
                    })
                    .interact()?,
            );
            AdminToken::parse(&raw)?
        }
    };
    let name = match (&plan.name, plan.yes) {
        (Some(n), _) => n.clone(),
        (None, true) => default_name(),
        (None, false) => Input::<String>::with_theme(theme)
            .with_prompt("Runner name")
            .default(default_name())
            .validate_with(|s: &String| -> Result<(), &str> {
                if s.trim().is_empty() {
                    Err("a name is needed")
                } else {
                    Ok(())
                }
            })
            .interact_text()?,
    };
    let replace_token = match plan.existing_token_line {
        None => false,
        Some(_) if plan.force => true,
        Some(line) if plan.yes => {
            bail!(
                "{}:{line} already holds a SPEDY_RUNNER_TOKEN; nothing was changed\n\n\
                 Pass --force to replace it.",
                plan.target.env_file.display()
            )
        }
        Some(line) => {
            let ok = Confirm::with_theme(theme)
                .with_prompt(format!(
                    "{}:{line} already holds a SPEDY_RUNNER_TOKEN. Replace it?",
                    plan.target.env_file.display()
                ))
                .default(false)
                .interact()?;
            if !ok {
                term.write_line("Left the .env file as it was; no token was created.")?;
                return Ok(None);
            }
            true
        }
    };
    if !plan.yes
        && !Confirm::with_theme(theme)
            .with_prompt(format!("Create the runner token for {name:?} now?"))
            .default(true)
            .interact()?
    {
        term.write_line("Nothing was created or written.")?;
        return Ok(None);
    }
    let wait = match (plan.wait, plan.yes) {
        (true, _) => Wait::Always,
        (false, true) => Wait::Never,
        (false, false) if std::io::stdin().is_terminal() => Wait::Ask,
        _ => Wait::Never,
    };
    Ok(Some(Answers {
        backend,
        pool_size,
        name: name.trim().to_owned(),
        admin_token,
        replace_token,
        wait,
        recheck_every: plan.recheck_every,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pool_sizes_outside_1_to_64_are_refused_by_name() {
        assert_eq!(parse_pool("4").unwrap(), 4);
        assert_eq!(parse_pool(" 64 ").unwrap(), 64);
        for bad in ["0", "65", "-1", "four", ""] {
            let err = parse_pool(bad).unwrap_err().to_string();
            assert!(err.contains("--pool-size"), "{bad:?}: {err}");
        }
    }
}
