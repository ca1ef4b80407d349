//! [`Engine::self_audit`]: proves, on this host and this engine, that the
//! `stdin` hand-off keeps a secret out of everything but the job (issue 5,
//! item 3), for `spedy-runner doctor`.
//!
//! # How
//! 1. Make sure the audit image exists: `FROM scratch` with only the static
//!    `spedy-init` as `/spedy-audit`, built through the build API from an
//!    in-memory tar and tagged `spedy-runner/audit:<hash of the binary>`
//!    (kept for the next audit; about 1.3 MB). No registry is needed.
//! 2. Run it along the *real* path ([`Engine::run`] with
//!    [`Injection::Stdin`]) with one random canary secret. The job is
//!    `spedy-init --spedy-audit SPEDY_AUDIT_CANARY`: it prints the value's
//!    length and FNV-1a checksum (never the value) and sleeps.
//! 3. While it sleeps: look for the canary in `docker inspect` of the running
//!    container, in every file under `<DockerRootDir>/containers/<id>/`, and
//!    in the runtime's bundle for the container under `/run/docker/containerd`
//!    and `/run/containerd` (its `config.json` is the OCI spec, with the
//!    environment). Files that cannot be read make that check *skipped*, with
//!    the reason, never passed.
//! 4. Cancel the job (SIGKILL) and check the container is gone.
//!
//! Limit: bollard's inspect model drops fields it does not know, so the
//! inspect check sees what bollard parses; the file checks see dockerd's own
//! `config.v2.json`, which holds the whole config.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::{BuildImageOptionsBuilder, InspectContainerOptions};
use futures_util::StreamExt;
use secrecy::SecretString;
use spedy_api::LogChunk;
use spedy_secrets::{Redactor, SecretSet};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::handoff::{self, INIT};
use crate::{Engine, Injection, Limits, RunSpec};

/// The repository of the audit image.
pub const AUDIT_IMAGE_REPO: &str = "spedy-runner/audit";
/// The variable the audit job receives.
const CANARY_NAME: &str = "SPEDY_AUDIT_CANARY";
/// How long the audit job may take to report that it received the value.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// Files larger than this are not scanned.
const MAX_SCANNED_FILE: u64 = 64 << 20;
/// Where container runtimes keep their bundles.
const RUNTIME_ROOTS: [&str; 2] = ["/run/docker/containerd", "/run/containerd"];

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditStatus {
    /// ✓
    Pass,
    /// ✗
    Fail,
    /// Could not be checked here (the reason is in the detail).
    Skipped,
}

impl AuditStatus {
    /// `✓`, `✗` or `-`.
    pub fn symbol(self) -> &'static str {
        match self {
            AuditStatus::Pass => "✓",
            AuditStatus::Fail => "✗",
            AuditStatus::Skipped => "-",
        }
    }
}

/// One line of the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheck {
    /// A stable id for `--json` (`handoff`, `inspect`, `engine_files`,
    /// `runtime_bundle`, `removed`, `engine`, `audit_image`).
    pub id: &'static str,
    /// What was checked, for humans.
    pub label: String,
    /// The result.
    pub status: AuditStatus,
    /// What was seen (files checked, why skipped, what leaked where).
    pub detail: String,
    /// How to fix a failure.
    pub fix: Option<String>,
}

/// What [`Engine::self_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// The checks, in the order they ran.
    pub checks: Vec<AuditCheck>,
}

impl AuditReport {
    /// True when no check failed (skipped checks do not fail the audit).
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.status != AuditStatus::Fail)
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            writeln!(f, "{} {}: {}", c.status.symbol(), c.label, c.detail)?;
            if let (AuditStatus::Fail, Some(fix)) = (c.status, &c.fix) {
                writeln!(f, "  fix: {fix}")?;
            }
        }
        Ok(())
    }
}

fn check(id: &'static str, label: &str, status: AuditStatus, detail: String) -> AuditCheck {
    AuditCheck {
        id,
        label: label.to_owned(),
        status,
        detail,
        fix: None,
    }
}

impl Engine {
    /// Runs the self-audit described in the module doc on the default
    /// `stdin` path. Never fails: an engine problem is a failed check with a
    /// fix line.
    pub async fn self_audit(&self) -> AuditReport {
        self.self_audit_of(Injection::Stdin).await
    }

