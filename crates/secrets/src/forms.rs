//! The encoded forms of a secret value that the [`crate::Redactor`] looks for.
//!
//! Owns the list of encodings and how each is computed; it does no matching.
//! A value can reach a log raw or re-encoded by whoever printed it, so each
//! value becomes several byte patterns:
//! - raw, and trimmed of surrounding whitespace when that differs;
//! - JSON-escaped as serde_json writes it (`\"`, `\\`, `\n`…, `\u001f`), with
//!   `/` also written `\/`, with upper-case `\u001F`, and ASCII-only
//!   (`\u00e9`, as Python's `json.dumps` writes by default);
//! - Rust `Debug`-escaped (what `?field` in a tracing event prints);
//! - those escapes nested up to three levels deep (JSON of `Debug` of
//!   `Debug`: an error's `Debug` quoting the value, inside a JSON log line);
//! - percent-encoded: every byte outside `A-Za-z0-9-._~` as `%XX`, in upper and
//!   lower hex, with a space as `%20` or as `+` (form encoding), and with `/`
//!   left alone (Python's `quote`);
//! - for a multi-line value (a PEM key): the value with CRLF line ends, and
//!   each line of at least six bytes (raw and escaped);
//! - base64, standard and URL-safe alphabets, with and without padding, plus
//!   the *stable inner part* for each of the three byte alignments: inside a
//!   larger base64 text (`user:secret` in a Basic auth header), the value's
//!   characters depend on its offset mod 3, and only the characters whose six
//!   bits all come from the value are fixed.
//!
//! Not covered (documented limits): partially percent-encoded forms (an encoder
//! that leaves `/` or `*` alone), line-wrapped base64, hex, and other
//! re-encodings. The patterns are zeroized when dropped, but note that the
//! compiled automaton in [`crate::Redactor`] keeps the bytes of every pattern
//! and is not zeroized (aho-corasick offers no hook for it).

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

/// Values shorter than this many bytes are not redacted: short values (`1`,
/// `true`, `debug`) would redact ordinary words.
pub const MIN_SECRET_LEN: usize = 6;

/// Every form of `value` to redact, deduplicated, raw value first. Empty when
/// the value is shorter than [`MIN_SECRET_LEN`].
pub(crate) fn forms(value: &str) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    if value.len() < MIN_SECRET_LEN {
        return out;
    }
    let trimmed = value.trim();
    for base in [value, trimmed] {
        if base.len() >= MIN_SECRET_LEN {
            push(&mut out, base.as_bytes().to_vec());
            text_forms(base, &mut out);
            url_forms(base.as_bytes(), &mut out);
            base64_forms(base.as_bytes(), &mut out);
        }
    }
    if trimmed.contains('\n') {
        line_forms(trimmed, &mut out);
    }
    out
}

/// A multi-line value (a PEM key) printed through a terminal gets `\r\n`
/// line ends, or is printed one line at a time: the CRLF form and each line
/// of at least [`MIN_SECRET_LEN`] bytes are redacted too (raw and escaped).
fn line_forms(value: &str, out: &mut Vec<Zeroizing<Vec<u8>>>) {
    let lf = Zeroizing::new(value.replace("\r\n", "\n"));
    let crlf = Zeroizing::new(lf.replace('\n', "\r\n"));
    for whole in [&lf, &crlf] {
        push(out, whole.as_bytes().to_vec());
        text_forms(whole, out);
    }
    for line in lf.lines().map(str::trim) {
        if line.len() >= MIN_SECRET_LEN {
            push(out, line.as_bytes().to_vec());
            text_forms(line, out);
        }
    }
}

fn push(out: &mut Vec<Zeroizing<Vec<u8>>>, form: Vec<u8>) {
    let form = Zeroizing::new(form);
    if form.len() >= MIN_SECRET_LEN && !out.iter().any(|f| **f == *form) {
        out.push(form);
    }
}

