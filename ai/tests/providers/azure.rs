//! Azure OpenAI: the deployment URL with `api-version` and the `api-key` header.

use ai::{Content, Provider};
use serde_json::json;

use crate::server::{FakeServer, Reply};
use crate::*;

#[tokio::test]
async fn given_an_azure_deployment_when_called_then_the_url_names_it_with_the_api_version_and_the_key_goes_in_api_key()
 {
    let server = FakeServer::start(vec![Reply::json(
        200,
        openai_answer(r#"{"features":["x"]}"#, 40, 2),
    )])
    .await;
    let model = model(Provider::AzureOpenai, &server.url());

    let answer = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect("an answer");

    assert_eq!(answer.content, Content::Json(json!({"features": ["x"]})));
    assert_eq!(answer.usage.input_tokens, 40);
    let sent = server.requests()[0].clone();
    assert_eq!(
        sent.target,
        "/openai/deployments/test-model/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(sent.header("api-key"), Some(KEY));
    assert_eq!(sent.header("authorization"), None);
    let body = sent.json();
    assert!(body.get("model").is_none(), "the URL names the deployment");
    assert_eq!(body["max_tokens"], 500);
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(body["response_format"]["json_schema"]["schema"], schema());
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1]["content"], "A shop with orders.");
}
