//! Anthropic Messages: a forced tool for structured output, `x-api-key` and `anthropic-version`.

use ai::{AiError, CompletionRequest, Content, Provider, Usage};
use serde_json::{Value, json};

use crate::server::{FakeServer, Reply};
use crate::*;

fn messages_answer(content: Value, input_tokens: u64, output_tokens: u64) -> Value {
    json!({
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "test-model",
        "content": content,
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}
    })
}

#[tokio::test]
async fn given_an_anthropic_server_when_structured_output_is_asked_then_a_forced_tool_is_sent_and_its_input_is_the_answer()
 {
    let server = FakeServer::start(vec![Reply::json(
        200,
        messages_answer(
            json!([
                {"type": "text", "text": "Here you are."},
                {"type": "tool_use", "id": "toolu_01", "name": "proposal", "input": {"features": ["orders"]}}
            ]),
            2095,
            503,
        ),
    )])
    .await;
    let model = model(Provider::Anthropic, &server.url());

    let answer = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect("an answer");

    assert_eq!(
        answer.content,
        Content::Json(json!({"features": ["orders"]}))
    );
    assert_eq!(
        answer.usage,
        Usage {
            input_tokens: 2095,
            output_tokens: 503
        }
    );
    // (2095 × 2.5 + 503 × 10) / 1e6 = 0.0102675: a tie, rounded to the even 0.010268
    assert_eq!(answer.cost_usd.to_string(), "0.010268");
    let sent = server.requests()[0].clone();
    assert_eq!(sent.target, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        sent.json(),
        json!({
            "model": "test-model",
            "max_tokens": 500,
            "system": "You design backends.",
            "messages": [{"role": "user", "content": "A shop with orders."}],
            "temperature": 0.2,
            "tools": [{
                "name": "proposal",
                "description": "Record the answer in exactly this structure.",
                "input_schema": schema()
            }],
            "tool_choice": {"type": "tool", "name": "proposal"}
        })
    );
}

#[tokio::test]
async fn given_an_anthropic_answer_without_the_tool_when_read_then_it_is_malformed_with_the_text() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        messages_answer(
            json!([{"type": "text", "text": "I would rather chat."}]),
            50,
            8,
        ),
    )])
    .await;
    let model = model(Provider::Anthropic, &server.url());

    let error = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("malformed");

    let AiError::Malformed {
        detail, raw, usage, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert!(detail.contains("tool_use"), "{detail}");
    assert_eq!(raw, "I would rather chat.");
    assert_eq!(usage.output_tokens, 8);
}

#[tokio::test]
async fn given_no_schema_when_anthropic_answers_then_its_text_blocks_are_the_content_and_no_tool_is_sent()
 {
    let server = FakeServer::start(vec![Reply::json(
        200,
        messages_answer(json!([{"type": "text", "text": "Hi."}]), 5, 2),
    )])
    .await;
    let model = model(Provider::Anthropic, &server.url());
    let request = CompletionRequest {
        system: "s".into(),
        user: "u".into(),
        json_schema: None,
        max_tokens: None,
    };

    let answer = client()
        .complete(&model, &request, deadline(10))
        .await
        .expect("an answer");

    assert_eq!(answer.content, Content::Text("Hi.".into()));
    let body = server.requests()[0].json();
    assert!(body.get("tools").is_none() && body.get("tool_choice").is_none());
    assert_eq!(body["max_tokens"], 2000);
}
