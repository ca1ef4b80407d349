//! The refresher against the real local platform: bootstrap, refresh,
//! backoff, the 401 and 409 gates, rotation and local overrides; with the
//! health endpoints and metrics observed from outside (issue 3).

mod core_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use core_support::{BadProxy, Mode, Refreshing};
use secrecy::{ExposeSecret, SecretString};
use spedy_api::{Backend, RunnerToken, Scope, SecretKind};
use spedy_secrets::dotenv;
use spedy_supervisor::{LocalSources, OfflineReason, RunnerState};
use spedy_testkit::canary::{assert_absent, canary};
use spedy_testkit::platform::TestPlatform;

/// A platform with the Anthropic key and a runner token.
async fn platform_with_runner(refresh_after_s: u64) -> (TestPlatform, String, RunnerToken) {
    let platform = TestPlatform::builder()
        .refresh_after_s(refresh_after_s)
        .start()
        .await;
    platform
        .put_secret_kind(
            "ANTHROPIC_API_KEY",
            &canary("KEY"),
            SecretKind::Anthropic,
            Scope::Org,
        )
        .await;
    let (id, token) = platform
        .create_runner("core-test", 2, Backend::AnthropicApi)
        .await;
    (platform, id, token)
}

fn value_of(state: &RunnerState, env: &str) -> Option<String> {
    let online = state.online()?;
    online
        .bundle
        .entries()
        .iter()
        .find(|e| e.env == env)
        .map(|e| e.value.expose_secret().to_owned())
}

#[tokio::test]
async fn the_runner_goes_online_with_the_bundle_and_readyz_says_so() {
    let (platform, runner_id, token) = platform_with_runner(900).await;
    let mut r = Refreshing::start(&platform.url(), token, LocalSources::default(), None).await;
    let state = r.wait("online", RunnerState::is_online).await;
    let online = state.online().expect("online");
    assert_eq!(online.runner.id, runner_id);
    assert_eq!(online.backend, Backend::AnthropicApi);
    assert!(online.bundle.names().contains(&"ANTHROPIC_API_KEY"));
    assert_eq!(r.readyz().await, (200, "online\n".to_owned()));
    let metrics = r.metrics_text().await;
    assert!(metrics.contains("spedy_runner_online 1"), "{metrics}");
    assert!(
        metrics.contains("spedy_runner_refreshes_total 1"),
        "{metrics}"
    );
    r.stop().await;
}

#[tokio::test]
async fn an_unreachable_platform_at_start_backs_off_then_the_runner_comes_online_when_it_appears() {
    let (mut platform, _, token) = platform_with_runner(900).await;
    platform.stop().await;
    let mut r = Refreshing::start(&platform.url(), token, LocalSources::default(), None).await;
    r.wait("offline: unreachable", |s| {
        matches!(s, RunnerState::Offline(OfflineReason::Unreachable))
    })
    .await;
    // A few attempts, spaced by the backoff (20 ms doubling to 150 ms).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = r.readyz().await;
    assert_eq!((status, body.as_str()), (503, "unreachable\n"));
    let failures = r.metrics.refresh_failures("connect");
    assert!(
        (2..=20).contains(&failures),
        "{failures} connect failures in 400 ms"
    );
    platform.resume().await;
    r.wait("online after the platform appeared", RunnerState::is_online)
        .await;
    assert_eq!(r.readyz().await.0, 200);
    r.stop().await;
}

