//! `spedy-init`: the init program of a job container on the `stdin` hand-off
//! path (issue 5). It owns one thing: turning the secret set the runner writes
//! on stdin into environment variables of the job, and nothing else.
//!
//! The runner uploads this binary into the created (not yet started)
//! container as `/.spedy/init`, makes it the entrypoint and passes the job's
//! real command (or the image's own `ENTRYPOINT` + `CMD`) as its arguments:
//!
//! ```text
//! /.spedy/init <program> [args...]
//! ```
//!
//! It reads exactly one frame from stdin (format below), adds the variables
//! to the environment of the command it builds, and `exec`s `<program>`. The
//! values never pass through the container's config, so `docker inspect` and
//! dockerd's files under `/var/lib/docker/containers/<id>/` never hold them.
//!
//! # The frame (binary-safe, little-endian)
//! ```text
//! "SPDY" 0x01                      magic and version
//! u32 count                        at most 10 000
//! count × { u32 name_len, name,    1..=4096 bytes, no '=' and no NUL
//!           u32 value_len, value } at most 1 MiB, no NUL
//! ```
//! An empty stdin (EOF before the first byte) means "no secrets". The frame is
//! read with unbuffered reads of exactly its length, so nothing after it is
//! consumed; the runner closes stdin right after it, so the job sees EOF.
//!
//! # PID 1: exec, not supervise
//! `spedy-init` replaces itself with the job (`execve`), so the job is PID 1,
//! exactly as it would be without the hand-off. Why that is enough:
//! - signals reach the job directly: `docker stop` and the runner's cancel
//!   send SIGTERM to PID 1, which is the job itself; a job that installs no
//!   handler (PID 1 has no default action) is SIGKILLed after the grace period;
//! - zombies cannot outlive the job: every job container is removed when the
//!   job ends, which tears down its PID namespace, and `pids_limit` caps how
//!   many can pile up meanwhile; an image that needs a reaper brings its own
//!   (tini, dumb-init) as its entrypoint, which still works behind us;
//! - after `exec` no copy of the secret frame stays in a second process: the
//!   address space that read it is gone;
//! - staying PID 1 would need signal handlers, hence `unsafe` and libc, which
//!   this std-only program does not have (`unsafe_code` is forbidden).
//!
//! # Exit codes (before `exec`; after it the job's own codes apply)
//! - 125: the hand-off itself failed (malformed frame, no command given, no
//!   frame within 30 s of the start);
//! - 126: the command exists but cannot be executed;
//! - 127: the command does not exist.
//!
//! Messages go to stderr, start with `spedy-init: ` and never contain a value.
//!
//! # Audit mode
//! `spedy-init --spedy-audit <NAME>` is a tiny job used by the runner's
//! self-audit: it prints `spedy-audit: <NAME> len=<n> fnv64=<hex>` (a checksum,
//! never the value) and then sleeps for up to 60 s so the auditor can inspect
//! the running container.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::Duration;

/// The first five bytes of a frame.
const MAGIC: &[u8; 5] = b"SPDY\x01";
/// The most variables one frame may carry.
const MAX_COUNT: u32 = 10_000;
/// The longest accepted name.
const MAX_NAME: u32 = 4096;
/// The longest accepted value.
const MAX_VALUE: u32 = 1 << 20;

/// How long the runner has to write the frame after the start.
const HANDOFF_WITHIN: Duration = Duration::from_secs(30);

/// Exit code when the hand-off itself failed.
const EXIT_HANDOFF: u8 = 125;
/// Exit code when the command cannot be executed.
const EXIT_NOT_EXECUTABLE: u8 = 126;
/// Exit code when the command does not exist.
const EXIT_NOT_FOUND: u8 = 127;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--spedy-audit") {
        return audit(args.get(1));
    }
    watchdog();
    let vars = match read_stdin_frame() {
        Ok(vars) => vars,
        Err(e) => {
            return fail(
                EXIT_HANDOFF,
                &format!("malformed secret hand-off on stdin: {e}"),
            );
        }
    };
    let Some((program, rest)) = args.split_first() else {
        return fail(EXIT_HANDOFF, "no command to run");
    };
    let err = Command::new(program).args(rest).envs(vars).exec();
    let shown = program.to_string_lossy();
    match err.kind() {
        ErrorKind::NotFound => fail(EXIT_NOT_FOUND, &format!("{shown}: command not found")),
        ErrorKind::PermissionDenied => fail(
            EXIT_NOT_EXECUTABLE,
            &format!("{shown}: permission denied (not executable)"),
        ),
        _ => fail(
            EXIT_NOT_EXECUTABLE,
            &format!("{shown}: cannot execute: {err}"),
        ),
    }
}

