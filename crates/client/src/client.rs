//! [`Client`] and the request plumbing every endpoint goes through.
//!
//! Owns: building a request (URL under the base, `Authorization` marked
//! sensitive, JSON body), the timeouts (headers within the read timeout or a
//! per-call wait; each body piece within the read timeout), the body caps
//! (checked against `Content-Length` *and* while streaming), the status
//! check (non-success answers become typed [`Error`]s) and decoding.
//!
//! Secret-bearing bodies (the bootstrap answer, a created runner token, a
//! secret value sent to the vault) live in [`Zeroizing`] buffers that are
//! sized up front, so no reallocation leaves an unwiped copy behind. What
//! cannot be wiped from here: the chunks hyper reads from the socket and the
//! intermediate `String`s serde builds before they become `SecretString`s.
//! Their scope ends when the call returns.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use spedy_api::{AdminToken, RunnerToken};
use url::Url;
use zeroize::Zeroizing;

use crate::admin::AdminApi;
use crate::builder::ClientBuilder;
use crate::error::{self, Error, Scrub};
use crate::runner::RunnerApi;

/// The cap on an error answer's body; the rest is not read.
pub const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// The cap on most answers' bodies.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// The cap on the bootstrap answer (the bundle): 1 MiB.
pub const BOOTSTRAP_BODY_LIMIT: usize = 1024 * 1024;
/// The cap on `GET /jobs/{id}`, whose answer holds the job's whole log.
pub const JOB_VIEW_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// A client of one Spedy platform. Cheap to clone (an `Arc` inside); build
/// one with [`Client::builder`] and share it.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: Url,
    pub(crate) read_timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("read_timeout", &self.inner.read_timeout)
            .finish_non_exhaustive()
    }
}

/// Whether a body holds secrets and must live in a wiped, pre-sized buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    Plain,
    Secret,
}

/// One request, before it is sent.
pub(crate) struct Call<'a> {
    /// The route template, for errors.
    pub endpoint: &'static str,
    pub method: Method,
    /// Path segments under the base URL; each is percent-encoded.
    pub segments: &'a [&'a str],
    pub query: Option<(&'static str, &'a str)>,
    pub auth: Option<&'a Auth>,
    pub body: Option<Bytes>,
    /// Secret values in `body`, cut out of any error the server answers.
    pub secrets: &'a [&'a str],
    /// How long to wait for the answer's headers, when longer than the read
    /// timeout (the claim long-poll).
    pub wait: Option<Duration>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(endpoint: &'static str, method: Method, segments: &'a [&'a str]) -> Self {
        Call {
            endpoint,
            method,
            segments,
            query: None,
            auth: None,
            body: None,
            secrets: &[],
            wait: None,
        }
    }

    pub(crate) fn auth(mut self, auth: &'a Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// A JSON body without secrets.
    pub(crate) fn json<T: Serialize>(mut self, value: &T) -> Self {
        self.body = Some(encode(value, Body::Plain));
        self
    }

    /// A JSON body that holds `secrets`: encoded into a wiped buffer, and
    /// the values are cut out of any error message the server answers.
    pub(crate) fn secret_json<T: Serialize>(mut self, value: &T, secrets: &'a [&'a str]) -> Self {
        self.body = Some(encode(value, Body::Secret));
        self.secrets = secrets;
        self
    }
}

/// An `Authorization: Bearer …` header value, marked sensitive, with a
/// `Debug` that shows only the token's prefix.
#[derive(Clone)]
pub(crate) struct Auth {
    header: HeaderValue,
    prefix: &'static str,
}

impl Auth {
    pub(crate) fn runner(token: &RunnerToken) -> Self {
        Auth::bearer(token.expose(), RunnerToken::PREFIX)
    }

    pub(crate) fn admin(token: &AdminToken) -> Self {
        Auth::bearer(token.expose(), AdminToken::PREFIX)
    }

    /// The token, to cut it out of anything a server echoes.
    fn token(&self) -> &str {
        self.header
            .to_str()
            .unwrap_or("")
            .strip_prefix("Bearer ")
            .unwrap_or("")
    }

