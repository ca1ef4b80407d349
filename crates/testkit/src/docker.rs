//! The Docker side of the tests: the engine guard, the `FROM scratch` images
//! the tests build themselves, and the label checks that prove no container
//! is left behind.
//!
//! Owns: [`require_engine`] (fails, never skips, when no engine answers),
//! [`probe_image`] and [`image_with_entrypoint`] (built through bollard's build
//! API from an in-memory tar; no registry is ever contacted), the unique
//! runner id every test labels its containers with, and
//! [`containers_with_label`] / [`assert_no_containers`] / [`remove_containers`],
//! and the two looks a secret-handling test needs: [`inspect_raw`] (the
//! engine's own `docker inspect` JSON) and [`engine_files_containing`] (the
//! engine's and the runtime's files for one container).
//!
//! # Images
//! The probe (`crates/probe`) is compiled static by this crate's build script
//! and embedded as [`PROBE`]. Each image is tagged by a hash of everything in
//! its context, so a changed probe gets a new tag and an unchanged one is
//! reused. Building is safe when several test binaries do it at the same
//! time: within a process a `OnceCell` builds each tag once, and across
//! processes an exclusive lock file in the temp folder serialises the
//! inspect-then-build of one tag. Test images are small (about 1.3 MB) and
//! are kept between runs.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use bollard::Docker;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use rand::distr::{Alphanumeric, SampleString};
use tokio::sync::OnceCell;

/// The static `spedy-probe` executable (see `crates/probe` for its argument
/// language). Inside [`probe_image`] it is `/bin/probe`.
pub const PROBE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/spedy-probe"));

/// The label every job container carries, with the runner id as its value.
pub const RUNNER_LABEL: &str = "io.spedy.runner";

/// Connects to the engine (`DOCKER_HOST` or the local socket), negotiates the
/// API version and pings it.
///
/// # Panics
/// With a clear message when no engine answers: tests that need Docker fail,
/// they are never skipped silently.
pub async fn require_engine() -> Docker {
    let connected = async {
        let docker = Docker::connect_with_defaults()?.negotiate_version().await?;
        docker.ping().await?;
        Ok::<_, bollard::errors::Error>(docker)
    };
    match connected.await {
        Ok(docker) => docker,
        Err(e) => panic!(
            "these tests need a Docker engine: `docker info` failed: {e}\n\
             (DOCKER_HOST={:?}; start the engine or point DOCKER_HOST at one)",
            std::env::var("DOCKER_HOST").unwrap_or_default()
        ),
    }
}

/// A fresh runner id for one test, `run_test_<12 random alphanumerics>`, so
/// the test's containers can be found (and must be gone) by label.
pub fn unique_runner_id() -> String {
    let suffix = Alphanumeric.sample_string(&mut rand::rng(), 12);
    format!("run_test_{}", suffix.to_lowercase())
}

/// The `FROM scratch` image with the probe at `/bin/probe` and no
/// `ENTRYPOINT` or `CMD`: a job runs it with a command such as
/// `["/bin/probe", "names", "exit", "3"]` (or `probe …`, found on `PATH`).
pub async fn probe_image() -> String {
    static TAG: OnceCell<String> = OnceCell::const_new();
    TAG.get_or_init(|| build_probe_image(&[], &[]))
        .await
        .clone()
}

/// A `FROM scratch` image with the probe at `/bin/probe` and the given
/// exec-form `ENTRYPOINT` and `CMD` (either may be empty, then it is left
/// out), for the tests of a job that names no command.
pub async fn image_with_entrypoint(entrypoint: &[&str], cmd: &[&str]) -> String {
    build_probe_image(entrypoint, cmd).await
}

/// Builds (or reuses) a probe image with this `ENTRYPOINT` and `CMD`.
async fn build_probe_image(entrypoint: &[&str], cmd: &[&str]) -> String {
    let mut dockerfile = String::from("FROM scratch\nCOPY probe /bin/probe\n");
    if !entrypoint.is_empty() {
        dockerfile += &format!("ENTRYPOINT {}\n", json_array(entrypoint));
    }
    if !cmd.is_empty() {
        dockerfile += &format!("CMD {}\n", json_array(cmd));
    }
    let mut hash = fnv64(PROBE);
    hash ^= fnv64(dockerfile.as_bytes()).rotate_left(1);
    let tag = format!("spedy-test/probe:{hash:016x}");
    build_image_once(&tag, &dockerfile, &[("probe", PROBE)]).await;
    tag
}

