//! The shared case table of record validation (`domain::crud_schema::RECORD_CASES`) against a
//! generated backend of the table's entities: every body gets the domain's verdict — accepted, or
//! 422 at exactly the table's pointers.

use std::collections::BTreeSet;
use std::fs;

use domain::crud_schema::RECORD_CASES;
use domain::generation::Target;
use reqwest::{Client, Method};
use serde_json::Value;

use super::{crud, project_of, serve, unpack_artifact, wait_until_healthy};

/// One case: a create or a patch body, and the pointers it is refused at (`None`: accepted).
pub struct Case {
    pub what: String,
    pub entity: String,
    pub patch: bool,
    pub body: Value,
    pub errors: Option<BTreeSet<String>>,
}

/// The table: its entities' schemas with a valid base body each, and its cases.
pub fn table() -> (Vec<(Value, Value)>, Vec<Case>) {
    let table: Value = serde_json::from_str(RECORD_CASES).expect("the case table is JSON");
    let entities = table["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .map(|e| (e["schema"].clone(), e["base"].clone()))
        .collect();
    let cases = table["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            what: c["what"].as_str().unwrap_or_default().to_owned(),
            entity: c["entity"].as_str().unwrap_or_default().to_owned(),
            patch: c["write"] == "patch",
            body: c["body"].clone(),
            errors: serde_json::from_value(c["errors"].clone()).ok(),
        })
        .collect();
    (entities, cases)
}

/// The pointers of a 422 problem's `errors`.
pub fn pointers(problem: &Value) -> BTreeSet<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn send(client: &Client, method: Method, url: &str, body: &Value) -> (u16, Value) {
    let response = client
        .request(method.clone(), url)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_generated_backend_gives_every_body_of_the_shared_case_table_the_domains_verdict() {
    let (entities, cases) = table();
    let features = entities
        .iter()
        .enumerate()
        .map(|(i, (schema, _))| {
            let name = schema["entity"].as_str().expect("an entity name");
            crud(100 + i as u128, &format!("{name} records"), schema.clone())
        })
        .collect();
    let project = project_of(features);
    let artifact = generator::generate(&project, 1, Target::PythonFastapi)
        .expect("the case table's entities generate");
    let dir = unpack_artifact(&artifact, "record-cases");
    let mut server = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || serve(&dir)
    })
    .await
    .expect("uvicorn started");
    let client = Client::new();
    wait_until_healthy(&mut server, &client).await;

    let plural = |entity: &str| format!("{}/api/{entity}s", server.base);
    let mut wrong = Vec::new();
    for case in &cases {
        let base = &entities
            .iter()
            .find(|(s, _)| s["entity"] == case.entity.as_str())
            .expect("the case's entity")
            .1;
        let (status, answer) = if case.patch {
            let (status, created) = send(&client, Method::POST, &plural(&case.entity), base).await;
            assert_eq!(status, 201, "the base record of {}: {created}", case.entity);
            let id = created["id"].as_str().expect("an id").to_owned();
            let url = format!("{}/{id}", plural(&case.entity));
            send(&client, Method::PATCH, &url, &case.body).await
        } else {
            send(&client, Method::POST, &plural(&case.entity), &case.body).await
        };
        let verdict = match status {
            200 | 201 => None,
            422 => Some(pointers(&answer)),
            other => {
                wrong.push(format!("{}: answered {other}: {answer}", case.what));
                continue;
            }
        };
        if verdict != case.errors {
            wrong.push(format!(
                "{}: want {:?}, got {verdict:?} ({answer})",
                case.what, case.errors
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases disagree:\n{}\n\nuvicorn log:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n"),
        server.log()
    );
    drop(server);
    let _ = fs::remove_dir_all(&dir);
}