/// The JSON- and Debug-escaped forms, nested up to [`ESCAPE_DEPTH`] levels
/// (a `Debug` string inside a `Debug` string inside a JSON log line).
fn text_forms(value: &str, out: &mut Vec<Zeroizing<Vec<u8>>>) {
    for style in [JsonStyle::SLASH, JsonStyle::UPPER, JsonStyle::ASCII] {
        push(out, json_escape(value, style).into_bytes());
    }
    for first in [json_escape(value, JsonStyle::SERDE), debug_escape(value)] {
        let mut level = Zeroizing::new(first);
        for depth in 1..=ESCAPE_DEPTH {
            push(out, level.as_bytes().to_vec());
            if depth < ESCAPE_DEPTH {
                level = Zeroizing::new(json_escape(&level, JsonStyle::SERDE));
            }
        }
    }
}

/// How many nested levels of JSON/`Debug` escaping are redacted.
const ESCAPE_DEPTH: usize = 3;

/// How a JSON encoder escapes: serde_json's choices are the defaults.
#[derive(Clone, Copy)]
struct JsonStyle {
    slash: bool,
    upper_hex: bool,
    ascii_only: bool,
}

impl JsonStyle {
    const SERDE: Self = Self {
        slash: false,
        upper_hex: false,
        ascii_only: false,
    };
    const SLASH: Self = Self {
        slash: true,
        ..Self::SERDE
    };
    const UPPER: Self = Self {
        upper_hex: true,
        ..Self::SERDE
    };
    const ASCII: Self = Self {
        ascii_only: true,
        ..Self::SERDE
    };
}

/// The JSON string-body escape of `s` (without the surrounding quotes).
fn json_escape(s: &str, style: JsonStyle) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if style.slash => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (style.ascii_only && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    if style.upper_hex {
                        let _ = write!(out, "\\u{unit:04X}");
                    } else {
                        let _ = write!(out, "\\u{unit:04x}");
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// What `format!("{:?}", s)` prints, without the surrounding quotes.
fn debug_escape(s: &str) -> String {
    let mut quoted = Zeroizing::new(format!("{s:?}"));
    let inner = quoted[1..quoted.len() - 1].to_owned();
    quoted.clear();
    inner
}

/// The percent-encoded forms: both hex cases, space as `%20` or `+`, and with
/// `/` left alone (Python's `urllib.parse.quote` default).
fn url_forms(value: &[u8], out: &mut Vec<Zeroizing<Vec<u8>>>) {
    for upper in [true, false] {
        for plus in [false, true] {
            push(out, percent_encode(value, upper, plus, false));
        }
        push(out, percent_encode(value, upper, false, true));
    }
}

fn percent_encode(value: &[u8], upper: bool, plus_for_space: bool, keep_slash: bool) -> Vec<u8> {
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    const LOWER: &[u8; 16] = b"0123456789abcdef";
    let hex = if upper { UPPER } else { LOWER };
    let mut out = Vec::with_capacity(value.len() * 3);
    for &b in value {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b);
        } else if b == b' ' && plus_for_space {
            out.push(b'+');
        } else {
            out.extend_from_slice(&[b'%', hex[usize::from(b >> 4)], hex[usize::from(b & 15)]]);
        }
    }
    out
}

/// The base64 forms: whole (padded and not) and the three stable inner parts,
/// in both alphabets.
fn base64_forms(value: &[u8], out: &mut Vec<Zeroizing<Vec<u8>>>) {
    for engine in [&STANDARD, &URL_SAFE] {
        push(out, engine.encode(value).into_bytes());
    }
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        push(out, engine.encode(value).into_bytes());
        for align in 0..3usize {
            push(out, base64_inner(engine, value, align));
        }
    }
}