    /// The self-audit of one injection path. On [`Injection::Env`] it is
    /// expected to fail (`docker inspect` and `config.v2.json` hold the
    /// value): `doctor` can show what that setting exposes.
    pub async fn self_audit_of(&self, injection: Injection) -> AuditReport {
        let mut checks = Vec::new();
        let root_dir = match self.docker.info().await {
            Ok(info) => info
                .docker_root_dir
                .unwrap_or_else(|| "/var/lib/docker".into()),
            Err(e) => {
                let mut c = check("engine", "docker engine", AuditStatus::Fail, e.to_string());
                c.fix = Some(format!(
                    "start the engine at {} and check `docker info`",
                    self.host()
                ));
                return AuditReport { checks: vec![c] };
            }
        };
        let image = match self.audit_image().await {
            Ok(image) => image,
            Err(e) => {
                let mut c = check("audit_image", "audit image", AuditStatus::Fail, e);
                c.fix = Some("check that this user may build images (`docker build`)".into());
                return AuditReport { checks: vec![c] };
            }
        };
        let canary = random_canary();
        let observed = self.observe(&image, &canary, &root_dir, injection).await;
        checks.extend(observed);
        AuditReport { checks }
    }

    /// Builds the audit image unless it exists; returns its tag.
    async fn audit_image(&self) -> Result<String, String> {
        let tag = format!("{AUDIT_IMAGE_REPO}:{}", handoff::INIT_FNV64);
        if self.docker.inspect_image(&tag).await.is_ok() {
            return Ok(tag);
        }
        let dockerfile = "FROM scratch\nCOPY spedy-audit /spedy-audit\nLABEL io.spedy.audit=1\n";
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data, mode) in [
            ("Dockerfile", dockerfile.as_bytes(), 0o644),
            ("spedy-audit", INIT, 0o755),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_mtime(0);
            header.set_cksum();
            tar.append_data(&mut header, name, data)
                .map_err(|e| format!("packing the audit image: {e}"))?;
        }
        let context = tar
            .into_inner()
            .map_err(|e| format!("packing the audit image: {e}"))?;
        let options = BuildImageOptionsBuilder::new()
            .dockerfile("Dockerfile")
            .t(&tag)
            .rm(true)
            .forcerm(true)
            .build();
        let mut build =
            self.docker
                .build_image(options, None, Some(bollard::body_full(context.into())));
        while let Some(step) = build.next().await {
            step.map_err(|e| format!("building {tag} failed: {e}"))?;
        }
        Ok(tag)
    }

    /// Runs the audit job and inspects it while it sleeps.
    async fn observe(
        &self,
        image: &str,
        canary: &str,
        root_dir: &str,
        injection: Injection,
    ) -> Vec<AuditCheck> {
        let mut secrets = SecretSet::new();
        secrets.insert(CANARY_NAME, SecretString::from(canary.to_owned()));
        let spec = RunSpec {
            runner_id: format!("spedy-audit-{}", std::process::id()),
            job_id: "self-audit".into(),
            image: image.to_owned(),
            command: Some(vec![
                "/spedy-audit".into(),
                "--spedy-audit".into(),
                CANARY_NAME.into(),
            ]),
            env: Default::default(),
            // No redaction: the audit job prints a checksum, never the value,
            // and a stream redactor would hold back the end of that line
            // (up to its longest pattern) until the job exits.
            redactor: Arc::new(Redactor::empty()),
            secrets,
            limits: Limits::default(),
            injection,
            timeout: Duration::from_secs(90),
            stop_grace: Duration::ZERO,
        };
        let (tx, rx) = mpsc::channel(64);
        let (started_tx, started_rx) = oneshot::channel();
        let cancel = CancellationToken::new();
        let run = self.run_observed(spec, tx, cancel.clone(), Some(started_tx));
        let watch = self.watch(started_rx, rx, canary, root_dir, &cancel);
        let (outcome, (mut checks, id)) = tokio::join!(run, watch);
        if let Err(e) = outcome {
            let mut c = check("engine", "docker engine", AuditStatus::Fail, e.to_string());
            c.fix = Some(format!(
                "check the engine at {} with `docker info`",
                self.host()
            ));
            checks.push(c);
        }
        if let Some(id) = id {
            checks.push(self.removed_check(&id).await);
        }
        checks
    }

    /// The audit's side of the run: waits for the job's report, inspects,
    /// then cancels the job and drains its output.
    async fn watch(
        &self,
        started: oneshot::Receiver<String>,
        mut rx: mpsc::Receiver<LogChunk>,
        canary: &str,
        root_dir: &str,
        cancel: &CancellationToken,
    ) -> (Vec<AuditCheck>, Option<String>) {
        let mut checks = Vec::new();
        let Ok(id) = started.await else {
            let mut c = check(
                "handoff",
                "hand-off reached the job",
                AuditStatus::Fail,
                "the audit container did not start".into(),
            );
            c.fix = Some("see the engine's message above; `docker info` shows its state".into());
            while rx.recv().await.is_some() {}
            return (vec![c], None);
        };
        let line = tokio::time::timeout(READY_WITHIN, audit_line(&mut rx))
            .await
            .unwrap_or_default();
        checks.push(handoff_check(&line, canary));
        checks.push(self.inspect_check(&id, canary).await);
        let (files, bundle) =
            scan_checks(&id, canary, root_dir, self.host().starts_with("unix://")).await;
        checks.push(files);
        checks.push(bundle);
        cancel.cancel();
        while rx.recv().await.is_some() {}
        (checks, Some(id))
    }

    async fn inspect_check(&self, id: &str, canary: &str) -> AuditCheck {
        let label = "docker inspect shows no secret";
        match self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(inspect) => {
                let json = serde_json::to_vec(&inspect).unwrap_or_default();
                if contains(&json, canary.as_bytes()) {
                    let mut c = check(
                        "inspect",
                        label,
                        AuditStatus::Fail,
                        "the canary is in the container's config".into(),
                    );
                    c.fix = Some(
                        "set SPEDY_INJECTION=stdin (the default) so secrets never enter the config"
                            .into(),
                    );
                    c
                } else {
                    check(
                        "inspect",
                        label,
                        AuditStatus::Pass,
                        format!("{} bytes of inspect checked", json.len()),
                    )
                }
            }
            Err(e) => check(
                "inspect",
                label,
                AuditStatus::Skipped,
                format!("inspect failed: {e}"),
            ),
        }
    }

    async fn removed_check(&self, id: &str) -> AuditCheck {
        let label = "audit container removed";
        match self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => check("removed", label, AuditStatus::Pass, "gone".into()),
            _ => {
                let mut c = check(
                    "removed",
                    label,
                    AuditStatus::Fail,
                    format!("container {id} still exists"),
                );
                c.fix = Some(format!("remove it with `docker rm -f {id}`"));
                c
            }
        }
    }
}

