//! The client's one error type, and the mapping from an HTTP answer to it.
//!
//! Owns: [`Error`], its fatal/transient split ([`Error::is_transient`]), the
//! mapping of a non-success answer to a typed variant ([`from_status`]) and
//! the parsing of `Retry-After`.
//!
//! Invariant: no variant holds a token, a secret value or an excerpt of a
//! response body that could hold one. Endpoints are route templates
//! (`POST /runners/jobs/{id}/logs`), reqwest errors are stripped of their URL,
//! JSON errors are reduced to a field path and a position (serde's own text
//! quotes the offending value), and the only server text kept is the message
//! of a `422`, which the contract defines as naming the field, cut short and
//! stripped of control characters.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use spedy_api::{ErrorBody, ErrorCode};

/// What went wrong talking to the platform, or setting the client up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `401 invalid_token`: the token is unknown, malformed or revoked.
    #[error(
        "the platform refused the token (invalid_token)\n\n\
         create a new token with `spedy-runner setup`"
    )]
    InvalidToken,

    /// `403 forbidden`: the token may not use this route (for example a
    /// runner token on an admin route).
    #[error("the platform refused this request for this token (forbidden)")]
    Forbidden,

    /// `404 not_found`: no such runner, secret, integration or job (or the
    /// platform URL does not point at a Spedy platform).
    #[error(
        "the platform has no such resource (not_found)\n\n\
         check the id, and that the platform URL points at a Spedy platform"
    )]
    NotFound,

    /// `409 anthropic_key_missing`: the runner's backend is `anthropic_api`
    /// and the vault has no `ANTHROPIC_API_KEY`, so the bundle is withheld.
    #[error(
        "the vault has no ANTHROPIC_API_KEY, so the platform withholds the bundle \
         (anthropic_key_missing)\n\n{}",
        key_missing_hint(link.as_deref())
    )]
    AnthropicKeyMissing {
        /// The deep link to the Secrets tab, when the platform sent one.
        link: Option<String>,
    },

    /// `422 invalid_request`: the platform refused the request body.
    #[error("the platform refused the request (invalid_request): {message}")]
    InvalidRequest {
        /// The platform's message, which names the field (cut to 300
        /// characters, control characters removed).
        message: String,
    },

    /// `429 rate_limited`: slow down.
    #[error("the platform asks to slow down (rate_limited){}", retry_hint(*retry_after))]
    RateLimited {
        /// How long the platform asked to wait (`Retry-After`, in seconds or
        /// as an HTTP date, capped at [`MAX_RETRY_AFTER`]), when it said.
        retry_after: Option<Duration>,
    },

    /// `503 unavailable`: the platform cannot serve right now.
    #[error("the platform is unavailable right now (unavailable); try again later")]
    Unavailable,

    /// A `5xx` other than `503`.
    #[error("the platform failed with status {status} on {endpoint}")]
    Server {
        /// The route template, such as `POST /runners/bootstrap`.
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
    },

    /// The answer breaks the contract: garbage JSON, the wrong content type,
    /// an unexpected status, a redirect.
    #[error("the platform's answer to {endpoint} breaks the contract: {reason}")]
    Protocol {
        /// The route template.
        endpoint: &'static str,
        /// What was wrong (never an excerpt of the body).
        reason: String,
    },

    /// The answer was larger than the client accepts for this endpoint.
    #[error(
        "the platform's answer to {endpoint} is larger than {} and was refused",
        human_bytes(*limit)
    )]
    BodyTooLarge {
        /// The route template.
        endpoint: &'static str,
        /// The cap in bytes.
        limit: usize,
    },

    /// The platform took longer than the read timeout to answer, or stalled
    /// while sending its answer.
    #[error("the platform did not answer {endpoint} in time")]
    Timeout {
        /// The route template.
        endpoint: &'static str,
    },

    /// No connection could be made (DNS, refused, connect timeout, TLS
    /// handshake or certificate).
    #[error(
        "could not connect to the platform for {endpoint}\n\n\
         check the platform URL and the network; behind a TLS-inspecting proxy, \
         give its CA certificate with --ca-file (SPEDY_CA_FILE)"
    )]
    Connect {
        /// The route template.
        endpoint: &'static str,
        /// The cause, without the URL.
        #[source]
        source: reqwest::Error,
    },

    /// The connection broke after it was made (reset, closed mid-answer).
    #[error("the connection to the platform broke during {endpoint}")]
    Network {
        /// The route template.
        endpoint: &'static str,
        /// The cause, without the URL.
        #[source]
        source: reqwest::Error,
    },

    /// `http://` for a host that is not a loopback address.
    #[error(
        "refusing plain http:// for {host}: the token and the secrets would cross \
         the network unencrypted\n\n\
         use an https:// URL; plain http:// is only accepted for 127.0.0.0/8, ::1 and localhost"
    )]
    InsecureUrl {
        /// The host that was given.
        host: String,
    },

    /// The platform URL or another setting is unusable.
    #[error("invalid client setting: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },

    /// The extra CA file could not be read.
    #[error("could not read the CA certificate file {}", path.display())]
    CaFileRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The extra CA file holds no usable PEM certificate.
    #[error(
        "the CA certificate file {} {reason}\n\n\
         give a PEM file with one or more `-----BEGIN CERTIFICATE-----` blocks",
        path.display()
    )]
    CaFileInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The TLS client could not be set up (for example no CA certificates
    /// were found on this system).
    #[error(
        "could not set up the HTTPS client\n\n\
         on a minimal image, provide CA certificates (/etc/ssl/certs/ca-certificates.crt \
         or SSL_CERT_FILE), or give the platform's CA with --ca-file (SPEDY_CA_FILE)"
    )]
    Tls {
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
}

