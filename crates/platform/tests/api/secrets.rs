use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Answer, App};

async fn put(app: &App, env_path: &str, body: Value) -> Answer {
    app.admin(Method::PUT, &format!("/secrets/{env_path}"), body)
        .await
}

fn assert_invalid(a: &Answer, field: &str) {
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{a:?}");
    assert_eq!(a.code(), "invalid_request", "{a:?}");
    assert!(
        a.message().starts_with(&format!("{field}: ")),
        "the message names `{field}`: {a:?}"
    );
}

#[tokio::test]
async fn a_written_secret_is_listed_masked_with_its_timestamps_and_never_its_value() {
    let app = App::new();
    let a = app
        .put_secret("ANTHROPIC_API_KEY", "sk-ant-api03-0123456789abcd")
        .await;
    assert_eq!(a.json["masked"], "sk-a****abcd");
    assert_eq!(a.json["kind"], "anthropic");
    assert_eq!(a.json["scope"], "org");
    assert!(a.json["created_at"].is_string());
    assert!(a.json["rotated_at"].is_null());
    assert!(a.json["last_used_at"].is_null());
    let list = app.admin(Method::GET, "/secrets", Value::Null).await;
    assert_eq!(list.status, StatusCode::OK);
    let raw = String::from_utf8(list.raw.clone()).unwrap();
    assert!(!raw.contains("0123456789"), "{raw}");
    assert_eq!(list.json["secrets"][0], a.json);
}

#[tokio::test]
async fn a_short_value_is_masked_entirely() {
    let app = App::new();
    let a = app.put_secret("FLAG", "short-val").await;
    assert_eq!(a.json["masked"], "****");
}

#[tokio::test]
async fn writing_an_existing_name_is_a_rotation_that_moves_rotated_at() {
    let app = App::new();
    let first = app.put_secret("DB_URL", "postgres://first-value").await;
    let second = app.put_secret("DB_URL", "postgres://second-value").await;
    assert_eq!(first.json["created_at"], second.json["created_at"]);
    assert!(second.json["rotated_at"].is_string(), "{second:?}");
    assert_eq!(second.json["masked"], "post****alue");
    let list = app.admin(Method::GET, "/secrets", Value::Null).await;
    assert_eq!(list.json["secrets"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn kind_defaults_to_custom_and_scope_to_org_and_both_can_be_given() {
    let app = App::new();
    let a = app.put_secret("FEATURE_FLAG_X", "1").await;
    assert_eq!(a.json["kind"], "custom");
    assert_eq!(a.json["scope"], "org");
    let a = put(
        &app,
        "LINEAR_MCP_TOKEN",
        json!({"value": "lin_api_abcdefgh", "kind": "mcp", "scope": "project:proj_42"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.json["kind"], "mcp");
    assert_eq!(a.json["scope"], "project:proj_42");
    let a = put(
        &app,
        "GITHUB_TOKEN",
        json!({"value": "ghp_x", "kind": "git"}),
    )
    .await;
    assert_eq!(a.json["provider"], "github");
}

#[tokio::test]
async fn deleting_a_secret_answers_204_then_404() {
    let app = App::new();
    app.put_secret("GONE", "value-to-delete").await;
    let a = app
        .admin(Method::DELETE, "/secrets/GONE", Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = app
        .admin(Method::DELETE, "/secrets/GONE", Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.code(), "not_found");
    let list = app.admin(Method::GET, "/secrets", Value::Null).await;
    assert_eq!(list.json["secrets"], json!([]));
}

#[tokio::test]
async fn an_empty_env_name_gets_422_naming_env() {
    let app = App::new();
    let a = put(&app, "", json!({"value": "v"})).await;
    assert_invalid(&a, "env");
}

#[tokio::test]
async fn an_empty_env_name_without_a_token_still_gets_401() {
    let app = App::new();
    let a = app
        .call(Method::PUT, "/secrets/", None, json!({"value": "v"}))
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_env_name_starting_with_a_digit_gets_422_naming_env() {
    let app = App::new();
    let a = put(&app, "1ABC", json!({"value": "v"})).await;
    assert_invalid(&a, "env");
    assert!(a.message().contains("digit"), "{a:?}");
}

#[tokio::test]
async fn an_env_name_containing_an_equals_sign_gets_422_naming_env() {
    let app = App::new();
    let a = put(&app, "A=B", json!({"value": "v"})).await;
    assert_invalid(&a, "env");
}

#[tokio::test]
async fn an_env_name_containing_nul_gets_422_naming_env() {
    let app = App::new();
    let a = put(&app, "A%00B", json!({"value": "v"})).await;
    assert_invalid(&a, "env");
}

#[tokio::test]
async fn an_env_name_over_128_characters_gets_422_naming_env() {
    let app = App::new();
    let a = put(&app, &"A".repeat(129), json!({"value": "v"})).await;
    assert_invalid(&a, "env");
    let a = put(&app, &"A".repeat(128), json!({"value": "v"})).await;
    assert_eq!(a.status, StatusCode::OK, "128 characters are fine");
}

#[tokio::test]
async fn a_value_containing_nul_gets_422_naming_value() {
    let app = App::new();
    let a = put(&app, "GOOD", json!({"value": "abc\u{0}def"})).await;
    assert_invalid(&a, "value");
}

#[tokio::test]
async fn a_value_over_64_kib_gets_422_naming_value() {
    let app = App::new();
    let a = put(&app, "GOOD", json!({"value": "x".repeat(64 * 1024 + 1)})).await;
    assert_invalid(&a, "value");
    let a = put(&app, "GOOD", json!({"value": "x".repeat(64 * 1024)})).await;
    assert_eq!(a.status, StatusCode::OK, "exactly 64 KiB is fine");
}

#[tokio::test]
async fn a_bad_scope_or_kind_gets_422_naming_the_field() {
    let app = App::new();
    let a = put(&app, "GOOD", json!({"value": "v", "scope": "team:x"})).await;
    assert_invalid(&a, "scope");
    let a = put(&app, "GOOD", json!({"value": "v", "kind": "openai"})).await;
    assert_invalid(&a, "kind");
    let a = put(&app, "GOOD", json!({"kind": "custom"})).await;
    assert_invalid(&a, "body");
    assert!(a.message().contains("value"), "{a:?}");
}

#[tokio::test]
async fn a_refused_write_loses_nothing() {
    let app = App::new();
    app.put_secret("KEEP", "the-original-value").await;
    let before = app.admin(Method::GET, "/secrets", Value::Null).await;
    let a = put(&app, "KEEP", json!({"value": "bad\u{0}value"})).await;
    assert_invalid(&a, "value");
    let after = app.admin(Method::GET, "/secrets", Value::Null).await;
    assert_eq!(before.json, after.json);
}

#[tokio::test]
async fn the_data_folder_and_every_file_in_it_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let app = App::new();
    app.put_secret("ANY", "some-value-here").await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(app.dir.path()) & 0o077, 0, "the data folder");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    assert_eq!(
        names,
        [
            "master.key",
            "platform.db",
            "platform.db-shm",
            "platform.db-wal"
        ]
    );
}
