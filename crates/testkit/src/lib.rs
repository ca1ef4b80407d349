//! Test helpers shared by the crates' integration tests and the e2e suite.
//! A dev-dependency only; nothing here ships.
//!
//! # Layout
//! - `canary`: unique secret values that tests plant and then look for.
//! - `platform`: the local platform in-process on `127.0.0.1:0`, with a
//!   temporary data folder and an admin client.
//! - `docker`: the Docker guard (fails with a clear message when no engine
//!   answers) and the `FROM scratch` probe image, built through bollard.
//! - `cmd`: `RunnerCmd`, which drives the real `spedy-runner` binary.

#![allow(missing_docs)]

pub mod canary;
pub mod cmd;
pub mod docker;
pub mod platform;
