//! Shared helpers for the platform's integration tests: the router driven
//! with `oneshot`, over a temporary data folder.

#![allow(dead_code, clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use spedy_platform::{Platform, PlatformConfig};
use tempfile::TempDir;
use tower::ServiceExt;

/// A platform opened on a temporary data folder, driven without a socket.
pub struct App {
    pub platform: Platform,
    pub router: Router,
    pub admin: String,
    pub dir: TempDir,
}

/// What an answer held.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub json: Value,
    pub raw: Vec<u8>,
}

impl Answer {
    /// The error code of an error body (panics when it is not one).
    pub fn code(&self) -> &str {
        self.json["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {self:?}"))
    }

    pub fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap()
    }
}

impl App {
    pub fn new() -> App {
        Self::with(|_| {})
    }

    pub fn with(tweak: impl FnOnce(&mut PlatformConfig)) -> App {
        let dir = tempfile::tempdir().unwrap();
        let mut config = PlatformConfig::new(dir.path());
        tweak(&mut config);
        let platform = Platform::open(config).unwrap();
        let admin = platform
            .admin_token_created()
            .expect("first start generates the admin token")
            .expose()
            .to_owned();
        App {
            router: platform.router(),
            platform,
            admin,
            dir,
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: impl Into<Body>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let raw = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        let json = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw).unwrap_or(Value::Null)
        };
        Answer { status, json, raw }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Answer {
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        self.raw(method, path, token, body).await
    }

    pub async fn admin(&self, method: Method, path: &str, body: Value) -> Answer {
        let admin = self.admin.clone();
        self.call(method, path, Some(&admin), body).await
    }

    pub async fn runner(&self, token: &str, method: Method, path: &str, body: Value) -> Answer {
        self.call(method, path, Some(token), body).await
    }

    /// Creates a runner; returns (id, token).
    pub async fn create_runner(&self, backend: &str) -> (String, String) {
        let a = self
            .admin(
                Method::POST,
                "/runners/tokens",
                json!({"name": "host-1", "pool_size": 2, "backend": backend}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
        (
            a.json["runner_id"].as_str().unwrap().to_owned(),
            a.json["token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn put_secret(&self, env: &str, value: &str) -> Answer {
        let a = self
            .admin(
                Method::PUT,
                &format!("/secrets/{env}"),
                json!({"value": value}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
        a
    }

    pub async fn enqueue(&self, spec: Value) -> String {
        let a = self.admin(Method::POST, "/jobs", spec).await;
        assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
        a.json["id"].as_str().unwrap().to_owned()
    }
}

/// A minimal job.
pub fn job_spec() -> Value {
    json!({"image": "spedy-test:1", "command": ["echo", "hi"], "timeout_s": 60})
}
