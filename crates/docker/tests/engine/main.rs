//! `spedy-docker` against the real engine: every container is built from a
//! `FROM scratch` image with the static probe (no registry), labelled with a
//! unique runner id, and must be gone when the test ends.

#![allow(clippy::unwrap_used)]

// Shared helpers: the engine, a spec with test defaults, collecting output.
mod support;
// Exit codes, streams, missing images, bad commands, cancel, timeout.
mod lifecycle;
// The stdin hand-off: the job sees its secrets, inspect and the engine's
// files do not; the image's ENTRYPOINT/CMD; the env path for contrast.
mod handoff;
// Redaction of echoed secrets, also split across writes and encoded.
mod redaction;
// The orphan sweep and an engine that vanishes mid-job.
mod recovery;
// The self-audit `doctor` runs.
mod audit;