impl Error {
    /// Whether a retry may help: `429`, `503`, other `5xx`, timeouts,
    /// connection failures and answers that break the contract. `401`, `403`,
    /// `404`, `409`, `422` and setup errors are fatal: the same request will
    /// fail the same way until someone changes something.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::RateLimited { .. }
            | Error::Unavailable
            | Error::Server { .. }
            | Error::Protocol { .. }
            | Error::BodyTooLarge { .. }
            | Error::Timeout { .. }
            | Error::Connect { .. }
            | Error::Network { .. } => true,
            Error::InvalidToken
            | Error::Forbidden
            | Error::NotFound
            | Error::AnthropicKeyMissing { .. }
            | Error::InvalidRequest { .. }
            | Error::InsecureUrl { .. }
            | Error::Config { .. }
            | Error::CaFileRead { .. }
            | Error::CaFileInvalid { .. }
            | Error::Tls { .. } => false,
        }
    }

    /// How long the platform asked to wait, for [`Error::RateLimited`]
    /// (at most [`MAX_RETRY_AFTER`]).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Maps a reqwest error to a variant, dropping the URL it carries.
    pub(crate) fn from_reqwest(endpoint: &'static str, err: reqwest::Error) -> Error {
        let source = err.without_url();
        if source.is_connect() {
            Error::Connect { endpoint, source }
        } else if source.is_timeout() {
            Error::Timeout { endpoint }
        } else {
            Error::Network { endpoint, source }
        }
    }

    /// A contract breach.
    pub(crate) fn protocol(endpoint: &'static str, reason: impl Into<String>) -> Error {
        Error::Protocol {
            endpoint,
            reason: reason.into(),
        }
    }
}

fn key_missing_hint(link: Option<&str>) -> String {
    match link {
        Some(link) => format!("add the key in the Secrets tab: {link}"),
        None => "add the key in the Secrets tab of the platform's settings".to_owned(),
    }
}

fn retry_hint(after: Option<Duration>) -> String {
    match after {
        Some(d) => format!("; retry after {} s", d.as_secs_f64().ceil()),
        None => String::new(),
    }
}

fn human_bytes(n: usize) -> String {
    const MIB: usize = 1024 * 1024;
    const KIB: usize = 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// The longest server message kept in [`Error::InvalidRequest`].
const MAX_MESSAGE_CHARS: usize = 300;

/// What a request carried that must never come back in an error: its token
/// and any secret value in its body. Should a (broken) server echo one in a
/// message or a link, it is cut out, in its plain and its JSON-escaped form.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Scrub<'a> {
    /// The bearer token.
    pub token: Option<&'a str>,
    /// Secret values sent in the body.
    pub secrets: &'a [&'a str],
}

