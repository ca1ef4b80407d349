//! Writing the platform's `.env` snippet into the host's `.env` file.
//!
//! Owns the merge (which lines change) and the atomic write. It does not
//! parse values: a line is matched by its key only (`KEY=…`, `export KEY=…`,
//! spaces around `=`), so a value is never read, compared or shown.
//!
//! Invariants:
//! - Only the keys the snippet sets (`SPEDY_API_URL`, `SPEDY_RUNNER_TOKEN`)
//!   change. The first line of each is replaced in place; later duplicates
//!   are dropped (Compose lets the last one win, so a stale duplicate would
//!   win over the new value). Keys the file lacks are appended. Every other
//!   line, comment and blank line is kept byte for byte.
//! - The file is written through a temporary file in the same folder, synced,
//!   then renamed over the target: a reader (or a Ctrl-C) sees the old file
//!   or the new one, never half of one. The result has mode 0600. A symlink
//!   is followed, so the file it points at is the one replaced.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The env name of the runner token line.
pub const TOKEN_KEY: &str = "SPEDY_RUNNER_TOKEN";

/// The key a `.env` line assigns, if it is an assignment (not a comment or a
/// blank line, not a continuation).
pub fn line_key(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.starts_with('#') {
        return None;
    }
    let t = t.strip_prefix("export ").map(str::trim_start).unwrap_or(t);
    let (key, _) = t.split_once('=')?;
    let key = key.trim_end();
    let valid = !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(key)
}

/// Whether the assignment on `line` has a non-empty value (`K=` and `K=""`
/// count as empty). The value itself is never returned.
fn has_value(line: &str) -> bool {
    line.split_once('=').is_some_and(|(_, v)| {
        let v = v.trim();
        !(v.is_empty() || v == "\"\"" || v == "''")
    })
}

/// The 1-based line of the first `SPEDY_RUNNER_TOKEN` assignment with a
/// value, if the text has one.
pub fn existing_token_line(text: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .find(|(_, l)| line_key(l) == Some(TOKEN_KEY) && has_value(l))
        .map(|(i, _)| i + 1)
}

/// `current` with the snippet's assignments put in, as the module says.
pub fn merge(current: &str, snippet: &str) -> String {
    let wanted: Vec<(&str, &str)> = snippet
        .lines()
        .filter_map(|l| line_key(l).map(|k| (k, l)))
        .collect();
    let mut placed = vec![false; wanted.len()];
    let mut out = String::with_capacity(current.len() + snippet.len() + 1);
    for line in current.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let slot = line_key(body).and_then(|k| wanted.iter().position(|(w, _)| *w == k));
        match slot {
            Some(i) if placed[i] => {} // a later duplicate: dropped
            Some(i) => {
                placed[i] = true;
                out.push_str(wanted[i].1);
                out.push('\n');
            }
            None => out.push_str(line),
        }
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for (i, (_, l)) in wanted.iter().enumerate() {
        if !placed[i] {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// The file a write to `path` really replaces: the target of a symlink.
fn real_target(path: &Path) -> io::Result<PathBuf> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path),
        _ => Ok(path.to_owned()),
    }
}

/// Reads the current `.env`; an absent file reads as empty.
pub fn read_current(path: &Path) -> anyhow::Result<String> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `contents` to `path` atomically with mode 0600 (see the module).
pub fn write_atomic(path: &Path, contents: &str) -> anyhow::Result<()> {
    let target = real_target(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let fail = || format!("cannot write {}", target.display());
    // tempfile creates the file with mode 0600 and removes it on any error.
    let mut tmp = tempfile::Builder::new()
        .prefix(".env.spedy-setup.")
        .tempfile_in(&dir)
        .with_context(fail)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o600))
        .with_context(fail)?;
    tmp.write_all(contents.as_bytes()).with_context(fail)?;
    tmp.as_file().sync_all().with_context(fail)?;
    tmp.persist(&target)
        .map_err(|e| e.error)
        .with_context(fail)?;
    // Make the rename itself durable.
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SNIPPET: &str = "SPEDY_API_URL=http://127.0.0.1:1\nSPEDY_RUNNER_TOKEN=rnt_NEW\n";

    #[test]
    fn keys_are_recognised_in_every_form_compose_accepts() {
        let cases = [
            ("K=v", Some("K")),
            ("export K=v", Some("K")),
            ("  K = v", Some("K")),
            ("# K=v", None),
            ("", None),
            ("1K=v", None),
            ("just text", None),
            ("A-B=v", None),
        ];
        for (line, want) in cases {
            assert_eq!(line_key(line), want, "{line:?}");
        }
    }

    #[test]
    fn merging_into_an_empty_file_gives_the_snippet() {
        assert_eq!(merge("", SNIPPET), SNIPPET);
    }

    #[test]
    fn merging_keeps_other_lines_and_replaces_only_the_two_keys() {
        let current = "# my host\nANTHROPIC_API_KEY=sk-local\nSPEDY_API_URL=https://old\n\nexport SPEDY_RUNNER_TOKEN=rnt_OLD\nFOO=\"a # b\"\n";
        let want = "# my host\nANTHROPIC_API_KEY=sk-local\nSPEDY_API_URL=http://127.0.0.1:1\n\nSPEDY_RUNNER_TOKEN=rnt_NEW\nFOO=\"a # b\"\n";
        assert_eq!(merge(current, SNIPPET), want);
    }

    #[test]
    fn merging_drops_later_duplicates_that_would_win_under_compose() {
        let current = "SPEDY_RUNNER_TOKEN=rnt_A\nX=1\nSPEDY_RUNNER_TOKEN=rnt_B\n";
        let got = merge(current, SNIPPET);
        assert_eq!(
            got,
            "SPEDY_RUNNER_TOKEN=rnt_NEW\nX=1\nSPEDY_API_URL=http://127.0.0.1:1\n"
        );
    }

    #[test]
    fn merging_a_file_without_a_final_newline_keeps_its_last_line_whole() {
        assert_eq!(
            merge("X=1", SNIPPET),
            format!("X=1\n{SNIPPET}"),
            "no line is glued to another"
        );
        assert_eq!(
            merge("X=1\r\nY=2\r\n", SNIPPET),
            format!("X=1\r\nY=2\r\n{SNIPPET}")
        );
    }

    #[test]
    fn an_existing_token_is_found_only_when_it_has_a_value() {
        assert_eq!(
            existing_token_line("A=1\nSPEDY_RUNNER_TOKEN=rnt_x\n"),
            Some(2)
        );
        assert_eq!(existing_token_line("SPEDY_RUNNER_TOKEN=\n"), None);
        assert_eq!(existing_token_line("SPEDY_RUNNER_TOKEN=\"\"\n"), None);
        assert_eq!(existing_token_line("# SPEDY_RUNNER_TOKEN=rnt_x\n"), None);
    }

    #[test]
    fn the_atomic_write_leaves_mode_0600_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        fs::write(&path, "OLD=1\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&path, "NEW=1\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "NEW=1\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [".env"]);
    }

    #[test]
    fn the_atomic_write_follows_a_symlink_and_keeps_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.env");
        fs::write(&real, "OLD=1\n").unwrap();
        let link = dir.path().join(".env");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, "NEW=1\n").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&real).unwrap(), "NEW=1\n");
    }

    #[test]
    fn a_write_into_a_missing_folder_fails_with_the_path() {
        let err = write_atomic(Path::new("/nonexistent-dir-spedy/.env"), "X=1\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent-dir-spedy/.env"),
            "{err:#}"
        );
    }
}
