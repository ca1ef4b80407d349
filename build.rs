//! The root package's build script: compiles the demo's job program.
//!
//! `spedy-runner demo` runs a sample job in an image it builds locally
//! (`FROM scratch` plus one static executable), because no registry can be
//! assumed. The job program is `crates/probe` (std only), compiled here as a
//! static executable (`+crt-static`) into `OUT_DIR/spedy-demo-job`, and
//! embedded by `crates/runner/cli/demo.rs` with `include_bytes!`.
//!
//! It calls `rustc` directly on the single source file, like the docker and
//! testkit crates' build scripts do for the init program and the probe, so
//! the workspace's own flags and profile never leak into it and `+crt-static`
//! never reaches a proc-macro (crate-notes §10).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let source = manifest.join("crates/probe/src/main.rs");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("spedy-demo-job");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-changed=build.rs");
    // The job runs on the same engine as the runner, so it is built for the
    // runner's own target.
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition", "2024", "-O", "--crate-type", "bin"])
        .args(["--crate-name", "spedy_demo_job"])
        .args(["-C", "target-feature=+crt-static", "-C", "strip=symbols"])
        .args(["--target", &target])
        .arg("-o")
        .arg(&out)
        .arg(&source)
        .status()
        .expect("running rustc to build the static demo job program");
    assert!(
        status.success(),
        "rustc failed to build {}",
        source.display()
    );
}
