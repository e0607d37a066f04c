//! The AI providers' client against local servers that answer in each provider's wire format:
//! what is sent, what is read, retries, timeouts, keys, costs and the SSRF rule. Every server is
//! on 127.0.0.1; every other address a test names is refused before any connection.

mod anthropic;
mod azure;
mod costs;
mod keys;
mod live;
mod openai;
mod retries;
mod server;
mod ssrf;

use std::sync::Arc;
use std::time::Duration;

use ai::{
    AiClient, CompletionRequest, Decimal, JsonSchema, KeySource, ModelConfig, NetworkPolicy,
    Provider, RetryPolicy, StaticLookup,
};
use serde_json::{Value, json};
use tokio::time::Instant;

/// The key the fixed key source holds for [`KEY_ENV`].
pub const KEY: &str = "sk-test-0123456789abcdefghij";
pub const KEY_ENV: &str = "BACKFORGE_AI_KEY_TEST";

/// A development client (loopback allowed), fast retries, keys from a fixed table.
pub fn client() -> AiClient {
    client_with(NetworkPolicy::development(false), StaticLookup::default())
}

pub fn client_with(policy: NetworkPolicy, lookup: StaticLookup) -> AiClient {
    AiClient::with_lookup(policy, Arc::new(lookup), fast_retries())
        .expect("client")
        .with_keys(KeySource::fixed([(KEY_ENV, KEY)]))
}

pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    }
}

pub fn model(provider: Provider, base_url: &str) -> ModelConfig {
    ModelConfig {
        provider,
        base_url: base_url.into(),
        model: "test-model".into(),
        api_key_env: Some(KEY_ENV.into()),
        api_version: (provider == Provider::AzureOpenai).then(|| "2024-10-21".into()),
        input_usd_per_mtok: Decimal::new(25, 1),
        output_usd_per_mtok: Decimal::TEN,
        max_output_tokens: 2000,
        temperature: Some(0.2),
        timeout_ms: Some(5_000),
    }
}

pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {"features": {"type": "array", "items": {"type": "string"}}},
        "required": ["features"],
        "additionalProperties": false
    })
}

pub fn structured_request() -> CompletionRequest {
    CompletionRequest {
        system: "You design backends.".into(),
        user: "A shop with orders.".into(),
        json_schema: Some(JsonSchema {
            name: "proposal".into(),
            description: None,
            schema: schema(),
        }),
        max_tokens: Some(500),
    }
}

pub fn deadline(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

/// An OpenAI Chat Completions answer with `content` and usage.
pub fn openai_answer(content: &str, prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "test-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        }
    })
}
