//! The local `.env` file, parsed by Docker Compose's rules.
//!
//! Compose reads the same file (`env_file:` and project `.env`), so the runner
//! must read it the same way; dotenvy departs from Compose (unquoted values
//! with spaces, `${X:-default}`), see `shared/design/crate-notes.md` §5. This
//! is a small parser after compose-go's `dotenv` package. It never touches the
//! process environment: the caller passes a `lookup` for interpolation and
//! inherited keys.
//!
//! The rules (each one has a row in the table tests below):
//! - blank lines and lines starting with `#` are skipped; CRLF reads as LF; a
//!   UTF-8 byte order mark is skipped;
//! - `export KEY=value` is `KEY=value`; spaces around `=` are allowed, and
//!   `KEY: value` (YAML style) too;
//! - keys hold letters, digits, `_`, `.`, `-`, `[` and `]`;
//! - a key alone on its line (no `=`) takes the value `lookup` gives it, and is
//!   left out when `lookup` has none (Compose's "inherit from the shell");
//! - unquoted: the value runs to the end of the line, is cut at the first ` #`
//!   (space then hash) and trimmed; spaces inside stay; backslashes are
//!   literal; `$` interpolation applies;
//! - single quotes: literal (only `\'` is an escape), may span lines, no
//!   interpolation;
//! - double quotes: may span lines; escapes `\n \t \r \\ \" \a \b \f \v`, `\$`
//!   (a literal `$`) and `\0` + three octal digits; any other `\x` stays as is;
//!   then `$` interpolation;
//! - after a closing quote only blanks and a `#` comment may follow;
//! - interpolation (`$X`, `${X}`, `${X:-d}`, `${X-d}`, `${X:?e}`, `${X?e}`,
//!   `${X:+a}`, `${X+a}`, `$$`) asks `lookup` first, then the lines above, as
//!   compose-go does (the private `interpolate` module has the grammar);
//! - a key given twice: the last one wins (its line is reported).
//!
//! Errors name the file and the line where the statement starts and say what
//! was expected; they never quote the line (it may be a pasted secret).

mod interpolate;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::Error;
use interpolate::{InterpError, interpolate};

/// One `KEY=value` of the file.
#[derive(Clone)]
pub struct DotenvEntry {
    /// The key.
    pub key: String,
    /// The value, after quotes, escapes and interpolation.
    pub value: SecretString,
    /// The line the statement starts on (1-based).
    pub line: usize,
}

impl fmt::Debug for DotenvEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DotenvEntry")
            .field("key", &self.key)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// Reads and parses the file at `path`. The raw bytes are zeroized after
/// parsing.
pub fn read(
    path: &Path,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<DotenvEntry>, Error> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?);
    let text = std::str::from_utf8(&bytes).map_err(|e| Error::NotUtf8 {
        path: path.to_owned(),
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count(),
    })?;
    parse(text, path, lookup)
}

/// Parses `.env` text; `path` is only used in errors.
pub fn parse(
    text: &str,
    path: &Path,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<DotenvEntry>, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let normalized = Zeroizing::new(text.replace("\r\n", "\n"));
    let mut parser = Parser {
        src: &normalized,
        pos: 0,
        line: 1,
        lookup: &|name| lookup(name).map(Zeroizing::new),
        seen: Vec::new(),
    };
    parser.run().map_err(|fault| fault.into_error(path))?;
    let mut last_of: HashMap<&str, usize> = HashMap::new();
    for (i, (key, _, _)) in parser.seen.iter().enumerate() {
        last_of.insert(key.as_str(), i);
    }
    let keep: Vec<bool> = (0..parser.seen.len())
        .map(|i| last_of.get(parser.seen[i].0.as_str()) == Some(&i))
        .collect();
    Ok(parser
        .seen
        .into_iter()
        .zip(keep)
        .filter(|(_, keep)| *keep)
        .map(|((key, value, line), _)| DotenvEntry {
            key,
            value: SecretString::from(value.as_str()),
            line,
        })
        .collect())
}

