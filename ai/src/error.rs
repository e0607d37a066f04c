//! Every way a call can fail, typed; every message safe to record (no key, foreign text cleaned).

use rust_decimal::Decimal;

use crate::completion::Usage;
use crate::config::ConfigError;
use crate::network::Refusal;

/// A call that produced no usable answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AiError {
    /// The model's configuration breaks a rule (checked before anything is sent).
    #[error("the model's configuration is invalid: {0}")]
    Config(#[from] ConfigError),
    /// The caller's request cannot be sent (a bad schema name, a schema that does not compile).
    #[error("the completion request is invalid: {0}")]
    Request(String),
    /// The key's variable is unset or empty. Names the variable, never a value.
    #[error("the environment variable {env} holding the model's key is not set")]
    MissingKey { env: String },
    /// The destination is refused by the SSRF rule (before any connection).
    #[error("the model's address is refused: {0}")]
    Refused(#[from] Refusal),
    /// No answer within the model's timeout or the caller's deadline. Not retried: the provider
    /// may have done (and billed) the work.
    #[error("no answer within {after_ms} ms")]
    Timeout { after_ms: u64, tries: u32 },
    /// A retryable failure (connection error, 429, 5xx) that was still failing after the
    /// retries, or when the next wait would pass the deadline.
    #[error("the provider failed after {tries} tries: {last}")]
    Transport { tries: u32, last: TransportFailure },
    /// A status that is not retried (4xx other than 408 and 429, a 3xx: redirects are never
    /// followed). `body` is cut to 1 KiB and redacted.
    #[error("the provider answered {code}: {body}")]
    Status { code: u16, body: String, tries: u32 },
    /// A paid answer whose content cannot be used: not JSON, not matching the schema, a refusal,
    /// or an envelope that is not the provider's. Its usage and cost still count.
    #[error("the model's answer is unusable: {detail}")]
    Malformed {
        detail: String,
        /// The answer's text, cleaned and cut to [`crate::foreign::RAW_ANSWER_BYTES`].
        raw: String,
        usage: Usage,
        cost_usd: Decimal,
        latency_ms: u64,
        tries: u32,
    },
}

/// The last failure of a retryable kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportFailure {
    #[error("connection failed: {0}")]
    Connection(String),
    #[error("status {code}: {body}")]
    Status { code: u16, body: String },
}

impl AiError {
    /// A stable name for the kind of failure (for events, metrics and logs).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::Request(_) => "request",
            Self::MissingKey { .. } => "missing_key",
            Self::Refused(_) => "refused",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
            Self::Status { .. } => "status",
            Self::Malformed { .. } => "malformed",
        }
    }

    /// Usage and cost of a failure the provider billed (a malformed answer); none otherwise.
    pub fn billed(&self) -> Option<(Usage, Decimal)> {
        match self {
            Self::Malformed {
                usage, cost_usd, ..
            } => Some((*usage, *cost_usd)),
            _ => None,
        }
    }
}