/// Builds `tag` from `dockerfile` and `files` unless an image with that tag
/// exists; serialised across processes by a lock file per tag.
///
/// # Panics
/// When the engine refuses the build (the message names the tag and Docker's
/// error).
pub async fn build_image_once(tag: &str, dockerfile: &str, files: &[(&str, &[u8])]) {
    static IN_PROCESS: OnceLock<Mutex<HashMap<String, ()>>> = OnceLock::new();
    let built = IN_PROCESS.get_or_init(Default::default);
    if built.lock().expect("image registry lock").contains_key(tag) {
        return;
    }
    let docker = require_engine().await;
    let lock_path = std::env::temp_dir().join(format!(
        "spedy-testkit-image-{}.lock",
        tag.replace(['/', ':'], "_")
    ));
    let lock = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::create(&lock_path).expect("creating the image lock file");
        file.lock().expect("locking the image lock file");
        file
    })
    .await
    .expect("the lock task does not panic");
    if docker.inspect_image(tag).await.is_err() {
        let context = tar_context(dockerfile, files);
        let options = BuildImageOptionsBuilder::new()
            .dockerfile("Dockerfile")
            .t(tag)
            .rm(true)
            .forcerm(true)
            .build();
        let mut stream =
            docker.build_image(options, None, Some(bollard::body_full(context.into())));
        while let Some(step) = stream.next().await {
            if let Err(e) = step {
                panic!("building the test image {tag} failed: {e}");
            }
        }
    }
    drop(lock);
    built
        .lock()
        .expect("image registry lock")
        .insert(tag.to_owned(), ());
}

/// An in-memory tar with the Dockerfile and the files (mode 0755).
fn tar_context(dockerfile: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8], mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, data)
            .expect("appending to an in-memory tar");
    };
    add("Dockerfile", dockerfile.as_bytes(), 0o644);
    for (name, data) in files {
        add(name, data, 0o755);
    }
    tar.into_inner().expect("finishing an in-memory tar")
}

fn json_array(items: &[&str]) -> String {
    serde_json::to_string(items).expect("strings serialise")
}

/// 64-bit FNV-1a, for image tags.
fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The ids of every container (running or not) labelled
/// `io.spedy.runner=<runner_id>`.
pub async fn containers_with_label(runner_id: &str) -> Vec<String> {
    let label = format!("{RUNNER_LABEL}={runner_id}");
    containers_with_labels(&[&label]).await
}

/// The ids of this runner's *job* containers: labelled with both the runner
/// id and a job id. The executor's helper containers (labelled with the
/// runner id only) are not jobs.
pub async fn job_containers(runner_id: &str) -> Vec<String> {
    let runner = format!("{RUNNER_LABEL}={runner_id}");
    containers_with_labels(&[&runner, "io.spedy.job"]).await
}

