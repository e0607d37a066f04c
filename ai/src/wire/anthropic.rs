//! Anthropic Messages: the body with a forced tool for structured output, and the answer read.

use serde_json::{Map, Value, json};

use super::{Parsed, Unusable, max_tokens, tokens};
use crate::completion::{CompletionRequest, Content, Usage};
use crate::config::ModelConfig;

/// The tool's description when the schema has none.
const DEFAULT_TOOL_DESCRIPTION: &str = "Record the answer in exactly this structure.";

/// The body: `model`, `max_tokens`, `system`, one user message, the temperature if set, and for
/// structured output one tool (`input_schema` = the schema) that `tool_choice` forces.
pub(crate) fn body(model: &ModelConfig, request: &CompletionRequest) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(model.model));
    body.insert("max_tokens".into(), json!(max_tokens(model, request)));
    body.insert("system".into(), json!(request.system));
    body.insert(
        "messages".into(),
        json!([{"role": "user", "content": request.user}]),
    );
    if let Some(t) = model.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(schema) = &request.json_schema {
        body.insert(
            "tools".into(),
            json!([{
                "name": schema.name,
                "description": schema.description.as_deref().unwrap_or(DEFAULT_TOOL_DESCRIPTION),
                "input_schema": schema.schema,
            }]),
        );
        body.insert(
            "tool_choice".into(),
            json!({"type": "tool", "name": schema.name}),
        );
    }
    Value::Object(body)
}

/// With a schema, the `input` of the `tool_use` block naming the tool; without, the text blocks
/// joined. Usage from `usage.input_tokens` / `usage.output_tokens`.
pub(crate) fn parse(request: &CompletionRequest, body: &Value) -> Option<Parsed> {
    let blocks = body.get("content")?.as_array()?;
    let usage = body.get("usage").map_or(Usage::default(), |u| Usage {
        input_tokens: tokens(u, "input_tokens"),
        output_tokens: tokens(u, "output_tokens"),
    });
    let text: String = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n");
    let content = match &request.json_schema {
        Some(schema) => blocks
            .iter()
            .find(|b| {
                b.get("type").and_then(Value::as_str) == Some("tool_use")
                    && b.get("name").and_then(Value::as_str) == Some(schema.name.as_str())
            })
            .and_then(|b| b.get("input"))
            .map(|input| Content::Json(input.clone()))
            .ok_or_else(|| {
                Unusable::new(
                    format!("the answer has no tool_use block for `{}`", schema.name),
                    text,
                )
            }),
        None => Ok(Content::Text(text)),
    };
    Some(Parsed { usage, content })
}
