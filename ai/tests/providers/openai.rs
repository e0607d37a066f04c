//! The OpenAI Chat Completions wire format (OpenAI, Ollama, vLLM, llama.cpp, LM Studio,
//! OpenRouter).

use ai::{AiError, CompletionRequest, Content, Provider, Usage};
use serde_json::json;

use crate::server::{FakeServer, Reply};
use crate::*;

#[tokio::test]
async fn given_an_openai_server_when_structured_output_is_asked_then_the_documented_request_is_sent_and_content_and_usage_are_read()
 {
    let server = FakeServer::start(vec![Reply::json(
        200,
        openai_answer(r#"{"features":["orders","auth"]}"#, 1234, 567),
    )])
    .await;
    let model = model(Provider::Openai, &format!("{}/v1", server.url()));

    let answer = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect("an answer");

    assert_eq!(
        answer.content,
        Content::Json(json!({"features": ["orders", "auth"]}))
    );
    assert_eq!(
        answer.usage,
        Usage {
            input_tokens: 1234,
            output_tokens: 567
        }
    );
    // (1234 × 2.5 + 567 × 10) / 1e6
    assert_eq!(answer.cost_usd.to_string(), "0.008755");
    assert_eq!(answer.tries, 1);

    let sent = server.requests();
    assert_eq!(sent.len(), 1);
    let request = &sent[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/v1/chat/completions");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-api-key"), None);
    assert_eq!(
        request.json(),
        json!({
            "model": "test-model",
            "messages": [
                {"role": "system", "content": "You design backends."},
                {"role": "user", "content": "A shop with orders."}
            ],
            "max_tokens": 500,
            "temperature": 0.2,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "proposal", "strict": true, "schema": schema()}
            },
            "stream": false
        })
    );
}

#[tokio::test]
async fn given_no_schema_when_the_model_answers_then_the_text_is_returned_and_the_cap_is_the_models()
 {
    let server =
        FakeServer::start(vec![Reply::json(200, openai_answer("Hello\u{0}!", 3, 2))]).await;
    let mut model = model(Provider::Openai, &server.url());
    model.api_key_env = None;
    model.temperature = None;
    let request = CompletionRequest {
        system: "s".into(),
        user: "u".into(),
        json_schema: None,
        max_tokens: Some(1_000_000),
    };

    let answer = client()
        .complete(&model, &request, deadline(10))
        .await
        .expect("an answer");

    assert_eq!(answer.content, Content::Text("Hello\u{FFFD}!".into()));
    let sent = server.requests()[0].clone();
    assert_eq!(sent.header("authorization"), None, "no key, no header");
    let body = sent.json();
    assert_eq!(
        body["max_tokens"], 2000,
        "capped at the model's max_output_tokens"
    );
    assert!(body.get("response_format").is_none());
    assert!(body.get("temperature").is_none());
}

#[tokio::test]
async fn given_content_that_is_not_json_when_read_then_it_is_malformed_with_its_raw_text_and_still_billed()
 {
    let server = FakeServer::start(vec![Reply::json(
        200,
        openai_answer("Sure! Here are your features: orders", 100, 20),
    )])
    .await;
    let model = model(Provider::Openai, &server.url());

    let error = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("malformed");

    let AiError::Malformed {
        detail,
        raw,
        usage,
        cost_usd,
        tries,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert!(detail.contains("not JSON"), "{detail}");
    assert_eq!(raw, "Sure! Here are your features: orders");
    assert_eq!(usage.input_tokens, 100);
    assert_eq!(cost_usd.to_string(), "0.000450");
    assert_eq!(*tries, 1, "a paid answer is never retried");
    assert_eq!(error.billed().map(|(u, _)| u.output_tokens), Some(20));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn given_json_that_breaks_the_schema_when_read_then_it_is_malformed_naming_the_place() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        openai_answer(r#"{"features":[1],"extra":true}"#, 10, 5),
    )])
    .await;
    let model = model(Provider::Openai, &server.url());

    let error = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("malformed");

    let AiError::Malformed { detail, raw, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(detail.contains("does not match the schema"), "{detail}");
    assert!(detail.contains("/features/0"), "{detail}");
    assert!(raw.contains("extra"), "{raw}");
}

#[tokio::test]
async fn given_a_fenced_json_answer_from_a_local_model_when_read_then_the_fence_is_tolerated() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        openai_answer("```json\n{\"features\":[]}\n```", 1, 1),
    )])
    .await;
    let model = model(Provider::Openai, &server.url());

    let answer = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect("an answer");

    assert_eq!(answer.content, Content::Json(json!({"features": []})));
}

#[tokio::test]
async fn given_a_refusal_when_read_then_it_is_malformed_with_the_refusal_text() {
    let mut body = openai_answer("", 7, 3);
    body["choices"][0]["message"] =
        json!({"role": "assistant", "content": null, "refusal": "I can't help with that."});
    let server = FakeServer::start(vec![Reply::json(200, body)]).await;
    let model = model(Provider::Openai, &server.url());

    let error = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("malformed");

    let AiError::Malformed { detail, raw, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(detail.contains("refused"), "{detail}");
    assert_eq!(raw, "I can't help with that.");
}

#[tokio::test]
async fn given_a_success_status_with_a_body_that_is_no_answer_when_read_then_it_is_malformed() {
    let server = FakeServer::start(vec![Reply::text(200, "<html>proxy page</html>")]).await;
    let model = model(Provider::Openai, &server.url());

    let error = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("malformed");

    let AiError::Malformed { raw, usage, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(raw, "<html>proxy page</html>");
    assert_eq!(*usage, Usage::default());
}

#[tokio::test]
async fn given_a_success_body_over_the_cap_when_read_then_it_is_malformed_and_only_the_cap_was_kept()
 {
    let huge = "x".repeat(ai::client::MAX_ANSWER_BYTES + 4096);
    let server = FakeServer::start(vec![Reply::text(200, &huge)]).await;
    let model = model(Provider::Openai, &server.url());

    let error = client()
        .complete(&model, &structured_request(), deadline(20))
        .await
        .expect_err("malformed");

    let AiError::Malformed {
        detail, raw, tries, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(
        detail,
        &format!("the answer is over {} bytes", ai::client::MAX_ANSWER_BYTES)
    );
    assert!(raw.len() <= ai::foreign::RAW_ANSWER_BYTES, "{}", raw.len());
    assert_eq!(*tries, 1, "an oversized answer is not retried");
}

#[tokio::test]
async fn given_a_request_that_cannot_be_sent_when_called_then_it_is_refused_before_any_connection()
{
    let server = FakeServer::start(vec![Reply::json(200, openai_answer("{}", 1, 1))]).await;
    let model = model(Provider::Openai, &server.url());
    let mut bad_name = structured_request();
    bad_name.json_schema.as_mut().expect("schema").name = "has spaces".into();
    let mut bad_schema = structured_request();
    bad_schema.json_schema.as_mut().expect("schema").schema = json!({"type": 12});
    let mut azure = crate::model(Provider::AzureOpenai, &server.url());
    azure.api_version = None;

    for (error, kind) in [
        (
            client().complete(&model, &bad_name, deadline(10)).await,
            "request",
        ),
        (
            client().complete(&model, &bad_schema, deadline(10)).await,
            "request",
        ),
        (
            client()
                .complete(&azure, &structured_request(), deadline(10))
                .await,
            "config",
        ),
    ] {
        assert_eq!(error.expect_err("refused").kind(), kind);
    }
    assert_eq!(server.connections(), 0);
}
