//! The HTTP edge: the contract's error body as a response, the JSON body
//! extractor with its size cap, and the answers for unknown routes.
//!
//! Every failure a client can cause is a 4xx with
//! `{"error": {"code", "message", "link"?}}`; a 500 (`internal`) means the
//! platform itself failed. Error messages name fields, never echo values that
//! could be secret, and are not logged.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use spedy_api::{ErrorBody, ErrorCode};

use crate::error::Error;

/// The largest request body accepted, in bytes (a `413` beyond).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A request the platform answers with the contract's error body.
#[derive(Debug)]
pub struct ApiFailure {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiFailure {
    /// A failure with the code's own status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status =
            StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiFailure {
            status,
            body: ErrorBody::new(code, message),
        }
    }

    /// A failure with an explicit status (413, 405).
    pub fn with_status(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiFailure {
            status,
            body: ErrorBody::new(code, message),
        }
    }

    /// Adds a deep link.
    pub fn link(mut self, link: impl Into<String>) -> Self {
        self.body = self.body.with_link(link);
        self
    }

    /// `401 invalid_token`.
    pub fn invalid_token() -> Self {
        Self::new(
            ErrorCode::InvalidToken,
            "the token is missing, malformed, unknown or revoked",
        )
    }

    /// `403 forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// `404 not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// `422 invalid_request` naming the field.
    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidRequest, format!("{field}: {reason}"))
    }

    /// The status, for tests and logs.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<Error> for ApiFailure {
    fn from(err: Error) -> Self {
        // The error's text names files and entries only; still, log it here
        // once and answer with a generic sentence plus the entry's name.
        let source = std::error::Error::source(&err).map(ToString::to_string);
        tracing::error!(error = %err, source = source.as_deref().unwrap_or(""), "request failed");
        let message = match &err {
            Error::Decrypt { entry } => {
                format!("vault entry {entry} cannot be decrypted; write it again to repair it")
            }
            _ => "the platform failed; see its log".to_owned(),
        };
        ApiFailure::new(ErrorCode::Internal, message)
    }
}

impl From<rusqlite::Error> for ApiFailure {
    fn from(err: rusqlite::Error) -> Self {
        Error::from(err).into()
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A JSON body parsed with the contract's error answers: `413` over
/// [`MAX_BODY_BYTES`], `422 invalid_request` naming the field otherwise.
/// The `Content-Type` is not required.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiFailure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| body_failure(rejection.status()))?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// An optional JSON body: an empty body is `None`.
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiFailure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| body_failure(rejection.status()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        parse_json(&bytes).map(|v| OptionalJsonBody(Some(v)))
    }
}

/// The one path parameter of a route, with the error body on a bad one
/// (for example invalid UTF-8 after percent-decoding).
pub struct PathParam(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PathParam {
    type Rejection = ApiFailure;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(p)| PathParam(p))
            .map_err(|_| ApiFailure::invalid("path", "the path parameter is not valid UTF-8"))
    }
}

/// The query string parsed into `T`, with the error body on a bad one.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiFailure;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(q)| QueryParams(q))
            .map_err(|e| ApiFailure::invalid("query", e.body_text()))
    }
}

fn body_failure(status: StatusCode) -> ApiFailure {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiFailure::with_status(
            status,
            ErrorCode::InvalidRequest,
            format!("body: the request body is over {MAX_BODY_BYTES} bytes"),
        )
    } else {
        ApiFailure::new(
            ErrorCode::InvalidRequest,
            "body: the request body could not be read",
        )
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiFailure> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let (field, reason) = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ("body".to_owned(), "the body is not valid JSON".to_owned())
            }
            _ if path == "." || path.contains('?') => {
                ("body".to_owned(), strip_position(&inner.to_string()))
            }
            _ => (path, strip_position(&inner.to_string())),
        };
        ApiFailure::invalid(&field, reason)
    })?;
    de.end()
        .map_err(|_| ApiFailure::invalid("body", "trailing characters after the JSON value"))?;
    Ok(value)
}

/// serde_json appends " at line L column C" (the field path says more) and
/// quotes a misplaced string (`invalid type: string "…"`), which could be a
/// secret sent in the wrong field: both are dropped.
fn strip_position(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

/// `404 not_found` for a route the platform does not serve, except
/// `PUT /secrets/` (an empty env name), which an admin gets as `422`.
pub async fn unknown_route(
    axum::extract::State(platform): axum::extract::State<crate::Platform>,
    request: Request,
) -> ApiFailure {
    let (mut parts, _body) = request.into_parts();
    if crate::routes::is_empty_secret_path(&parts.method, parts.uri.path()) {
        use axum::extract::FromRequestParts;
        return match crate::auth::AdminCaller::from_request_parts(&mut parts, &platform).await {
            Ok(_) => ApiFailure::invalid("env", spedy_api::env::EnvNameError::Empty),
            Err(failure) => failure,
        };
    }
    ApiFailure::not_found(format!(
        "no route for {} {}",
        parts.method,
        parts.uri.path()
    ))
}

/// `405` with the error body for a known path and a wrong method.
pub async fn wrong_method(method: Method, uri: axum::http::Uri) -> ApiFailure {
    ApiFailure::with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::InvalidRequest,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

/// Turns a handler panic into `500 internal` with the error body (the panic
/// text is not echoed: it could hold anything).
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiFailure::new(ErrorCode::Internal, "the platform failed; see its log").into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        wait_s: u64,
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_the_error_body_and_no_panic_text() {
        use axum::routing::get;
        use tower::ServiceExt;
        async fn boom() -> &'static str {
            panic!("SECRET-IN-PANIC")
        }
        let router = axum::Router::new().route("/boom", get(boom)).layer(
            tower_http::catch_panic::CatchPanicLayer::custom(panic_response),
        );
        let req = axum::http::Request::get("/boom")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = router.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.error.code, ErrorCode::Internal);
        assert!(!body.error.message.contains("SECRET"));
    }

    #[test]
    fn json_errors_name_the_field_without_a_position() {
        let err = parse_json::<Body>(br#"{"wait_s": "x"}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            err.body.error.message.starts_with("wait_s: "),
            "{:?}",
            err.body
        );
        assert!(!err.body.error.message.contains("line"), "{:?}", err.body);
        let err = parse_json::<Body>(b"{not json").unwrap_err();
        assert_eq!(err.body.error.message, "body: the body is not valid JSON");
        let err = parse_json::<Body>(br#"{"wait_s": "sk-SECRET"}"#).unwrap_err();
        assert!(!err.body.error.message.contains("SECRET"), "{:?}", err.body);
        assert!(
            err.body.error.message.contains("invalid type: string"),
            "{:?}",
            err.body
        );
        let err = parse_json::<Body>(b"{}").unwrap_err();
        assert!(err.body.error.message.contains("wait_s"), "{:?}", err.body);
    }
}
