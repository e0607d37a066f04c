//! Generation requests: every refusal happens before any job exists, and an accepted request is
//! one `GenerationRequested` on a stream of its own.

use serde_json::{Value, json};
use tests::{TestApp, TestUser};

fn crud(name: &str, entity: &str) -> Value {
    json!({"name": name, "feature_type": "crud", "schema_definition":
        {"entity": entity, "fields": [{"name": "label", "type": "string", "required": true}]}})
}

async fn project(app: &TestApp, owner: &TestUser, body: Value) -> String {
    app.post("/projects", Some(&owner.access_token), body)
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn generations_requested(app: &TestApp) -> usize {
    app.all_events()
        .await
        .iter()
        .filter(|e| e.1 == "GenerationRequested")
        .count()
}

#[tokio::test]
async fn an_accepted_request_answers_202_and_records_the_project_version() {
    let app = TestApp::spawn().await;
    let owner = app.register("Gen").await;
    let id = project(
        &app,
        &owner,
        json!({"name": "P", "features": [crud("Things", "thing")]}),
    )
    .await;
    let answer = app
        .post(
            &format!("/projects/{id}/generations"),
            Some(&owner.access_token),
            json!({"verify": false}),
        )
        .await
        .expect(202);
    let generation = answer.body["id"].as_str().expect("id");
    assert_eq!(answer.body["version"], 1);
    assert_eq!(
        answer.header("location"),
        Some(format!("/api/v1/generations/{generation}"))
    );
    assert!(answer.header("backforge-position").is_some());
    let events = app.all_events().await;
    let requested = events
        .iter()
        .find(|e| e.1 == "GenerationRequested")
        .expect("requested");
    assert_eq!(requested.0, format!("generation-{generation}"));
    assert_eq!(requested.2["project_version"], 2);
    assert_eq!(requested.2["target"], "python-fastapi");
    // An older version can be generated too.
    let old = app
        .post(
            &format!("/projects/{id}/generations"),
            Some(&owner.access_token),
            json!({"project_version": 1}),
        )
        .await;
    assert_eq!(
        old.status.as_u16(),
        422,
        "version 1 has no enabled feature: {}",
        old.body
    );
}

#[tokio::test]
async fn every_refusal_comes_before_any_job_exists() {
    let app = TestApp::spawn().await;
    let owner = app.register("Owner").await;
    let stranger = app.register("Stranger").await;
    let viewer = app.register("Viewer").await;
    let ok = project(
        &app,
        &owner,
        json!({"name": "Ok", "features": [crud("Things", "thing")]}),
    )
    .await;
    app.put(
        &format!("/projects/{ok}/members/{}", viewer.id),
        Some(&owner.access_token),
        json!({"role": "viewer"}),
    )
    .await
    .expect(200);
    let empty = project(&app, &owner, json!({"name": "Empty"})).await;
    let disabled = project(
        &app,
        &owner,
        json!({"name": "Disabled", "features": [{"name": "Off", "feature_type": "auth", "is_enabled": false}]}),
    )
    .await;
    let ai = project(
        &app,
        &owner,
        json!({"name": "Ai", "generation_mode": "ai_assisted", "features": [crud("T", "t")]}),
    )
    .await;
    let jobs = project(
        &app,
        &owner,
        json!({"name": "Jobs", "features": [crud("T", "t"), {"name": "Cron", "feature_type": "background_jobs"}]}),
    )
    .await;
    let archived = project(
        &app,
        &owner,
        json!({"name": "Gone", "features": [crud("T", "t")]}),
    )
    .await;
    app.delete(&format!("/projects/{archived}"), Some(&owner.access_token))
        .await
        .expect(204);
    let before = app.event_count().await;

    let cases: Vec<(&str, &TestUser, Value, u16)> = vec![
        (&empty, &owner, json!({}), 422),
        (&disabled, &owner, json!({}), 422),
        (&ai, &owner, json!({}), 422),
        (&jobs, &owner, json!({}), 422),
        (&ok, &owner, json!({"target": "cobol-mainframe"}), 422),
        (&ok, &owner, json!({"project_version": 99}), 404),
        (&ok, &owner, json!({"project_version": 0}), 404),
        (&ok, &owner, json!({"verify": "yes"}), 422),
        (&ok, &owner, json!({"unknown": 1}), 422),
        (&ok, &stranger, json!({}), 404),
        (&ok, &viewer, json!({}), 403),
        (&archived, &owner, json!({}), 404),
        ("not-a-uuid", &owner, json!({}), 404),
    ];
    for (project_id, user, body, status) in cases {
        let answer = app
            .post(
                &format!("/projects/{project_id}/generations"),
                Some(&user.access_token),
                body.clone(),
            )
            .await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{project_id} {body}: {}",
            answer.body
        );
    }
    assert_eq!(
        app.event_count().await,
        before,
        "no refused request wrote an event"
    );
    assert_eq!(generations_requested(&app).await, 0);
    let unsupported = app
        .post(
            &format!("/projects/{jobs}/generations"),
            Some(&owner.access_token),
            json!({}),
        )
        .await;
    assert!(
        unsupported.body["errors"]
            .to_string()
            .contains("background_jobs"),
        "the refusal says which feature type is unsupported: {}",
        unsupported.body
    );
    let ai_assisted = app
        .post(
            &format!("/projects/{ai}/generations"),
            Some(&owner.access_token),
            json!({}),
        )
        .await;
    assert_eq!(
        ai_assisted.body["errors"],
        json!([{"field": "", "message": "feature `T` is `ai_assisted` (its own mode or the \
            project's) and no AI request's proposal was applied to it; apply an AI request first \
            (/ai/generate-config or /ai/enhance-config), or make it `manual` or `mixed`"}]),
        "the refusal names the feature following the project's ai_assisted mode: {}",
        ai_assisted.body
    );
}

#[tokio::test]
async fn mixed_content_generates_and_an_ai_assisted_feature_without_an_apply_does_not() {
    let app = TestApp::spawn().await;
    let owner = app.register("Modes").await;
    // A mixed project, with one mixed and one manual feature: generated as they are
    let mut mixed_feature = crud("Notes", "note");
    mixed_feature["generation_mode"] = json!("mixed");
    let mut manual_feature = crud("Tags", "tag");
    manual_feature["generation_mode"] = json!("manual");
    let mixed = project(
        &app,
        &owner,
        json!({"name": "Mixed", "generation_mode": "mixed", "features": [mixed_feature, manual_feature]}),
    )
    .await;
    app.post(
        &format!("/projects/{mixed}/generations"),
        Some(&owner.access_token),
        json!({}),
    )
    .await
    .expect(202);
    // A manual project whose one feature is ai_assisted by its own mode: refused naming it
    let mut assisted = crud("Drafts", "draft");
    assisted["generation_mode"] = json!("ai_assisted");
    let manual = project(
        &app,
        &owner,
        json!({"name": "Manual", "features": [crud("Things", "thing"), assisted]}),
    )
    .await;
    let refused = app
        .post(
            &format!("/projects/{manual}/generations"),
            Some(&owner.access_token),
            json!({}),
        )
        .await;
    assert_eq!(refused.status.as_u16(), 422, "{}", refused.body);
    let errors = refused.body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{}", refused.body);
    let message = errors[0]["message"].as_str().expect("message");
    assert!(
        message.starts_with("feature `Drafts` is `ai_assisted`")
            && message.contains("apply an AI request first"),
        "{message}"
    );
    assert_eq!(generations_requested(&app).await, 1);
}
