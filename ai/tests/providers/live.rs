//! One call to a real model, only when `BACKFORGE_AI_TEST_BASE_URL` and
//! `BACKFORGE_AI_TEST_MODEL` are set (e.g. a local Ollama at `http://localhost:11434/v1`);
//! `BACKFORGE_AI_TEST_PROVIDER` (`openai` by default) and `BACKFORGE_AI_TEST_KEY_ENV` (a
//! `BACKFORGE_AI_KEY_…` variable holding the key) are optional.

use std::sync::Arc;

use ai::{
    AiClient, CompletionRequest, Content, Decimal, JsonSchema, ModelConfig, NetworkPolicy,
    Provider, RetryPolicy, SystemLookup,
};
use serde_json::json;

#[tokio::test]
async fn given_a_live_model_in_the_environment_when_asked_for_structured_output_then_it_answers_in_the_schema()
 {
    let (Ok(base_url), Ok(model_name)) = (
        std::env::var("BACKFORGE_AI_TEST_BASE_URL"),
        std::env::var("BACKFORGE_AI_TEST_MODEL"),
    ) else {
        println!(
            "skipped: set BACKFORGE_AI_TEST_BASE_URL and BACKFORGE_AI_TEST_MODEL to call a live model"
        );
        return;
    };
    let provider = match std::env::var("BACKFORGE_AI_TEST_PROVIDER").as_deref() {
        Ok("anthropic") => Provider::Anthropic,
        Ok("azure_openai") => Provider::AzureOpenai,
        _ => Provider::Openai,
    };
    let model = ModelConfig {
        provider,
        base_url,
        model: model_name,
        api_key_env: std::env::var("BACKFORGE_AI_TEST_KEY_ENV").ok(),
        api_version: std::env::var("BACKFORGE_AI_TEST_API_VERSION").ok(),
        input_usd_per_mtok: Decimal::ZERO,
        output_usd_per_mtok: Decimal::ZERO,
        max_output_tokens: 256,
        temperature: Some(0.0),
        timeout_ms: Some(120_000),
    };
    // The person running this chose the address: private and loopback ones are allowed.
    let client = AiClient::with_lookup(
        NetworkPolicy::development(true),
        Arc::new(SystemLookup),
        RetryPolicy::default(),
    )
    .expect("client");
    let request = CompletionRequest {
        system: "You answer in JSON only.".into(),
        user: "Name one primary colour.".into(),
        json_schema: Some(JsonSchema {
            name: "colour".into(),
            description: None,
            schema: json!({
                "type": "object",
                "properties": {"colour": {"type": "string"}},
                "required": ["colour"],
                "additionalProperties": false
            }),
        }),
        max_tokens: Some(64),
    };

    let answer = client
        .complete(
            &model,
            &request,
            tokio::time::Instant::now() + std::time::Duration::from_secs(180),
        )
        .await
        .expect("the live model answers");

    println!("live answer: {answer:?}");
    let Content::Json(value) = &answer.content else {
        panic!("{answer:?}");
    };
    assert!(value["colour"].is_string(), "{value}");
}
