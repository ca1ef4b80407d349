//! The contract's error body: `{"error": {"code", "message", "link"}}`.

use serde::{Deserialize, Serialize};

/// The error codes of the contract, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// `401`: unknown, malformed or revoked token.
    InvalidToken,
    /// `403`: the token may not use this route.
    Forbidden,
    /// `404`: no such resource.
    NotFound,
    /// `409`: the runner's backend needs `ANTHROPIC_API_KEY` and the vault has none.
    AnthropicKeyMissing,
    /// `422`: the request is malformed; the message names the field.
    InvalidRequest,
    /// `429`: slow down; `Retry-After` says for how long.
    RateLimited,
    /// `503`: the platform cannot serve right now.
    Unavailable,
    /// `500`: the platform failed; never used for bad input.
    Internal,
    /// A code this version of the contract does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status that goes with this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidToken => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::AnthropicKeyMissing => 409,
            ErrorCode::InvalidRequest => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal | ErrorCode::Unknown => 500,
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AnthropicKeyMissing => "anthropic_key_missing",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

/// The inner object of an error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The machine-readable code.
    pub code: ErrorCode,
    /// A human sentence.
    pub message: String,
    /// A deep link that helps fix the problem (for example the Secrets tab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The whole error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ApiError,
}

impl ErrorBody {
    /// Builds an error body.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ApiError {
                code,
                message: message.into(),
                link: None,
            },
        }
    }

    /// Adds a deep link.
    pub fn with_link(mut self, link: impl Into<String>) -> Self {
        self.error.link = Some(link.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_still_parse() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":{"code":"brand_new","message":"x"}}"#).unwrap();
        assert_eq!(body.error.code, ErrorCode::Unknown);
    }

    #[test]
    fn codes_round_trip_with_their_wire_names() {
        for code in [
            ErrorCode::InvalidToken,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::AnthropicKeyMissing,
            ErrorCode::InvalidRequest,
            ErrorCode::RateLimited,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