/// A parse failure before the path is attached.
enum Fault {
    Malformed { line: usize, expected: &'static str },
    Missing { line: usize, name: String },
}

impl Fault {
    fn into_error(self, path: &Path) -> Error {
        match self {
            Fault::Malformed { line, expected } => Error::Malformed {
                path: path.to_owned(),
                line,
                expected,
            },
            Fault::Missing { line, name } => Error::MissingRequired {
                path: path.to_owned(),
                line,
                name,
            },
        }
    }
}

type Lookup<'a> = &'a dyn Fn(&str) -> Option<Zeroizing<String>>;

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    /// The line `pos` is on (1-based).
    line: usize,
    lookup: Lookup<'a>,
    /// Every statement so far: key, value, line (duplicates included).
    seen: Vec<(String, Zeroizing<String>, usize)>,
}

const EXPECT_KEY: &str = "KEY=VALUE";
const EXPECT_QUOTE: &str = "a closing quote";
const EXPECT_EOL: &str = "nothing but a comment after the closing quote";
const EXPECT_INTERP: &str = "a valid ${NAME} expression";

impl Parser<'_> {
    fn run(&mut self) -> Result<(), Fault> {
        while self.skip_blank_and_comments() {
            let line = self.line;
            let (key, has_value) = self.key(line)?;
            if !has_value {
                if let Some(value) = (self.lookup)(&key) {
                    self.seen.push((key, value, line));
                }
                continue;
            }
            let value = self.value(line)?;
            self.seen.push((key, value, line));
        }
        Ok(())
    }

    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    /// Moves past `n` bytes, counting newlines.
    fn advance(&mut self, n: usize) {
        let skipped = &self.src[self.pos..self.pos + n];
        self.line += skipped.bytes().filter(|b| *b == b'\n').count();
        self.pos += n;
    }

    /// Skips blank lines and comments; false at the end of the text.
    fn skip_blank_and_comments(&mut self) -> bool {
        loop {
            let blank = self.rest().len() - self.rest().trim_start().len();
            self.advance(blank);
            if self.rest().is_empty() {
                return false;
            }
            if !self.rest().starts_with('#') {
                return true;
            }
            self.advance(self.rest().find('\n').unwrap_or(self.rest().len()));
        }
    }

    /// Reads `[export ]KEY` up to `=`/`:` (true) or the end of the line
    /// (false: the key inherits its value).
    fn key(&mut self, line: usize) -> Result<(String, bool), Fault> {
        let malformed = Fault::Malformed {
            line,
            expected: EXPECT_KEY,
        };
        if let Some(tail) = self.rest().strip_prefix("export")
            && tail.starts_with([' ', '\t'])
        {
            let skip = self.rest().len() - tail.trim_start_matches([' ', '\t']).len();
            self.advance(skip);
        }
        let rest = self.rest();
        let end = rest.find(['=', ':', '\n']).unwrap_or(rest.len());
        let key = rest[..end].trim_end_matches([' ', '\t']);
        let valid = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']'));
        if !valid {
            return Err(malformed);
        }
        let key = key.to_owned();
        let has_value = rest[end..].starts_with(['=', ':']);
        self.advance(if has_value { end + 1 } else { end });
        Ok((key, has_value))
    }

    /// Reads the value after `=`, quoted or not, and interpolates it.
    fn value(&mut self, line: usize) -> Result<Zeroizing<String>, Fault> {
        let blank = self.rest().len() - self.rest().trim_start_matches([' ', '\t']).len();
        self.advance(blank);
        let raw = match self.rest().chars().next() {
            Some(q @ ('"' | '\'')) => {
                let body = self.quoted(q, line)?;
                if q == '\'' {
                    return Ok(body);
                }
                unescape(&body)
            }
            _ => self.unquoted(),
        };
        let lookup = self.lookup;
        let seen = &self.seen;
        let resolve = |name: &str| {
            lookup(name).or_else(|| {
                let (_, value, _) = seen.iter().rev().find(|(k, _, _)| k == name)?;
                Some(value.clone())
            })
        };
        interpolate(&raw, &resolve).map_err(|e| match e {
            InterpError::Invalid => Fault::Malformed {
                line,
                expected: EXPECT_INTERP,
            },
            InterpError::Missing(name) => Fault::Missing { line, name },
        })
    }

    fn unquoted(&mut self) -> Zeroizing<String> {
        let rest = self.rest();
        let end = rest.find('\n').unwrap_or(rest.len());
        let mut value = &rest[..end];
        if let Some(cut) = value.find(" #") {
            value = &value[..cut];
        }
        let value = Zeroizing::new(value.trim_end().to_owned());
        self.advance(end);
        value
    }

    /// Reads a quoted body; only an escaped quote loses its backslash here.
    fn quoted(&mut self, quote: char, line: usize) -> Result<Zeroizing<String>, Fault> {
        let mut body = Zeroizing::new(String::new());
        let mut escaped = false;
        let mut close = None;
        for (i, c) in self.rest().char_indices().skip(1) {
            if c == quote && !escaped {
                close = Some(i);
                break;
            }
            if escaped {
                if c != quote {
                    body.push('\\');
                }
                body.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else {
                body.push(c);
            }
        }
        let close = close.ok_or(Fault::Malformed {
            line,
            expected: EXPECT_QUOTE,
        })?;
        self.advance(close + 1);
        let tail = self.rest();
        let eol = tail.find('\n').unwrap_or(tail.len());
        let after = tail[..eol].trim_start();
        if !(after.is_empty() || after.starts_with('#')) {
            return Err(Fault::Malformed {
                line,
                expected: EXPECT_EOL,
            });
        }
        self.advance(eol);
        Ok(body)
    }
}

