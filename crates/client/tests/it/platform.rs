//! The happy paths (and the contract's own error answers) against the REAL
//! local platform, in-process on 127.0.0.1 over a real socket. No HTTP mock:
//! every call goes through `spedy-client` to `spedy-platform`'s router, vault
//! and SQLite database.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use spedy_api::{
    ANTHROPIC_API_KEY, AdminToken, Backend, BitbucketIntegrationRequest, CheckStatus,
    CompleteRequest, CreateRunnerRequest, FinalStatus, GitProvider, GithubIntegrationRequest,
    JobSpec, JobStatus, LogBatch, LogChunk, LogStream, PutSecretRequest, Scope, SecretKind,
};
use spedy_client::{AdminApi, Client, Error, RunnerApi};
use spedy_testkit::canary::canary;
use spedy_testkit::platform::TestPlatform;

fn client(platform: &TestPlatform) -> Client {
    Client::builder(&platform.url())
        .read_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn admin(platform: &TestPlatform) -> AdminApi {
    client(platform).admin(platform.admin_token().clone())
}

fn secret(value: &str) -> PutSecretRequest {
    PutSecretRequest {
        value: SecretString::from(value.to_owned()),
        kind: None,
        scope: None,
    }
}

async fn new_runner(platform: &TestPlatform, backend: Backend) -> RunnerApi {
    let created = admin(platform)
        .create_runner(&CreateRunnerRequest {
            name: "host-1".into(),
            pool_size: 2,
            backend,
        })
        .await
        .unwrap();
    client(platform).runner(created.token)
}

fn job_spec() -> JobSpec {
    JobSpec {
        image: "spedy/probe:test".into(),
        command: Some(vec!["echo".into(), "hi".into()]),
        env: BTreeMap::from([("MODE".to_owned(), "test".to_owned())]),
        repo: None,
        scope: Some(Scope::Project("proj_42".into())),
        timeout_s: 60,
    }
}

#[tokio::test]
async fn healthz_answers_over_a_real_socket() {
    let platform = TestPlatform::start().await;
    client(&platform).healthz().await.unwrap();
}

#[tokio::test]
async fn a_new_runner_is_withheld_its_bundle_until_the_anthropic_key_is_in_the_vault() {
    let platform = TestPlatform::start().await;
    let admin = admin(&platform);
    let created = admin
        .create_runner(&CreateRunnerRequest {
            name: "build-host-1".into(),
            pool_size: 4,
            backend: Backend::AnthropicApi,
        })
        .await
        .unwrap();
    assert!(
        created.runner_id.starts_with("run_"),
        "{}",
        created.runner_id
    );
    assert!(
        created
            .env_snippet
            .expose_secret()
            .contains(created.token.expose()),
        "the snippet holds the token"
    );
    assert!(!created.readiness.ready);
    let runner = client(&platform).runner(created.token);

    let err = runner.bootstrap().await.unwrap_err();
    let Error::AnthropicKeyMissing { link: Some(link) } = &err else {
        panic!("{err:?}")
    };
    assert!(link.starts_with(&platform.url()), "{link}");
    assert!(!err.is_transient());

    let key = canary("ANTHROPIC");
    let entry = admin
        .put_secret(ANTHROPIC_API_KEY, &secret(&key))
        .await
        .unwrap();
    assert_eq!(entry.kind, SecretKind::Anthropic);
    assert!(entry.masked.contains("****"), "{}", entry.masked);
    assert!(!entry.masked.contains(&key));

    let boot = runner.bootstrap().await.unwrap();
    assert_eq!(boot.runner.name, "build-host-1");
    assert_eq!(boot.runner.pool_size, 4);
    assert_eq!(boot.runner.backend, Backend::AnthropicApi);
    let delivered = boot
        .bundle
        .secrets
        .iter()
        .find(|s| s.env == ANTHROPIC_API_KEY)
        .expect("the key is in the bundle");
    assert_eq!(delivered.value.expose_secret(), key);
    assert!(!format!("{boot:?}").contains(&key), "Debug hides the value");

    let readiness = runner.readiness().await.unwrap();
    let anthropic = readiness
        .checks
        .iter()
        .find(|c| c.id == "anthropic_key")
        .unwrap();
    assert_eq!(anthropic.status, CheckStatus::Ok);

    let listed = admin.list_secrets().await.unwrap();
    let entry = listed
        .secrets
        .iter()
        .find(|s| s.env == ANTHROPIC_API_KEY)
        .unwrap();
    assert!(entry.last_used_at.is_some(), "bootstrap sets last_used_at");
}

#[tokio::test]
async fn admin_readiness_takes_an_optional_backend() {
    let platform = TestPlatform::start().await;
    let admin = admin(&platform);
    let local = admin.readiness(Some(Backend::LocalClaude)).await.unwrap();
    let check = local
        .checks
        .iter()
        .find(|c| c.id == "anthropic_key")
        .unwrap();
    assert_eq!(check.status, CheckStatus::NotNeeded);
    let api = admin.readiness(None).await.unwrap();
    let check = api.checks.iter().find(|c| c.id == "anthropic_key").unwrap();
    assert_eq!(check.status, CheckStatus::Warn);
}

#[tokio::test]
async fn secrets_are_written_rotated_listed_and_deleted() {
    let platform = TestPlatform::start().await;
    let admin = admin(&platform);
    let first = admin
        .put_secret(
            "FEATURE_FLAG_X",
            &PutSecretRequest {
                value: SecretString::from("first-value-123".to_owned()),
                kind: Some(SecretKind::Custom),
                scope: Some(Scope::Project("proj_42".into())),
            },
        )
        .await
        .unwrap();
    assert_eq!(first.scope, Scope::Project("proj_42".into()));
    assert_eq!(first.rotated_at, None);
    let rotated = admin
        .put_secret("FEATURE_FLAG_X", &secret("second-value-456"))
        .await
        .unwrap();
    assert!(rotated.rotated_at.is_some(), "a second write is a rotation");
    assert_eq!(rotated.masked, "seco****-456");

    let listed = admin.list_secrets().await.unwrap();
    assert_eq!(listed.secrets.len(), 1);
    admin.delete_secret("FEATURE_FLAG_X").await.unwrap();
    assert!(admin.list_secrets().await.unwrap().secrets.is_empty());
    let err = admin.delete_secret("FEATURE_FLAG_X").await.unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
}

#[tokio::test]
async fn a_bad_env_name_is_invalid_request_naming_the_field_and_never_the_value() {
    let platform = TestPlatform::start().await;
    let value = canary("VALUE");
    let err = admin(&platform)
        .put_secret("1BAD", &secret(&value))
        .await
        .unwrap_err();
    let Error::InvalidRequest { message } = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains("env"), "{message}");
    assert!(!err.is_transient());
    let text = format!("{err} {err:?}");
    assert!(!text.contains(&value), "{text}");
}

