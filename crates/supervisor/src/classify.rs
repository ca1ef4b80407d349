//! The one place that decides what a failed bootstrap means (style.md §3,
//! watchexec's Critical/Runtime split): retry with backoff while serving the
//! last good bundle, go offline for a bad token or a missing key, or stop the
//! runner because its local configuration cannot work.
//!
//! Every decision is in [`classify`], and its table test lists every
//! `spedy_client::Error` variant.

use spedy_client::Error as ClientError;

/// What the refresher does after a failed bootstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Transient: retry after a jittered backoff (or the platform's
    /// `Retry-After`), keep serving the last good bundle minus expired
    /// entries; offline (`Unreachable`) only when no bundle is held.
    Retry,
    /// The token is refused (`401`, or `403` for a token that may not
    /// bootstrap): stop claiming, drop the bundle, check again slowly.
    InvalidToken,
    /// `409 anthropic_key_missing`: stop claiming, drop the bundle, check
    /// again every minute.
    KeyMissing {
        /// The deep link to the Secrets tab.
        link: Option<String>,
    },
    /// The local configuration cannot work (an insecure URL, an unreadable CA
    /// file, no TLS roots): stop the runner with the error.
    Fatal,
}

/// A classified failure: what to do, and the reason label for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What to do.
    pub action: Action,
    /// A fixed machine name (`refresh_failures_total{reason=…}`).
    pub reason: &'static str,
}

/// Classifies a failed bootstrap.
pub fn classify(err: &ClientError) -> Failure {
    use Action::*;
    let (action, reason) = match err {
        ClientError::InvalidToken => (InvalidToken, "invalid_token"),
        ClientError::Forbidden => (InvalidToken, "forbidden"),
        ClientError::AnthropicKeyMissing { link } => {
            (KeyMissing { link: link.clone() }, "anthropic_key_missing")
        }
        // A wrong URL (404) or a refused request may be fixed on the platform
        // side without touching this host: keep trying, slowly.
        ClientError::NotFound => (Retry, "not_found"),
        ClientError::InvalidRequest { .. } => (Retry, "invalid_request"),
        ClientError::RateLimited { .. } => (Retry, "rate_limited"),
        ClientError::Unavailable => (Retry, "unavailable"),
        ClientError::Server { .. } => (Retry, "server_error"),
        ClientError::Protocol { .. } => (Retry, "protocol"),
        ClientError::BodyTooLarge { .. } => (Retry, "body_too_large"),
        ClientError::Timeout { .. } => (Retry, "timeout"),
        ClientError::Connect { .. } => (Retry, "connect"),
        ClientError::Network { .. } => (Retry, "network"),
        ClientError::InsecureUrl { .. } | ClientError::Config { .. } => (Fatal, "config"),
        ClientError::CaFileRead { .. } | ClientError::CaFileInvalid { .. } => (Fatal, "ca_file"),
        ClientError::Tls { .. } => (Fatal, "tls"),
        // A variant added later: retrying is the safe default, it never
        // stops a runner that could recover.
        _ => (Retry, "other"),
    };
    Failure { action, reason }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_client_error_has_one_action_and_reason() {
        use Action::*;
        let link = Some("https://app/secrets".to_owned());
        let table: Vec<(ClientError, Action, &str)> = vec![
            (ClientError::InvalidToken, InvalidToken, "invalid_token"),
            (ClientError::Forbidden, InvalidToken, "forbidden"),
            (
                ClientError::AnthropicKeyMissing { link: link.clone() },
                KeyMissing { link },
                "anthropic_key_missing",
            ),
            (ClientError::NotFound, Retry, "not_found"),
            (
                ClientError::InvalidRequest {
                    message: "x".into(),
                },
                Retry,
                "invalid_request",
            ),
            (
                ClientError::RateLimited {
                    retry_after: Some(Duration::from_secs(3)),
                },
                Retry,
                "rate_limited",
            ),
            (ClientError::Unavailable, Retry, "unavailable"),
            (
                ClientError::Server {
                    endpoint: "POST /runners/bootstrap",
                    status: 500,
                },
                Retry,
                "server_error",
            ),
            (
                ClientError::Protocol {
                    endpoint: "POST /runners/bootstrap",
                    reason: "garbage".into(),
                },
                Retry,
                "protocol",
            ),
            (
                ClientError::BodyTooLarge {
                    endpoint: "POST /runners/bootstrap",
                    limit: 1 << 20,
                },
                Retry,
                "body_too_large",
            ),
            (
                ClientError::Timeout {
                    endpoint: "POST /runners/bootstrap",
                },
                Retry,
                "timeout",
            ),
            (
                ClientError::InsecureUrl {
                    host: "example.com".into(),
                },
                Fatal,
                "config",
            ),
            (
                ClientError::Config {
                    reason: "bad".into(),
                },
                Fatal,
                "config",
            ),
            (
                ClientError::CaFileRead {
                    path: "/nope".into(),
                    source: std::io::Error::other("x"),
                },
                Fatal,
                "ca_file",
            ),
            (
                ClientError::CaFileInvalid {
                    path: "/nope".into(),
                    reason: "holds no certificate",
                },
                Fatal,
                "ca_file",
            ),
        ];
        for (err, action, reason) in table {
            let got = classify(&err);
            assert_eq!(got.action, action, "{err:?}");
            assert_eq!(got.reason, reason, "{err:?}");
            // The client's own split agrees: only Retry is transient.
            assert_eq!(
                err.is_transient(),
                got.action == Retry
                    && !matches!(
                        err,
                        ClientError::NotFound | ClientError::InvalidRequest { .. }
                    ),
                "{err:?}"
            );
        }
    }
}
