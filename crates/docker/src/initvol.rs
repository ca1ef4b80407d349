//! The init volume: a named volume holding `spedy-init`, mounted read-only at
//! `/.spedy` in every `stdin`-path job, so that no per-job upload is needed.
//!
//! Why: dockerd's archive upload costs about 130 ms per container on the
//! reference engine whatever the size (it mounts the container's rootfs and
//! re-executes itself to extract), which made the hand-off 1.13× the plain
//! engine. A volume mount at start costs next to nothing.
//!
//! How: the volume is named by the init's hash (`spedy-init-<fnv64>`), so its
//! content never changes under a name. It is prepared once per [`Engine`]:
//! create the volume (idempotent), create (never start) a helper container
//! from the job's image with the volume at `/.spedy`, and upload `init` and
//! then `ready` into it unless `ready` is already there; then remove the
//! helper. Preparation is serialised across processes on this host by a lock
//! file, so two runners never write the same volume at once. Any failure
//! leaves the engine on the per-job upload (slower, same guarantees).
//!
//! The volume holds no secret (only the public init program) and is kept for
//! later runs (about 1.3 MB; a new runner version makes a new one).

use std::collections::HashMap;

use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions, VolumeCreateRequest,
};
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bytes::Bytes;

use crate::handoff::{INIT, INIT_FNV64};
use crate::{Engine, RUNNER_LABEL};

/// Where the volume is mounted; `spedy-init` is `init` in it.
pub(crate) const MOUNT_POINT: &str = "/.spedy";

/// The volume's name for this build of `spedy-init`.
pub(crate) fn volume_name() -> String {
    format!("spedy-init-{INIT_FNV64}")
}

/// The read-only mount of the init volume for a job container.
pub(crate) fn job_mount(volume: &str) -> Mount {
    Mount {
        target: Some(MOUNT_POINT.into()),
        source: Some(volume.into()),
        typ: Some(MountType::VOLUME),
        read_only: Some(true),
        volume_options: Some(MountVolumeOptions {
            no_copy: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Engine {
    /// The prepared init volume, or `None` when the per-job upload must be
    /// used. Prepared on first call (with `image` for the helper container,
    /// labelled with `runner_id` so an interrupted preparation is swept).
    pub(crate) async fn init_volume(&self, image: &str, runner_id: &str) -> Option<String> {
        self.init_volume
            .get_or_init(|| async {
                match self.prepare_init_volume(image, runner_id).await {
                    Ok(name) => Some(name),
                    Err(e) => {
                        tracing::warn!(error = %e,
                            "cannot prepare the init volume; uploading spedy-init per job");
                        None
                    }
                }
            })
            .await
            .clone()
    }

    async fn prepare_init_volume(
        &self,
        image: &str,
        runner_id: &str,
    ) -> Result<String, DockerError> {
        let name = volume_name();
        let _lock = host_lock(&name).await;
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(HashMap::from([("io.spedy.init".into(), "1".into())])),
                ..Default::default()
            })
            .await?;
        let mut mount = job_mount(&name);
        mount.read_only = Some(false);
        let body = ContainerCreateBody {
            image: Some(image.into()),
            entrypoint: Some(vec![format!("{MOUNT_POINT}/init")]),
            labels: Some(HashMap::from([(RUNNER_LABEL.into(), runner_id.into())])),
            host_config: Some(HostConfig {
                mounts: Some(vec![mount]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let helper = self
            .docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await?
            .id;
        let filled = self.fill(&helper).await;
        self.remove(&helper).await;
        filled.map(|()| name)
    }

    /// Uploads `init` then `ready` unless `ready` is there already.
    async fn fill(&self, helper: &str) -> Result<(), DockerError> {
        let ready = ContainerArchiveInfoOptionsBuilder::new()
            .path(&format!("{MOUNT_POINT}/ready"))
            .build();
        if self
            .docker
            .get_container_archive_info(helper, Some(ready))
            .await
            .is_ok()
        {
            return Ok(());
        }
        let options = UploadToContainerOptionsBuilder::new()
            .path(MOUNT_POINT)
            .build();
        self.docker
            .upload_to_container(helper, Some(options), bollard::body_full(volume_tar()))
            .await
    }
}

/// `init` (0755) then `ready`: extraction is in order, so `ready` proves
/// `init` is complete.
fn volume_tar() -> Bytes {
    let mut tar = tar::Builder::new(Vec::with_capacity(INIT.len() + 2048));
    for (name, data, mode) in [("init", INIT, 0o755), ("ready", &b"1\n"[..], 0o644)] {
        let mut header = tar::Header::new_gnu();
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, data)
            .expect("appending to an in-memory tar");
    }
    Bytes::from(tar.into_inner().expect("finishing an in-memory tar"))
}

/// An exclusive lock on `<tmp>/<name>.lock` for the preparation; `None`
/// when the lock file cannot be used (then preparation goes unlocked).
async fn host_lock(name: &str) -> Option<std::fs::File> {
    let path = std::env::temp_dir().join(format!("{name}.lock"));
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::create(path).ok()?;
        file.lock().ok()?;
        Some(file)
    })
    .await
    .ok()
    .flatten()
}
