//! Must show: a canary written as a secret (and as integration tokens)
//! appears in no file under the data folder (database, WAL, shared memory,
//! key file) and in nothing the platform logs, even at TRACE level.
//!
//! This binary holds one test because it installs the global tracing
//! subscriber (the platform logs from tokio workers and the blocking pool).

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rand::distr::{Alphanumeric, SampleString};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use spedy_platform::{PlatformConfig, spawn};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn canary(label: &str) -> String {
    format!(
        "CANARY_{label}_{}",
        Alphanumeric.sample_string(&mut rand::rng(), 24)
    )
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn assert_absent(place: &str, haystack: &[u8], canaries: &[&str]) {
    for c in canaries {
        let found = haystack.windows(c.len()).any(|w| w == c.as_bytes());
        assert!(!found, "canary {c} leaked into {place}");
    }
}

fn scan_data_folder(dir: &Path, canaries: &[&str]) -> Vec<String> {
    let mut names = Vec::new();
    for path in files_under(dir) {
        let bytes = std::fs::read(&path).unwrap();
        assert_absent(&path.display().to_string(), &bytes, canaries);
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_secret_appears_in_no_file_of_the_data_folder_and_in_no_log_line() {
    let captured = Captured::default();
    tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .init();

    let key = canary("ANTHROPIC");
    let rotated = canary("ROTATED");
    let custom = canary("CUSTOM");
    let github = canary("GITHUB");
    let bitbucket = canary("BITBUCKET");
    let refused = canary("REFUSED");
    let canaries = [&key, &rotated, &custom, &github, &bitbucket, &refused].map(String::as_str);

    let dir = tempfile::tempdir().unwrap();
    let running = spawn(PlatformConfig::new(dir.path())).await.unwrap();
    let base = format!("http://{}", running.addr);
    let admin = running.admin_token.expose().to_owned();
    let http = reqwest::Client::new();
    let call = |method: Method, path: &str, token: &str, body: Value| {
        let mut req = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token);
        if !body.is_null() {
            req = req.json(&body);
        }
        req.send()
    };

    for (env, value) in [
        ("ANTHROPIC_API_KEY", &key),
        ("ANTHROPIC_API_KEY", &rotated),
        ("CUSTOM_X", &custom),
    ] {
        let r = call(
            Method::PUT,
            &format!("/secrets/{env}"),
            &admin,
            json!({"value": value}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = call(
        Method::PUT,
        "/integrations/github",
        &admin,
        json!({"type": "token", "token": github}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = call(
        Method::PUT,
        "/integrations/bitbucket",
        &admin,
        json!({"token": bitbucket}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A refused write: the value must not be echoed, logged or stored.
    let r = call(
        Method::PUT,
        "/secrets/REFUSED",
        &admin,
        json!({"value": format!("{refused}\u{0}")}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_absent("the 422 answer", &r.bytes().await.unwrap(), &canaries);

    let r = call(
        Method::POST,
        "/runners/tokens",
        &admin,
        json!({"name": "leak-check", "pool_size": 1, "backend": "anthropic_api"}),
    )
    .await
    .unwrap();
    let created: Value = r.json().await.unwrap();
    let runner_token = created["token"].as_str().unwrap().to_owned();
    let boot = call(
        Method::POST,
        "/runners/bootstrap",
        &runner_token,
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(boot.status(), StatusCode::OK);
    let boot = boot.text().await.unwrap();
    assert!(
        boot.contains(&rotated) && boot.contains(&github),
        "the bundle delivers them"
    );
    assert!(!boot.contains(&key), "the rotated-away value is gone");
    for path in ["/secrets", "/integrations"] {
        let listed = call(Method::GET, path, &admin, Value::Null).await.unwrap();
        assert_absent(path, &listed.bytes().await.unwrap(), &canaries);
    }

    // While running: the database, its WAL and shared-memory files, the key.
    let names = scan_data_folder(dir.path(), &canaries);
    for expected in [
        "platform.db",
        "platform.db-wal",
        "platform.db-shm",
        "master.key",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not found in {names:?}"
        );
    }
    running.shutdown().await.unwrap();
    // After the last connection closed (SQLite checkpoints the WAL).
    scan_data_folder(dir.path(), &canaries);

    let logs = captured.0.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&logs);
    assert!(text.contains("secret written"), "the capture works: {text}");
    assert!(text.contains("bundle delivered"), "the capture works");
    assert_absent("the platform's log", &logs, &canaries);
    assert_absent(
        "the platform's log",
        &logs,
        &[runner_token.as_str(), admin.as_str()],
    );
}
