//! Canary values: unique, recognisable secrets that tests plant in the vault,
//! the `.env` or the environment, and then look for where they must not be.

use rand::distr::{Alphanumeric, SampleString};

/// A fresh canary, `CANARY_<label>_<24 random alphanumerics>`.
pub fn canary(label: &str) -> String {
    let suffix = Alphanumeric.sample_string(&mut rand::rng(), 24);
    format!("CANARY_{label}_{suffix}")
}

/// Panics with the place's name when `haystack` contains any of `canaries`.
pub fn assert_absent(place: &str, haystack: &[u8], canaries: &[&str]) {
    for c in canaries {
        let found = haystack.windows(c.len()).any(|w| w == c.as_bytes());
        assert!(!found, "canary {c} leaked into {place}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canaries_are_unique_and_found() {
        let a = canary("X");
        assert_ne!(a, canary("X"));
        assert!(a.starts_with("CANARY_X_"));
        assert_absent("nothing", b"hello", &[&a]);
        let leaked = std::panic::catch_unwind(|| assert_absent("here", a.as_bytes(), &[&a]));
        assert!(leaked.is_err());
    }
}
