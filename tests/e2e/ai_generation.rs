//! AI-assisted generation end to end: an `ai_assisted` feature with no applied AI content is
//! refused at generation by name; generate-config → apply → a verified generation of the project
//! succeeds with its suite passing; an owner's edit of the applied content keeps it generating.

use std::time::Duration;

use serde_json::{Value, json};
use tests::TestDatabase;
use tests::process::{
    Backforge, finished_generation, position_of, request_verified_generation, worker_venvs,
};

use crate::fake_provider::{FakeModel, KEY, finished, openai_answer, token, valid};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_ai_proposal_generates_a_backend_whose_suite_passes_and_an_owners_edit_keeps_it()
{
    let model = FakeModel::start(vec![openai_answer(&valid(), 1200, 400)]).await;
    let db = TestDatabase::create().await.expect("test database");
    let base_url = format!("http://{}/v1", model.addr);
    let venvs = worker_venvs();
    // Uids of its own for both sandbox pools: RLIMIT_NPROC counts a uid's processes machine-wide.
    let base = 63_000 + (uuid::Uuid::new_v4().as_u128() % 20) as u32 * 8;
    let (uids, verify_uids) = (base.to_string(), (base + 4).to_string());
    let vars = [
        ("BACKFORGE_AI_PROVIDER", "openai"),
        ("BACKFORGE_AI_BASE_URL", base_url.as_str()),
        ("BACKFORGE_AI_MODEL", "test-model"),
        ("BACKFORGE_AI_API_KEY", KEY),
        ("BACKFORGE_AI_ALLOW_PRIVATE_URLS", "true"),
        ("BACKFORGE_VENV_DIR", venvs.as_str()),
        ("BACKFORGE_VERIFY_TIMEOUT_SECS", "600"),
        ("BACKFORGE_SANDBOX_UID_BASE", uids.as_str()),
        ("BACKFORGE_SANDBOX_VERIFY_UID_BASE", verify_uids.as_str()),
    ];
    let app = Backforge::start("serve", &db.url, &vars).await;
    let (owner, _) = app.register("Aria").await;
    let project = app
        .post("/projects", token(&owner), json!({"name": "Clinic"}))
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let generations = format!("/projects/{project}/generations");

    // Given an ai_assisted feature whose content no AI request gave: generation names it (422)
    let notes = app
        .post(
            &format!("/projects/{project}/features"),
            token(&owner),
            json!({"name": "Notes", "feature_type": "crud", "generation_mode": "ai_assisted",
                   "schema_definition": {"entity": "note", "fields": [{"name": "body", "type": "text"}]}}),
        )
        .await
        .expect(201);
    let refused = app
        .post(&generations, token(&owner), json!({}))
        .await
        .expect(422);
    assert!(
        refused.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`Notes`") && m.contains("ai_assisted")),
        "{}",
        refused.body
    );
    let notes_id = notes.body["id"].as_str().expect("id");
    app.delete(
        &format!("/projects/{project}/features/{notes_id}"),
        token(&owner),
    )
    .await
    .expect(204);

    // When the model proposes the features and the owner applies them
    let accepted = app
        .post(
            "/ai/generate-config",
            token(&owner),
            json!({"project_id": project, "prompt": "Customers with a name and an e-mail"}),
        )
        .await
        .expect(202);
    let request = accepted.body["id"].as_str().expect("id").to_owned();
    let done = finished(&app, &request, &owner).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let applied = app
        .post(
            &format!("/ai/requests/{request}/apply"),
            token(&owner),
            json!({}),
        )
        .await
        .expect(200);
    let at = position_of(&applied);
    let features = app
        .get_at(&format!("/projects/{project}/features"), token(&owner), &at)
        .await
        .expect(200);
    let customers = features.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|f| f["name"] == "Customers"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        customers["generation_mode"], "ai_assisted",
        "{}",
        features.body
    );

    // Then a verified generation of the project succeeds, its suite passing
    let generation = request_verified_generation(&app, &project, &owner.access_token).await;
    let verified = finished_generation(
        &app,
        &generation,
        &owner.access_token,
        Duration::from_secs(900),
    )
    .await;
    assert_eq!(verified["status"], "succeeded", "{verified}");
    assert_eq!(verified["tests"]["failed"], 0, "{verified}");
    assert!(
        verified["tests"]["passed"].as_u64().unwrap_or(0) > 0,
        "{verified}"
    );

    // And after the owner edits the applied content, it still generates
    let customers_id = customers["id"].as_str().expect("id");
    app.put(
        &format!("/projects/{project}/features/{customers_id}"),
        token(&owner),
        json!({"name": "Clients"}),
    )
    .await
    .expect(200);
    let again = app
        .post(&generations, token(&owner), json!({}))
        .await
        .expect(202);
    let again = again.body["id"].as_str().expect("id").to_owned();
    let done =
        finished_generation(&app, &again, &owner.access_token, Duration::from_secs(300)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
}