#[tokio::test]
async fn a_refresh_that_gets_a_5xx_garbage_or_an_oversized_body_keeps_the_last_good_bundle() {
    let (platform, _, token) = platform_with_runner(900).await;
    let proxy = BadProxy::start(&platform.url()).await;
    let interval = Some(Duration::from_millis(100));
    let mut r = Refreshing::start(&proxy.url, token, LocalSources::default(), interval).await;
    let first = r
        .wait("online", RunnerState::is_online)
        .await
        .online()
        .expect("online");
    for (mode, reason) in [
        (Mode::ServerError, "server_error"),
        (Mode::Garbage, "protocol"),
        (Mode::Oversized, "body_too_large"),
    ] {
        proxy.set(mode);
        let start = tokio::time::Instant::now();
        while r.metrics.refresh_failures(reason) < 2 {
            assert!(
                start.elapsed() < core_support::PATIENCE,
                "{reason} never counted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let now = r.state.borrow().online().expect("still online");
        assert_eq!(now.bundle.version(), first.bundle.version(), "{reason}");
        assert_eq!(r.readyz().await.0, 200, "{reason}: still ready");
        let metrics = r.metrics_text().await;
        assert!(
            metrics.contains(&format!(
                "spedy_runner_refresh_failures_total{{reason=\"{reason}\"}}"
            )),
            "{metrics}"
        );
    }
    proxy.set(Mode::Pass);
    let calls = proxy.bootstrap_calls();
    let start = tokio::time::Instant::now();
    while proxy.bootstrap_calls() < calls + 2 {
        assert!(
            start.elapsed() < core_support::PATIENCE,
            "no refresh after recovery"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(r.state.borrow().is_online());
    r.stop().await;
}

#[tokio::test]
async fn a_401_drops_the_bundle_stops_readiness_and_a_valid_token_brings_it_back_without_restart() {
    let (platform, _, token) = platform_with_runner(900).await;
    let proxy = BadProxy::start(&platform.url()).await;
    let interval = Some(Duration::from_millis(100));
    let mut r = Refreshing::start(&proxy.url, token, LocalSources::default(), interval).await;
    let online = r
        .wait("online", RunnerState::is_online)
        .await
        .online()
        .expect("online");
    let weak = Arc::downgrade(&online.bundle);
    drop(online);
    proxy.set(Mode::Unauthorized);
    r.wait("offline: invalid token", |s| {
        matches!(s, RunnerState::Offline(OfflineReason::InvalidToken))
    })
    .await;
    assert!(
        weak.upgrade().is_none(),
        "the bundle was dropped (and zeroized)"
    );
    assert_eq!(r.readyz().await, (503, "invalid_token\n".to_owned()));
    assert!(r.metrics_text().await.contains("spedy_runner_online 0"));
    // Keeps checking (every 100 ms here, 5 minutes by default).
    let calls = proxy.bootstrap_calls();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(proxy.bootstrap_calls() >= calls + 2, "it keeps checking");
    proxy.set(Mode::Pass);
    r.wait("online again", RunnerState::is_online).await;
    r.stop().await;
}

#[tokio::test]
async fn a_revoked_token_takes_the_runner_offline_at_the_next_refresh() {
    let (platform, runner_id, token) = platform_with_runner(900).await;
    let interval = Some(Duration::from_millis(200));
    let mut r = Refreshing::start(&platform.url(), token, LocalSources::default(), interval).await;
    r.wait("online", RunnerState::is_online).await;
    platform.revoke_runner(&runner_id).await;
    r.wait("offline: invalid token", |s| {
        matches!(s, RunnerState::Offline(OfflineReason::InvalidToken))
    })
    .await;
    assert!(r.metrics.refresh_failures("invalid_token") >= 1);
    r.stop().await;
}

#[tokio::test]
async fn a_key_removed_from_the_vault_gates_the_runner_and_adding_it_back_brings_it_online() {
    let (platform, _, token) = platform_with_runner(900).await;
    let interval = Some(Duration::from_millis(100));
    let mut r = Refreshing::start(&platform.url(), token, LocalSources::default(), interval).await;
    r.wait("online", RunnerState::is_online).await;
    platform.delete_secret("ANTHROPIC_API_KEY").await;
    let gated = r
        .wait("offline: key missing", |s| {
            matches!(
                s,
                RunnerState::Offline(OfflineReason::AnthropicKeyMissing { .. })
            )
        })
        .await;
    let RunnerState::Offline(OfflineReason::AnthropicKeyMissing { link }) = gated else {
        unreachable!()
    };
    assert!(
        link.is_some_and(|l| l.contains("secrets")),
        "the deep link is kept"
    );
    assert_eq!(
        r.readyz().await,
        (503, "anthropic_key_missing\n".to_owned())
    );
    let key = canary("NEWKEY");
    platform
        .put_secret_kind("ANTHROPIC_API_KEY", &key, SecretKind::Anthropic, Scope::Org)
        .await;
    let back = r.wait("online again", RunnerState::is_online).await;
    assert_eq!(
        value_of(&back, "ANTHROPIC_API_KEY").as_deref(),
        Some(key.as_str())
    );
    r.stop().await;
}

#[tokio::test]
async fn a_legacy_host_with_the_key_only_in_its_env_file_goes_online_with_the_local_key() {
    // runner.md: a host set up the old way keeps working unchanged. The vault
    // has no key; the runner names (never sends) its local one, the platform
    // delivers the rest, and jobs get the local value.
    let platform = TestPlatform::builder().start().await;
    platform
        .put_secret("LINEAR_MCP_TOKEN", &canary("MCP"), Scope::Org)
        .await;
    let (_, token) = platform
        .create_runner("legacy", 1, Backend::AnthropicApi)
        .await;
    let local_key = canary("LOCALKEY");
    let text = format!("ANTHROPIC_API_KEY={local_key}\n");
    let dotenv =
        dotenv::parse(&text, std::path::Path::new("/test/.env"), |_| None).expect("parses");
    let local = LocalSources {
        dotenv,
        process_env: Vec::new(),
    };
    let mut r = Refreshing::start(&platform.url(), token, local, None).await;
    let online = r
        .wait("online", RunnerState::is_online)
        .await
        .online()
        .expect("online");
    assert_eq!(online.bundle.names(), ["LINEAR_MCP_TOKEN"]);
    let key = online
        .overrides
        .get("ANTHROPIC_API_KEY")
        .expect("local key");
    assert_eq!(key.value.expose_secret(), local_key);
    r.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_reaches_the_next_snapshot_within_one_refresh_interval() {
    // The platform's own refresh_after_s of 1 s, no local override.
    let (platform, _, token) = platform_with_runner(1).await;
    let old = canary("OLD");
    platform.put_secret("ROTATED_VAR", &old, Scope::Org).await;
    let mut r = Refreshing::start(&platform.url(), token, LocalSources::default(), None).await;
    let s = r
        .wait("online with the old value", |s| {
            value_of(s, "ROTATED_VAR").as_deref() == Some(old.as_str())
        })
        .await;
    let before = s.online().expect("online");
    let new = canary("NEW");
    platform.put_secret("ROTATED_VAR", &new, Scope::Org).await;
    let rotated_at = tokio::time::Instant::now();
    r.wait("the new value", |s| {
        value_of(s, "ROTATED_VAR").as_deref() == Some(new.as_str())
    })
    .await;
    // One interval (1 s ± 10%) plus the bootstrap itself.
    assert!(
        rotated_at.elapsed() < Duration::from_millis(2500),
        "{:?}",
        rotated_at.elapsed()
    );
    let before_value = before
        .bundle
        .entries()
        .iter()
        .find(|e| e.env == "ROTATED_VAR")
        .map(|e| e.value.expose_secret().to_owned());
    assert_eq!(
        before_value.as_deref(),
        Some(old.as_str()),
        "an earlier snapshot keeps its values"
    );
    assert!(
        r.metrics_text()
            .await
            .contains("spedy_runner_bundle_version_changes_total 1")
    );
    r.stop().await;
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn a_local_value_shadows_the_platform_and_is_logged_once_by_name_only() {
    let (platform, _, token) = platform_with_runner(900).await;
    let vault_value = canary("VAULT");
    let local_value = canary("LOCAL");
    let env_value = canary("PROCESS");
    platform
        .put_secret("SHADOWED_VAR", &vault_value, Scope::Org)
        .await;
    let text = format!("SPEDY_POOL_SIZE=2\nSHADOWED_VAR={local_value}\n");
    let dotenv =
        dotenv::parse(&text, std::path::Path::new("/test/.env"), |_| None).expect("parses");
    let local = LocalSources {
        dotenv,
        process_env: vec![
            (
                "GITHUB_TOKEN".into(),
                SecretString::from(env_value.as_str()),
            ),
            ("UNRELATED".into(), SecretString::from("not an override")),
        ],
    };
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(spedy_secrets::RedactingMakeWriter::new(
            spedy_secrets::RedactorHandle::default(),
            captured.clone(),
        ))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let interval = Some(Duration::from_millis(100));
    let mut r = Refreshing::start(&platform.url(), token, local, interval).await;
    let online = r
        .wait("online", RunnerState::is_online)
        .await
        .online()
        .expect("online");
    let names: Vec<_> = online.overrides.names();
    assert_eq!(
        names,
        ["GITHUB_TOKEN", "SHADOWED_VAR"],
        "SPEDY_* and unrelated env are not overrides"
    );
    // Let a few refreshes pass: the shadowing is logged once.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let log = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert_eq!(
        log.matches("shadows the platform's SHADOWED_VAR").count(),
        1,
        "{log}"
    );
    for value in [&vault_value, &local_value, &env_value] {
        assert_absent("the runner's log", log.as_bytes(), &[value]);
    }
    // The log redactor was rebuilt with every value the runner holds.
    let redactor = r.log.get();
    for value in [&vault_value, &local_value, &env_value] {
        let out = redactor.redact_str(&format!("echo {value}")).into_owned();
        assert!(!out.contains(value.as_str()), "{out}");
    }
    r.stop().await;
}

#[tokio::test]
async fn while_refreshes_fail_the_last_good_bundle_keeps_serving_minus_expired_entries() {
    let (platform, _, token) = platform_with_runner(900).await;
    let proxy = BadProxy::start(&platform.url()).await;
    proxy.set(Mode::ShortExpiry);
    // A long interval: only the expiry can bring the next refresh forward.
    let interval = Some(Duration::from_secs(60));
    let mut r = Refreshing::start(&proxy.url, token, LocalSources::default(), interval).await;
    let online = r
        .wait("online", RunnerState::is_online)
        .await
        .online()
        .expect("online");
    assert!(online.bundle.names().contains(&"ANTHROPIC_API_KEY"));
    proxy.set(Mode::ServerError);
    // The refresh comes early (at half the 700 ms left) and fails; the
    // entry then expires and is dropped from what jobs get.
    let state = r
        .wait("online without the expired entry", |s| {
            s.online().is_some_and(|o| o.bundle.is_empty())
        })
        .await;
    assert!(state.is_online(), "still online: the bundle is held");
    assert!(r.metrics.refresh_failures("server_error") >= 1);
    r.stop().await;
}
