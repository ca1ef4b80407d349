//! [`Redactor`]: replaces every known secret value, and its encoded forms, by
//! `[REDACTED:NAME]`.
//!
//! Owns the pattern set, the replacements and the one-shot
//! [`Redactor::redact`]; the search itself (aho-corasick, leftmost-longest,
//! behind a sampled prefilter) is the private `finder` module. Streaming over split input is
//! [`crate::StreamRedactor`]; the encodings are [`crate::forms`].
//!
//! Invariants: every pattern is at least [`MIN_SECRET_LEN`](crate::MIN_SECRET_LEN) bytes long, so a
//! match never ends before it starts; when two patterns match at the same
//! place the longest wins, and when they overlap the one that starts first
//! wins; when two names hold the same value, the replacement names the first.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::SecretSet;
use crate::finder::{Finder, Found, MIN_PATTERN_LEN};
use crate::forms::{self, MIN_SECRET_LEN};

// Every form is at least MIN_SECRET_LEN long, which the finder's sampling
// needs (see `finder`).
const _: () = assert!(MIN_SECRET_LEN >= MIN_PATTERN_LEN);

/// Replaces secret values and their encoded forms by `[REDACTED:NAME]`.
///
/// Build one per secret set (it is immutable) and share it behind an `Arc`:
/// the same matcher serves the runner's own logs ([`crate::RedactingMakeWriter`])
/// and every job's log stream ([`crate::StreamRedactor`]). `Debug` shows counts
/// only.
///
/// Memory: the compiled automaton holds the bytes of every pattern and is not
/// zeroized when dropped (aho-corasick has no hook for it); the temporary
/// pattern lists are. See [`crate::forms`] for what is and is not covered.
pub struct Redactor {
    /// `None` when there is nothing to redact.
    finder: Option<Finder>,
    /// For each pattern id, the index of its replacement.
    pattern_owner: Vec<u32>,
    /// `[REDACTED:NAME]`, one per name.
    replacements: Vec<Box<[u8]>>,
    /// How many values were long enough to be redacted.
    values: usize,
    max_len: usize,
}

impl Redactor {
    /// A redactor that redacts nothing.
    pub fn empty() -> Self {
        Self {
            finder: None,
            pattern_owner: Vec::new(),
            replacements: Vec::new(),
            values: 0,
            max_len: 0,
        }
    }

    /// Builds a redactor over `(name, value)` pairs. Values shorter than
    /// [`MIN_SECRET_LEN`](crate::MIN_SECRET_LEN) bytes are skipped.
    pub fn new(entries: impl IntoIterator<Item = (String, SecretString)>) -> Self {
        let entries: Vec<_> = entries.into_iter().collect();
        Self::from_pairs(entries.iter().map(|(n, v)| (n.as_str(), v.expose_secret())))
    }

    /// Builds a redactor over the values of a [`SecretSet`].
    pub fn from_set(set: &SecretSet) -> Self {
        Self::from_pairs(set.iter().map(|(n, v)| (n, v.expose_secret())))
    }

