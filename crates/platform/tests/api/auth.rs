use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::common::App;

const WELL_FORMED_UNKNOWN_RUNNER: &str = "rnt_abcdefghijABCDEFGHIJ0123456789abcdefghij";
const WELL_FORMED_UNKNOWN_ADMIN: &str = "sat_abcdefghijABCDEFGHIJ0123456789abcdefghij";

#[tokio::test]
async fn a_request_without_a_token_gets_401_with_the_error_body() {
    let app = App::new();
    for (method, path) in [
        (Method::POST, "/runners/bootstrap"),
        (Method::GET, "/secrets"),
        (Method::GET, "/runners/readiness"),
    ] {
        let a = app.call(method, path, None, Value::Null).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}: {a:?}");
        assert_eq!(a.code(), "invalid_token");
        assert!(!a.message().is_empty());
    }
}

#[tokio::test]
async fn a_malformed_token_gets_401_invalid_token() {
    let app = App::new();
    for header_token in [
        "garbage",
        "rnt_short",
        "rnt_abcdefghijABCDEFGHIJ0123456789abcdefghi!",
        "sat_",
        "",
    ] {
        let a = app
            .call(
                Method::POST,
                "/runners/bootstrap",
                Some(header_token),
                Value::Null,
            )
            .await;
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "{header_token:?}: {a:?}"
        );
        assert_eq!(a.code(), "invalid_token");
        assert!(!a.message().contains(header_token) || header_token.is_empty());
    }
}

#[tokio::test]
async fn an_unknown_well_formed_token_gets_401_invalid_token() {
    let app = App::new();
    let a = app
        .call(
            Method::POST,
            "/runners/bootstrap",
            Some(WELL_FORMED_UNKNOWN_RUNNER),
            Value::Null,
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.code(), "invalid_token");
    let a = app
        .call(
            Method::GET,
            "/secrets",
            Some(WELL_FORMED_UNKNOWN_ADMIN),
            Value::Null,
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.code(), "invalid_token");
}

#[tokio::test]
async fn a_revoked_runner_token_gets_401_at_the_next_bootstrap() {
    let app = App::new();
    let (id, token) = app.create_runner("local_claude").await;
    let a = app
        .runner(&token, Method::POST, "/runners/bootstrap", Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let a = app
        .admin(
            Method::DELETE,
            &format!("/runners/tokens/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{a:?}");
    let a = app
        .runner(&token, Method::POST, "/runners/bootstrap", Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{a:?}");
    assert_eq!(a.code(), "invalid_token");
    let a = app
        .runner(&token, Method::GET, "/runners/readiness", Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{a:?}");
}

#[tokio::test]
async fn revoking_an_unknown_runner_gets_404_and_revoking_twice_is_harmless() {
    let app = App::new();
    let a = app
        .admin(Method::DELETE, "/runners/tokens/run_nope", Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.code(), "not_found");
    let (id, _) = app.create_runner("local_claude").await;
    for _ in 0..2 {
        let a = app
            .admin(
                Method::DELETE,
                &format!("/runners/tokens/{id}"),
                Value::Null,
            )
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT);
    }
}

#[tokio::test]
async fn an_admin_route_called_with_a_runner_token_gets_403_forbidden() {
    let app = App::new();
    let (_, token) = app.create_runner("local_claude").await;
    for (method, path) in [
        (Method::GET, "/secrets"),
        (Method::POST, "/runners/tokens"),
        (Method::GET, "/integrations"),
        (Method::POST, "/jobs"),
        (Method::DELETE, "/secrets/X"),
    ] {
        let a = app.runner(&token, method, path, Value::Null).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}: {a:?}");
        assert_eq!(a.code(), "forbidden");
    }
}

#[tokio::test]
async fn a_runner_route_called_with_an_admin_token_gets_403_forbidden() {
    let app = App::new();
    let a = app
        .admin(Method::POST, "/runners/bootstrap", Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{a:?}");
    assert_eq!(a.code(), "forbidden");
}

#[tokio::test]
async fn the_401_answer_names_the_bearer_scheme() {
    let app = App::new();
    let req = axum::http::Request::builder()
        .uri("/secrets")
        .body(axum::body::Body::empty())
        .unwrap();
    use tower::ServiceExt;
    let resp = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn healthz_needs_no_token() {
    let app = App::new();
    let a = app.call(Method::GET, "/healthz", None, Value::Null).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json["status"], "ok");
}

#[tokio::test]
async fn tokens_are_kept_only_as_hashes_in_the_data_folder() {
    let app = App::new();
    let (_, runner_token) = app.create_runner("local_claude").await;
    let admin = app.admin.clone();
    drop(app.router.clone());
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for token in [runner_token.as_str(), admin.as_str()] {
            let found = bytes.windows(token.len()).any(|w| w == token.as_bytes());
            assert!(
                !found,
                "a token is stored in plain text in {}",
                path.display()
            );
        }
    }
}
