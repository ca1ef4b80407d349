//! [`SecretSet`]: the named secret values one job receives.
//!
//! Owns the ordering and uniqueness rule (sorted by name, one value per name)
//! and the promise that `Debug` shows names only. It does not decide *which*
//! values a job gets; that is [`crate::entitled`].

use std::fmt;

use secrecy::SecretString;

/// An ordered set of `(env name, value)` pairs given to one job.
///
/// Names are unique and kept sorted, so the order is deterministic. `Debug`
/// shows the names only; the values are [`SecretString`]s, zeroized on drop.
#[derive(Clone, Default)]
pub struct SecretSet {
    /// Sorted by name, names unique.
    entries: Vec<(String, SecretString)>,
}

impl SecretSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` under `name`, replacing a value already held under that
    /// name (the replaced value is zeroized as it drops).
    pub fn insert(&mut self, name: impl Into<String>, value: SecretString) {
        let name = name.into();
        match self
            .entries
            .binary_search_by(|(n, _)| n.as_str().cmp(&name))
        {
            Ok(i) => self.entries[i].1 = value,
            Err(i) => self.entries.insert(i, (name, value)),
        }
    }

    /// Removes the value under `name`, if any.
    pub fn remove(&mut self, name: &str) -> Option<SecretString> {
        let i = self.position(name)?;
        Some(self.entries.remove(i).1)
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Every `(name, value)` pair, sorted by name.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &SecretString)> + '_ {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The value under `name`.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.position(name).map(|i| &self.entries[i].1)
    }

    /// Whether a value is held under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// How many values the set holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
    }
}

impl<N: Into<String>> FromIterator<(N, SecretString)> for SecretSet {
    /// Collects pairs; when a name repeats, the last value wins.
    fn from_iter<I: IntoIterator<Item = (N, SecretString)>>(iter: I) -> Self {
        let mut set = SecretSet::new();
        for (name, value) in iter {
            set.insert(name, value);
        }
        set
    }
}

impl fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretSet").field(&self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn a_set_keeps_names_sorted_and_unique_with_the_last_value_winning() {
        let set: SecretSet = [
            ("B", SecretString::from("b1")),
            ("A", SecretString::from("a")),
            ("B", SecretString::from("b2")),
        ]
        .into_iter()
        .collect();
        assert_eq!(set.names(), ["A", "B"]);
        assert_eq!(set.len(), 2);
        assert_eq!(set.get("B").map(|v| v.expose_secret()), Some("b2"));
        assert!(set.get("C").is_none());
        let pairs: Vec<_> = set.iter().map(|(n, v)| (n, v.expose_secret())).collect();
        assert_eq!(pairs, [("A", "a"), ("B", "b2")]);
    }

    #[test]
    fn debug_of_a_set_shows_names_but_never_values() {
        let mut set = SecretSet::new();
        set.insert("TOKEN", SecretString::from("CANARY_set_value_123"));
        let debug = format!("{set:?} {set:#?}");
        assert!(debug.contains("TOKEN"), "{debug}");
        assert!(!debug.contains("CANARY"), "{debug}");
    }

    #[test]
    fn removing_a_name_takes_its_value_out() {
        let mut set = SecretSet::new();
        set.insert("A", SecretString::from("x"));
        assert!(set.remove("A").is_some());
        assert!(set.remove("A").is_none());
        assert!(set.is_empty());
    }
}
