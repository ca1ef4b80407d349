use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{App, job_spec};

#[tokio::test]
async fn a_body_that_is_not_json_gets_422_with_the_error_body() {
    let app = App::new();
    let admin = app.admin.clone();
    for body in [
        "{not json",
        "",
        "[1,2",
        "\u{0}\u{1}",
        "{\"value\": \"x\"} trailing",
    ] {
        let a = app
            .raw(Method::PUT, "/secrets/GOOD", Some(&admin), body.to_owned())
            .await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body:?}: {a:?}"
        );
        assert_eq!(a.code(), "invalid_request");
    }
}

#[tokio::test]
async fn a_body_over_the_size_cap_gets_413_with_the_error_body() {
    let app = App::new();
    let admin = app.admin.clone();
    let huge = format!(
        "{{\"value\": \"{}\"}}",
        "x".repeat(spedy_platform::http::MAX_BODY_BYTES + 1)
    );
    let a = app
        .raw(Method::PUT, "/secrets/GOOD", Some(&admin), huge)
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", a.status);
    assert_eq!(a.code(), "invalid_request");
    assert!(a.message().starts_with("body: "), "{a:?}");
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_gets_422_naming_the_field() {
    let app = App::new();
    let a = app
        .admin(
            Method::POST,
            "/runners/tokens",
            json!({"name": "h", "pool_size": "four", "backend": "anthropic_api"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{a:?}");
    assert!(a.message().starts_with("pool_size: "), "{a:?}");
    let a = app
        .admin(
            Method::POST,
            "/runners/tokens",
            json!({"name": "h", "pool_size": 1, "backend": "gpt"}),
        )
        .await;
    assert!(a.message().starts_with("backend: "), "{a:?}");
}

#[tokio::test]
async fn a_runner_with_a_bad_name_or_pool_size_is_refused_with_422() {
    let app = App::new();
    for (body, field) in [
        (
            json!({"name": " ", "pool_size": 1, "backend": "local_claude"}),
            "name",
        ),
        (
            json!({"name": "h", "pool_size": 0, "backend": "local_claude"}),
            "pool_size",
        ),
        (
            json!({"name": "h", "pool_size": 65, "backend": "local_claude"}),
            "pool_size",
        ),
        (
            json!({"name": "a\nb", "pool_size": 1, "backend": "local_claude"}),
            "name",
        ),
    ] {
        let a = app.admin(Method::POST, "/runners/tokens", body).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{a:?}");
        assert!(a.message().starts_with(&format!("{field}: ")), "{a:?}");
    }
}

#[tokio::test]
async fn an_unknown_route_gets_404_with_the_error_body() {
    let app = App::new();
    for path in ["/nope", "/runners", "/secrets/A/B", "/jobs/x/y/z"] {
        let a = app.admin(Method::GET, path, Value::Null).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {a:?}");
        assert_eq!(a.code(), "not_found");
    }
}

#[tokio::test]
async fn a_wrong_method_gets_405_with_the_error_body() {
    let app = App::new();
    let a = app.admin(Method::PATCH, "/secrets", Value::Null).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{a:?}");
    assert_eq!(a.code(), "invalid_request");
}

#[tokio::test]
async fn a_job_with_a_bad_spec_gets_422_naming_the_field() {
    let app = App::new();
    let mut cases = Vec::new();
    let mut spec = job_spec();
    spec["image"] = json!("");
    cases.push((spec, "image"));
    let mut spec = job_spec();
    spec["timeout_s"] = json!(0);
    cases.push((spec, "timeout_s"));
    let mut spec = job_spec();
    spec["command"] = json!([]);
    cases.push((spec, "command"));
    let mut spec = job_spec();
    spec["env"] = json!({"1BAD": "x"});
    cases.push((spec, "env.1BAD"));
    let mut spec = job_spec();
    spec["scope"] = json!("nope");
    cases.push((spec, "scope"));
    for (spec, field) in cases {
        let a = app.admin(Method::POST, "/jobs", spec).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{a:?}");
        assert!(a.message().starts_with(&format!("{field}: ")), "{a:?}");
    }
}

#[tokio::test]
async fn a_claim_with_a_garbage_body_gets_422_and_an_empty_body_waits_zero() {
    let app = App::new();
    let (_, token) = app.create_runner("local_claude").await;
    let a = app
        .raw(
            Method::POST,
            "/runners/jobs/claim",
            Some(&token),
            "{\"wait_s\": -1}",
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{a:?}");
    assert!(a.message().starts_with("wait_s: "), "{a:?}");
    let a = app
        .raw(Method::POST, "/runners/jobs/claim", Some(&token), "")
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{a:?}");
}

#[tokio::test]
async fn a_readiness_query_with_an_unknown_backend_gets_422() {
    let app = App::new();
    let a = app
        .admin(Method::GET, "/runners/readiness?backend=gpt", Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{a:?}");
    assert!(a.message().starts_with("query: "), "{a:?}");
}

#[tokio::test]
async fn integrations_refuse_bad_tokens_and_unknown_providers() {
    let app = App::new();
    let a = app
        .admin(
            Method::PUT,
            "/integrations/github",
            json!({"type": "token", "token": ""}),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{a:?}");
    assert!(a.message().starts_with("token: "), "{a:?}");
    let a = app
        .admin(
            Method::PUT,
            "/integrations/github",
            json!({"type": "app", "installation_id": 0}),
        )
        .await;
    assert!(a.message().starts_with("installation_id: "), "{a:?}");
    let a = app
        .admin(
            Method::PUT,
            "/integrations/github",
            json!({"type": "oauth"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{a:?}");
    let a = app
        .admin(Method::PUT, "/integrations/gitlab", json!({"token": "x"}))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{a:?}");
    let a = app
        .admin(Method::DELETE, "/integrations/gitlab", Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{a:?}");
    let a = app
        .admin(Method::DELETE, "/integrations/github", Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "not connected: {a:?}");
}