/// The base64 characters of `value` that do not depend on its neighbours when
/// it starts `align` bytes past a 3-byte group boundary: character `k` covers
/// bits `6k..6k+6` of the stream, and is fixed when those bits all lie in
/// `8*align..8*(align+len)`.
fn base64_inner(engine: &base64::engine::GeneralPurpose, value: &[u8], align: usize) -> Vec<u8> {
    let mut padded = Zeroizing::new(vec![0u8; align]);
    padded.extend_from_slice(value);
    let encoded = Zeroizing::new(engine.encode(&*padded));
    let first = (8 * align).div_ceil(6);
    let end = (8 * (align + value.len())) / 6;
    encoded.as_bytes()[first..end].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(forms: &[Zeroizing<Vec<u8>>], want: &str) -> bool {
        forms.iter().any(|f| f.as_slice() == want.as_bytes())
    }

    #[test]
    fn values_shorter_than_six_bytes_have_no_forms() {
        assert!(forms("abcde").is_empty());
        assert!(forms("   abcde  ").iter().all(|f| f.as_slice() != b"abcde"));
        assert!(!forms("abcdef").is_empty());
    }

    #[test]
    fn escaped_forms_follow_what_json_and_debug_print() {
        let value = "p@ss\"w0rd\\/x\n\u{1}é";
        let f = forms(value);
        let serde = serde_json::to_string(value).expect("serializes");
        assert!(has(&f, &serde[1..serde.len() - 1]), "{serde}");
        let debug = format!("{value:?}");
        assert!(has(&f, &debug[1..debug.len() - 1]), "{debug}");
        assert!(has(&f, r#"p@ss\"w0rd\\\/x\n\u0001é"#));
        assert!(has(&f, r#"p@ss\"w0rd\\/x\n\u0001\u00e9"#));
        let json_of_json = serde_json::to_string(&serde).expect("serializes");
        let inner = &json_of_json[1..json_of_json.len() - 1];
        assert!(has(&f, &inner[2..inner.len() - 2]), "{inner}");
    }

    #[test]
    fn multi_line_values_are_redacted_whole_with_crlf_and_line_by_line() {
        let pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkq\nhkiG9w0BAQEFAASC\n-----END KEY-----\n";
        let f = forms(pem);
        for want in [
            "-----BEGIN KEY-----\r\nMIIEvQIBADANBgkq\r\nhkiG9w0BAQEFAASC\r\n-----END KEY-----",
            "MIIEvQIBADANBgkq",
            "hkiG9w0BAQEFAASC",
            "-----BEGIN KEY-----\\nMIIEvQIBADANBgkq\\nhkiG9w0BAQEFAASC\\n-----END KEY-----",
        ] {
            assert!(has(&f, want), "{want:?}");
        }
    }

    #[test]
    fn url_forms_cover_both_hex_cases_and_plus_for_space() {
        let f = forms("a b/c:d~");
        for want in [
            "a%20b%2Fc%3Ad~",
            "a%20b%2fc%3ad~",
            "a+b%2Fc%3Ad~",
            "a+b%2fc%3ad~",
            "a%20b/c%3Ad~",
            "a%20b/c%3ad~",
        ] {
            assert!(has(&f, want), "{want}");
        }
    }

    #[test]
    fn base64_forms_match_the_value_at_every_offset_in_a_larger_text() {
        let value = b"s3cr3t-v4lue?>";
        let f = forms(std::str::from_utf8(value).expect("utf8"));
        for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            assert!(has(&f, &engine.encode(value)));
            for prefix in 0..6usize {
                let mut text = vec![b'x'; prefix];
                text.extend_from_slice(value);
                text.extend_from_slice(b"-tail");
                let encoded = engine.encode(&text);
                let found = f.iter().any(|p| {
                    p.len() >= 8
                        && encoded
                            .as_bytes()
                            .windows(p.len())
                            .any(|w| w == p.as_slice())
                });
                assert!(found, "prefix {prefix}: {encoded}");
            }
        }
    }
}