/// Reads the job's output until the `spedy-audit:` line is complete.
async fn audit_line(rx: &mut mpsc::Receiver<LogChunk>) -> String {
    let mut text = String::new();
    while let Some(chunk) = rx.recv().await {
        text.push_str(&chunk.text);
        if let Some(start) = text.find("spedy-audit: ")
            && let Some(len) = text[start..].find('\n')
        {
            return text[start..start + len].to_owned();
        }
    }
    text
}

fn handoff_check(line: &str, canary: &str) -> AuditCheck {
    let label = "hand-off reached the job";
    let want = format!(
        "spedy-audit: {CANARY_NAME} len={} fnv64={:016x}",
        canary.len(),
        handoff::fnv64(canary.as_bytes())
    );
    if line == want {
        check(
            "handoff",
            label,
            AuditStatus::Pass,
            "the job saw the exact value on stdin".into(),
        )
    } else {
        let seen = if line.is_empty() {
            "nothing".to_owned()
        } else {
            format!("{line:?}")
        };
        let mut c = check(
            "handoff",
            label,
            AuditStatus::Fail,
            format!("the job reported {seen}"),
        );
        c.fix = Some(
            "the stdin hand-off does not work on this engine; SPEDY_INJECTION=env works \
                      everywhere but puts values into `docker inspect`"
                .into(),
        );
        c
    }
}

/// The engine-files and runtime-bundle checks (blocking I/O, off the runtime).
async fn scan_checks(
    id: &str,
    canary: &str,
    root_dir: &str,
    local: bool,
) -> (AuditCheck, AuditCheck) {
    let files_label = "engine's container files hold no secret";
    let bundle_label = "runtime bundle holds no secret";
    if !local {
        let why = "the engine is on another host; its files cannot be read from here".to_owned();
        return (
            check(
                "engine_files",
                files_label,
                AuditStatus::Skipped,
                why.clone(),
            ),
            check("runtime_bundle", bundle_label, AuditStatus::Skipped, why),
        );
    }
    let (id, canary) = (id.to_owned(), canary.to_owned());
    let dir = Path::new(root_dir).join("containers").join(&id);
    let scanned = tokio::task::spawn_blocking(move || {
        let files = scan_dir(&dir, canary.as_bytes());
        let bundles: Vec<PathBuf> = RUNTIME_ROOTS
            .iter()
            .flat_map(|root| find_dirs_named(Path::new(root), &id, 6))
            .collect();
        let bundle = if bundles.is_empty() {
            Err(format!(
                "no bundle of the container found under {}",
                RUNTIME_ROOTS.join(" or ")
            ))
        } else {
            bundles
                .iter()
                .map(|b| scan_dir(b, canary.as_bytes()))
                .try_fold(Scan::default(), |acc, s| s.map(|s| acc.merge(s)))
        };
        (files, bundle)
    })
    .await;
    let Ok((files, bundle)) = scanned else {
        let why = "the scan task failed".to_owned();
        return (
            check(
                "engine_files",
                files_label,
                AuditStatus::Skipped,
                why.clone(),
            ),
            check("runtime_bundle", bundle_label, AuditStatus::Skipped, why),
        );
    };
    (
        scan_result("engine_files", files_label, files),
        scan_result("runtime_bundle", bundle_label, bundle),
    )
}