#[tokio::test]
async fn integrations_are_connected_listed_and_removed() {
    let platform = TestPlatform::start().await;
    let admin = admin(&platform);
    admin
        .put_github(&GithubIntegrationRequest::App {
            installation_id: 4242,
        })
        .await
        .unwrap();
    let list = admin
        .put_bitbucket(&BitbucketIntegrationRequest {
            token: SecretString::from("bb-token-value-0123".to_owned()),
        })
        .await
        .unwrap();
    assert_eq!(list.integrations.len(), 2, "{list:?}");
    let listed = admin.integrations().await.unwrap();
    let github = listed
        .integrations
        .iter()
        .find(|i| i.provider == GitProvider::Github)
        .unwrap();
    assert_eq!(github.installation_id, Some(4242));

    let runner = new_runner(&platform, Backend::LocalClaude).await;
    let boot = runner.bootstrap().await.unwrap();
    let minted = boot
        .bundle
        .secrets
        .iter()
        .find(|s| s.env == "GITHUB_TOKEN")
        .expect("a minted GitHub token");
    assert!(minted.expires_at.is_some());

    admin
        .delete_integration(GitProvider::Bitbucket)
        .await
        .unwrap();
    let left = admin.integrations().await.unwrap();
    assert_eq!(left.integrations.len(), 1);
}

