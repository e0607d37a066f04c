//! AI requests against the real binary (`backforge serve`) and a fake OpenAI-format model server
//! started here on 127.0.0.1: a request becomes a job the worker runs, an answer that breaks the
//! domain's rules is repaired with its errors, every attempt is recorded with its exact cost, one
//! that never fits fails after 3 attempts, and apply turns the proposal into `ai_assisted`
//! features once (`source: "ai"`, causation = the request); strangers get 404, viewers 403.

use std::collections::HashMap;

use serde_json::{Value, json};
use tests::process::{Backforge, position_of};
use tests::{TestDatabase, TestUser};

use crate::fake_provider::{FakeModel, KEY, field, finished, invalid, openai_answer, token, valid};

struct Setup {
    app: Backforge,
    model: FakeModel,
    owner: TestUser,
    project: String,
    _db: TestDatabase,
}

/// `backforge serve` whose default model (the `BACKFORGE_AI_*` variables: 2.5 and 10 USD per
/// million tokens) is the fake server answering `answers`, and a project of its owner.
async fn setup(answers: Vec<Value>) -> Setup {
    setup_with(answers, &[]).await
}

/// [`setup`] with more environment variables for the server.
async fn setup_with(answers: Vec<Value>, env: &[(&str, &str)]) -> Setup {
    let model = FakeModel::start(answers).await;
    let db = TestDatabase::create().await.expect("test database");
    let base_url = format!("http://{}/v1", model.addr);
    let mut vars = vec![
        ("BACKFORGE_AI_PROVIDER", "openai"),
        ("BACKFORGE_AI_BASE_URL", base_url.as_str()),
        ("BACKFORGE_AI_MODEL", "test-model"),
        ("BACKFORGE_AI_API_KEY", KEY),
        ("BACKFORGE_AI_INPUT_USD_PER_MTOK", "2.5"),
        ("BACKFORGE_AI_OUTPUT_USD_PER_MTOK", "10"),
        ("BACKFORGE_AI_MAX_OUTPUT_TOKENS", "2000"),
    ];
    vars.extend_from_slice(env);
    let app = Backforge::start("serve", &db.url, &vars).await;
    let (owner, _) = app.register("Ada").await;
    let created = app
        .post("/projects", token(&owner), json!({"name": "Shop"}))
        .await
        .expect(201);
    let project = created.body["id"].as_str().expect("id").to_owned();
    Setup {
        app,
        model,
        owner,
        project,
        _db: db,
    }
}

/// The request once it has finished.
/// Posts `body` to `route` and expects 422 with its first error at `field`.
async fn refused_at(app: &Backforge, user: &TestUser, route: &str, body: Value, field: &str) {
    let refused = app.post(route, token(user), body).await.expect(422);
    assert_eq!(
        refused.body["errors"][0]["field"], field,
        "{}",
        refused.body
    );
}

/// Posts `body` to `route` (202) and waits for the AI request to finish: its id and final state.
async fn requested(app: &Backforge, user: &TestUser, route: &str, body: Value) -> (String, Value) {
    let accepted = app.post(route, token(user), body).await.expect(202);
    let id = accepted.body["id"].as_str().expect("id").to_owned();
    let done = finished(app, &id, user).await;
    (id, done)
}

