use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::{Answer, App};

async fn bootstrap(app: &App, token: &str) -> Answer {
    app.runner(token, Method::POST, "/runners/bootstrap", Value::Null)
        .await
}

fn secret<'a>(a: &'a Answer, env: &str) -> &'a Value {
    a.json["bundle"]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["env"] == env)
        .unwrap_or_else(|| panic!("{env} not in the bundle: {a:?}"))
}

fn envs(a: &Answer) -> Vec<String> {
    a.json["bundle"]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["env"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_anthropic_api_runner_without_the_key_gets_409_with_a_link_to_the_secrets_tab() {
    let app = App::with(|c| c.public_url = Some("https://app.example.test".into()));
    app.put_secret("OTHER", "value-of-other").await;
    let (_, token) = app.create_runner("anthropic_api").await;
    let a = bootstrap(&app, &token).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{a:?}");
    assert_eq!(a.code(), "anthropic_key_missing");
    assert_eq!(
        a.json["error"]["link"],
        "https://app.example.test/settings/runners/secrets"
    );
    assert!(a.json.get("bundle").is_none());
    assert!(!String::from_utf8_lossy(&a.raw).contains("value-of-other"));
}

#[tokio::test]
async fn a_runner_that_declares_a_local_anthropic_key_gets_its_bundle_without_the_key() {
    // A host set up before the vault keeps working: it names (never sends)
    // the key it holds locally, and the gate lets the rest of the bundle through.
    let app = App::new();
    app.put_secret("OTHER", "value-of-other").await;
    let (_, token) = app.create_runner("anthropic_api").await;
    let declared = json!({"local_env": ["GITHUB_TOKEN", "ANTHROPIC_API_KEY"]});
    let a = app
        .runner(&token, Method::POST, "/runners/bootstrap", declared)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(envs(&a), vec!["OTHER".to_owned()]);

    let other_names = json!({"local_env": ["GITHUB_TOKEN"]});
    let a = app
        .runner(&token, Method::POST, "/runners/bootstrap", other_names)
        .await;
    assert_eq!(
        a.status,
        StatusCode::CONFLICT,
        "other local names do not open the gate: {a:?}"
    );

    let garbage = json!({"local_env": "ANTHROPIC_API_KEY"});
    let a = app
        .runner(&token, Method::POST, "/runners/bootstrap", garbage)
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{a:?}");
}

#[tokio::test]
async fn a_local_claude_runner_needs_no_anthropic_key() {
    let app = App::new();
    let (id, token) = app.create_runner("local_claude").await;
    let a = bootstrap(&app, &token).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.json["runner"]["id"], id);
    assert_eq!(a.json["runner"]["backend"], "local_claude");
    assert_eq!(a.json["runner"]["pool_size"], 2);
    assert_eq!(a.json["bundle"]["refresh_after_s"], 900);
    assert_eq!(a.json["bundle"]["secrets"], json!([]));
}

#[tokio::test]
async fn the_bundle_delivers_every_vault_entry_with_kind_and_scope_and_sets_last_used_at() {
    let app = App::with(|c| c.refresh_after_s = 7);
    app.put_secret("ANTHROPIC_API_KEY", "sk-ant-0123456789abcd")
        .await;
    app.admin(
        Method::PUT,
        "/secrets/FEATURE_FLAG_X",
        json!({"value": "1", "scope": "project:proj_42"}),
    )
    .await;
    let (_, token) = app.create_runner("anthropic_api").await;
    let a = bootstrap(&app, &token).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.json["bundle"]["refresh_after_s"], 7);
    let key = secret(&a, "ANTHROPIC_API_KEY");
    assert_eq!(key["value"], "sk-ant-0123456789abcd");
    assert_eq!(key["kind"], "anthropic");
    assert_eq!(key["scope"], "org");
    let flag = secret(&a, "FEATURE_FLAG_X");
    assert_eq!(flag["scope"], "project:proj_42");
    assert_eq!(flag["kind"], "custom");
    let list = app.admin(Method::GET, "/secrets", Value::Null).await;
    for entry in list.json["secrets"].as_array().unwrap() {
        assert!(entry["last_used_at"].is_string(), "{entry}");
    }
}