/// The ids of every container (running or not) carrying all `labels`
/// (`key=value`, or `key` for any value).
async fn containers_with_labels(labels: &[&str]) -> Vec<String> {
    let docker = require_engine().await;
    let filters = HashMap::from([("label", labels.to_vec())]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .expect("listing containers by label")
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

/// Panics when a container labelled with `runner_id` still exists, after
/// removing them (so one failing test does not leave containers behind).
pub async fn assert_no_containers(runner_id: &str) {
    let left = containers_with_label(runner_id).await;
    if !left.is_empty() {
        remove_containers(runner_id).await;
        panic!("containers left behind for runner {runner_id}: {left:?}");
    }
}

/// Force-removes every container labelled with `runner_id`; returns how many.
pub async fn remove_containers(runner_id: &str) -> usize {
    let docker = require_engine().await;
    let ids = containers_with_label(runner_id).await;
    for id in &ids {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        let _ = docker.remove_container(id, Some(options)).await;
    }
    ids.len()
}

/// The engine's own JSON for container `id` (what `docker inspect` prints),
/// read raw over the engine's socket rather than through bollard's model,
/// which drops fields it does not know.
///
/// # Panics
/// When the engine cannot be reached or answers with an error.
pub async fn inspect_raw(id: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
    let request = format!("GET /containers/{id}/json HTTP/1.0\r\nHost: docker\r\n\r\n");
    let mut response = Vec::new();
    if let Some(path) = host.strip_prefix("unix://") {
        let mut s = tokio::net::UnixStream::connect(path)
            .await
            .expect("connecting to the engine socket");
        s.write_all(request.as_bytes())
            .await
            .expect("writing to the engine");
        s.read_to_end(&mut response)
            .await
            .expect("reading from the engine");
    } else {
        let addr = host
            .trim_start_matches("tcp://")
            .trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connecting to the engine");
        s.write_all(request.as_bytes())
            .await
            .expect("writing to the engine");
        s.read_to_end(&mut response)
            .await
            .expect("reading from the engine");
    }
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response from the engine");
    let status = String::from_utf8_lossy(&response[..head_end]).into_owned();
    assert!(
        status.starts_with("HTTP/1.0 200") || status.starts_with("HTTP/1.1 200"),
        "inspect of {id} failed: {status}"
    );
    response.split_off(head_end + 4)
}

/// What [`engine_files_containing`] found.
#[derive(Debug, Default)]
pub struct FileScan {
    /// The folders scanned.
    pub dirs: Vec<std::path::PathBuf>,
    /// How many regular files were read.
    pub files: usize,
    /// The files that contain the needle.
    pub leaks: Vec<std::path::PathBuf>,
}

/// Scans the files the engine keeps for container `id`
/// (`<DockerRootDir>/containers/<id>/`) and the runtime's bundle for it
/// (a folder named `<id>` under `/run/docker/containerd` or `/run/containerd`,
/// its `rootfs` excluded) for `needle`. `Err` says why they cannot be read
/// (not root, a remote engine), so a test can print it instead of passing.
pub async fn engine_files_containing(id: &str, needle: &[u8]) -> Result<FileScan, String> {
    let docker = require_engine().await;
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    if !host.is_empty() && !host.starts_with("unix://") {
        return Err(format!("the engine is not local (DOCKER_HOST={host})"));
    }
    let info = docker
        .info()
        .await
        .map_err(|e| format!("docker info failed: {e}"))?;
    let root = info
        .docker_root_dir
        .unwrap_or_else(|| "/var/lib/docker".into());
    let (id, needle) = (id.to_owned(), needle.to_vec());
    tokio::task::spawn_blocking(move || {
        let mut scan = FileScan::default();
        let own = std::path::Path::new(&root).join("containers").join(&id);
        scan_files(&own, &needle, &mut scan)?;
        scan.dirs.push(own);
        for runtime in ["/run/docker/containerd", "/run/containerd"] {
            for dir in dirs_named(std::path::Path::new(runtime), &id, 6) {
                scan_files(&dir, &needle, &mut scan)?;
                scan.dirs.push(dir);
            }
        }
        Ok(scan)
    })
    .await
    .expect("the scan task does not panic")
}

fn scan_files(dir: &std::path::Path, needle: &[u8], scan: &mut FileScan) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() && entry.file_name() != "rootfs" {
            scan_files(&path, needle, scan)?;
        } else if meta.is_file() {
            let bytes =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            scan.files += 1;
            if bytes.windows(needle.len()).any(|w| w == needle) {
                scan.leaks.push(path);
            }
        }
    }
    Ok(())
}

fn dirs_named(root: &std::path::Path, name: &str, depth: usize) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return found;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if entry.file_name() == name {
            found.push(entry.path());
        } else if depth > 0 && entry.file_name() != "rootfs" {
            found.extend(dirs_named(&entry.path(), name, depth - 1));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_probe_is_a_static_elf() {
        assert_eq!(&PROBE[..4], b"\x7fELF");
        assert!(PROBE.len() > 10_000);
    }

    #[test]
    fn runner_ids_are_unique_and_valid_label_values() {
        let a = unique_runner_id();
        assert_ne!(a, unique_runner_id());
        assert!(a.starts_with("run_test_"));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    }

    #[tokio::test]
    async fn the_probe_image_runs_the_probe_in_a_scratch_container() {
        use bollard::models::ContainerCreateBody;
        use bollard::query_parameters::{CreateContainerOptions, StartContainerOptions};
        let docker = require_engine().await;
        let image = probe_image().await;
        assert_eq!(image, probe_image().await, "built once, same tag");
        let runner = unique_runner_id();
        let body = ContainerCreateBody {
            image: Some(image),
            cmd: Some(vec!["probe".into(), "exit".into(), "7".into()]),
            labels: Some(HashMap::from([(RUNNER_LABEL.into(), runner.clone())])),
            ..Default::default()
        };
        let id = docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .expect("create")
            .id;
        docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
            .expect("start");
        let code = match docker.wait_container(&id, None).next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            other => panic!("wait: {other:?}"),
        };
        assert_eq!(code, 7);
        assert_eq!(containers_with_label(&runner).await, vec![id]);
        assert_eq!(remove_containers(&runner).await, 1);
        assert_no_containers(&runner).await;
    }
}
