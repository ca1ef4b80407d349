//! Helpers for the engine tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use spedy_api::{LogChunk, LogStream};
use spedy_docker::{Engine, Error, Injection, Limits, Outcome, RunSpec};
use spedy_secrets::{Redactor, SecretSet};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The engine, through `DOCKER_HOST` or the local socket; panics with a clear
/// message when there is none.
pub async fn engine() -> Engine {
    spedy_testkit::docker::require_engine().await;
    Engine::connect()
        .await
        .expect("connecting spedy-docker to the engine")
}

/// A spec with test defaults: stdin injection, no secrets, 30 s timeout,
/// 200 ms grace, small limits.
pub fn spec(runner_id: &str, image: &str, command: &[&str]) -> RunSpec {
    RunSpec {
        runner_id: runner_id.to_owned(),
        job_id: format!("job_{}", spedy_testkit::docker::unique_runner_id()),
        image: image.to_owned(),
        command: Some(command.iter().map(|s| s.to_string()).collect()),
        env: BTreeMap::new(),
        secrets: SecretSet::new(),
        redactor: Arc::new(Redactor::empty()),
        limits: Limits {
            memory_bytes: Some(256 << 20),
            nano_cpus: None,
            pids: Some(64),
        },
        injection: Injection::Stdin,
        timeout: Duration::from_secs(30),
        stop_grace: Duration::from_millis(200),
    }
}

/// A set of secrets from `(name, value)` pairs.
pub fn secrets(pairs: &[(&str, &str)]) -> SecretSet {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), SecretString::from(v.to_string())))
        .collect()
}

/// Runs `spec` with a roomy channel and returns the result and every chunk.
pub async fn run(engine: &Engine, spec: RunSpec) -> (Result<Outcome, Error>, Vec<LogChunk>) {
    run_with(engine, spec, CancellationToken::new()).await
}

/// [`run`] with a cancellation token.
pub async fn run_with(
    engine: &Engine,
    spec: RunSpec,
    cancel: CancellationToken,
) -> (Result<Outcome, Error>, Vec<LogChunk>) {
    let (tx, mut rx) = mpsc::channel(1024);
    let collect = async {
        let mut chunks = Vec::new();
        while let Some(c) = rx.recv().await {
            chunks.push(c);
        }
        chunks
    };
    tokio::join!(engine.run(spec, tx, cancel), collect)
}

/// The text of one stream.
pub fn text(chunks: &[LogChunk], stream: LogStream) -> String {
    chunks
        .iter()
        .filter(|c| c.stream == stream)
        .map(|c| c.text.as_str())
        .collect()
}

/// Stdout's text.
pub fn stdout(chunks: &[LogChunk]) -> String {
    text(chunks, LogStream::Stdout)
}

/// Reads chunks from `rx` into `seen` until `needle` shows up in stdout.
pub async fn wait_for(rx: &mut mpsc::Receiver<LogChunk>, seen: &mut Vec<LogChunk>, needle: &str) {
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(c) = rx.recv().await {
            seen.push(c);
            if stdout(seen).contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        found,
        Ok(true),
        "{needle:?} never came; output so far: {seen:?}"
    );
}
