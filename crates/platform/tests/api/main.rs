//! The platform's handlers, driven through `router().oneshot(req)`.
//! One module per area of the contract.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

// Missing, malformed, unknown and revoked tokens; admin vs runner routes.
mod auth;
// Bodies that are not JSON, too big, or miss fields; unknown routes.
mod bad_input;
// The bundle, the gate, integrations, versions, readiness.
mod bootstrap;
// Claim, logs, heartbeat, complete, enqueue, get, cancel.
mod jobs;
// The route table against docs/openapi.yaml.
mod openapi;
// Garbage at every route never answers 5xx.
mod robustness;
// Write-only secrets: masks, timestamps, kinds, scopes, bad names and values.
mod secrets;
