//! spedy-client's integration tests: one binary, one module per concern.

#![allow(clippy::unwrap_used)]

// A deliberately broken HTTP server on 127.0.0.1 (raw TCP), for answers that
// break the contract.
mod broken;
// The client against answers that break the contract: garbage, oversize
// bodies, stalls, unexpected statuses, error codes with and without bodies.
mod garbage;
// Settings refused by `build()`: plain http:// off loopback, bad CA files.
mod settings;
// Real TLS with a generated CA: refused without the extra CA, accepted with it.
mod tls;
// A canary token and canary secrets never show in any error's text.
mod leaks;
// Every endpoint against the real local platform over 127.0.0.1.
mod platform;