/// Ends the process (exit 125) when the frame has not been read within
/// [`HANDOFF_WITHIN`]: a runner that died between start and hand-off must not
/// leave a job waiting forever. `exec` ends this thread with the rest of the
/// process image, so it never fires once the job runs.
/// `SPEDY_INIT_HANDOFF_WITHIN_MS` (non-secret, from the container's env)
/// shortens it, for tests.
fn watchdog() {
    let within = std::env::var("SPEDY_INIT_HANDOFF_WITHIN_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(HANDOFF_WITHIN, Duration::from_millis);
    std::thread::spawn(move || {
        std::thread::sleep(within);
        let _ = writeln!(
            io::stderr(),
            "spedy-init: no secret hand-off on stdin within {within:?}"
        );
        std::process::exit(i32::from(EXIT_HANDOFF));
    });
}

/// Prints `spedy-init: <message>` on stderr and returns `code`.
fn fail(code: u8, message: &str) -> ExitCode {
    let _ = writeln!(io::stderr(), "spedy-init: {message}");
    ExitCode::from(code)
}

/// Reads the frame from an unbuffered duplicate of fd 0, so that not one byte
/// past the frame is taken from the job's stdin.
fn read_stdin_frame() -> io::Result<Vec<(OsString, OsString)>> {
    let fd = io::stdin().as_fd().try_clone_to_owned()?;
    decode(&mut File::from(fd))
}

/// Decodes one frame; an immediate EOF is an empty set.
fn decode(r: &mut impl Read) -> io::Result<Vec<(OsString, OsString)>> {
    let mut magic = [0u8; 5];
    let first = read_full(r, &mut magic)?;
    if first == 0 {
        return Ok(Vec::new());
    }
    if first < magic.len() || &magic != MAGIC {
        return Err(invalid("bad magic"));
    }
    let count = read_u32(r)?;
    if count > MAX_COUNT {
        return Err(invalid("too many variables"));
    }
    let mut vars = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let name = read_field(r, MAX_NAME, "name")?;
        if name.is_empty() || name.contains(&b'=') || name.contains(&0) {
            return Err(invalid("invalid variable name"));
        }
        let value = read_field(r, MAX_VALUE, "value")?;
        if value.contains(&0) {
            return Err(invalid("a value contains a NUL byte"));
        }
        vars.push((OsString::from_vec(name), OsString::from_vec(value)));
    }
    Ok(vars)
}

/// Reads until `buf` is full or EOF; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_field(r: &mut impl Read, max: u32, what: &str) -> io::Result<Vec<u8>> {
    let len = read_u32(r)?;
    if len > max {
        return Err(invalid(&format!("a {what} is longer than {max} bytes")));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg.to_owned())
}

/// The self-audit's job: proves the variable arrived without printing it.
fn audit(name: Option<&OsString>) -> ExitCode {
    let Some(name) = name else {
        return fail(EXIT_HANDOFF, "--spedy-audit needs a variable name");
    };
    let shown = name.to_string_lossy();
    let line = match std::env::var_os(name) {
        Some(v) => {
            let v = v.into_vec();
            format!(
                "spedy-audit: {shown} len={} fnv64={:016x}\n",
                v.len(),
                fnv64(&v)
            )
        }
        None => format!("spedy-audit: {shown} missing\n"),
    };
    let mut out = io::stdout();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
    std::thread::sleep(Duration::from_secs(60));
    ExitCode::SUCCESS
}

/// 64-bit FNV-1a: the audit's checksum (the runner computes the same).
fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn frame(vars: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut f = MAGIC.to_vec();
        f.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        for (k, v) in vars {
            f.extend_from_slice(&(k.len() as u32).to_le_bytes());
            f.extend_from_slice(k);
            f.extend_from_slice(&(v.len() as u32).to_le_bytes());
            f.extend_from_slice(v);
        }
        f
    }

    #[test]
    fn a_frame_with_newlines_and_equals_signs_in_values_decodes_exactly() {
        let f = frame(&[(b"A", b"x=y\nz"), (b"B", b""), (b"C", "é\"'".as_bytes())]);
        let mut rest = &f[..];
        let vars = decode(&mut rest).unwrap();
        assert_eq!(vars.len(), 3);
        assert_eq!(vars[0], ("A".into(), "x=y\nz".into()));
        assert_eq!(vars[1], ("B".into(), "".into()));
        assert_eq!(vars[2].1, OsString::from("é\"'"));
    }

    #[test]
    fn bytes_after_the_frame_are_not_consumed() {
        let mut f = frame(&[(b"A", b"1")]);
        f.extend_from_slice(b"job input");
        let mut rest = &f[..];
        decode(&mut rest).unwrap();
        assert_eq!(rest, b"job input");
    }

    #[test]
    fn an_empty_stdin_means_no_secrets() {
        assert!(decode(&mut &b""[..]).unwrap().is_empty());
    }

    #[test]
    fn garbage_truncation_and_bad_names_are_refused() {
        assert!(decode(&mut &b"hello world"[..]).is_err());
        assert!(decode(&mut &b"SPD"[..]).is_err());
        let f = frame(&[(b"A", b"123456")]);
        assert!(decode(&mut &f[..f.len() - 1]).is_err());
        assert!(decode(&mut &frame(&[(b"A=B", b"v")])[..]).is_err());
        assert!(decode(&mut &frame(&[(b"", b"v")])[..]).is_err());
        assert!(decode(&mut &frame(&[(b"A", b"v\0")])[..]).is_err());
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&(MAX_COUNT + 1).to_le_bytes());
        assert!(decode(&mut &huge[..]).is_err());
    }

    #[test]
    fn the_checksum_is_standard_fnv1a() {
        assert_eq!(fnv64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