#[tokio::test]
async fn a_job_goes_from_enqueue_through_claim_logs_heartbeat_and_complete() {
    let platform = TestPlatform::start().await;
    let admin = admin(&platform);
    let runner = new_runner(&platform, Backend::LocalClaude).await;

    assert_eq!(runner.claim(0).await.unwrap(), None, "nothing queued yet");
    let created = admin.enqueue(&job_spec()).await.unwrap();
    let job = runner.claim(2).await.unwrap().expect("the queued job");
    assert_eq!(job.id, created.id);
    assert_eq!(job.spec, job_spec());
    assert_eq!(admin.job(&job.id).await.unwrap().status, JobStatus::Running);

    let batch = |seq, text: &str| LogBatch {
        seq,
        chunks: vec![LogChunk {
            stream: LogStream::Stdout,
            text: text.into(),
        }],
    };
    runner.logs(&job.id, &batch(0, "one\n")).await.unwrap();
    runner.logs(&job.id, &batch(0, "one\n")).await.unwrap();
    runner.logs(&job.id, &batch(1, "two\n")).await.unwrap();
    assert!(!runner.heartbeat(&job.id).await.unwrap().cancel);

    let result = CompleteRequest {
        status: FinalStatus::Succeeded,
        exit_code: Some(0),
        duration_ms: 1234,
        error: None,
        usage: Some(serde_json::json!({"input_tokens": 10})),
    };
    runner.complete(&job.id, &result).await.unwrap();
    let again = CompleteRequest {
        status: FinalStatus::Failed,
        exit_code: Some(1),
        ..result.clone()
    };
    runner.complete(&job.id, &again).await.unwrap();

    let view = admin.job(&job.id).await.unwrap();
    assert_eq!(
        view.status,
        JobStatus::Succeeded,
        "the first result is kept"
    );
    assert_eq!(view.exit_code, Some(0));
    assert_eq!(view.log, "one\ntwo\n", "a repeated seq is stored once");
}

#[tokio::test]
async fn a_cancelled_job_says_so_at_the_next_heartbeat() {
    let platform = TestPlatform::start().await;
    let admin = admin(&platform);
    let runner = new_runner(&platform, Backend::LocalClaude).await;
    let created = admin.enqueue(&job_spec()).await.unwrap();
    let job = runner.claim(2).await.unwrap().unwrap();
    admin.cancel_job(&created.id).await.unwrap();
    assert!(runner.heartbeat(&job.id).await.unwrap().cancel);
}

#[tokio::test]
async fn a_claim_long_poll_returns_none_when_no_job_comes() {
    let platform = TestPlatform::builder().max_claim_wait_s(1).start().await;
    let runner = new_runner(&platform, Backend::LocalClaude).await;
    let started = std::time::Instant::now();
    assert_eq!(runner.claim(1).await.unwrap(), None);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_revoked_runner_token_gets_invalid_token() {
    let platform = TestPlatform::start().await;
    let admin = admin(&platform);
    let created = admin
        .create_runner(&CreateRunnerRequest {
            name: "doomed".into(),
            pool_size: 1,
            backend: Backend::LocalClaude,
        })
        .await
        .unwrap();
    let runner = client(&platform).runner(created.token);
    runner.bootstrap().await.unwrap();
    admin.delete_runner(&created.runner_id).await.unwrap();
    let err = runner.bootstrap().await.unwrap_err();
    assert!(matches!(err, Error::InvalidToken), "{err:?}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn an_unknown_admin_token_gets_invalid_token_and_an_unknown_job_not_found() {
    let platform = TestPlatform::start().await;
    let stranger: AdminToken = "sat_0123456789abcdefghij0123456789ABCDEFGHIJ"
        .parse()
        .unwrap();
    let err = client(&platform)
        .admin(stranger)
        .list_secrets()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidToken), "{err:?}");
    let err = admin(&platform).job("job_doesnotexist").await.unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
}
