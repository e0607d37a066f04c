//! Retries (429 with `Retry-After`, 5xx, connection errors; at most 3, within the deadline),
//! timeouts, non-retried statuses and redirects.

use std::time::Duration;

use ai::{AiError, Provider, TransportFailure};
use serde_json::json;

use crate::server::{FakeServer, Reply};
use crate::*;

fn ok() -> Reply {
    Reply::json(200, openai_answer(r#"{"features":[]}"#, 10, 1))
}

#[tokio::test]
async fn given_a_429_with_retry_after_when_called_then_the_wait_is_honoured_and_the_retry_succeeds()
{
    let server = FakeServer::start(vec![
        Reply::json(429, json!({"error": {"message": "slow down"}})).header("retry-after", "1"),
        ok(),
    ])
    .await;
    let model = model(Provider::Openai, &server.url());

    let answer = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect("an answer after one retry");

    assert_eq!(answer.tries, 2);
    let sent = server.requests();
    assert_eq!(sent.len(), 2);
    let waited = sent[1].at - sent[0].at;
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
    assert!(answer.latency_ms >= 1000, "{}", answer.latency_ms);
}

#[tokio::test]
async fn given_a_500_then_an_answer_when_called_then_one_retry_gets_it() {
    let server = FakeServer::start(vec![Reply::text(500, "oops"), ok()]).await;
    let model = model(Provider::Openai, &server.url());

    let answer = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect("an answer");

    assert_eq!(answer.tries, 2);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn given_a_provider_failing_with_500_every_time_when_called_then_three_retries_end_in_a_transport_error()
 {
    let server = FakeServer::start(vec![Reply::text(500, "still broken")]).await;
    let model = model(Provider::Openai, &server.url());

    let error = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("transport error");

    assert_eq!(
        error,
        AiError::Transport {
            tries: 4,
            last: TransportFailure::Status {
                code: 500,
                body: "still broken".into()
            }
        }
    );
    assert_eq!(server.requests().len(), 4, "one try and at most 3 retries");
    assert_eq!(error.kind(), "transport");
}

#[tokio::test]
async fn given_a_retry_after_past_the_deadline_when_called_then_it_gives_up_at_once() {
    let server = FakeServer::start(vec![
        Reply::text(503, "busy").header("retry-after", "30"),
        ok(),
    ])
    .await;
    let model = model(Provider::Openai, &server.url());
    let started = std::time::Instant::now();

    let error = client()
        .complete(&model, &structured_request(), deadline(20))
        .await
        .expect_err("gives up");

    assert!(
        matches!(error, AiError::Transport { tries: 1, .. }),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it did not wait"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn given_a_retry_after_too_large_for_a_clock_when_called_then_it_gives_up_without_panicking()
{
    let server = FakeServer::start(vec![
        Reply::text(503, "busy").header("retry-after", &u64::MAX.to_string()),
        ok(),
    ])
    .await;
    let model = model(Provider::Openai, &server.url());

    let error = client()
        .complete(&model, &structured_request(), deadline(20))
        .await
        .expect_err("gives up");

    assert!(
        matches!(error, AiError::Transport { tries: 1, .. }),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn given_an_answer_slower_than_the_timeout_when_called_then_it_is_a_timeout_and_not_retried()
{
    let server = FakeServer::start(vec![ok().after(Duration::from_secs(15))]).await;
    let mut model = model(Provider::Openai, &server.url());
    model.timeout_ms = Some(300);
    let started = std::time::Instant::now();

    let error = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("timeout");

    assert!(
        matches!(error, AiError::Timeout { tries: 1, .. }),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it did not wait for the answer"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn given_a_deadline_shorter_than_the_models_timeout_when_the_answer_is_slow_then_the_deadline_wins()
 {
    let server = FakeServer::start(vec![ok().after(Duration::from_secs(15))]).await;
    let model = model(Provider::Openai, &server.url());
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);

    let error = client()
        .complete(&model, &structured_request(), deadline)
        .await
        .expect_err("timeout");

    assert!(matches!(error, AiError::Timeout { .. }), "{error:?}");
}

#[tokio::test]
async fn given_nothing_listening_when_called_then_connection_errors_are_retried_and_reported() {
    // A port that was just free: bind, read it, let it go.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let model = model(Provider::Openai, &format!("http://127.0.0.1:{port}"));

    let error = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("transport error");

    let AiError::Transport {
        tries,
        last: TransportFailure::Connection(detail),
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(*tries, 4);
    assert!(!detail.is_empty());
}

#[tokio::test]
async fn given_a_400_when_called_then_it_is_not_retried() {
    let server = FakeServer::start(vec![Reply::json(
        400,
        json!({"error": {"message": "bad schema", "type": "invalid_request_error"}}),
    )])
    .await;
    let model = model(Provider::Openai, &server.url());

    let error = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("status");

    let AiError::Status { code, body, tries } = &error else {
        panic!("{error:?}");
    };
    assert_eq!((*code, *tries), (400, 1));
    assert!(body.contains("bad schema"), "{body}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn given_a_redirect_to_elsewhere_when_called_then_it_is_not_followed_and_the_target_sees_nothing()
 {
    let target = FakeServer::start(vec![ok()]).await;
    let redirecting = FakeServer::start(vec![
        Reply::text(302, "").header("location", &format!("{}/v1/chat/completions", target.url())),
    ])
    .await;
    let model = model(Provider::Openai, &redirecting.url());

    let error = client()
        .complete(&model, &structured_request(), deadline(10))
        .await
        .expect_err("a redirect is an error");

    assert!(
        matches!(
            error,
            AiError::Status {
                code: 302,
                tries: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        target.connections(),
        0,
        "the redirect's target was never contacted"
    );
}
