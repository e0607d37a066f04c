//! The providers' wire formats: the body each call sends and how each answer is read.

pub(crate) mod anthropic;
pub(crate) mod openai;

use serde_json::Value;

use crate::completion::{CompletionRequest, Content, Usage};
use crate::config::{ModelConfig, Provider};

/// What a success status's body held.
pub(crate) struct Parsed {
    pub usage: Usage,
    pub content: Result<Content, Unusable>,
}

/// Content that cannot be used, before cleaning: why, and the text the model wrote.
pub(crate) struct Unusable {
    pub detail: String,
    pub raw: String,
}

impl Unusable {
    pub fn new(detail: impl Into<String>, raw: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            raw: raw.into(),
        }
    }
}

/// The output-token cap a call sends: the request's, at most the model's.
pub(crate) fn max_tokens(model: &ModelConfig, request: &CompletionRequest) -> u32 {
    request
        .max_tokens
        .map_or(model.max_output_tokens, |n| n.min(model.max_output_tokens))
        .max(1)
}

/// The body a call sends.
pub(crate) fn body(model: &ModelConfig, request: &CompletionRequest) -> Value {
    match model.provider {
        Provider::Openai => openai::body(model, request, true),
        Provider::AzureOpenai => openai::body(model, request, false),
        Provider::Anthropic => anthropic::body(model, request),
    }
}

/// A success status's body read in the provider's format; `None` when it is not the provider's
/// envelope at all (not JSON, no choices or content).
pub(crate) fn parse(
    provider: Provider,
    request: &CompletionRequest,
    body: &Value,
) -> Option<Parsed> {
    match provider {
        Provider::Openai | Provider::AzureOpenai => openai::parse(request, body),
        Provider::Anthropic => anthropic::parse(request, body),
    }
}

/// A token count from `value[field]`, 0 when absent or not a count.
pub(crate) fn tokens(value: &Value, field: &str) -> u64 {
    value.get(field).and_then(Value::as_u64).unwrap_or(0)
}

/// Text a model was asked to make JSON of, parsed: surrounding whitespace and one Markdown code
/// fence (which some local models add even in JSON mode) are tolerated.
pub(crate) fn parse_json_text(text: &str) -> Result<Value, Unusable> {
    let trimmed = text.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .map_or(trimmed, str::trim);
    serde_json::from_str(unfenced)
        .map_err(|e| Unusable::new(format!("the content is not JSON: {e}"), text))
}