impl Scrub<'_> {
    /// Cuts a server string short and drops control characters, so a
    /// message cannot forge log lines or carry a long payload; removes the
    /// token and the secrets first.
    pub(crate) fn clean(&self, s: &str) -> String {
        let mut s = s.to_owned();
        let values = self.token.iter().chain(self.secrets.iter());
        for value in values.filter(|v| !v.is_empty()) {
            let escaped = serde_json::to_string(value).unwrap_or_default();
            let escaped = escaped.trim_matches('"');
            for form in [*value, escaped] {
                if !form.is_empty() && s.contains(form) {
                    s = s.replace(form, "[redacted]");
                }
            }
        }
        let kept = s.chars().filter(|c| !c.is_control());
        let mut out: String = kept.clone().take(MAX_MESSAGE_CHARS).collect();
        if kept.count() > MAX_MESSAGE_CHARS {
            out.push('…');
        }
        out
    }
}

/// Maps a non-success answer to its variant. `body` is the (capped) error
/// body; it is parsed, never quoted. What `scrub` names is cut out of the
/// server's message and link.
pub(crate) fn from_status(
    endpoint: &'static str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    scrub: Scrub<'_>,
) -> Error {
    let clean = |s: &str| scrub.clean(s);
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let code = parsed.as_ref().map(|b| b.error.code);
    match (code, status.as_u16()) {
        (Some(ErrorCode::InvalidToken), _) | (None | Some(ErrorCode::Unknown), 401) => {
            Error::InvalidToken
        }
        (Some(ErrorCode::Forbidden), _) | (None | Some(ErrorCode::Unknown), 403) => {
            Error::Forbidden
        }
        (Some(ErrorCode::NotFound), _) | (None | Some(ErrorCode::Unknown), 404) => Error::NotFound,
        (Some(ErrorCode::AnthropicKeyMissing), _) => Error::AnthropicKeyMissing {
            link: parsed.and_then(|b| b.error.link).map(|l| clean(&l)),
        },
        (Some(ErrorCode::InvalidRequest), _) => Error::InvalidRequest {
            message: parsed.map(|b| clean(&b.error.message)).unwrap_or_default(),
        },
        (Some(ErrorCode::RateLimited), _) | (None | Some(ErrorCode::Unknown), 429) => {
            Error::RateLimited {
                retry_after: retry_after(headers, SystemTime::now()),
            }
        }
        (Some(ErrorCode::Unavailable), _) | (None | Some(ErrorCode::Unknown), 503) => {
            Error::Unavailable
        }
        (_, s) if status.is_server_error() => Error::Server {
            endpoint,
            status: s,
        },
        (None, s) => Error::protocol(endpoint, format!("unexpected status {s}")),
        (Some(code), s) => Error::protocol(
            endpoint,
            format!("unexpected status {s} with error code `{}`", code.as_str()),
        ),
    }
}

