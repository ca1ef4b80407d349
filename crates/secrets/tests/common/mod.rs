//! Helpers shared by this crate's integration tests.

/// spedy-testkit's canary helper, compiled in from its source file so that
/// this leaf crate's tests do not build the platform and the client.
#[path = "../../../testkit/src/canary.rs"]
#[allow(dead_code)]
pub mod canary;