#[tokio::test]
async fn a_github_app_gets_a_fresh_installation_token_valid_60_minutes_at_every_bootstrap() {
    let app = App::new();
    let a = app
        .admin(
            Method::PUT,
            "/integrations/github",
            json!({"type": "app", "installation_id": 4242}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.json["integrations"][0]["type"], "app");
    assert_eq!(a.json["integrations"][0]["installation_id"], 4242);
    let (_, token) = app.create_runner("local_claude").await;
    let first = bootstrap(&app, &token).await;
    let second = bootstrap(&app, &token).await;
    let t1 = secret(&first, "GITHUB_TOKEN");
    let t2 = secret(&second, "GITHUB_TOKEN");
    assert!(t1["value"].as_str().unwrap().starts_with("ghs_"));
    assert_ne!(t1["value"], t2["value"], "minted fresh every time");
    assert_eq!(t1["kind"], "git");
    assert_eq!(t1["provider"], "github");
    let expires = OffsetDateTime::parse(t1["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    let issued = OffsetDateTime::parse(
        first.json["bundle"]["issued_at"].as_str().unwrap(),
        &Rfc3339,
    )
    .unwrap();
    let ttl = expires - issued;
    assert!(
        ttl > time::Duration::minutes(59) && ttl <= time::Duration::minutes(60),
        "{ttl}"
    );
    assert_ne!(
        first.json["bundle"]["version"], second.json["bundle"]["version"],
        "a new token is a changed value"
    );
}

#[tokio::test]
async fn token_integrations_are_delivered_with_their_provider_and_win_over_the_vault() {
    let app = App::new();
    app.put_secret("GITHUB_TOKEN", "ghp_from_the_vault_0000")
        .await;
    app.admin(
        Method::PUT,
        "/integrations/github",
        json!({"type": "token", "token": "ghp_from_the_integration"}),
    )
    .await;
    let a = app
        .admin(
            Method::PUT,
            "/integrations/bitbucket",
            json!({"token": "bb_token_abcdefghij"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let listed = app.admin(Method::GET, "/integrations", Value::Null).await;
    let raw = String::from_utf8_lossy(&listed.raw);
    assert!(!raw.contains("bb_token_abcdefghij"), "{raw}");
    assert!(raw.contains("bb_t****ghij"), "{raw}");
    let (_, token) = app.create_runner("local_claude").await;
    let b = bootstrap(&app, &token).await;
    let gh = secret(&b, "GITHUB_TOKEN");
    assert_eq!(gh["value"], "ghp_from_the_integration");
    assert_eq!(gh["provider"], "github");
    assert!(gh.get("expires_at").is_none());
    let bb = secret(&b, "BITBUCKET_TOKEN");
    assert_eq!(bb["value"], "bb_token_abcdefghij");
    assert_eq!(bb["provider"], "bitbucket");
    assert_eq!(envs(&b).iter().filter(|e| *e == "GITHUB_TOKEN").count(), 1);
    let a = app
        .admin(Method::DELETE, "/integrations/github", Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let b = bootstrap(&app, &token).await;
    assert_eq!(
        secret(&b, "GITHUB_TOKEN")["value"],
        "ghp_from_the_vault_0000"
    );
}

#[tokio::test]
async fn the_bundle_version_moves_exactly_when_a_delivered_value_changes() {
    let app = App::new();
    let (_, token) = app.create_runner("local_claude").await;
    let v = |a: &Answer| a.json["bundle"]["version"].as_str().unwrap().to_owned();
    let v0 = v(&bootstrap(&app, &token).await);
    assert_eq!(v0, v(&bootstrap(&app, &token).await), "nothing changed");
    app.put_secret("A_SECRET", "first-value-123").await;
    let v1 = v(&bootstrap(&app, &token).await);
    assert_ne!(v0, v1);
    app.put_secret("A_SECRET", "second-value-456").await;
    let v2 = v(&bootstrap(&app, &token).await);
    assert_ne!(v1, v2, "a rotation moves the version");
    app.admin(Method::DELETE, "/secrets/A_SECRET", Value::Null)
        .await;
    let v3 = v(&bootstrap(&app, &token).await);
    assert_ne!(v2, v3);
    app.admin(
        Method::PUT,
        "/integrations/bitbucket",
        json!({"token": "bb_token_abcdefghij"}),
    )
    .await;
    let v4 = v(&bootstrap(&app, &token).await);
    assert_ne!(v3, v4);
    for version in [&v0, &v1, &v2, &v3, &v4] {
        assert!(!version.contains("value"), "{version}");
    }
}

#[tokio::test]
async fn a_ciphertext_copied_into_another_row_fails_and_bootstrap_leaks_nothing() {
    let app = App::new();
    app.put_secret("ANTHROPIC_API_KEY", "sk-ant-REAL-KEY-0123456789")
        .await;
    app.put_secret("VICTIM", "the-victim-value-9876").await;
    let (_, token) = app.create_runner("anthropic_api").await;
    assert_eq!(bootstrap(&app, &token).await.status, StatusCode::OK);
    {
        let conn = rusqlite::Connection::open(app.dir.path().join("platform.db")).unwrap();
        conn.execute(
            "UPDATE secrets SET nonce = (SELECT nonce FROM secrets WHERE env = 'ANTHROPIC_API_KEY'),
               ciphertext = (SELECT ciphertext FROM secrets WHERE env = 'ANTHROPIC_API_KEY')
             WHERE env = 'VICTIM'",
            [],
        )
        .unwrap();
    }
    let a = bootstrap(&app, &token).await;
    assert!(a.status.is_server_error(), "{a:?}");
    assert_eq!(a.code(), "internal");
    assert!(a.message().contains("VICTIM"), "names the entry: {a:?}");
    let raw = String::from_utf8_lossy(&a.raw);
    for value in ["sk-ant-REAL-KEY", "the-victim-value"] {
        assert!(!raw.contains(value), "{raw}");
    }
    let list = app.admin(Method::GET, "/secrets", Value::Null).await;
    assert_eq!(list.status, StatusCode::OK, "listing still works: {list:?}");
    let victim = list.json["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["env"] == "VICTIM")
        .unwrap();
    assert_eq!(victim["masked"], "****");
    app.put_secret("VICTIM", "a-fresh-value-1111").await;
    assert_eq!(
        bootstrap(&app, &token).await.status,
        StatusCode::OK,
        "repaired"
    );
}

#[tokio::test]
async fn readiness_follows_the_runners_backend_and_the_admins_query() {
    let app = App::with(|c| c.public_url = Some("https://app.spedy.test".into()));
    let (_, api_runner) = app.create_runner("anthropic_api").await;
    let (_, local_runner) = app.create_runner("local_claude").await;
    let r = app
        .runner(&api_runner, Method::GET, "/runners/readiness", Value::Null)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["ready"], false);
    assert_eq!(r.json["checks"][0]["id"], "anthropic_key");
    assert_eq!(r.json["checks"][0]["status"], "warn");
    assert_eq!(
        r.json["checks"][0]["link"],
        "https://app.spedy.test/settings/runners/secrets"
    );
    assert_eq!(r.json["checks"][1]["id"], "git_integrations");
    assert_eq!(r.json["checks"][1]["status"], "warn");
    assert_eq!(
        r.json["checks"][1]["link"],
        "https://app.spedy.test/settings/integrations"
    );
    let r = app
        .runner(
            &local_runner,
            Method::GET,
            "/runners/readiness",
            Value::Null,
        )
        .await;
    assert_eq!(r.json["checks"][0]["status"], "not_needed");
    app.put_secret("ANTHROPIC_API_KEY", "sk-ant-0123456789abcd")
        .await;
    app.admin(
        Method::PUT,
        "/integrations/github",
        json!({"type": "app", "installation_id": 1}),
    )
    .await;
    let r = app
        .runner(&api_runner, Method::GET, "/runners/readiness", Value::Null)
        .await;
    assert_eq!(r.json["ready"], true, "{r:?}");
    assert_eq!(r.json["checks"][1]["providers"], json!(["github"]));
    app.admin(Method::DELETE, "/secrets/ANTHROPIC_API_KEY", Value::Null)
        .await;
    let r = app
        .admin(Method::GET, "/runners/readiness", Value::Null)
        .await;
    assert_eq!(
        r.json["checks"][0]["status"], "warn",
        "admin default is anthropic_api"
    );
    let r = app
        .admin(
            Method::GET,
            "/runners/readiness?backend=local_claude",
            Value::Null,
        )
        .await;
    assert_eq!(r.json["checks"][0]["status"], "not_needed");
    assert_eq!(r.json["ready"], true);
}

#[tokio::test]
async fn creating_a_runner_shows_the_env_snippet_and_readiness_even_without_the_key() {
    let app = App::with(|c| c.public_url = Some("https://api.example.test".into()));
    let a = app
        .admin(
            Method::POST,
            "/runners/tokens",
            json!({"name": "build-host-1", "pool_size": 4, "backend": "anthropic_api"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    let token = a.json["token"].as_str().unwrap();
    assert!(token.starts_with("rnt_") && token.len() == 44, "{token}");
    assert!(a.json["runner_id"].as_str().unwrap().starts_with("run_"));
    assert_eq!(
        a.json["env_snippet"],
        format!("SPEDY_API_URL=https://api.example.test\nSPEDY_RUNNER_TOKEN={token}\n")
    );
    assert_eq!(a.json["readiness"]["ready"], false);
    assert_eq!(a.json["readiness"]["checks"][0]["status"], "warn");
}
