//! The end-to-end suite: drives the real `spedy-runner` binary against the
//! real local platform and the real Docker engine. One module per concern:

// `spedy-runner --help`, completions and the man page.
mod cli;
// `spedy-runner run`: settings errors, canaries, signals, exit codes.
mod run;
// `spedy-runner run` with jobs: the pool, signals and drain, kill -9 and orphans, entitlement.
mod jobs;
// `spedy-runner setup`: the wizard in a pseudo-terminal and the unattended path.
mod setup;
// `spedy-runner doctor`: healthy and broken hosts, text and JSON.
mod doctor;
// `spedy-runner demo`: the README's first command.
mod demo;
// The Docker Compose stack with offline-built images, and the migration.
mod compose;