/// Applies the double-quote escapes (compose-go `expandEscapes`). `\$`
/// becomes `$$`, which interpolation turns into a literal `$`.
fn unescape(body: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(body.len()));
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(next) = chars.next() else {
            out.push('\\');
            break;
        };
        match next {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '$' => out.push_str("$$"),
            '0' => {
                let digits: String = chars
                    .clone()
                    .take(3)
                    .take_while(char::is_ascii_digit)
                    .collect();
                match octal(&digits) {
                    Some(c) => {
                        out.push(c);
                        chars.nth(2);
                    }
                    None => {
                        // Not an escape Go accepts: keep the text as it was.
                        out.push_str("\\0");
                        out.push_str(&digits);
                        for _ in 0..digits.len() {
                            chars.next();
                        }
                    }
                }
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}

/// Three octal digits up to `377`, as the character of that code point.
fn octal(digits: &str) -> Option<char> {
    if digits.len() != 3 {
        return None;
    }
    let v = u32::from_str_radix(digits, 8)
        .ok()
        .filter(|v| *v <= 0o377)?;
    char::from_u32(v)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/spedy".into()),
            "FROM_ENV" => Some("env-wins".into()),
            _ => None,
        }
    }

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text, Path::new("/etc/spedy/.env"), lookup)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .into_iter()
            .map(|e| (e.key, e.value.expose_secret().to_owned()))
            .collect()
    }

    fn one(text: &str) -> String {
        let got = pairs(text);
        assert_eq!(got.len(), 1, "{text:?}: {got:?}");
        got[0].1.clone()
    }

    #[test]
    fn values_follow_the_compose_rules_table() {
        let table: &[(&str, &str)] = &[
            ("K=v", "v"),
            ("export K=v", "v"),
            ("export\tK=v", "v"),
            ("K = v", "v"),
            ("K=  v  ", "v"),
            ("K: v", "v"),
            ("K=", ""),
            ("K=v # comment", "v"),
            ("K=abc#def", "abc#def"),
            ("K=a\t#b", "a\t#b"),
            ("K=unquoted value with spaces", "unquoted value with spaces"),
            ("K=a\\ b", "a\\ b"),
            ("K=some\\tvalue", "some\\tvalue"),
            ("K=\"a # b\"", "a # b"),
            ("K=\"v\" # c", "v"),
            ("K=\"x\\ny\"", "x\ny"),
            ("K=\"x\\ty\\rz\"", "x\ty\rz"),
            ("K=\"a\\\\b\"", "a\\b"),
            ("K=\"{\\\"a\\\": 1}\"", "{\"a\": 1}"),
            ("K=\"a\\qb\"", "a\\qb"),
            ("K=\"\\0101\"", "A"),
            ("K=\"\\$HOME\"", "$HOME"),
            ("K=\"l1\nl2\"", "l1\nl2"),
            ("K='$HOME \\n'", "$HOME \\n"),
            ("K='Let\\'s go!'", "Let's go!"),
            ("K='l1\nl2'", "l1\nl2"),
            ("K=$HOME/x", "/home/spedy/x"),
            ("K=${HOME}", "/home/spedy"),
            ("K=\"${HOME}\"", "/home/spedy"),
            ("K=${NOPE}", ""),
            ("K=${NOPE:-def}", "def"),
            ("K=${NOPE-def}", "def"),
            ("K=${HOME:+alt}", "alt"),
            ("K=a$$b", "a$b"),
            ("K=v\r\n", "v"),
            ("\u{feff}K=v", "v"),
        ];
        for (text, want) in table {
            assert_eq!(one(text), *want, "{text:?}");
        }
    }

    #[test]
    fn structure_follows_the_compose_rules() {
        let text = "# header\n\n  # indented comment\nA=1\r\nB=${A}2\nexport C=\"multi\nline\"\nA=last\nHOME\nMISSING\n";
        let got = pairs(text);
        let want = [
            ("B", "12"),
            ("C", "multi\nline"),
            ("A", "last"),
            ("HOME", "/home/spedy"),
        ];
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
        let lines: Vec<usize> = parse(text, Path::new("x"), lookup)
            .expect("parses")
            .iter()
            .map(|e| e.line)
            .collect();
        assert_eq!(lines, [5, 6, 8, 9]);
    }

    #[test]
    fn the_process_env_wins_over_earlier_lines_in_interpolation() {
        assert_eq!(pairs("FROM_ENV=file\nK=$FROM_ENV")[1].1, "env-wins");
    }

    #[test]
    fn malformed_lines_name_file_line_and_expectation_but_never_the_value() {
        let table: &[(&str, usize, &str)] = &[
            ("A=1\nthis is CANARY_garbage\n", 2, "expected KEY=VALUE"),
            ("A=1\n\nCANARY KEY=v\n", 3, "expected KEY=VALUE"),
            ("=CANARY_value\n", 1, "expected KEY=VALUE"),
            ("K$=CANARY_value\n", 1, "expected KEY=VALUE"),
            ("A=1\nK=\"CANARY_value\n", 2, "expected a closing quote"),
            ("K='CANARY_value", 1, "expected a closing quote"),
            (
                "K=\"a\"CANARY_value\n",
                1,
                "expected nothing but a comment after the closing quote",
            ),
            (
                "K=\"a\nb\"\nL=${CANARY_value\n",
                3,
                "expected a valid ${NAME} expression",
            ),
            (
                "K=${X:?CANARY_value}\n",
                1,
                "required variable X is missing a value",
            ),
        ];
        for (text, line, what) in table {
            let err = parse(text, Path::new("/etc/spedy/.env"), lookup)
                .expect_err(text)
                .to_string();
            assert!(
                err.contains(&format!("line {line} in /etc/spedy/.env")),
                "{text:?}: {err}"
            );
            assert!(err.ends_with(what), "{text:?}: {err}");
            assert!(!err.contains("CANARY"), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_documented_example_error_reads_as_promised() {
        let err = parse(
            "A=1\n\n\n\n\n\nnot a key value\n",
            Path::new("/etc/spedy/.env"),
            lookup,
        )
        .expect_err("malformed");
        assert_eq!(
            err.to_string(),
            "malformed line 7 in /etc/spedy/.env: expected KEY=VALUE"
        );
    }

    #[test]
    fn reading_a_file_reports_io_and_encoding_errors_by_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.env");
        let err = read(&missing, lookup).expect_err("missing").to_string();
        assert!(
            err.starts_with("cannot read ") && err.contains("nope.env"),
            "{err}"
        );
        let bad = dir.path().join("bad.env");
        std::fs::write(&bad, b"A=1\nB=\xff\xfe\n").expect("write");
        let err = read(&bad, lookup).expect_err("not utf8").to_string();
        assert!(
            err.starts_with("malformed line 2 in ") && err.ends_with("expected UTF-8 text"),
            "{err}"
        );
        let good = dir.path().join("good.env");
        std::fs::write(&good, "A=1\n").expect("write");
        assert_eq!(read(&good, lookup).expect("reads").len(), 1);
    }

    #[test]
    fn debug_of_an_entry_shows_the_key_but_not_the_value() {
        let entries = parse("TOKEN=CANARY_dotenv_debug", Path::new("x"), lookup).expect("parses");
        let debug = format!("{entries:?}");
        assert!(
            debug.contains("TOKEN") && !debug.contains("CANARY"),
            "{debug}"
        );
    }
}