#[tokio::test]
async fn a_rule_breaking_answer_is_repaired_then_applied_once_as_ai_assisted_features() {
    let s = setup(vec![
        openai_answer(&invalid(), 1000, 500),
        openai_answer(&valid(), 1200, 400),
    ])
    .await;
    let app = &s.app;
    let owner = &s.owner;
    let project = &s.project;

    // Access and input rules first: a stranger 404, a viewer 403, bad input 422.
    let (stranger, _) = app.register("Eve").await;
    let (viewer, _) = app.register("Vic").await;
    app.put(
        &format!("/projects/{project}/members/{}", viewer.id),
        token(owner),
        json!({"role": "viewer"}),
    )
    .await
    .expect(200);
    let ask = json!({"project_id": project, "prompt": "A shop with customers"});
    app.post("/ai/generate-config", token(&stranger), ask.clone())
        .await
        .expect(404);
    app.post("/ai/generate-config", token(&viewer), ask.clone())
        .await
        .expect(403);
    let long = json!({"project_id": project, "prompt": "x".repeat(8001)});
    let refused = app
        .post("/ai/generate-config", token(owner), long)
        .await
        .expect(422);
    assert_eq!(refused.body["errors"][0]["field"], "/prompt");
    let mut unknown = ask.clone();
    unknown["model"] = json!("nope");
    let refused = app
        .post("/ai/generate-config", token(owner), unknown)
        .await
        .expect(422);
    assert_eq!(refused.body["errors"][0]["field"], "/model");
    let mut spec = ask.clone();
    spec["spec_id"] = json!(uuid::Uuid::now_v7());
    let refused = app
        .post("/ai/generate-config", token(owner), spec)
        .await
        .expect(422);
    assert_eq!(refused.body["errors"][0]["message"], "unknown spec");

    // The request: 202, then the worker's two attempts.
    let accepted = app
        .post("/ai/generate-config", token(owner), ask)
        .await
        .expect(202);
    let id = accepted.body["id"].as_str().expect("id").to_owned();
    let done = finished(app, &id, owner).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["kind"], "generate_config");
    assert_eq!(done["model"], "default");
    assert_eq!(done["prompt"]["name"], "builtin.generate_config");
    let attempts = done["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{done}");
    assert_eq!(attempts[0]["n"], 1);
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("/features/0/schema_definition/fields/1/name")),
        "{done}"
    );
    // 1000 × 2.5 / 1e6 + 500 × 10 / 1e6 = 0.0075; 1200 × 2.5 / 1e6 + 400 × 10 / 1e6 = 0.007
    assert_eq!(attempts[0]["cost_usd"], "0.007500");
    assert_eq!(attempts[1]["cost_usd"], "0.007000");
    assert!(attempts[1].get("error").is_none(), "{done}");
    assert_eq!(done["cost_usd"], "0.014500");
    assert_eq!(
        done["usage"],
        json!({"input_tokens": 2200, "output_tokens": 900})
    );
    assert_eq!(done["proposal"]["features"][0]["name"], "Customers");
    assert!(done.get("applied_at").is_none_or(Value::is_null));
    // Nothing of the model's configuration is served.
    let text = done.to_string();
    assert!(!text.contains("127.0.0.1") && !text.contains("BACKFORGE_AI"));

    // What the worker's client sent: the model, the rendered messages and the JSON Schema; the
    // repair carries the first attempt's errors.
    let sent = s.model.requests();
    assert_eq!(sent.len(), 2);
    for (headers, body) in &sent {
        assert_eq!(
            headers.get("authorization").map(String::as_str),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(body["model"], "test-model");
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["role"], "user");
        assert!(
            body["messages"][1]["content"]
                .as_str()
                .is_some_and(|c| c.contains("A shop with customers")),
            "{body}"
        );
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(
            body["response_format"]["json_schema"]["name"],
            "generate_config_proposal"
        );
        assert_eq!(body["response_format"]["json_schema"]["strict"], true);
        assert_eq!(
            body["response_format"]["json_schema"]["schema"],
            domain::ai::proposal::json_schema(domain::ai::proposal::ProposalKind::GenerateConfig)
        );
        assert_eq!(body["max_tokens"], 2000);
    }
    let repair = sent[1].1.to_string();
    assert!(
        repair.contains("/features/0/schema_definition/fields/1/name"),
        "{repair}"
    );
    assert!(!sent[0].1.to_string().contains("fields/1/name"));

    // Reads: the project's list, newest first; a stranger sees nothing.
    let list = app
        .get(&format!("/projects/{project}/ai/requests"), token(owner))
        .await
        .expect(200);
    assert_eq!(list.body["items"][0]["id"], id.as_str());
    app.get(&format!("/ai/requests/{id}"), token(&stranger))
        .await
        .expect(404);

    // Apply: a viewer may not; the owner's apply adds the features, once.
    app.post(
        &format!("/ai/requests/{id}/apply"),
        token(&viewer),
        json!({}),
    )
    .await
    .expect(403);
    // A stale If-Match is a failed precondition.
    let apply = format!("/ai/requests/{id}/apply");
    app.send(
        reqwest::Method::POST,
        &apply,
        token(owner),
        None,
        &[("If-Match", "\"1\"")],
    )
    .await
    .expect(412);
    // Sixteen concurrent applies: exactly one lands, the other fifteen are 409s.
    let answers =
        futures::future::join_all((0..16).map(|_| app.post(&apply, token(owner), json!({})))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    statuses.sort_unstable();
    let mut expected = vec![200];
    expected.extend([409; 15]);
    assert_eq!(
        statuses,
        expected,
        "{:?}",
        answers.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    let applied = answers
        .into_iter()
        .find(|a| a.status.as_u16() == 200)
        .expect("one apply landed");
    assert_eq!(applied.body["project_id"], project.as_str());
    let version = applied.body["version"].as_u64().expect("version");
    app.post(&apply, token(owner), json!({})).await.expect(409);
    let position = position_of(&applied);
    let features = app
        .get_at(
            &format!("/projects/{project}/features"),
            token(owner),
            &position,
        )
        .await
        .expect(200);
    let customers = &features.body["items"][0];
    assert_eq!(customers["name"], "Customers");
    assert_eq!(customers["generation_mode"], "ai_assisted");
    let history = app
        .get_at(
            &format!("/projects/{project}/history"),
            token(owner),
            &position,
        )
        .await
        .expect(200);
    let last = history.body["items"]
        .as_array()
        .and_then(|items| items.last())
        .expect("an event")
        .clone();
    assert_eq!(last["version"].as_u64(), Some(version));
    assert_eq!(last["metadata"]["source"], "ai");
    assert_eq!(last["metadata"]["causation_id"], id.as_str());
    let read = app
        .get_at(&format!("/ai/requests/{id}"), token(owner), &position)
        .await
        .expect(200);
    assert!(read.body["applied_at"].is_string(), "{}", read.body);
}

#[tokio::test]
async fn an_answer_that_never_fits_fails_after_three_attempts_with_all_three_costs() {
    let s = setup(vec![openai_answer(&invalid(), 1000, 500)]).await;
    let app = &s.app;
    let accepted = app
        .post(
            "/ai/generate-config",
            token(&s.owner),
            json!({"project_id": s.project, "prompt": "A shop"}),
        )
        .await
        .expect(202);
    let id = accepted.body["id"].as_str().expect("id").to_owned();
    let done = finished(app, &id, &s.owner).await;
    assert_eq!(done["status"], "failed", "{done}");
    let attempts = done["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3, "{done}");
    for (i, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["n"], i + 1);
        assert_eq!(attempt["cost_usd"], "0.007500");
        assert!(attempt["error"].is_string());
    }
    assert_eq!(done["cost_usd"], "0.022500");
    assert!(
        done["error"]
            .as_str()
            .is_some_and(|e| e.contains("after 3 attempts")),
        "{done}"
    );
    assert_eq!(s.model.requests().len(), 3);
    app.post(
        &format!("/ai/requests/{id}/apply"),
        token(&s.owner),
        json!({}),
    )
    .await
    .expect(409);
}

/// Every request the fake server got asked for `kind`'s proposal in the kind's strict JSON Schema,
/// with the user's words in the user message.
fn assert_asked_for(
    sent: &[(HashMap<String, String>, Value)],
    kind: domain::ai::proposal::ProposalKind,
    words: &str,
) {
    assert!(!sent.is_empty());
    for (_, body) in sent {
        assert_eq!(body["model"], "test-model");
        let format = &body["response_format"];
        assert_eq!(format["type"], "json_schema");
        assert_eq!(format["json_schema"]["name"], kind.schema_name());
        assert_eq!(format["json_schema"]["strict"], true);
        assert_eq!(
            format["json_schema"]["schema"],
            domain::ai::proposal::json_schema(kind)
        );
        assert!(
            body["messages"][1]["content"]
                .as_str()
                .is_some_and(|c| c.contains(words)),
            "{body}"
        );
    }
}

/// The project's last event in its history, read at `position`.
async fn last_event(app: &Backforge, user: &TestUser, project: &str, position: &str) -> Value {
    let history = app
        .get_at(
            &format!("/projects/{project}/history"),
            token(user),
            position,
        )
        .await
        .expect(200);
    history.body["items"]
        .as_array()
        .and_then(|items| items.last())
        .expect("an event")
        .clone()
}

/// An `enhance_config` answer in the strict form: `feature` renamed `Clients`, with a `phone`.
fn enhancement(feature: &str) -> Value {
    json!({
        "feature_id": feature,
        "changes": {
            "name": "Clients",
            "generation_mode": "mixed",
            "configuration": null,
            "schema_definition": {
                "entity": "customer",
                "plural": null,
                "fields": [field("email", "string"), field("phone", "string")],
                "unique": null,
            },
            "is_enabled": null,
        },
        "rationale": "Customers are called clients here, and are reached by phone.",
    })
}

#[tokio::test]
async fn an_enhancement_is_applied_to_its_feature_which_becomes_mixed() {
    let s = setup(Vec::new()).await;
    let app = &s.app;
    let owner = &s.owner;
    let project = &s.project;
    let added = app
        .post(
            &format!("/projects/{project}/features"),
            token(owner),
            json!({"name": "Customers", "feature_type": "crud", "generation_mode": "manual",
                "schema_definition": {"entity": "customer",
                    "fields": [{"name": "email", "type": "string", "required": true}]}}),
        )
        .await
        .expect(201);
    let feature = added.body["id"].as_str().expect("id").to_owned();
    s.model
        .answer(vec![openai_answer(&enhancement(&feature), 800, 300)]);

    // An unknown feature is refused at its pointer (docs/api.md: 422), and nothing is asked.
    refused_at(
        app,
        owner,
        "/ai/enhance-config",
        json!({"project_id": project, "feature_id": uuid::Uuid::now_v7()}),
        "/feature_id",
    )
    .await;

    let (id, done) = requested(
        app,
        owner,
        "/ai/enhance-config",
        json!({"project_id": project, "feature_id": feature,
                "prompt": "Call them clients and keep their phone numbers"}),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["kind"], "enhance_config");
    assert_eq!(done["feature_id"], feature.as_str());
    assert_eq!(done["prompt"]["name"], "builtin.enhance_config");
    assert_eq!(done["attempts"].as_array().map(Vec::len), Some(1), "{done}");
    // 800 × 2.5 / 1e6 + 300 × 10 / 1e6 = 0.005
    assert_eq!(done["cost_usd"], "0.005000");
    // Stored as the PUT body the user would send: no nulls.
    let changes = &done["proposal"]["changes"];
    assert_eq!(done["proposal"]["feature_id"], feature.as_str());
    assert_eq!(changes["name"], "Clients");
    assert_eq!(changes["generation_mode"], "mixed");
    assert!(changes.get("configuration").is_none(), "{done}");
    assert!(done["proposal"]["rationale"].is_string());

    // One call, for the enhancement's schema, with the feature and the user's words.
    let sent = s.model.requests();
    assert_eq!(sent.len(), 1);
    assert_asked_for(
        &sent,
        domain::ai::proposal::ProposalKind::EnhanceConfig,
        "keep their phone numbers",
    );
    assert_eq!(
        sent[0].1["response_format"]["json_schema"]["name"],
        "enhance_config_proposal"
    );
    assert!(
        sent[0].1["messages"][1]["content"]
            .as_str()
            .is_some_and(|c| c.contains(&feature)),
        "the feature to improve is in the prompt"
    );

    // Apply: the feature changes in place and becomes mixed; the change is the AI's.
    let applied = app
        .post(&format!("/ai/requests/{id}/apply"), token(owner), json!({}))
        .await
        .expect(200);
    let version = applied.body["version"].as_u64().expect("version");
    let position = position_of(&applied);
    let one = app
        .get_at(
            &format!("/projects/{project}/features/{feature}"),
            token(owner),
            &position,
        )
        .await
        .expect(200);
    assert_eq!(one.body["name"], "Clients", "{}", one.body);
    assert_eq!(one.body["generation_mode"], "mixed");
    assert_eq!(one.body["ai_request_id"], id.as_str());
    let fields: Vec<&str> = one.body["schema_definition"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(fields, ["email", "phone"], "{}", one.body);
    let all = app
        .get_at(
            &format!("/projects/{project}/features"),
            token(owner),
            &position,
        )
        .await
        .expect(200);
    assert_eq!(
        all.body["items"].as_array().map(Vec::len),
        Some(1),
        "changed, not added"
    );
    let last = last_event(app, owner, project, &position).await;
    assert_eq!(last["version"].as_u64(), Some(version));
    assert_eq!(last["type"], "FeatureUpdated");
    assert_eq!(last["data"]["feature_id"], feature.as_str());
    assert_eq!(last["metadata"]["source"], "ai");
    assert_eq!(last["metadata"]["causation_id"], id.as_str());
}

/// Code that doubles `n`, and a function of the project it is proposed for.
const DOUBLE: &str = "def handler(input):\n    return {\"n\": input[\"n\"] * 2}\n";

fn code(function: &str, function_code: &str) -> Value {
    json!({"function_id": function, "function_code": function_code})
}

#[tokio::test]
async fn generated_code_that_breaks_the_function_rules_is_repaired_then_applied_to_its_function() {
    // The sandbox compiles the function when it is created; its uids are this server's own (as in
    // `functions.rs`).
    let uid_base = (62_000 + (uuid::Uuid::new_v4().as_u128() % 500) * 8).to_string();
    let s = setup_with(
        Vec::new(),
        &[("BACKFORGE_SANDBOX_UID_BASE", uid_base.as_str())],
    )
    .await;
    let app = &s.app;
    let owner = &s.owner;
    let project = &s.project;
    crate::functions::sandbox_ready(app, owner).await;
    let created = app
        .post(
            &format!("/projects/{project}/functions"),
            token(owner),
            json!({"name": "double", "description": "Doubles n.", "language": "python",
                "function_code": "def handler(input):\n    return input\n",
                "input_schema": {"type": "object", "properties": {"n": {"type": "number"}},
                    "required": ["n"]}}),
        )
        .await
        .expect(201);
    let function = created.body["id"].as_str().expect("id").to_owned();
    // The first answer's code is blank: no `def handler(input)`, which the domain refuses.
    // (The third answer is for the last request below: code that does not compile.)
    s.model.answer(vec![
        openai_answer(&code(&function, "   \n"), 600, 200),
        openai_answer(&code(&function, DOUBLE), 700, 250),
        openai_answer(
            &code(&function, "def handler(input):\n    return {\n"),
            500,
            100,
        ),
    ]);

    refused_at(
        app,
        owner,
        "/ai/generate-code",
        json!({"project_id": project, "function_id": uuid::Uuid::now_v7()}),
        "/function_id",
    )
    .await;

    let (id, done) = requested(
        app,
        owner,
        "/ai/generate-code",
        json!({"project_id": project, "function_id": function,
                "prompt": "Double the number n"}),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["kind"], "generate_code");
    assert_eq!(done["function_id"], function.as_str());
    assert_eq!(done["prompt"]["name"], "builtin.generate_code");
    let attempts = done["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{done}");
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("/function_code")),
        "{done}"
    );
    assert!(attempts[1].get("error").is_none(), "{done}");
    // 600 × 2.5 / 1e6 + 200 × 10 / 1e6 = 0.0035; 700 × 2.5 / 1e6 + 250 × 10 / 1e6 = 0.00425
    assert_eq!(attempts[0]["cost_usd"], "0.003500");
    assert_eq!(attempts[1]["cost_usd"], "0.004250");
    assert_eq!(done["cost_usd"], "0.007750");
    assert_eq!(done["proposal"], code(&function, DOUBLE));

    // Two calls for the code's schema; the repair carries the first answer's error.
    let sent = s.model.requests();
    assert_eq!(sent.len(), 2);
    assert_asked_for(
        &sent,
        domain::ai::proposal::ProposalKind::GenerateCode,
        "Double the number n",
    );
    assert_eq!(
        sent[0].1["response_format"]["json_schema"]["name"],
        "generate_code_proposal"
    );
    assert!(!sent[0].1.to_string().contains("/function_code"));
    assert!(sent[1].1.to_string().contains("/function_code"));

    // Apply: the function's code is the proposal's, and it runs.
    let applied = app
        .post(&format!("/ai/requests/{id}/apply"), token(owner), json!({}))
        .await
        .expect(200);
    let version = applied.body["version"].as_u64().expect("version");
    let position = position_of(&applied);
    let one = app
        .get_at(
            &format!("/projects/{project}/functions/{function}"),
            token(owner),
            &position,
        )
        .await
        .expect(200);
    assert_eq!(one.body["function_code"], DOUBLE, "{}", one.body);
    assert_eq!(one.body["name"], "double");
    assert_eq!(one.body["ai_request_id"], id.as_str());
    let last = last_event(app, owner, project, &position).await;
    assert_eq!(last["version"].as_u64(), Some(version));
    assert_eq!(last["type"], "FunctionUpdated");
    assert_eq!(last["metadata"]["source"], "ai");
    assert_eq!(last["metadata"]["causation_id"], id.as_str());
    let ran = app
        .post(
            &format!("/functions/{function}/test"),
            token(owner),
            json!({"input": {"n": 21}}),
        )
        .await
        .expect(200);
    assert_eq!(ran.body["status"], "ok", "{}", ran.body);
    assert_eq!(ran.body["output"], json!({"n": 42}));

    // Code that does not compile passes the domain's rules, but the worker compiles it in the
    // sandbox as a function write does: each attempt names the syntax error at `/function_code`,
    // the request fails after 3, and the function keeps its code.
    let broken = app
        .post(
            "/ai/generate-code",
            token(owner),
            json!({"project_id": project, "function_id": function}),
        )
        .await
        .expect(202);
    let broken = broken.body["id"].as_str().expect("id").to_owned();
    let done = finished(app, &broken, owner).await;
    assert_eq!(done["status"], "failed", "{done}");
    let attempts = done["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3, "{done}");
    for attempt in attempts {
        assert!(
            attempt["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("/function_code: line 2")),
            "{done}"
        );
    }
    app.post(
        &format!("/ai/requests/{broken}/apply"),
        token(owner),
        json!({}),
    )
    .await
    .expect(409);
    let still = app
        .get(
            &format!("/projects/{project}/functions/{function}"),
            token(owner),
        )
        .await
        .expect(200);
    assert_eq!(still.body["function_code"], DOUBLE, "{}", still.body);
    assert_eq!(still.body["ai_request_id"], id.as_str());
}
