//! Keys: read from the variable the model names, never in an answer, an error or a recorded body.

use ai::{AiError, ApiKey, KeySource, NetworkPolicy, Provider, StaticLookup};
use serde_json::json;

use crate::server::{FakeServer, Reply};
use crate::*;

#[tokio::test]
async fn given_an_error_body_that_echoes_the_key_when_recorded_then_the_key_and_its_pieces_are_redacted()
 {
    let echo = format!(
        "Incorrect API key provided: {KEY}. Also {} and {}. {}",
        &KEY[3..15],
        &KEY[KEY.len() - 9..],
        "x".repeat(3000)
    );
    let server =
        FakeServer::start(vec![Reply::json(401, json!({"error": {"message": echo}}))]).await;
    let model = model(Provider::Openai, &server.url());

    let error = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("status");

    let AiError::Status { code, body, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*code, 401);
    assert!(body.len() <= 1024, "cut to 1 KiB: {}", body.len());
    assert!(
        body.contains("Incorrect API key provided: [redacted]"),
        "{body}"
    );
    for piece in KEY.as_bytes().windows(8) {
        let piece = std::str::from_utf8(piece).expect("ascii");
        assert!(!body.contains(piece), "{piece} leaked: {body}");
    }
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(&KEY[..8]) && !shown.contains(&KEY[KEY.len() - 8..]));
}

#[tokio::test]
async fn given_a_retried_failure_that_echoes_the_key_when_reported_then_the_transport_error_is_redacted()
 {
    let server = FakeServer::start(vec![Reply::text(500, &format!("upstream said {KEY}"))]).await;
    let model = model(Provider::Openai, &server.url());

    let error = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("transport");

    let shown = format!("{error} {error:?}");
    assert!(shown.contains("upstream said [redacted]"), "{shown}");
    assert!(!shown.contains(KEY));
}

#[tokio::test]
async fn given_a_key_variable_that_is_not_set_when_called_then_missing_key_names_the_variable_and_nothing_is_sent()
 {
    let server = FakeServer::start(vec![Reply::json(200, openai_answer("{}", 1, 1))]).await;
    let mut model = model(Provider::Anthropic, &server.url());
    model.api_key_env = Some("BACKFORGE_AI_KEY_NOT_SET_ANYWHERE".into());

    let error = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("missing key");

    assert_eq!(
        error,
        AiError::MissingKey {
            env: "BACKFORGE_AI_KEY_NOT_SET_ANYWHERE".into()
        }
    );
    assert!(
        error
            .to_string()
            .contains("BACKFORGE_AI_KEY_NOT_SET_ANYWHERE")
    );
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn given_the_real_environment_when_a_variable_is_unset_then_missing_key_names_it() {
    let server = FakeServer::start(vec![Reply::json(200, openai_answer("{}", 1, 1))]).await;
    let mut model = model(Provider::Openai, &server.url());
    model.api_key_env = Some("BACKFORGE_AI_KEY_SURELY_UNSET_42".into());
    let client = ai::AiClient::with_lookup(
        NetworkPolicy::development(false),
        std::sync::Arc::new(StaticLookup::default()),
        fast_retries(),
    )
    .expect("client");

    let error = client
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("missing key");

    assert_eq!(
        error,
        AiError::MissingKey {
            env: "BACKFORGE_AI_KEY_SURELY_UNSET_42".into()
        }
    );
    assert!(
        matches!(ApiKey::from_env("PATH"), Ok(key) if format!("{key:?}") == "ApiKey([redacted])"),
        "a key read from the environment never prints"
    );
}

#[tokio::test]
async fn given_a_key_variable_without_the_prefix_when_called_then_the_configuration_is_refused() {
    let mut model = model(Provider::Openai, "http://127.0.0.1:9");
    model.api_key_env = Some("HOME".into());

    let error = client()
        .with_keys(KeySource::fixed([("HOME", "whatever")]))
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("refused");

    assert_eq!(error.kind(), "config");
}

/// Set in the child process [`given_a_key_in_the_real_environment_when_called_then_it_is_read_at_call_time_and_sent`]
/// starts (the workspace forbids `unsafe`, so this process cannot set a variable itself).
const CHILD_MARKER: &str = "AI_TESTS_KEY_CHILD";
const CHILD_KEY_ENV: &str = "BACKFORGE_AI_KEY_CHILD";
const CHILD_KEY: &str = "sk-child-9876543210-zyxwvu";

#[test]
fn given_a_key_in_the_real_environment_when_called_then_it_is_read_at_call_time_and_sent() {
    if std::env::var_os(CHILD_MARKER).is_some() {
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "keys::when_run_as_the_child_then_the_key_comes_from_the_environment",
            "--nocapture",
        ])
        .env(CHILD_MARKER, "1")
        .env(CHILD_KEY_ENV, CHILD_KEY)
        .output()
        .expect("the child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn when_run_as_the_child_then_the_key_comes_from_the_environment() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return;
    }
    let server = FakeServer::start(vec![Reply::json(
        200,
        openai_answer(r#"{"features":[]}"#, 1, 1),
    )])
    .await;
    let mut model = model(Provider::Openai, &server.url());
    model.api_key_env = Some(CHILD_KEY_ENV.into());
    let client = ai::AiClient::new(NetworkPolicy::development(false)).expect("client");

    let answer = client
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect("an answer");

    assert_eq!(
        server.requests()[0].header("authorization"),
        Some(format!("Bearer {CHILD_KEY}").as_str())
    );
    let shown = format!("{answer:?} {client:?}");
    assert!(!shown.contains(CHILD_KEY), "{shown}");
}
