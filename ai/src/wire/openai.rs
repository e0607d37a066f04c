//! OpenAI Chat Completions (and Azure's form of it): the body with `json_schema`, the answer read.

use serde_json::{Map, Value, json};

use super::{Parsed, Unusable, max_tokens, parse_json_text, tokens};
use crate::completion::{CompletionRequest, Content, Usage};
use crate::config::ModelConfig;

/// The body: `model` (not for Azure, whose URL names the deployment), a system and a user
/// message, the cap, the temperature if the model sets one, and the JSON Schema if asked.
///
/// The cap is sent as `max_tokens`, not `max_completion_tokens`: every server of the family
/// (Ollama, vLLM, llama.cpp's server, LM Studio, OpenRouter, Azure) reads `max_tokens`, and
/// OpenAI still honours it for chat models; only its reasoning models require the newer name,
/// which several local servers ignore (leaving the answer uncapped).
pub(crate) fn body(model: &ModelConfig, request: &CompletionRequest, with_model: bool) -> Value {
    let mut body = Map::new();
    if with_model {
        body.insert("model".into(), json!(model.model));
    }
    body.insert(
        "messages".into(),
        json!([
            {"role": "system", "content": request.system},
            {"role": "user", "content": request.user},
        ]),
    );
    body.insert("max_tokens".into(), json!(max_tokens(model, request)));
    if let Some(t) = model.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(schema) = &request.json_schema {
        let mut spec = Map::new();
        spec.insert("name".into(), json!(schema.name));
        if let Some(d) = &schema.description {
            spec.insert("description".into(), json!(d));
        }
        spec.insert("strict".into(), json!(true));
        spec.insert("schema".into(), schema.schema.clone());
        body.insert(
            "response_format".into(),
            json!({"type": "json_schema", "json_schema": spec}),
        );
    }
    body.insert("stream".into(), json!(false));
    Value::Object(body)
}

/// `choices[0].message.content` (a string; parsed as JSON when a schema was asked) and
/// `usage.prompt_tokens` / `usage.completion_tokens`. A `refusal` is unusable content.
pub(crate) fn parse(request: &CompletionRequest, body: &Value) -> Option<Parsed> {
    let message = body.get("choices")?.get(0)?.get("message")?;
    let usage = body.get("usage").map_or(Usage::default(), |u| Usage {
        input_tokens: tokens(u, "prompt_tokens"),
        output_tokens: tokens(u, "completion_tokens"),
    });
    let content = match (message.get("content"), message.get("refusal")) {
        (_, Some(Value::String(refusal))) => Err(Unusable::new(
            "the model refused to answer",
            refusal.as_str(),
        )),
        (Some(Value::String(text)), _) => match request.json_schema {
            Some(_) => parse_json_text(text).map(Content::Json),
            None => Ok(Content::Text(text.clone())),
        },
        (other, _) => Err(Unusable::new(
            "the answer's message has no text content",
            other.map_or(String::new(), Value::to_string),
        )),
    };
    Some(Parsed { usage, content })
}
