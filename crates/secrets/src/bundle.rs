//! [`SecretBundle`]: the secrets one bootstrap delivered, held in memory.
//!
//! Owns the in-memory form of the wire bundle and the expiry rule (an entry is
//! expired at and after its `expires_at`). It does not fetch, refresh or swap
//! bundles (the supervisor does, through a `watch` of `Arc<SecretBundle>`),
//! and it has no `Display`. Values are [`SecretString`]s: zeroized when the
//! bundle drops, never shown by `Debug`.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use spedy_api::{BundleSecret, GitProvider, Scope, SecretKind, WireBundle};
use time::OffsetDateTime;

/// One delivered secret. `Debug` shows everything but the value.
#[derive(Clone)]
pub struct BundleEntry {
    /// The env name the job sees.
    pub env: String,
    /// The plaintext, zeroized on drop.
    pub value: SecretString,
    /// What the entry is for.
    pub kind: SecretKind,
    /// The provider, for `git` entries.
    pub provider: Option<GitProvider>,
    /// Who may receive it.
    pub scope: Scope,
    /// When the value stops working, if it does.
    pub expires_at: Option<OffsetDateTime>,
}

impl BundleEntry {
    /// Whether the entry has expired at `now` (at or after `expires_at`).
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

impl From<BundleSecret> for BundleEntry {
    fn from(s: BundleSecret) -> Self {
        Self {
            env: s.env,
            value: s.value,
            kind: s.kind,
            provider: s.provider,
            scope: s.scope,
            expires_at: s.expires_at,
        }
    }
}

impl fmt::Debug for BundleEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleEntry")
            .field("env", &self.env)
            .field("kind", &self.kind)
            .field("provider", &self.provider)
            .field("scope", &self.scope)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Every value is a `SecretString`, which zeroizes itself on drop.
impl zeroize::ZeroizeOnDrop for BundleEntry {}

/// The bundle of secrets from one `POST /runners/bootstrap`, in memory only.
#[derive(Clone)]
pub struct SecretBundle {
    version: String,
    issued_at: OffsetDateTime,
    refresh_after: Duration,
    entries: Vec<BundleEntry>,
}

impl SecretBundle {
    /// Takes the wire bundle over; its values move, they are not copied.
    pub fn from_wire(wire: WireBundle) -> Self {
        Self {
            version: wire.version,
            issued_at: wire.issued_at,
            refresh_after: Duration::from_secs(wire.refresh_after_s),
            entries: wire.secrets.into_iter().map(BundleEntry::from).collect(),
        }
    }

    /// A bundle with no entries (before the first bootstrap, or after a
    /// revoked token zeroized the last one).
    pub fn empty() -> Self {
        Self {
            version: String::new(),
            issued_at: OffsetDateTime::UNIX_EPOCH,
            refresh_after: Duration::ZERO,
            entries: Vec::new(),
        }
    }

    /// The platform's opaque version; it changes whenever a value changes.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// When the platform issued the bundle.
    pub fn issued_at(&self) -> OffsetDateTime {
        self.issued_at
    }

    /// How long to wait before the next bootstrap, as the platform asked.
    pub fn refresh_after(&self) -> Duration {
        self.refresh_after
    }

    /// Every entry, in the platform's order (expired ones included; see
    /// [`SecretBundle::without_expired`]).
    pub fn entries(&self) -> &[BundleEntry] {
        &self.entries
    }

    /// The distinct env names, in the platform's order.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            if !names.contains(&e.env.as_str()) {
                names.push(&e.env);
            }
        }
        names
    }

    /// A copy without the entries expired at `now`: what the runner keeps
    /// serving when a refresh fails.
    pub fn without_expired(&self, now: OffsetDateTime) -> SecretBundle {
        Self {
            version: self.version.clone(),
            issued_at: self.issued_at,
            refresh_after: self.refresh_after,
            entries: self
                .entries
                .iter()
                .filter(|e| !e.is_expired(now))
                .cloned()
                .collect(),
        }
    }

    /// The soonest `expires_at` of any entry, for scheduling an early refresh.
    pub fn earliest_expiry(&self) -> Option<OffsetDateTime> {
        self.entries.iter().filter_map(|e| e.expires_at).min()
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Default for SecretBundle {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for SecretBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBundle")
            .field("version", &self.version)
            .field("issued_at", &self.issued_at)
            .field("refresh_after", &self.refresh_after)
            .field("entries", &self.entries)
            .finish()
    }
}

/// Every value is a `SecretString`, which zeroizes itself on drop.
impl zeroize::ZeroizeOnDrop for SecretBundle {}

#[cfg(test)]
pub(crate) mod tests {
    use secrecy::ExposeSecret;
    use time::macros::datetime;

    use super::*;

    pub(crate) fn wire() -> WireBundle {
        serde_json::from_str(
            r#"{"version": "v7", "issued_at": "2026-12-03T12:00:00Z", "refresh_after_s": 900,
                "secrets": [
                  {"env": "ANTHROPIC_API_KEY", "value": "CANARY_bundle_anthropic", "kind": "anthropic", "scope": "org"},
                  {"env": "GITHUB_TOKEN", "value": "CANARY_bundle_github", "kind": "git", "provider": "github",
                   "scope": "org", "expires_at": "2026-12-03T13:00:00Z"},
                  {"env": "FLAG", "value": "CANARY_bundle_flag", "kind": "custom", "scope": "project:p1",
                   "expires_at": "2026-12-03T12:30:00Z"}
                ]}"#,
        )
        .expect("the contract's example parses")
    }

    #[test]
    fn a_wire_bundle_is_taken_over_with_its_metadata() {
        let b = SecretBundle::from_wire(wire());
        assert_eq!(b.version(), "v7");
        assert_eq!(b.issued_at(), datetime!(2026-12-03 12:00 UTC));
        assert_eq!(b.refresh_after(), Duration::from_secs(900));
        assert_eq!(b.names(), ["ANTHROPIC_API_KEY", "GITHUB_TOKEN", "FLAG"]);
        assert_eq!(b.entries()[1].provider, Some(GitProvider::Github));
        assert_eq!(
            b.entries()[0].value.expose_secret(),
            "CANARY_bundle_anthropic"
        );
    }

    #[test]
    fn expired_entries_are_dropped_at_and_after_their_expiry() {
        let b = SecretBundle::from_wire(wire());
        assert_eq!(b.earliest_expiry(), Some(datetime!(2026-12-03 12:30 UTC)));
        assert_eq!(b.without_expired(datetime!(2026-12-03 12:29 UTC)).len(), 3);
        let at = b.without_expired(datetime!(2026-12-03 12:30 UTC));
        assert_eq!(at.names(), ["ANTHROPIC_API_KEY", "GITHUB_TOKEN"]);
        let later = b.without_expired(datetime!(2026-12-03 14:00 UTC));
        assert_eq!(later.names(), ["ANTHROPIC_API_KEY"]);
        assert_eq!(later.earliest_expiry(), None);
        assert_eq!(later.version(), "v7");
    }

    #[test]
    fn debug_of_a_bundle_shows_names_and_never_values() {
        let b = SecretBundle::from_wire(wire());
        let debug = format!("{b:?} {b:#?} {:?}", b.entries()[0]);
        assert!(debug.contains("GITHUB_TOKEN"), "{debug}");
        assert!(!debug.contains("CANARY"), "{debug}");
    }

    #[test]
    fn an_empty_bundle_has_nothing_to_give() {
        let b = SecretBundle::empty();
        assert!(b.is_empty());
        assert!(b.names().is_empty());
        assert_eq!(b.earliest_expiry(), None);
    }
}
