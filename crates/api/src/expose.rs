//! The one place where a secret value is handed to a serializer.
//!
//! `secrecy::SecretString` is deliberately not `Serialize`. The few wire types
//! that carry a secret outward (the bundle the platform sends, the value an
//! admin writes) use `#[serde(serialize_with = "crate::expose::secret")]`.

use secrecy::{ExposeSecret, SecretString};
use serde::Serializer;

/// Serializes a secret string as its plain value.
pub fn secret<S: Serializer>(value: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value.expose_secret())
}

/// Serializes an optional secret string as its plain value or `null`.
pub fn secret_opt<S: Serializer>(
    value: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => serializer.serialize_some(v.expose_secret()),
        None => serializer.serialize_none(),
    }
}
