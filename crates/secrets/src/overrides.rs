//! [`LocalOverrides`]: the values set on the host that win over the
//! platform's.
//!
//! Owns the rule of what counts as a local override (runner.md, "The local
//! `.env`"):
//! - every `.env` line except `SPEDY_*` ones (those are the runner's settings
//!   and never reach a job);
//! - a variable of the runner's own process environment whose name is a
//!   legacy one ([`spedy_api::LEGACY_ENV_NAMES`]) or one the bundle delivers,
//!   so a host set up the old way (a compose file passing the `.env` through
//!   `env_file:`) keeps working.
//!
//! Precedence between the two: the process environment wins over the `.env`
//! file, as in runner.md's settings order (flag, process environment, `.env`,
//! ...). Both win over the platform's values (see [`crate::entitled`]).
//!
//! An empty value is not an override: a compose file that writes
//! `ANTHROPIC_API_KEY: ${ANTHROPIC_API_KEY}` with the variable unset passes an
//! empty string, and a leftover `GITHUB_TOKEN=` line must not blank the
//! vault's token.
//!
//! The set depends on the bundle's names, so the supervisor collects it again
//! after each refresh. It never reads or writes the process environment
//! itself; the caller passes it in.

use std::fmt;

use secrecy::SecretString;
use spedy_api::LEGACY_ENV_NAMES;
use zeroize::Zeroizing;

use crate::{DotenvEntry, SecretBundle};

/// The prefix of the runner's own settings, never forwarded to jobs.
pub const SETTINGS_PREFIX: &str = "SPEDY_";

/// Where a local override came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideSource {
    /// A line of the `.env` file.
    Dotenv {
        /// The line (1-based).
        line: usize,
    },
    /// The runner's own process environment.
    ProcessEnv,
}

/// One local value. `Debug` shows the name and source only.
#[derive(Clone)]
pub struct LocalOverride {
    /// The env name.
    pub name: String,
    /// The value, zeroized on drop.
    pub value: SecretString,
    /// Where it came from.
    pub source: OverrideSource,
}

impl fmt::Debug for LocalOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalOverride")
            .field("name", &self.name)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The local overrides, one per name, sorted by name.
#[derive(Debug, Clone, Default)]
pub struct LocalOverrides {
    entries: Vec<LocalOverride>,
}

impl LocalOverrides {
    /// No overrides.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Collects the overrides from the parsed `.env` and the process
    /// environment; `bundle_names` are the names the current bundle delivers.
    pub fn collect<S: AsRef<str>>(
        dotenv: Vec<DotenvEntry>,
        process_env: impl IntoIterator<Item = (String, String)>,
        bundle_names: &[S],
    ) -> Self {
        let mut out = Self::default();
        for e in dotenv {
            if !e.key.starts_with(SETTINGS_PREFIX) {
                let source = OverrideSource::Dotenv { line: e.line };
                out.insert(e.key, e.value, source);
            }
        }
        for (name, value) in process_env {
            let value = Zeroizing::new(value);
            let wanted = LEGACY_ENV_NAMES.contains(&name.as_str())
                || bundle_names.iter().any(|b| b.as_ref() == name);
            if wanted && !name.starts_with(SETTINGS_PREFIX) {
                let value = SecretString::from(value.as_str());
                out.insert(name, value, OverrideSource::ProcessEnv);
            }
        }
        out
    }

    /// Adds or replaces (later sources win); empty values are ignored.
    fn insert(&mut self, name: String, value: SecretString, source: OverrideSource) {
        use secrecy::ExposeSecret as _;
        if value.expose_secret().is_empty() {
            return;
        }
        let entry = LocalOverride {
            name,
            value,
            source,
        };
        match self
            .entries
            .binary_search_by(|e| e.name.as_str().cmp(&entry.name))
        {
            Ok(i) => self.entries[i] = entry,
            Err(i) => self.entries.insert(i, entry),
        }
    }

    /// Every override, sorted by name.
    pub fn entries(&self) -> &[LocalOverride] {
        &self.entries
    }

