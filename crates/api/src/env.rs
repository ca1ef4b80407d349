//! The rule for a valid environment variable name, shared by the vault (which
//! refuses a bad name with `422`) and the runner (which checks `.env` keys).

/// The longest env name the vault accepts.
pub const MAX_ENV_NAME_LEN: usize = 128;

/// The largest secret value the vault accepts, in bytes.
pub const MAX_SECRET_VALUE_LEN: usize = 64 * 1024;

/// Why an env name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvNameError {
    /// The name is empty.
    #[error("env name is empty")]
    Empty,
    /// The name starts with a digit.
    #[error("env name starts with a digit")]
    LeadingDigit,
    /// The name is longer than [`MAX_ENV_NAME_LEN`].
    #[error("env name is longer than {MAX_ENV_NAME_LEN} characters")]
    TooLong,
    /// The name holds a character other than `[A-Za-z0-9_]` (such as `=` or NUL).
    #[error("env name may only hold letters, digits and '_'")]
    BadCharacter,
}

/// Checks that `name` is a portable environment variable name:
/// `[A-Za-z_][A-Za-z0-9_]*`, at most [`MAX_ENV_NAME_LEN`] characters.
pub fn validate_env_name(name: &str) -> Result<(), EnvNameError> {
    let first = name.chars().next().ok_or(EnvNameError::Empty)?;
    if name.len() > MAX_ENV_NAME_LEN {
        return Err(EnvNameError::TooLong);
    }
    if first.is_ascii_digit() {
        return Err(EnvNameError::LeadingDigit);
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(EnvNameError::BadCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_are_checked_by_the_portable_rule() {
        let cases: &[(&str, Result<(), EnvNameError>)] = &[
            ("ANTHROPIC_API_KEY", Ok(())),
            ("_X1", Ok(())),
            ("", Err(EnvNameError::Empty)),
            ("1ABC", Err(EnvNameError::LeadingDigit)),
            ("A=B", Err(EnvNameError::BadCharacter)),
            ("A\0B", Err(EnvNameError::BadCharacter)),
            ("A-B", Err(EnvNameError::BadCharacter)),
            (&"A".repeat(129), Err(EnvNameError::TooLong)),
        ];
        for (name, want) in cases {
            assert_eq!(validate_env_name(name), *want, "{name:?}");
        }
        assert_eq!(validate_env_name(&"A".repeat(128)), Ok(()));
    }
}
