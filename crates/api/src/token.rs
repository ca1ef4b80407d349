//! The runner token (`rnt_…`) and the admin token (`sat_…`).
//!
//! Both are `prefix` + 40 characters of `[A-Za-z0-9]`. They are checked when
//! parsed, held in a [`SecretString`], and never shown: `Debug` and `Display`
//! print only the prefix (`rnt_…`). [`RunnerToken::expose`] is the way in,
//! used for the `Authorization` header and nothing else.

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How many characters follow the prefix.
pub const TOKEN_BODY_LEN: usize = 40;

/// Why a token string is refused. Never holds the token itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The prefix is not the expected one.
    #[error("a {kind} starts with `{prefix}`")]
    WrongPrefix {
        /// What kind of token was expected.
        kind: &'static str,
        /// The expected prefix.
        prefix: &'static str,
    },
    /// The part after the prefix has the wrong length.
    #[error("a {kind} has {TOKEN_BODY_LEN} characters after `{prefix}`, this one has {found}")]
    WrongLength {
        /// What kind of token was expected.
        kind: &'static str,
        /// The expected prefix.
        prefix: &'static str,
        /// How many characters were found after the prefix.
        found: usize,
    },
    /// The part after the prefix holds a character outside `[A-Za-z0-9]`.
    #[error("a {kind} holds only letters and digits after `{prefix}`")]
    BadCharacter {
        /// What kind of token was expected.
        kind: &'static str,
        /// The expected prefix.
        prefix: &'static str,
    },
}

fn check(s: &str, kind: &'static str, prefix: &'static str) -> Result<(), TokenError> {
    let body = s
        .strip_prefix(prefix)
        .ok_or(TokenError::WrongPrefix { kind, prefix })?;
    let found = body.chars().count();
    if found != TOKEN_BODY_LEN {
        return Err(TokenError::WrongLength {
            kind,
            prefix,
            found,
        });
    }
    if !body.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(TokenError::BadCharacter { kind, prefix });
    }
    Ok(())
}

macro_rules! token_type {
    ($(#[$meta:meta])* $name:ident, $kind:literal, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// The prefix every token of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Parses and checks a token.
            pub fn parse(s: &str) -> Result<Self, TokenError> {
                let s = s.trim();
                check(s, $kind, $prefix)?;
                Ok(Self(SecretString::from(s)))
            }

            /// Whether `s` has the format of this kind of token.
            pub fn is_well_formed(s: &str) -> bool {
                check(s, $kind, $prefix).is_ok()
            }

            /// The token's value, for the `Authorization` header or a hash.
            pub fn expose(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl FromStr for $name {
            type Err = TokenError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "(", $prefix, "…)"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!($prefix, "…"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.expose() == other.expose()
            }
        }

        impl Eq for $name {}

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = zeroize::Zeroizing::new(String::deserialize(d)?);
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }

        /// Serializes the plain token: used only where the contract shows a
        /// token once (`POST /runners/tokens`).
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.expose())
            }
        }
    };
}

token_type!(
    /// A runner's token, `rnt_` + 40 characters of `[A-Za-z0-9]`.
    RunnerToken,
    "runner token",
    "rnt_"
);
token_type!(
    /// An admin's token, `sat_` + 40 characters of `[A-Za-z0-9]`.
    AdminToken,
    "admin token",
    "sat_"
);

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "rnt_abcdefghijABCDEFGHIJ0123456789abcdefghij";

    #[test]
    fn well_formed_tokens_parse() {
        assert!(RunnerToken::parse(GOOD).is_ok());
        assert!(AdminToken::parse(&GOOD.replace("rnt_", "sat_")).is_ok());
        assert!(RunnerToken::parse(&format!("  {GOOD}\n")).is_ok(), "trims");
    }

    #[test]
    fn malformed_tokens_are_refused_with_a_reason() {
        let cases = [
            (
                "sat_abcdefghijABCDEFGHIJ0123456789abcdefghij",
                "starts with `rnt_`",
            ),
            ("rnt_short", "this one has 5"),
            (
                "rnt_abcdefghijABCDEFGHIJ0123456789abcdefghi!",
                "only letters and digits",
            ),
            ("", "starts with `rnt_`"),
        ];
        for (input, want) in cases {
            let err = RunnerToken::parse(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }

    #[test]
    fn tokens_never_show_their_value() {
        let t = RunnerToken::parse(GOOD).unwrap();
        let shown = format!("{t:?} {t} {:?}", Some(&t));
        assert!(!shown.contains("abcdefghij"), "{shown}");
        assert_eq!(format!("{t}"), "rnt_…");
        let err = RunnerToken::parse("rnt_SECRETSECRET")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SECRETSECRET"), "{err}");
    }

    #[test]
    fn tokens_deserialize_with_the_check() {
        let ok: RunnerToken = serde_json::from_str(&format!("\"{GOOD}\"")).unwrap();
        assert_eq!(ok.expose(), GOOD);
        assert!(serde_json::from_str::<RunnerToken>("\"rnt_x\"").is_err());
    }
}