    /// The override for `name`.
    pub fn get(&self, name: &str) -> Option<&LocalOverride> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// How many overrides there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The names whose local value shadows a value the platform delivers,
    /// sorted. The runner logs each once, by name only, with the hint that
    /// the local line can go once the vault holds the value.
    pub fn shadowed(&self, bundle: &SecretBundle) -> Vec<String> {
        let delivered = bundle.names();
        self.entries
            .iter()
            .filter(|e| delivered.contains(&e.name.as_str()))
            .map(|e| e.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use secrecy::ExposeSecret;

    use super::*;

    fn dotenv(text: &str) -> Vec<DotenvEntry> {
        crate::dotenv::parse(text, Path::new(".env"), |_| None).expect("parses")
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn value<'a>(o: &'a LocalOverrides, name: &str) -> Option<(&'a str, OverrideSource)> {
        o.get(name).map(|e| (e.value.expose_secret(), e.source))
    }

    #[test]
    fn overrides_follow_the_merge_rules_table() {
        let file = dotenv(
            "SPEDY_API_URL=http://127.0.0.1:1\nSPEDY_RUNNER_TOKEN=rnt_x\nCUSTOM=from-file\n\
             GITHUB_TOKEN=file-gh\nANTHROPIC_API_KEY=\nDELIVERED=file-d\n",
        );
        let process = env(&[
            ("PATH", "/usr/bin"),
            ("HOME", "/root"),
            ("GITHUB_TOKEN", "env-gh"),
            ("ANTHROPIC_API_KEY", ""),
            ("BITBUCKET_TOKEN", "env-bb"),
            ("DELIVERED", "env-d"),
            ("NOT_DELIVERED", "env-x"),
            ("SPEDY_LOG", "debug"),
        ]);
        let o = LocalOverrides::collect(file, process, &["DELIVERED", "SPEDY_LOG"]);
        let file_line = |line| OverrideSource::Dotenv { line };
        // (name, expected) rows: the rule each row shows is in its comment.
        let table: &[(&str, Option<(&str, OverrideSource)>)] = &[
            // `.env` lines are overrides...
            ("CUSTOM", Some(("from-file", file_line(3)))),
            // ...except the runner's own settings.
            ("SPEDY_API_URL", None),
            ("SPEDY_RUNNER_TOKEN", None),
            // Process env counts for a legacy name, and wins over the file.
            ("GITHUB_TOKEN", Some(("env-gh", OverrideSource::ProcessEnv))),
            (
                "BITBUCKET_TOKEN",
                Some(("env-bb", OverrideSource::ProcessEnv)),
            ),
            // ...and for a name the bundle delivers.
            ("DELIVERED", Some(("env-d", OverrideSource::ProcessEnv))),
            // Other process variables are not overrides.
            ("PATH", None),
            ("NOT_DELIVERED", None),
            // SPEDY_* never, even when the bundle names it.
            ("SPEDY_LOG", None),
            // An empty value is no override, from either source.
            ("ANTHROPIC_API_KEY", None),
        ];
        for (name, want) in table {
            assert_eq!(value(&o, name), *want, "{name}");
        }
        assert_eq!(
            o.names(),
            ["BITBUCKET_TOKEN", "CUSTOM", "DELIVERED", "GITHUB_TOKEN"]
        );
    }

    #[test]
    fn shadowed_names_are_the_local_names_the_bundle_also_delivers() {
        let bundle = SecretBundle::from_wire(crate::bundle::tests::wire());
        let o = LocalOverrides::collect(
            dotenv("GITHUB_TOKEN=local\nCUSTOM=x123456\n"),
            env(&[("ANTHROPIC_API_KEY", "local-key")]),
            &bundle.names(),
        );
        assert_eq!(o.shadowed(&bundle), ["ANTHROPIC_API_KEY", "GITHUB_TOKEN"]);
        assert!(LocalOverrides::empty().shadowed(&bundle).is_empty());
    }

    #[test]
    fn debug_of_overrides_shows_names_and_sources_only() {
        let o = LocalOverrides::collect(
            dotenv("TOKEN=CANARY_override_file\n"),
            env(&[("GITHUB_TOKEN", "CANARY_override_env")]),
            &[] as &[&str],
        );
        let debug = format!("{o:?} {o:#?}");
        assert!(
            debug.contains("TOKEN") && !debug.contains("CANARY"),
            "{debug}"
        );
    }
}
