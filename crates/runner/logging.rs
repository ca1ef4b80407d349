//! Logging: the one tracing subscriber of the process, installed by `main`.
//!
//! - Format: `text` on a terminal, `json` otherwise, or as `--log-format` /
//!   SPEDY_LOG_FORMAT says.
//! - Level: SPEDY_LOG (EnvFilter syntax), RUST_LOG as a fallback, winning
//!   over `-v`/`-q`.
//! - Every event goes to stderr through [`RedactingMakeWriter`], which
//!   replaces each value the runner holds (and its escaped forms) by
//!   `[REDACTED:NAME]`. That is the second line of defence: the types keep
//!   secrets out of events in the first place. The writer's matcher is the
//!   [`RedactorHandle`] inside [`LogHandle`]; the supervisor swaps it at each
//!   bundle refresh, so the log writer and the job log streams share one
//!   redactor.
//!
//! The format follows the settings' precedence (flag, env, `.env`, config
//! file); the level (SPEDY_LOG, RUST_LOG) is read from the process env only,
//! since it must be known before anything is logged.

use std::io::IsTerminal;

use spedy_secrets::{RedactingMakeWriter, RedactorHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

use crate::settings::{LogFormat, Settings, SettingsArgs, parse_log_format};

/// A handle on the log redactor, to update it when the bundle changes.
/// Clones share one slot.
#[derive(Debug, Clone, Default)]
pub struct LogHandle {
    redactor: RedactorHandle,
}

impl LogHandle {
    /// The redactor slot the log writer reads at each event.
    pub fn redactor(&self) -> RedactorHandle {
        self.redactor.clone()
    }
}

/// The filter directives for `-v`/`-q` when SPEDY_LOG and RUST_LOG are unset.
pub fn default_directives(verbose: u8, quiet: u8) -> String {
    let level = match (verbose, quiet) {
        (0, 0) => "info",
        (1, _) => "debug",
        (v, _) if v >= 2 => "trace",
        (_, 1) => "warn",
        _ => "error",
    };
    if level == "trace" {
        return level.to_owned();
    }
    // The HTTP and TLS stacks are chatty below warn; -vv shows them.
    format!("{level},hyper=warn,hyper_util=warn,h2=warn,rustls=warn,tower=warn,reqwest=warn")
}

/// The filter: SPEDY_LOG, then RUST_LOG, then `-v`/`-q`. A malformed
/// variable is reported on stderr and the default used instead.
fn filter(args: &SettingsArgs, service: bool) -> EnvFilter {
    capped(user_or_default_filter(args, service))
}

/// bollard logs every JSON request body at debug (with `SPEDY_INJECTION=env`
/// a container's create body holds the job's secret values) and decoded
/// stream lines (job output) at debug too. The redacting writer would catch
/// the values it knows, but they must not reach the formatter at all: bollard
/// is capped at info whatever the filter says.
fn capped(filter: EnvFilter) -> EnvFilter {
    filter.add_directive("bollard=info".parse().expect("a constant, valid directive"))
}

fn user_or_default_filter(args: &SettingsArgs, service: bool) -> EnvFilter {
    for var in ["SPEDY_LOG", "RUST_LOG"] {
        if let Ok(directives) = std::env::var(var)
            && !directives.trim().is_empty()
        {
            match EnvFilter::try_new(&directives) {
                Ok(f) => return f,
                Err(e) => {
                    eprintln!("warning: ignoring {var}, not a valid log filter: {e}");
                    break;
                }
            }
        }
    }
    // The interactive commands tell their own story on stdout; their logs
    // start at warn so the two do not interleave (-v brings them back).
    let quiet = args.quiet.saturating_add(u8::from(!service));
    EnvFilter::new(default_directives(args.verbose, quiet))
}

/// Installs the global subscriber and returns the handle on its redactor.
/// `service`: the long-running supervisor, whose logs are its output (info
/// by default); the other commands log from warn by default.
/// Calling it twice keeps the first subscriber.
pub fn install(args: &SettingsArgs, service: bool) -> LogHandle {
    let handle = LogHandle::default();
    let terminal = std::io::stderr().is_terminal();
    // The flag or env first; else the .env or config file (a malformed
    // setting is reported by the command itself, with its source).
    let format = args
        .log_format
        .as_deref()
        .and_then(|s| parse_log_format(s.trim()).ok())
        .or_else(|| Settings::resolve(args).ok().map(|s| s.log_format.value))
        .unwrap_or(if terminal {
            LogFormat::Text
        } else {
            LogFormat::Json
        });
    let writer = RedactingMakeWriter::new(handle.redactor(), std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter(args, service));
    let installed = match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(writer).with_ansi(terminal))
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            )
            .try_init(),
    };
    // Already installed (a second call): the first subscriber stays.
    drop(installed);
    handle
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bollard_never_logs_below_info_even_when_the_user_asks_for_trace() {
        use std::sync::{Arc, Mutex};
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = Arc::clone(&out);
        let subscriber = tracing_subscriber::registry()
            .with(capped(EnvFilter::new("trace,bollard=trace")))
            .with(fmt::layer().with_writer(move || {
                struct W(Arc<Mutex<Vec<u8>>>);
                impl std::io::Write for W {
                    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                        self.0.lock().unwrap().extend_from_slice(b);
                        Ok(b.len())
                    }
                    fn flush(&mut self) -> std::io::Result<()> {
                        Ok(())
                    }
                }
                W(Arc::clone(&sink))
            }));
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "bollard::docker", "request body with CANARY_VALUE");
            tracing::info!(target: "bollard::docker", "bollard info stays");
            tracing::debug!(target: "spedy_runner", "our debug stays");
        });
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("CANARY_VALUE"), "{text}");
        assert!(text.contains("bollard info stays"), "{text}");
        assert!(text.contains("our debug stays"), "{text}");
    }

    #[test]
    fn verbosity_flags_map_to_levels() {
        assert!(default_directives(0, 0).starts_with("info,"));
        assert!(default_directives(1, 0).starts_with("debug,"));
        assert_eq!(default_directives(2, 0), "trace");
        assert!(default_directives(0, 1).starts_with("warn,"));
        assert!(default_directives(0, 2).starts_with("error,"));
        for v in 0..3 {
            assert!(EnvFilter::try_new(default_directives(v, 0)).is_ok());
        }
    }
}