/// The longest `Retry-After` taken at its word: a broken proxy asking for a
/// week must not park a runner for a week.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Parses `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3),
/// capped at [`MAX_RETRY_AFTER`]. A date in the past means "now" (zero).
/// Garbage means "not said".
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let after = match raw.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(raw).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(after.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    const EP: &str = "POST /runners/bootstrap";

    fn map(status: u16, body: &str) -> Error {
        from_status(
            EP,
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
            Scrub {
                token: Some("rnt_CANARYtoken"),
                secrets: &["CANARY\"value"],
            },
        )
    }

    fn body(code: &str) -> String {
        format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#)
    }

    #[test]
    fn every_contract_code_maps_to_its_variant() {
        assert!(matches!(
            map(401, &body("invalid_token")),
            Error::InvalidToken
        ));
        assert!(matches!(map(403, &body("forbidden")), Error::Forbidden));
        assert!(matches!(map(404, &body("not_found")), Error::NotFound));
        assert!(matches!(
            map(409, &body("anthropic_key_missing")),
            Error::AnthropicKeyMissing { link: None }
        ));
        assert!(matches!(
            map(422, &body("invalid_request")),
            Error::InvalidRequest { message } if message == "m"
        ));
        assert!(matches!(
            map(429, &body("rate_limited")),
            Error::RateLimited { retry_after: None }
        ));
        assert!(matches!(map(503, &body("unavailable")), Error::Unavailable));
    }

    #[test]
    fn answers_without_a_contract_body_map_by_status() {
        assert!(matches!(map(401, "<html>"), Error::InvalidToken));
        assert!(matches!(map(503, ""), Error::Unavailable));
        assert!(matches!(map(429, "slow"), Error::RateLimited { .. }));
        assert!(matches!(
            map(502, "bad gateway"),
            Error::Server { status: 502, .. }
        ));
        assert!(matches!(map(500, &body("internal")), Error::Server { .. }));
        let e = map(418, "teapot");
        assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
        assert!(e.to_string().contains("unexpected status 418"), "{e}");
    }

    #[test]
    fn an_unknown_code_on_a_4xx_is_a_protocol_error_that_does_not_quote_the_body() {
        let e = map(
            400,
            r#"{"error":{"code":"brand_new","message":"CANARY_value"}}"#,
        );
        let text = format!("{e} {e:?}");
        assert!(matches!(e, Error::Protocol { .. }), "{text}");
        assert!(text.contains("unexpected status 400"), "{text}");
        assert!(!text.contains("CANARY"), "{text}");
    }

    #[test]
    fn the_fatal_and_transient_split_follows_the_contract() {
        let io = || std::io::Error::other("x");
        let table: Vec<(Error, bool)> = vec![
            (Error::InvalidToken, false),
            (Error::Forbidden, false),
            (Error::NotFound, false),
            (Error::AnthropicKeyMissing { link: None }, false),
            (
                Error::InvalidRequest {
                    message: String::new(),
                },
                false,
            ),
            (Error::RateLimited { retry_after: None }, true),
            (Error::Unavailable, true),
            (
                Error::Server {
                    endpoint: EP,
                    status: 500,
                },
                true,
            ),
            (Error::protocol(EP, "x"), true),
            (
                Error::BodyTooLarge {
                    endpoint: EP,
                    limit: 1,
                },
                true,
            ),
            (Error::Timeout { endpoint: EP }, true),
            (Error::InsecureUrl { host: "h".into() }, false),
            (Error::Config { reason: "r".into() }, false),
            (
                Error::CaFileRead {
                    path: "/x".into(),
                    source: io(),
                },
                false,
            ),
            (
                Error::CaFileInvalid {
                    path: "/x".into(),
                    reason: "r",
                },
                false,
            ),
        ];
        for (err, transient) in table {
            assert_eq!(err.is_transient(), transient, "{err:?}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&past).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("604800"));
        assert_eq!(retry_after(&h, now), Some(MAX_RETRY_AFTER), "capped");
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("-5"));
        assert_eq!(retry_after(&h, now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn an_echoed_token_is_cut_out_of_server_messages_and_links() {
        let e = map(
            409,
            r#"{"error":{"code":"anthropic_key_missing","message":"m","link":"https://x/?t=rnt_CANARYtoken"}}"#,
        );
        let e2 = map(
            422,
            r#"{"error":{"code":"invalid_request","message":"bad token rnt_CANARYtoken"}}"#,
        );
        // The raw body echoed inside a JSON string: the secret arrives in its
        // escaped form; echoed as a decoded value: in its plain form.
        let e3 = map(
            422,
            r#"{"error":{"code":"invalid_request","message":"body {"value":"CANARY\"value"}"}}"#,
        );
        let e4 = map(
            422,
            r#"{"error":{"code":"invalid_request","message":"value CANARY"value is bad"}}"#,
        );
        let text = format!("{e} {e:?} {e2} {e2:?} {e3} {e3:?} {e4} {e4:?}");
        assert!(!text.contains("CANARY"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }

    #[test]
    fn server_messages_are_cut_short_and_stripped_of_control_characters() {
        let long = format!("field `value`\n{}", "x".repeat(1000));
        let e = map(
            422,
            &serde_json::json!({"error": {"code": "invalid_request", "message": long}}).to_string(),
        );
        let Error::InvalidRequest { message } = e else {
            panic!("{e:?}")
        };
        assert!(!message.contains('\n'));
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn messages_are_lowercase_without_a_trailing_period() {
        let samples = [
            Error::InvalidToken,
            Error::Unavailable,
            Error::RateLimited {
                retry_after: Some(Duration::from_secs(3)),
            },
            Error::AnthropicKeyMissing {
                link: Some("https://x/secrets".into()),
            },
            Error::BodyTooLarge {
                endpoint: EP,
                limit: 1024 * 1024,
            },
        ];
        for e in samples {
            let text = e.to_string();
            let first = text.chars().next().unwrap();
            assert!(!first.is_uppercase(), "{text}");
            assert!(!text.ends_with('.'), "{text}");
        }
        let big = Error::BodyTooLarge {
            endpoint: EP,
            limit: 1024 * 1024,
        };
        assert!(big.to_string().contains("1 MiB"), "{big}");
        let rl = Error::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(rl.to_string().contains("retry after 3 s"), "{rl}");
    }
}
