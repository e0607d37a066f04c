//! The static checks of a verified generation, through the real processes: each e2e project
//! (the shop and the awkward schema) is created through the API and generated with
//! `verify: true`; the generation's steps report `ruff check`, `ruff format --check` and `mypy`
//! (strict, from the shipped configuration), each succeeded with 0 findings.

use tests::TestDatabase;
use tests::process::{Backforge, finished_generation, request_verified_generation, worker_venvs};

use super::*;

/// `project`'s features as the API's create-project body takes them.
fn create_body(project: &Project) -> Value {
    let features: Vec<Value> = project
        .features
        .iter()
        .map(|feature| {
            let stored = serde_json::to_value(feature).expect("a feature serialises");
            let mut body = json!({
                "name": stored["name"],
                "feature_type": stored["feature_type"],
                "is_enabled": stored["is_enabled"],
            });
            if !stored["schema_definition"].is_null() {
                body["schema_definition"] = stored["schema_definition"].clone();
            }
            if stored["configuration"]
                .as_object()
                .is_some_and(|c| !c.is_empty())
            {
                body["configuration"] = stored["configuration"].clone();
            }
            body
        })
        .collect();
    json!({"name": project.name, "features": features})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_generation_of_each_e2e_project_has_no_lint_format_or_type_finding() {
    let db = TestDatabase::create().await.expect("db");
    let venvs = worker_venvs();
    let worker_env = [
        ("BACKFORGE_VENV_DIR", venvs.as_str()),
        ("BACKFORGE_VERIFY_TIMEOUT_SECS", "600"),
    ];
    let writes = Backforge::start("command-api", &db.url, &[]).await;
    let reads = Backforge::start("query-api", &db.url, &[]).await;
    let _projector = Backforge::start("projector", &db.url, &[]).await;
    let _worker = Backforge::start("worker", &db.url, &worker_env).await;
    let (owner, _) = writes.register("Rue").await;
    let token = owner.access_token.as_str();
    for (label, project) in [("shop", shop()), ("awkward", awkward())] {
        let created = writes
            .post("/projects", Some(token), create_body(&project))
            .await
            .expect(201);
        let id = created.body["id"].as_str().expect("id").to_owned();
        let generation = request_verified_generation(&writes, &id, token).await;
        let done = finished_generation(&reads, &generation, token, Duration::from_secs(900)).await;
        assert_eq!(done["status"], "succeeded", "{label}: {done}");
        let steps = done["steps"].as_array().expect("steps");
        for name in ["ruff check", "ruff format --check", "mypy"] {
            let step = steps
                .iter()
                .find(|s| s["name"] == name)
                .unwrap_or_else(|| panic!("{label}: no {name} step in {done}"));
            let log = step["log"].as_str().unwrap_or_default();
            eprintln!(
                "{label}: {name}: {} in {} ms",
                log.lines().next().unwrap_or_default(),
                step["duration_ms"]
            );
            assert_eq!(step["status"], "succeeded", "{label}: {name}: {log}");
            assert!(log.starts_with("0 findings"), "{label}: {name}: {log}");
        }
    }
}