    fn bearer(token: &str, prefix: &'static str) -> Self {
        let text = Zeroizing::new(format!("Bearer {token}"));
        let mut header =
            HeaderValue::from_str(&text).expect("a checked token holds only letters and digits");
        header.set_sensitive(true);
        Auth { header, prefix }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bearer {}…", self.prefix)
    }
}

/// Encodes a request body. A secret one goes into a buffer sized for the
/// worst case up front and is wiped when hyper drops it after sending.
fn encode<T: Serialize>(value: &T, kind: Body) -> Bytes {
    match kind {
        Body::Plain => {
            Bytes::from(serde_json::to_vec(value).expect("the contract's types always serialize"))
        }
        Body::Secret => {
            let mut buf = Zeroizing::new(Vec::with_capacity(secret_capacity(value)));
            serde_json::to_writer(&mut *buf, value).expect("the contract's types always serialize");
            Bytes::from_owner(buf)
        }
    }
}

/// The exact encoded size, measured by a first pass that writes nowhere, so
/// the real buffer never grows (and never leaves a copy behind).
fn secret_capacity<T: Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => 0,
    }
}

impl Client {
    /// Starts building a client for the platform at `base_url`
    /// (`https://…`, or `http://` on a loopback address).
    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder::new(base_url)
    }

    /// The platform's base URL, ending with `/`.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The runner-facing endpoints, authenticated with a runner token.
    pub fn runner(&self, token: RunnerToken) -> RunnerApi {
        RunnerApi::new(self.clone(), &token)
    }

    /// The admin endpoints, authenticated with an admin token.
    pub fn admin(&self, token: AdminToken) -> AdminApi {
        AdminApi::new(self.clone(), &token)
    }

    /// `GET /healthz`: `Ok` when the platform answers `200`.
    pub async fn healthz(&self) -> Result<(), Error> {
        let call = Call::new("GET /healthz", Method::GET, &["healthz"]);
        let resp = self.send(call).await?;
        self.discard("GET /healthz", resp).await
    }

    fn url(&self, segments: &[&str], query: Option<(&str, &str)>) -> Url {
        let mut url = self.inner.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .expect("the base URL is http(s), which has a path");
            path.pop_if_empty();
            path.extend(segments);
        }
        if let Some((k, v)) = query {
            url.query_pairs_mut().append_pair(k, v);
        }
        url
    }

    /// Sends a call and returns the answer if its status is a success;
    /// otherwise reads the (capped) error body and maps it to an [`Error`].
    pub(crate) async fn send(&self, call: Call<'_>) -> Result<Response, Error> {
        let endpoint = call.endpoint;
        let mut req = self
            .inner
            .http
            .request(call.method, self.url(call.segments, call.query))
            .header(ACCEPT, "application/json");
        if let Some(auth) = call.auth {
            req = req.header(AUTHORIZATION, auth.header.clone());
        }
        if let Some(body) = call.body {
            req = req.header(CONTENT_TYPE, "application/json").body(body);
        }
        let wait = call
            .wait
            .map_or(self.inner.read_timeout, |w| w.max(self.inner.read_timeout));
        let resp = tokio::time::timeout(wait, req.send())
            .await
            .map_err(|_| Error::Timeout { endpoint })?
            .map_err(|e| Error::from_reqwest(endpoint, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let headers = resp.headers().clone();
        // A broken, stalled or oversized error body still tells the status:
        // map by status when the body cannot be read or does not parse.
        let body = match self
            .read_body(endpoint, resp, ERROR_BODY_LIMIT, Body::Plain)
            .await
        {
            Ok(b) => b,
            Err(Error::BodyTooLarge { .. } | Error::Network { .. } | Error::Timeout { .. }) => {
                Zeroizing::new(Vec::new())
            }
            Err(e) => return Err(e),
        };
        let scrub = Scrub {
            token: call.auth.map(Auth::token),
            secrets: call.secrets,
        };
        Err(error::from_status(endpoint, status, &headers, &body, scrub))
    }

    /// Reads a body up to `limit` bytes, refusing it as soon as it is known
    /// to be larger: from `Content-Length`, or while streaming.
    pub(crate) async fn read_body(
        &self,
        endpoint: &'static str,
        mut resp: Response,
        limit: usize,
        kind: Body,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let announced = resp.content_length();
        if announced.is_some_and(|n| n > limit as u64) {
            return Err(Error::BodyTooLarge { endpoint, limit });
        }
        let capacity = match (kind, announced) {
            // Announced and within the cap: exactly that, and a body that
            // outgrows its own Content-Length is refused by hyper.
            (_, Some(n)) => usize::try_from(n).unwrap_or(limit),
            // A secret body of unknown length gets the cap up front, so it is
            // never reallocated (a reallocation would leave an unwiped copy).
            (Body::Secret, None) => limit,
            (Body::Plain, None) => 8 * 1024,
        };
        let mut buf = Zeroizing::new(Vec::with_capacity(capacity));
        loop {
            let chunk = tokio::time::timeout(self.inner.read_timeout, resp.chunk())
                .await
                .map_err(|_| Error::Timeout { endpoint })?
                .map_err(|e| Error::from_reqwest(endpoint, e))?;
            let Some(chunk) = chunk else { break };
            if buf.len() + chunk.len() > limit {
                return Err(Error::BodyTooLarge { endpoint, limit });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }

    /// Reads and decodes a JSON answer.
    pub(crate) async fn read_json<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        resp: Response,
        limit: usize,
        kind: Body,
    ) -> Result<T, Error> {
        check_json_content_type(endpoint, &resp)?;
        let body = self.read_body(endpoint, resp, limit, kind).await?;
        decode(endpoint, &body)
    }

    /// Reads and drops an answer whose body carries nothing (so the
    /// connection can be reused).
    pub(crate) async fn discard(
        &self,
        endpoint: &'static str,
        resp: Response,
    ) -> Result<(), Error> {
        self.read_body(endpoint, resp, ERROR_BODY_LIMIT, Body::Plain)
            .await
            .map(drop)
    }

    /// Checks that a success answer has the status the contract gives it.
    pub(crate) fn expect_status(
        endpoint: &'static str,
        resp: &Response,
        want: &[StatusCode],
    ) -> Result<(), Error> {
        if want.contains(&resp.status()) {
            Ok(())
        } else {
            Err(Error::protocol(
                endpoint,
                format!("unexpected status {}", resp.status().as_u16()),
            ))
        }
    }
}

fn check_json_content_type(endpoint: &'static str, resp: &Response) -> Result<(), Error> {
    let Some(value) = resp.headers().get(CONTENT_TYPE) else {
        return Err(Error::protocol(
            endpoint,
            "the answer has no Content-Type (expected application/json)",
        ));
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        return Ok(());
    }
    // Shown only when it looks like a media type, so a broken server
    // cannot smuggle arbitrary text into the error.
    let looks_like_media_type = essence.len() <= 64
        && essence.split('/').count() == 2
        && essence
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/.+-".contains(c));
    let reason = if looks_like_media_type {
        format!("expected application/json, got `{essence}`")
    } else {
        "expected application/json, got an unreadable Content-Type".to_owned()
    };
    Err(Error::protocol(endpoint, reason))
}

/// Decodes JSON. On failure the reason names the field path and position,
/// never the offending value (serde's own messages quote it).
///
/// The fast path is plain `serde_json`; only a body that fails is decoded a
/// second time through `serde_path_to_error` to find the field's path (which
/// costs about as much as the decode itself, so not on every answer).
pub(crate) fn decode<T: DeserializeOwned>(endpoint: &'static str, body: &[u8]) -> Result<T, Error> {
    match serde_json::from_slice(body) {
        Ok(value) => Ok(value),
        Err(_) => Err(decode_error::<T>(endpoint, body)),
    }
}

/// The [`Error::Protocol`] for a body that does not decode as `T`.
fn decode_error<T: DeserializeOwned>(endpoint: &'static str, body: &[u8]) -> Error {
    match decode_with_path::<T>(endpoint, body) {
        Err(e) => e,
        // Cannot happen (the same bytes failed a moment ago), but if it did,
        // a contract breach without a path is still the truth.
        Ok(_) => Error::protocol(endpoint, "the answer does not match the contract"),
    }
}

fn decode_with_path<T: DeserializeOwned>(endpoint: &'static str, body: &[u8]) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let what = match inner.classify() {
            serde_json::error::Category::Data => "does not match the contract",
            serde_json::error::Category::Eof => "ends too early",
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
                "is not valid JSON"
            }
        };
        Error::protocol(
            endpoint,
            format!(
                "the answer {what} at `{path}` (line {}, column {})",
                inner.line(),
                inner.column()
            ),
        )
    })?;
    de.end().map_err(|e| {
        Error::protocol(
            endpoint,
            format!(
                "the answer has trailing data after the JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    Ok(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use secrecy::SecretString;
    use spedy_api::{BootstrapResponse, PutSecretRequest};

    use super::*;

    const EP: &str = "POST /runners/bootstrap";

    #[test]
    fn decode_errors_name_the_field_but_never_quote_the_value() {
        let bad = r#"{"runner":{"id":"run_1","name":"n","pool_size":"CANARY_x","backend":"anthropic_api"},
                      "bundle":{"version":"v","issued_at":"2026-12-03T12:00:00Z","refresh_after_s":1,"secrets":[]}}"#;
        let e = decode::<BootstrapResponse>(EP, bad.as_bytes()).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(text.contains("runner.pool_size"), "{text}");
        assert!(text.contains("does not match the contract"), "{text}");
        assert!(!text.contains("CANARY"), "{text}");

        let bad_kind = r#"{"runner":{"id":"run_1","name":"n","pool_size":1,"backend":"anthropic_api"},
            "bundle":{"version":"v","issued_at":"2026-12-03T12:00:00Z","refresh_after_s":1,
            "secrets":[{"env":"A","value":"CANARY_v","kind":"CANARY_kind","scope":"org"}]}}"#;
        let e = decode::<BootstrapResponse>(EP, bad_kind.as_bytes()).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(text.contains("bundle.secrets[0].kind"), "{text}");
        assert!(!text.contains("CANARY"), "{text}");
    }

    #[test]
    fn decode_refuses_garbage_and_trailing_data() {
        let e = decode::<serde_json::Value>(EP, b"<html>").unwrap_err();
        assert!(e.to_string().contains("is not valid JSON"), "{e}");
        let e = decode::<serde_json::Value>(EP, b"{\"a\":").unwrap_err();
        assert!(e.to_string().contains("ends too early"), "{e}");
        let e = decode::<serde_json::Value>(EP, b"{} x").unwrap_err();
        assert!(e.to_string().contains("trailing data"), "{e}");
    }

    #[test]
    fn a_secret_body_fits_its_buffer_without_reallocating() {
        let value = format!("{}\u{1}\"\\é", "v".repeat(70_000));
        let req = PutSecretRequest {
            value: SecretString::from(value.clone()),
            kind: None,
            scope: None,
        };
        let plain = serde_json::to_vec(&req).unwrap();
        assert_eq!(secret_capacity(&req), plain.len());
        let bytes = encode(&req, Body::Secret);
        assert_eq!(&bytes[..], &plain[..]);
    }

    #[test]
    fn the_auth_header_is_sensitive_and_its_debug_hides_the_token() {
        let t = RunnerToken::parse("rnt_abcdefghijABCDEFGHIJ0123456789abcdefghij").unwrap();
        let auth = Auth::runner(&t);
        assert!(auth.header.is_sensitive());
        let shown = format!("{auth:?} {:?}", auth.header);
        assert!(!shown.contains("abcdefghij"), "{shown}");
    }
}