    /// Builds a redactor over borrowed `(name, value)` pairs.
    pub fn from_pairs<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut names: Vec<&str> = Vec::new();
        let mut seen: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut patterns: Vec<zeroize::Zeroizing<Vec<u8>>> = Vec::new();
        let mut owner: Vec<u32> = Vec::new();
        let mut values = 0;
        for (name, value) in entries {
            let forms = forms::forms(value);
            if forms.is_empty() {
                continue;
            }
            values += 1;
            let idx = match names.iter().position(|n| *n == name) {
                Some(i) => i,
                None => {
                    names.push(name);
                    names.len() - 1
                }
            };
            let idx = u32::try_from(idx).expect("fewer than 2^32 names");
            for form in forms {
                if seen.contains_key(form.as_slice()) {
                    continue;
                }
                seen.insert(form.to_vec(), idx);
                owner.push(idx);
                patterns.push(form);
            }
        }
        // The map's keys are copies of the patterns; wipe them too.
        for (mut key, _) in seen.drain() {
            zeroize::Zeroize::zeroize(&mut key);
        }
        if patterns.is_empty() {
            return Self::empty();
        }
        let finder = Finder::new(&patterns);
        Self {
            max_len: finder.max_pattern_len(),
            finder: Some(finder),
            pattern_owner: owner,
            replacements: names
                .iter()
                .map(|n| format!("[REDACTED:{n}]").into_bytes().into_boxed_slice())
                .collect(),
            values,
        }
    }

    /// Replaces every match in `haystack`. Borrows when nothing matched.
    pub fn redact<'h>(&self, haystack: &'h [u8]) -> Cow<'h, [u8]> {
        let Some(finder) = &self.finder else {
            return Cow::Borrowed(haystack);
        };
        let mut matches = finder.find_iter(haystack).peekable();
        if matches.peek().is_none() {
            return Cow::Borrowed(haystack);
        }
        let mut out = Vec::with_capacity(haystack.len());
        let mut last = 0;
        for m in matches {
            out.extend_from_slice(&haystack[last..m.start]);
            out.extend_from_slice(self.replacement(m.pattern));
            last = m.end;
        }
        out.extend_from_slice(&haystack[last..]);
        Cow::Owned(out)
    }

    /// [`Redactor::redact`] for text. Replacements are ASCII and patterns are
    /// whole UTF-8 strings, so valid UTF-8 stays valid.
    pub fn redact_str<'h>(&self, text: &'h str) -> Cow<'h, str> {
        match self.redact(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(bytes) => Cow::Owned(
                String::from_utf8(bytes).expect("whole-string patterns keep UTF-8 valid"),
            ),
        }
    }

    /// The length in bytes of the longest pattern (0 when empty). A stream
    /// must hold back `max_pattern_len() - 1` bytes to see a split value.
    pub fn max_pattern_len(&self) -> usize {
        self.max_len
    }

    /// Whether this redactor redacts nothing.
    pub fn is_empty(&self) -> bool {
        self.finder.is_none()
    }

    /// How many values (of at least [`MIN_SECRET_LEN`](crate::MIN_SECRET_LEN) bytes) it redacts.
    pub fn values_len(&self) -> usize {
        self.values
    }

    /// How many byte patterns (values and their encodings) it looks for.
    pub fn patterns_len(&self) -> usize {
        self.pattern_owner.len()
    }

    /// Every match in `haystack`, for [`crate::StreamRedactor`].
    pub(crate) fn matches<'s, 'h>(
        &'s self,
        haystack: &'h [u8],
    ) -> impl Iterator<Item = Found> + use<'s, 'h> {
        self.finder
            .iter()
            .flat_map(move |finder| finder.find_iter(haystack))
    }

    /// The replacement text of a pattern.
    pub(crate) fn replacement(&self, pattern: usize) -> &[u8] {
        &self.replacements[self.pattern_owner[pattern] as usize]
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("values", &self.values)
            .field("patterns", &self.pattern_owner.len())
            .field("max_pattern_len", &self.max_len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(pairs: &[(&str, &str)]) -> Redactor {
        Redactor::from_pairs(pairs.iter().copied())
    }

    fn redact(r: &Redactor, s: &str) -> String {
        r.redact_str(s).into_owned()
    }

    #[test]
    fn a_value_is_replaced_by_its_name() {
        let r = redactor(&[("TOKEN", "hunter22")]);
        assert_eq!(redact(&r, "pw=hunter22!"), "pw=[REDACTED:TOKEN]!");
        assert_eq!(
            redact(&r, "hunter22hunter22"),
            "[REDACTED:TOKEN][REDACTED:TOKEN]"
        );
    }

    #[test]
    fn text_without_secrets_is_borrowed_unchanged() {
        let r = redactor(&[("TOKEN", "hunter22")]);
        assert!(matches!(r.redact(b"nothing here"), Cow::Borrowed(_)));
        assert!(matches!(
            Redactor::empty().redact(b"hunter22"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn values_shorter_than_six_bytes_are_left_alone() {
        let r = redactor(&[("SHORT", "abcde"), ("FLAG", "1"), ("OK", "abcdef")]);
        assert_eq!(r.values_len(), 1);
        assert_eq!(redact(&r, "abcde 1 abcdef"), "abcde 1 [REDACTED:OK]");
        assert!(redactor(&[("SHORT", "abcde")]).is_empty());
    }

    #[test]
    fn the_longest_of_overlapping_secrets_wins() {
        let r = redactor(&[
            ("SHORT", "abcdef"),
            ("LONG", "abcdefgh"),
            ("MID", "cdefghij"),
        ]);
        assert_eq!(redact(&r, "xabcdefghy"), "x[REDACTED:LONG]y");
        assert_eq!(redact(&r, "xabcdefy"), "x[REDACTED:SHORT]y");
        // The leftmost match starts first and takes the overlap.
        assert_eq!(redact(&r, "abcdefghij"), "[REDACTED:LONG]ij");
    }

    #[test]
    fn encoded_forms_are_redacted_under_the_value_name() {
        let value = "p@ss\"w0rd/ x\\";
        let r = redactor(&[("PW", value)]);
        let json = serde_json::to_string(value).expect("json");
        let debug = format!("{value:?}");
        let b64 = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(value)
        };
        for text in [
            json,
            debug,
            format!("u={b64};"),
            "p%40ss%22w0rd%2F%20x%5C".into(),
            "p%40ss%22w0rd%2f+x%5c".into(),
        ] {
            let out = redact(&r, &text);
            assert!(out.contains("[REDACTED:PW]"), "{text} -> {out}");
            assert!(!out.contains("w0rd"), "{text} -> {out}");
        }
    }

    #[test]
    fn basic_auth_base64_containing_the_value_is_redacted() {
        use base64::Engine as _;
        let r = redactor(&[("PW", "correct-horse-battery")]);
        for user in ["a", "ab", "abc", "user"] {
            let header = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:correct-horse-battery"));
            let out = redact(&r, &format!("Authorization: Basic {header}"));
            assert!(out.contains("[REDACTED:PW]"), "{user}: {out}");
        }
    }

    #[test]
    fn two_names_with_the_same_value_are_redacted_under_the_first() {
        let r = redactor(&[("A", "same-value"), ("B", "same-value")]);
        assert_eq!(redact(&r, "same-value"), "[REDACTED:A]");
    }

    #[test]
    fn debug_of_a_redactor_shows_counts_only() {
        let r = redactor(&[("TOKEN", "CANARY_redactor_debug")]);
        let debug = format!("{r:?}");
        assert!(
            !debug.contains("CANARY") && !debug.contains("TOKEN"),
            "{debug}"
        );
        assert!(debug.contains("values: 1"), "{debug}");
    }

    #[test]
    fn the_owned_constructors_agree() {
        let set: SecretSet = [("K", SecretString::from("value-123"))]
            .into_iter()
            .collect();
        let a = Redactor::from_set(&set);
        let b = Redactor::new([("K".to_owned(), SecretString::from("value-123"))]);
        assert_eq!(redact(&a, "value-123"), "[REDACTED:K]");
        assert_eq!(redact(&b, "value-123"), "[REDACTED:K]");
        assert_eq!(a.max_pattern_len(), b.max_pattern_len());
    }
}
