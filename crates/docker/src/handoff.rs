//! The runner's half of the `stdin` hand-off (issue 5): the static init
//! program, the tar that puts it into a created container, the frame that
//! carries the secret set, and the command line `spedy-init` is started with.
//!
//! The init program's half, and the frame format, are documented in
//! `crates/init/src/main.rs`; both sides are tested against each other on the
//! real engine (`tests/handoff.rs`).

use std::sync::OnceLock;

use bytes::Bytes;
use secrecy::ExposeSecret;
use spedy_secrets::SecretSet;
use zeroize::Zeroizing;

/// The static `spedy-init` executable, built by `build.rs`.
pub(crate) const INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/spedy-init"));

/// Where `spedy-init` is put in the container, and its entrypoint.
pub const INIT_PATH: &str = "/.spedy/init";

/// The first five bytes of a frame: `SPDY`, version 1.
const MAGIC: &[u8; 5] = b"SPDY\x01";

/// A tar with `.spedy/` (0755) and `.spedy/init` (0755, root-owned), for
/// `upload_to_container` at `/`. Built once.
pub(crate) fn init_tar() -> Bytes {
    static TAR: OnceLock<Bytes> = OnceLock::new();
    TAR.get_or_init(|| {
        let mut tar = tar::Builder::new(Vec::with_capacity(INIT.len() + 2048));
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        dir.set_mtime(0);
        dir.set_cksum();
        tar.append_data(&mut dir, ".spedy/", std::io::empty())
            .expect("appending to an in-memory tar");
        let mut file = tar::Header::new_gnu();
        file.set_mode(0o755);
        file.set_size(INIT.len() as u64);
        file.set_mtime(0);
        file.set_cksum();
        tar.append_data(&mut file, ".spedy/init", INIT)
            .expect("appending to an in-memory tar");
        Bytes::from(tar.into_inner().expect("finishing an in-memory tar"))
    })
    .clone()
}

/// The frame `spedy-init` reads on stdin: magic, count, then each name and
/// value with a little-endian `u32` length. Zeroized when dropped.
pub(crate) fn encode(secrets: &SecretSet) -> Zeroizing<Vec<u8>> {
    let size: usize = secrets
        .iter()
        .map(|(n, v)| 8 + n.len() + v.expose_secret().len())
        .sum();
    let mut frame = Zeroizing::new(Vec::with_capacity(MAGIC.len() + 4 + size));
    frame.extend_from_slice(MAGIC);
    frame.extend_from_slice(&len32(secrets.len()));
    for (name, value) in secrets.iter() {
        let value = value.expose_secret().as_bytes();
        frame.extend_from_slice(&len32(name.len()));
        frame.extend_from_slice(name.as_bytes());
        frame.extend_from_slice(&len32(value.len()));
        frame.extend_from_slice(value);
    }
    frame
}

fn len32(n: usize) -> [u8; 4] {
    u32::try_from(n)
        .expect("secret sets and values are far below 4 GiB")
        .to_le_bytes()
}

/// The command line the job runs, with `docker run` semantics: the image's
/// `ENTRYPOINT`, then the job's command or else the image's `CMD`. `None`
/// when that is empty.
pub(crate) fn job_argv(
    command: Option<&[String]>,
    image_entrypoint: &[String],
    image_cmd: &[String],
) -> Option<Vec<String>> {
    let mut argv = image_entrypoint.to_vec();
    argv.extend_from_slice(command.unwrap_or(image_cmd));
    (!argv.is_empty()).then_some(argv)
}

/// [`fnv64`] of [`INIT`], computed by `build.rs` (hex, 16 digits).
pub(crate) const INIT_FNV64: &str = env!("SPEDY_INIT_FNV64");

/// 64-bit FNV-1a, the checksum `spedy-init --spedy-audit` prints.
pub(crate) fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn the_frame_is_length_prefixed_and_binary_safe() {
        let mut set = SecretSet::new();
        set.insert("B", SecretString::from("x\ny=z"));
        set.insert("A", SecretString::from(""));
        let f = encode(&set);
        let mut want = b"SPDY\x01".to_vec();
        want.extend_from_slice(&2u32.to_le_bytes());
        want.extend_from_slice(&1u32.to_le_bytes());
        want.extend_from_slice(b"A");
        want.extend_from_slice(&0u32.to_le_bytes());
        want.extend_from_slice(&1u32.to_le_bytes());
        want.extend_from_slice(b"B");
        want.extend_from_slice(&5u32.to_le_bytes());
        want.extend_from_slice(b"x\ny=z");
        assert_eq!(&f[..], &want[..]);
    }

    #[test]
    fn the_job_command_follows_docker_run_semantics() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (ep, cmd) = (s(&["/ep", "-x"]), s(&["default"]));
        assert_eq!(
            job_argv(None, &ep, &cmd),
            Some(s(&["/ep", "-x", "default"]))
        );
        let job = s(&["mine"]);
        assert_eq!(
            job_argv(Some(&job), &ep, &cmd),
            Some(s(&["/ep", "-x", "mine"]))
        );
        assert_eq!(job_argv(Some(&job), &[], &cmd), Some(s(&["mine"])));
        assert_eq!(job_argv(None, &[], &[]), None);
    }

    /// Writes the embedded init into a temp folder and runs it on this host
    /// (it is static, so it runs anywhere on x86_64 Linux).
    fn init_command(dir: &tempfile::TempDir) -> std::process::Command {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join("init");
        std::fs::write(&path, INIT).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::process::Command::new(path)
    }

    #[test]
    fn the_init_gives_up_when_no_frame_comes_and_the_stdin_stays_open() {
        use std::process::Stdio;
        let dir = tempfile::tempdir().unwrap();
        let mut child = init_command(&dir)
            .arg("/bin/true")
            .env("SPEDY_INIT_HANDOFF_WITHIN_MS", "200")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _stdin_kept_open = child.stdin.take();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(125));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err,
            "spedy-init: no secret hand-off on stdin within 200ms\n"
        );
    }

    #[test]
    fn the_init_passes_the_frame_into_the_commands_env_and_says_127_for_a_missing_command() {
        use std::io::Write;
        use std::process::Stdio;
        let dir = tempfile::tempdir().unwrap();
        let mut set = SecretSet::new();
        set.insert("SPEDY_T", SecretString::from("v a=l\nue"));
        let run = |argv: &[&str]| {
            let mut child = init_command(&dir)
                .args(argv)
                .env_clear()
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(&encode(&set))
                .unwrap();
            child.wait_with_output().unwrap()
        };
        let out = run(&["/usr/bin/env"]);
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "SPEDY_T=v a=l\nue\n");
        let out = run(&["/no/such/cmd"]);
        assert_eq!(out.status.code(), Some(127));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "spedy-init: /no/such/cmd: command not found\n"
        );
    }

    #[test]
    fn the_init_program_is_embedded_and_packed_executable() {
        assert_eq!(&INIT[..4], b"\x7fELF");
        assert_eq!(
            INIT_FNV64,
            format!("{:016x}", fnv64(INIT)),
            "build.rs agrees"
        );
        let tar = init_tar();
        let mut archive = tar::Archive::new(&tar[..]);
        let entries: Vec<(String, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [(".spedy/".into(), 0o755), (".spedy/init".into(), 0o755)]
        );
    }
}
