//! Process hardening for the commands that hold a bundle (`run`, `demo`):
//! the process becomes non-dumpable, so neither a core dump nor a same-user
//! `ptrace` (nor a read of `/proc/<pid>/mem` or `/proc/<pid>/environ`) can
//! reach the secrets in its memory (issue 3, item 2; crate-notes §8).
//!
//! - `PR_SET_DUMPABLE 0`: no core dumps, `/proc/<pid>/*` owned by root,
//!   ptrace attach needs `CAP_SYS_PTRACE`.
//! - `RLIMIT_CORE 0`: no core file even if something turns dumpable on again.
//!
//! Not done here on purpose: `mlockall`, which aborts the process on the
//! next large allocation when `RLIMIT_MEMLOCK` is small and the runner is not
//! root (crate-notes §8). The other half of the rule, "nothing from the
//! bundle is ever written to disk or to the process environment", is kept by
//! the types: no code path calls `set_var` or writes a value to a file.

use rustix::process::{DumpableBehavior, Resource, Rlimit};

/// Makes this process non-dumpable and disables core files. Call it first
/// thing, before any secret is read.
pub fn harden() -> std::io::Result<()> {
    rustix::process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )?;
    rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hardening_makes_the_process_non_dumpable_without_core_files() {
        // Runs in the test process, which is thrown away afterwards.
        harden().unwrap();
        assert_eq!(
            rustix::process::dumpable_behavior().unwrap(),
            DumpableBehavior::NotDumpable
        );
        let core = rustix::process::getrlimit(Resource::Core);
        assert_eq!(core.current, Some(0));
        assert_eq!(core.maximum, Some(0));
    }
}
