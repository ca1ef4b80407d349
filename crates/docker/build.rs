//! Builds `crates/init` as a static executable (`+crt-static`, glibc
//! static-pie) so it runs in any image, even `FROM scratch`, and leaves it in
//! `OUT_DIR/spedy-init` for `include_bytes!` (see `src/init.rs`).
//!
//! It calls `rustc` directly on the std-only source, with an explicit
//! `--target`, so the workspace's own flags and profile never leak into it and
//! `+crt-static` never reaches a proc-macro (crate-notes §10).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let source = manifest.join("../init/src/main.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("spedy-init");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-changed=build.rs");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition", "2024", "-O", "--crate-type", "bin"])
        .args(["--crate-name", "spedy_init"])
        .args(["-C", "target-feature=+crt-static", "-C", "strip=symbols"])
        .args(["-C", "panic=abort"])
        .args(["--target", "x86_64-unknown-linux-gnu"])
        .arg("-o")
        .arg(&out)
        .arg(&source)
        .status()
        .expect("running rustc to build the static spedy-init");
    assert!(
        status.success(),
        "rustc failed to build {}",
        source.display()
    );
    // The init's checksum names its volume and audit image. Computed here, so
    // the runner never reads the 1.3 MB embedded binary just to name it (that
    // would keep those pages resident in an idle runner).
    let bytes = std::fs::read(&out).expect("reading the built spedy-init");
    let fnv = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    println!("cargo:rustc-env=SPEDY_INIT_FNV64={fnv:016x}");
}
