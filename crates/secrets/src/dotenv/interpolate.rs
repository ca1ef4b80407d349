//! `$VAR` interpolation in `.env` values, by Docker Compose's rules.
//!
//! Owns the substitution grammar (compose-go `template`): `$$` is a literal
//! `$`; `$NAME` and `${NAME}` substitute (an unset name gives `""`);
//! `${NAME:-default}` / `${NAME-default}` (unset or empty / unset),
//! `${NAME:?message}` / `${NAME?message}` (fail when unset or empty / unset),
//! `${NAME:+alternate}` / `${NAME+alternate}` (set and non-empty / set). The
//! default and alternate texts are interpolated themselves, so `${A:-${B}}`
//! works. A `$` followed by anything else stays literal. A malformed `${..}`
//! is an error. Names are `[A-Za-z_][A-Za-z0-9_]*`.
//!
//! Every intermediate string is a [`Zeroizing`] one: values interpolated from
//! earlier lines are secrets too.

use zeroize::Zeroizing;

/// Why a value could not be interpolated.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InterpError {
    /// A `${` without a valid name, operator or closing `}`.
    Invalid,
    /// `${NAME:?..}` or `${NAME?..}` found no value.
    Missing(String),
}

/// Substitutes every `$` expression of `text`; `resolve` gives a name's value.
pub(crate) fn interpolate(
    text: &str,
    resolve: &dyn Fn(&str) -> Option<Zeroizing<String>>,
) -> Result<Zeroizing<String>, InterpError> {
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let close = closing_brace(inner).ok_or(InterpError::Invalid)?;
            out.push_str(&braced(&inner[..close], resolve)?);
            rest = &inner[close + 1..];
        } else {
            let len = name_len(after);
            if len == 0 {
                out.push('$');
            } else {
                if let Some(v) = resolve(&after[..len]) {
                    out.push_str(&v);
                }
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The length of the name at the start of `s` (0 when there is none).
fn name_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    if !bytes
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
    {
        return 0;
    }
    bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count()
}

/// The index of the `}` closing a `${`, counting nested `${..}`.
fn closing_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The value of one `${..}` body (without the braces).
fn braced(
    body: &str,
    resolve: &dyn Fn(&str) -> Option<Zeroizing<String>>,
) -> Result<Zeroizing<String>, InterpError> {
    let len = name_len(body);
    if len == 0 {
        return Err(InterpError::Invalid);
    }
    let (name, modifier) = body.split_at(len);
    let value = resolve(name);
    if modifier.is_empty() {
        return Ok(value.unwrap_or_default());
    }
    let (colon, modifier) = match modifier.strip_prefix(':') {
        Some(m) => (true, m),
        None => (false, modifier),
    };
    let mut chars = modifier.chars();
    let op = chars.next().ok_or(InterpError::Invalid)?;
    let arg = chars.as_str();
    // With a colon, an empty value counts as unset.
    let set = value.as_ref().is_some_and(|v| !colon || !v.is_empty());
    match op {
        '-' if set => Ok(value.unwrap_or_default()),
        '-' => interpolate(arg, resolve),
        '+' if set => interpolate(arg, resolve),
        '+' => Ok(Zeroizing::default()),
        '?' if set => Ok(value.unwrap_or_default()),
        '?' => Err(InterpError::Missing(name.to_owned())),
        _ => Err(InterpError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<String, InterpError> {
        let resolve = |name: &str| -> Option<Zeroizing<String>> {
            match name {
                "SET" => Some(Zeroizing::new("v".into())),
                "EMPTY" => Some(Zeroizing::default()),
                "B" => Some(Zeroizing::new("bee".into())),
                _ => None,
            }
        };
        interpolate(text, &resolve).map(|s| s.to_string())
    }

    #[test]
    fn interpolation_follows_the_compose_table() {
        let ok: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("$SET", "v"),
            ("${SET}", "v"),
            ("a${SET}b$SET.c", "avbv.c"),
            ("$UNSET|${UNSET}", "|"),
            ("a$$b", "a$b"),
            ("$$SET", "$SET"),
            ("cost $5 and $ and $", "cost $5 and $ and $"),
            ("${UNSET:-def}", "def"),
            ("${EMPTY:-def}", "def"),
            ("${SET:-def}", "v"),
            ("${UNSET-def}", "def"),
            ("${EMPTY-def}", ""),
            ("${SET:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET+alt}", ""),
            ("${SET:?need it}", "v"),
            ("${EMPTY?need it}", ""),
            ("${UNSET:-${B}-x}", "bee-x"),
            ("${UNSET:-a b}", "a b"),
            ("${UNSET:-}", ""),
        ];
        for (text, want) in ok {
            assert_eq!(run(text).as_deref(), Ok(*want), "{text}");
        }
    }

    #[test]
    fn required_and_malformed_expressions_fail() {
        let missing = InterpError::Missing("UNSET".into());
        assert_eq!(run("${UNSET:?set it}"), Err(missing));
        assert_eq!(
            run("${EMPTY:?set it}"),
            Err(InterpError::Missing("EMPTY".into()))
        );
        assert_eq!(run("${UNSET?x}"), Err(InterpError::Missing("UNSET".into())));
        for bad in [
            "${", "${SET", "${}", "${1A}", "${SET:}", "${SET:x}", "${SET*}", "${A-${B}",
        ] {
            assert_eq!(run(bad), Err(InterpError::Invalid), "{bad}");
        }
    }
}
