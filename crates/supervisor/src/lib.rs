//! The runner's supervisor: bootstrap, refresh, claim loop, job reporting,
//! health and metrics. (Being built: the seams `state`, `config` and
//! `metrics` come first; see docs/architecture.md.)

#![warn(missing_docs)]

pub mod config;
pub mod metrics;
pub mod state;

#[allow(dead_code)]
mod claimer;
#[allow(dead_code)]
mod job;
#[allow(dead_code)]
mod orphans;
#[allow(dead_code)]
mod shipper;