fn scan_result(id: &'static str, label: &str, scan: Result<Scan, String>) -> AuditCheck {
    match scan {
        Ok(s) if s.leaks.is_empty() => check(
            id,
            label,
            AuditStatus::Pass,
            format!("{} files checked", s.files),
        ),
        Ok(s) => {
            let list: Vec<String> = s.leaks.iter().map(|p| p.display().to_string()).collect();
            let mut c = check(
                id,
                label,
                AuditStatus::Fail,
                format!("the canary is in {}", list.join(", ")),
            );
            c.fix = Some("set SPEDY_INJECTION=stdin (the default) and log driver none".into());
            c
        }
        Err(why) => check(id, label, AuditStatus::Skipped, why),
    }
}

/// What a scan saw.
#[derive(Debug, Default)]
struct Scan {
    files: usize,
    leaks: Vec<PathBuf>,
}

impl Scan {
    fn merge(mut self, other: Scan) -> Scan {
        self.files += other.files;
        self.leaks.extend(other.leaks);
        self
    }
}

/// Scans every regular file under `dir` (not following links, skipping a
/// `rootfs` mount) for `needle`. An unreadable `dir` is an `Err` saying why.
fn scan_dir(dir: &Path, needle: &[u8]) -> Result<Scan, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot read {}: {e}; run the audit as root to check these files",
            dir.display()
        )
    })?;
    let mut scan = Scan::default();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if entry.file_name() != "rootfs" {
                scan = scan.merge(scan_dir(&path, needle)?);
            }
        } else if meta.is_file() && meta.len() <= MAX_SCANNED_FILE {
            let mut bytes = Vec::new();
            std::fs::File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            scan.files += 1;
            if contains(&bytes, needle) {
                scan.leaks.push(path);
            }
        }
    }
    Ok(scan)
}

/// Directories named `name` under `root`, at most `depth` levels down.
fn find_dirs_named(root: &Path, name: &str, depth: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if !kind.is_dir() {
            continue;
        }
        if entry.file_name() == name {
            found.push(entry.path());
        } else if depth > 0 && entry.file_name() != "rootfs" {
            found.extend(find_dirs_named(&entry.path(), name, depth - 1));
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// `spedy-audit-canary-<32 hex>` from the OS's randomness.
fn random_canary() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        use std::hash::{BuildHasher, RandomState};
        let a = RandomState::new().hash_one(std::time::SystemTime::now());
        let b = RandomState::new().hash_one(std::process::id());
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes());
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("spedy-audit-canary-{hex}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn canaries_are_random_and_long() {
        let a = random_canary();
        assert_ne!(a, random_canary());
        assert_eq!(a.len(), "spedy-audit-canary-".len() + 32);
    }

    #[test]
    fn a_file_holding_the_needle_is_found_and_an_unreadable_dir_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), b"nothing").unwrap();
        std::fs::write(
            dir.path().join("sub/config.json"),
            b"{\"Env\":[\"X=needle-123\"]}",
        )
        .unwrap();
        let scan = scan_dir(dir.path(), b"needle-123").unwrap();
        assert_eq!(scan.files, 2);
        assert_eq!(scan.leaks, [dir.path().join("sub/config.json")]);
        let missing = scan_dir(&dir.path().join("nope"), b"x").unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
    }

    #[test]
    fn the_report_is_ok_unless_a_check_failed() {
        let pass = check("a", "a", AuditStatus::Pass, String::new());
        let skip = check("b", "b", AuditStatus::Skipped, "why".into());
        let mut fail = check("c", "c", AuditStatus::Fail, "bad".into());
        fail.fix = Some("do this".into());
        assert!(
            AuditReport {
                checks: vec![pass.clone(), skip]
            }
            .ok()
        );
        let report = AuditReport {
            checks: vec![pass, fail],
        };
        assert!(!report.ok());
        assert!(report.to_string().contains("✗ c: bad\n  fix: do this"));
    }
}
