//! The exit codes of every command, defined once and documented in `--help`.

use std::process::ExitCode;

/// Everything went well (`doctor`: ready).
pub const OK: ExitCode = ExitCode::SUCCESS;
/// `doctor`: warnings only; the host is not ready.
#[allow(dead_code)] // used by doctor
pub const NOT_READY: ExitCode = ExitCode::FAILURE; // 1
/// The numeric code of [`failure`].
pub const FAILURE_CODE: u8 = 2;

/// A usage, configuration or platform error (`doctor`: a failed check).
pub fn failure() -> ExitCode {
    ExitCode::from(FAILURE_CODE)
}

/// The text `--help` shows about exit codes.
pub const HELP: &str = "Exit codes:\n  0  success (doctor: ready)\n  1  doctor: warnings only, not ready\n  2  usage, configuration or platform error (doctor: a check failed)";
