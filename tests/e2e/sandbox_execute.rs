//! `POST /ai/sandbox-execute` over HTTP: a signed-in user's code runs in the sandbox with the run
//! result of the contract; hostile code gets its status while the server keeps answering, sees
//! none of the server's environment and reaches no network.

use std::time::Duration;

use serde_json::{Value, json};
use tests::process::eventually;
use tests::{Answer, TestApp, TestUser};

use crate::hostile_code::{Target, Uids, contain, ready};

async fn run(app: &TestApp, user: &TestUser, code: &str, input: Value) -> Answer {
    app.post(
        "/ai/sandbox-execute",
        Some(&user.access_token),
        json!({"language": "python", "code": code, "input": input}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_user_runs_code_and_gets_the_run_result() {
    let app = TestApp::spawn().await;
    let user = app.register("Ada").await;
    ready(&app, &user).await;
    let answer = run(
        &app,
        &user,
        "def handler(input):\n    print('adding')\n    return {'sum': input['a'] + input['b']}",
        json!({"a": 2, "b": 40}),
    )
    .await
    .expect(200);
    assert_eq!(answer.body["status"], "ok", "{}", answer.body);
    assert_eq!(answer.body["output"], json!({"sum": 42}));
    assert_eq!(answer.body["stdout"], "adding\n");
    let failing = run(&app, &user, "x = 1\ny = missing", Value::Null)
        .await
        .expect(200);
    assert_eq!(failing.body["status"], "error");
    assert_eq!(failing.body["error"]["type"], "NameError");
    assert_eq!(failing.body["error"]["line"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_code_is_contained_and_the_server_keeps_answering() {
    let uids = Uids::fresh();
    let app = TestApp::spawn_with(&uids.settings()).await;
    let user = app.register("Mallory").await;
    ready(&app, &user).await;
    let target = Target {
        address: &app.address,
        database_url: &app.db.url,
        uids: &uids,
    };
    contain(target, |code| {
        let (app, user) = (&app, &user);
        async move { run(app, user, &code, Value::Null).await.expect(200).body }
    })
    .await;
}

#[tokio::test]
async fn bad_runs_are_refused_with_problems() {
    let app = TestApp::spawn().await;
    let user = app.register("Bob").await;
    app.post(
        "/ai/sandbox-execute",
        None,
        json!({"language": "python", "code": "pass"}),
    )
    .await
    .expect(401);
    let ruby = app
        .post(
            "/ai/sandbox-execute",
            Some(&user.access_token),
            json!({"language": "ruby", "code": "puts 1"}),
        )
        .await
        .expect(422);
    assert_eq!(ruby.body["errors"][0]["field"], "/language");
    let big = app
        .post(
            "/ai/sandbox-execute",
            Some(&user.access_token),
            json!({"language": "python", "code": "#".repeat(64 * 1024 + 1)}),
        )
        .await
        .expect(422);
    assert_eq!(big.body["errors"][0]["field"], "/code");
    let nul = app
        .post(
            "/ai/sandbox-execute",
            Some(&user.access_token),
            json!({"language": "python", "code": "print(1)\u{0}"}),
        )
        .await
        .expect(422);
    assert_eq!(nul.body["errors"][0]["field"], "/code");
    // The largest code accepted runs.
    ready(&app, &user).await;
    let largest = run(
        &app,
        &user,
        &format!("x = 1{}", " ".repeat(64 * 1024 - 5)),
        Value::Null,
    )
    .await
    .expect(200);
    assert_eq!(largest.body["status"], "ok", "{}", largest.body);
}

#[tokio::test]
async fn readiness_reports_the_sandbox_and_a_broken_one_answers_503_naming_the_cause() {
    let app = TestApp::spawn().await;
    let user = app.register("Ready").await;
    ready(&app, &user).await;
    let health = app
        .client
        .get(format!("{}/health/ready", app.address))
        .send()
        .await
        .expect("ready");
    let body: Value = health.json().await.expect("json");
    assert_eq!(body["checks"]["sandbox"], "up", "{body}");

    let broken =
        TestApp::spawn_with(&[("BACKFORGE_SANDBOX_PYTHON", "/nonexistent/bin/python3")]).await;
    let user = broken.register("Broken").await;
    // The suite's helpers refuse any 5xx, so this 503 is asked for with the bare client.
    let refused: Value = eventually("the self-test fails", Duration::from_secs(20), || async {
        let answer = broken
            .client
            .post(broken.url("/ai/sandbox-execute"))
            .bearer_auth(&user.access_token)
            .json(&json!({"language": "python", "code": "pass"}))
            .send()
            .await
            .ok()?;
        if answer.status() != 503 {
            return None;
        }
        let body: Value = answer.json().await.ok()?;
        let detail = body["detail"].as_str().unwrap_or_default();
        (!detail.contains("not run yet")).then_some(body)
    })
    .await;
    assert_eq!(
        refused["type"],
        "https://backforge.dev/problems/sandbox-unavailable"
    );
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("/nonexistent")),
        "the cause is named: {refused}"
    );
    let health = broken
        .client
        .get(format!("{}/health/ready", broken.address))
        .send()
        .await
        .expect("ready");
    assert_eq!(health.status(), 200, "an API process stays in rotation");
    let body: Value = health.json().await.expect("json");
    assert_eq!(
        (body["status"].clone(), body["checks"]["sandbox"].clone()),
        (json!("degraded"), json!("down"))
    );
}
