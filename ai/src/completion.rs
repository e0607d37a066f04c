//! What a caller asks of a model (prompts, JSON Schema, token cap) and what an answer is.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::money;

/// One completion: a system prompt, a user prompt and, for structured output, the JSON Schema
/// the answer must meet (OpenAI `response_format` strict, Anthropic a forced tool).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    pub system: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<JsonSchema>,
    /// At most the model's `max_output_tokens`; that when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

/// A named JSON Schema. The name is `^[A-Za-z0-9_-]{1,64}$` (both providers' rule for schema
/// and tool names). For OpenAI's strict mode every object must list all its properties as
/// `required` and set `additionalProperties: false`; that is the schema author's to meet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchema {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub schema: Value,
}

impl JsonSchema {
    pub(crate) fn valid_name(&self) -> bool {
        (1..=64).contains(&self.name.len())
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }
}

/// Tokens an answer reports having read and written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// An answer's content: the parsed structured output when a schema was given, else the text.
/// Both are already cleaned (NULs replaced, the key redacted); text is cut to
/// [`crate::client::MAX_TEXT_ANSWER_BYTES`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    Json(Value),
    Text(String),
}

impl Content {
    pub fn json(&self) -> Option<&Value> {
        match self {
            Self::Json(v) => Some(v),
            Self::Text(_) => None,
        }
    }
}

/// One parsed model answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub content: Content,
    pub usage: Usage,
    /// `(input × input price + output × output price) / 1,000,000`, half-even to 6 places.
    #[serde(with = "money::decimal_string")]
    pub cost_usd: Decimal,
    /// From the call to the parsed answer, retries and their waits included.
    pub latency_ms: u64,
    /// HTTP requests sent: 1, plus one per transport retry.
    pub tries: u32,
}
