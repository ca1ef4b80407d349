//! Builds `crates/probe` as a static executable (`+crt-static`, glibc
//! static-pie) into `OUT_DIR/spedy-probe`; `src/docker.rs` embeds it with
//! `include_bytes!` and copies it into `FROM scratch` test images.
//!
//! It calls `rustc` directly on the std-only source, with an explicit
//! `--target`, so the workspace's own flags and profile never leak into it and
//! `+crt-static` never reaches a proc-macro (crate-notes §10).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let source = manifest.join("../probe/src/main.rs");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("spedy-probe");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-changed=build.rs");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition", "2024", "-O", "--crate-type", "bin"])
        .args(["--crate-name", "spedy_probe"])
        .args(["-C", "target-feature=+crt-static", "-C", "strip=symbols"])
        .args(["--target", "x86_64-unknown-linux-gnu"])
        .arg("-o")
        .arg(&out)
        .arg(&source)
        .status()
        .expect("running rustc to build the static spedy-probe");
    assert!(
        status.success(),
        "rustc failed to build {}",
        source.display()
    );
}
