//! The platform over real sockets: `spawn` on 127.0.0.1:0 driven with
//! reqwest, graceful shutdown, restarts on the same data folder, start-up
//! failures, and the `spedy-platform` binary itself.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use spedy_api::AdminToken;
use spedy_platform::{Error, PlatformConfig, RunningPlatform, spawn};

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    fn of(running: &RunningPlatform) -> Http {
        Http {
            base: format!("http://{}", running.addr),
            client: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn config(dir: &std::path::Path) -> PlatformConfig {
    let mut c = PlatformConfig::new(dir);
    c.max_claim_wait_s = 30;
    c
}

#[tokio::test]
async fn a_whole_job_round_trip_works_over_a_real_socket() {
    use reqwest::Method as M;
    let dir = tempfile::tempdir().unwrap();
    let running = spawn(config(dir.path())).await.unwrap();
    assert_eq!(running.url(), format!("http://{}", running.addr));
    let http = Http::of(&running);
    let admin = running.admin_token.expose().to_owned();
    let health = reqwest::get(format!("{}/healthz", http.base))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    let (s, created) = http
        .call(
            M::POST,
            "/runners/tokens",
            &admin,
            json!({"name": "h", "pool_size": 1, "backend": "anthropic_api"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let token = created["token"].as_str().unwrap().to_owned();
    assert_eq!(
        created["env_snippet"],
        format!(
            "SPEDY_API_URL=http://{}\nSPEDY_RUNNER_TOKEN={token}\n",
            running.addr
        ),
        "the public URL defaults to the bound address"
    );
    let (s, _) = http
        .call(M::POST, "/runners/bootstrap", &token, Value::Null)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    http.call(
        M::PUT,
        "/secrets/ANTHROPIC_API_KEY",
        &admin,
        json!({"value": "sk-ant-socket-test"}),
    )
    .await;
    let (s, boot) = http
        .call(M::POST, "/runners/bootstrap", &token, Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(boot["bundle"]["secrets"][0]["value"], "sk-ant-socket-test");

    let (s, job) = http
        .call(
            M::POST,
            "/jobs",
            &admin,
            json!({"image": "i", "timeout_s": 5}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = job["id"].as_str().unwrap().to_owned();
    let (s, claimed) = http
        .call(M::POST, "/runners/jobs/claim", &token, json!({"wait_s": 1}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(claimed["job"]["id"], id);
    let logs = json!({"seq": 0, "chunks": [{"stream": "stdout", "text": "hello\n"}]});
    let (s, _) = http
        .call(M::POST, &format!("/runners/jobs/{id}/logs"), &token, logs)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let done = json!({"status": "succeeded", "exit_code": 0, "duration_ms": 3, "error": null});
    let (s, _) = http
        .call(
            M::POST,
            &format!("/runners/jobs/{id}/complete"),
            &token,
            done,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, view) = http
        .call(M::GET, &format!("/jobs/{id}"), &admin, Value::Null)
        .await;
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["log"], "hello\n");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_releases_a_held_claim_at_once_and_finishes_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let running = spawn(config(dir.path())).await.unwrap();
    let http = Http::of(&running);
    let admin = running.admin_token.expose().to_owned();
    let (_, created) = http
        .call(
            reqwest::Method::POST,
            "/runners/tokens",
            &admin,
            json!({"name": "h", "pool_size": 1, "backend": "local_claude"}),
        )
        .await;
    let token = created["token"].as_str().unwrap().to_owned();
    let held = tokio::spawn(async move {
        http.call(
            reqwest::Method::POST,
            "/runners/jobs/claim",
            &token,
            json!({"wait_s": 30}),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A safeguard against a hang, not a speed check: the claim waits 30 s.
    tokio::time::timeout(Duration::from_secs(20), running.shutdown())
        .await
        .expect("shutdown waited for the held claim's full wait")
        .unwrap();
    let (status, _) = held.await.unwrap();
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_restarted_platform_keeps_its_tokens_secrets_integrations_and_jobs() {
    use reqwest::Method as M;
    let dir = tempfile::tempdir().unwrap();
    let first = spawn(config(dir.path())).await.unwrap();
    let admin_token = first.admin_token.clone();
    let admin = admin_token.expose().to_owned();
    let http = Http::of(&first);
    let (_, created) = http
        .call(
            M::POST,
            "/runners/tokens",
            &admin,
            json!({"name": "h", "pool_size": 3, "backend": "anthropic_api"}),
        )
        .await;
    let token = created["token"].as_str().unwrap().to_owned();
    let runner_id = created["runner_id"].as_str().unwrap().to_owned();
    http.call(
        M::PUT,
        "/secrets/ANTHROPIC_API_KEY",
        &admin,
        json!({"value": "sk-ant-survives-restart"}),
    )
    .await;
    http.call(
        M::PUT,
        "/integrations/bitbucket",
        &admin,
        json!({"token": "bb-survives-restart"}),
    )
    .await;
    http.call(
        M::PUT,
        "/integrations/github",
        &admin,
        json!({"type": "app", "installation_id": 77}),
    )
    .await;
    let (_, queued) = http
        .call(
            M::POST,
            "/jobs",
            &admin,
            json!({"image": "a", "timeout_s": 5}),
        )
        .await;
    let (_, running_job) = http
        .call(
            M::POST,
            "/jobs",
            &admin,
            json!({"image": "b", "timeout_s": 5}),
        )
        .await;
    let (_, claimed) = http
        .call(M::POST, "/runners/jobs/claim", &token, json!({"wait_s": 0}))
        .await;
    assert_eq!(claimed["job"]["id"], queued["id"]);
    let running_id = running_job["id"].as_str().unwrap().to_owned();
    let queued_id = queued["id"].as_str().unwrap().to_owned();
    let logs = json!({"seq": 0, "chunks": [{"stream": "stdout", "text": "before\n"}]});
    http.call(
        M::POST,
        &format!("/runners/jobs/{queued_id}/logs"),
        &token,
        logs,
    )
    .await;
    let (_, secrets_before) = http.call(M::GET, "/secrets", &admin, Value::Null).await;
    let (_, boot_before) = http
        .call(M::POST, "/runners/bootstrap", &token, Value::Null)
        .await;
    let addr = first.addr;
    first.shutdown().await.unwrap();

    let mut again = config(dir.path());
    again.addr = addr;
    again.admin_token = Some(admin_token);
    let second = spawn(again).await.unwrap();
    assert_eq!(second.addr, addr, "the same address can be bound again");
    let http = Http::of(&second);
    let (s, boot) = http
        .call(M::POST, "/runners/bootstrap", &token, Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK, "the runner token survived: {boot}");
    assert_eq!(boot["runner"]["id"], runner_id);
    assert_eq!(boot["runner"]["pool_size"], 3);
    let values: Vec<&str> = boot["bundle"]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["value"].as_str().unwrap())
        .collect();
    assert!(values.contains(&"sk-ant-survives-restart"), "{values:?}");
    assert!(values.contains(&"bb-survives-restart"), "{values:?}");
    assert!(values.iter().any(|v| v.starts_with("ghs_")), "{values:?}");
    assert_ne!(boot["bundle"]["version"], boot_before["bundle"]["version"]);
    let (_, secrets_after) = http.call(M::GET, "/secrets", &admin, Value::Null).await;
    assert_eq!(
        secrets_after["secrets"][0]["created_at"],
        secrets_before["secrets"][0]["created_at"]
    );
    let (_, integrations) = http
        .call(M::GET, "/integrations", &admin, Value::Null)
        .await;
    assert_eq!(integrations["integrations"].as_array().unwrap().len(), 2);
    let (_, view) = http
        .call(M::GET, &format!("/jobs/{queued_id}"), &admin, Value::Null)
        .await;
    assert_eq!(view["status"], "running");
    assert_eq!(view["log"], "before\n");
    let (s, claimed) = http
        .call(M::POST, "/runners/jobs/claim", &token, json!({"wait_s": 0}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        claimed["job"]["id"], running_id,
        "the queued job is still queued"
    );
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn spawning_on_a_used_data_folder_without_the_admin_token_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    spawn(config(dir.path()))
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    let err = spawn(config(dir.path())).await.unwrap_err();
    assert!(matches!(err, Error::AdminTokenRequired { .. }), "{err:?}");
    assert!(
        err.to_string().contains("SPEDY_PLATFORM_ADMIN_TOKEN"),
        "{err}"
    );
}

#[tokio::test]
async fn a_master_key_that_does_not_open_the_vault_is_refused_at_start() {
    use base64::Engine;
    let b64 = |b: u8| SecretString::from(base64::engine::general_purpose::STANDARD.encode([b; 32]));
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.master_key = Some(b64(1));
    let first = spawn(c.clone()).await.unwrap();
    c.admin_token = Some(first.admin_token.clone());
    first.shutdown().await.unwrap();
    c.master_key = Some(b64(2));
    let err = spawn(c.clone()).await.unwrap_err();
    assert!(matches!(err, Error::WrongMasterKey { .. }), "{err:?}");
    c.master_key = Some(SecretString::from("bm90LWEta2V5"));
    let err = spawn(c).await.unwrap_err();
    assert!(matches!(err, Error::BadMasterKey { .. }), "{err:?}");
    assert!(!err.to_string().contains("bm90LWEta2V5"), "{err}");
}

#[tokio::test]
async fn a_configured_admin_token_replaces_the_generated_one() {
    let dir = tempfile::tempdir().unwrap();
    let first = spawn(config(dir.path())).await.unwrap();
    let generated = first.admin_token.expose().to_owned();
    first.shutdown().await.unwrap();
    let chosen = AdminToken::parse("sat_0123456789abcdefghij0123456789ABCDEFGHIJ").unwrap();
    let mut c = config(dir.path());
    c.admin_token = Some(chosen.clone());
    let second = spawn(c).await.unwrap();
    let http = Http::of(&second);
    let (s, _) = http
        .call(
            reqwest::Method::GET,
            "/secrets",
            chosen.expose(),
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = http
        .call(reqwest::Method::GET, "/secrets", &generated, Value::Null)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    second.shutdown().await.unwrap();
}

/// The running binary; killed and reaped when dropped (a failed assertion
/// leaves no process behind).
struct Binary(std::process::Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary; returns it and its stdout lines up to the listening
/// line.
fn start_binary(data_dir: &std::path::Path) -> (Binary, Vec<String>) {
    let child = Command::new(env!("CARGO_BIN_EXE_spedy-platform"))
        .env("SPEDY_PLATFORM_ADDR", "127.0.0.1:0")
        .env("SPEDY_PLATFORM_DATA_DIR", data_dir)
        .env_remove("SPEDY_PLATFORM_ADMIN_TOKEN")
        .env_remove("SPEDY_PLATFORM_MASTER_KEY")
        .env_remove("SPEDY_PLATFORM_PUBLIC_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Binary(child);
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.0.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap();
        assert!(
            n > 0,
            "the binary ended before printing its listening line: {lines:?}"
        );
        let line = line.trim_end().to_owned();
        let done = line.starts_with("spedy-platform listening on ");
        lines.push(line);
        if done {
            return (child, lines);
        }
    }
}

fn terminate(child: &mut Binary) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.0.wait().unwrap()
}

#[tokio::test]
async fn the_binary_prints_the_admin_token_once_then_the_listening_line_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines) = start_binary(dir.path());
    assert_eq!(lines.len(), 2, "{lines:?}");
    let token = lines[0]
        .strip_prefix("admin token (shown once, stored only as a hash): ")
        .expect("the first start prints the admin token");
    assert!(AdminToken::is_well_formed(token), "{token}");
    let url = lines[1]
        .strip_prefix("spedy-platform listening on ")
        .unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );
    let resp = reqwest::Client::new()
        .get(format!("{url}/secrets"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let status = terminate(&mut child);
    assert!(status.success(), "a SIGTERM is a clean stop: {status:?}");

    let (mut child, lines) = start_binary(dir.path());
    assert_eq!(lines.len(), 1, "no token on the second start: {lines:?}");
    let url = lines[0]
        .strip_prefix("spedy-platform listening on ")
        .unwrap();
    let resp = reqwest::Client::new()
        .get(format!("{url}/secrets"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the stored hash still matches"
    );
    assert!(terminate(&mut child).success());
}

#[test]
fn the_binary_refuses_a_bad_setting_with_exit_code_2_and_no_echo() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_spedy-platform"))
        .env("SPEDY_PLATFORM_ADDR", "127.0.0.1:0")
        .env("SPEDY_PLATFORM_DATA_DIR", dir.path())
        .env("SPEDY_PLATFORM_MASTER_KEY", "TOPSECRETnotbase64!")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SPEDY_PLATFORM_MASTER_KEY"), "{stderr}");
    assert!(!stderr.contains("TOPSECRET"), "{stderr}");
    assert!(out.stdout.is_empty());
}
