//! The AI catalog against the real binary (`backforge serve`): admins register, change and retire
//! models and write versioned prompt templates, everyone lists them (models without URLs or key
//! variables), bad input is a 422 at its pointer, the resolver every AI request uses answers 503
//! `ai-not-configured` until a model exists, and the `BACKFORGE_AI_*` variables record a default
//! model once.

use std::time::Duration;

use serde_json::{Value, json};
use tests::TestDatabase;
use tests::TestUser;
use tests::process::{Backforge, eventually, position_of};

use command_api::ai_catalog::{effective_prompt, resolve_model};
use domain::ai::prompt::Purpose;
use runtime::ProblemType;

/// `backforge serve` on a database of its own, with a pool on that database. The process goes
/// before the database.
struct Serve {
    app: Backforge,
    pool: deadpool_postgres::Pool,
    db: TestDatabase,
}

async fn serve(extra_env: &[(&str, &str)]) -> Serve {
    let db = TestDatabase::create().await.expect("test database");
    let app = Backforge::start("serve", &db.url, extra_env).await;
    let pool = event_store::setup::pool(&db.url, 2).expect("pool");
    Serve { app, pool, db }
}

/// Makes `user` a global admin the way `backforge admin grant` ends up: the credentials row (the
/// role is read on every request, so the current token carries it at once).
async fn make_admin(pool: &deadpool_postgres::Pool, user: &TestUser) {
    let client = pool.get().await.expect("client");
    let id: uuid::Uuid = user.id.parse().expect("uuid");
    let changed = client
        .execute(
            "UPDATE credentials SET role = 'admin' WHERE user_id = $1",
            &[&id],
        )
        .await
        .expect("update");
    assert_eq!(changed, 1);
}

fn token(user: &TestUser) -> Option<&str> {
    Some(user.access_token.as_str())
}

fn model_body(name: &str) -> Value {
    json!({
        "name": name,
        "provider": "openai",
        "base_url": "https://models.example.com/v1",
        "model": "gpt-4o-mini",
        "api_key_env": "BACKFORGE_AI_KEY_OPENAI",
        "input_usd_per_mtok": "0.000150",
        "output_usd_per_mtok": 0.6,
        "max_output_tokens": 4096,
    })
}

/// The `errors[].field` pointers of a problem document.
fn pointers(answer: &tests::Answer) -> Vec<String> {
    answer.body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn by_name<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list["items"]
        .as_array()
        .and_then(|items| items.iter().find(|m| m["name"] == name))
}

#[tokio::test]
async fn admins_manage_models_and_everyone_lists_them_without_urls_or_key_variables() {
    let s = serve(&[]).await;
    let app = &s.app;
    let (admin, _) = app.register("Ada").await;
    let (member, _) = app.register("Mel").await;
    make_admin(&s.pool, &admin).await;

    // A member may not write the catalog.
    app.post("/admin/ai/models", token(&member), model_body("mini"))
        .await
        .expect(403);

    // An admin registers a model; prices sent as a string and as a number are kept exactly.
    let mut body = model_body("mini");
    body["is_default"] = json!(true);
    let created = app
        .post("/admin/ai/models", token(&admin), body)
        .await
        .expect(201);
    assert_eq!(created.body["name"], "mini");
    assert_eq!(created.body["base_url"], "https://models.example.com/v1");
    assert_eq!(created.body["input_usd_per_mtok"], "0.00015");
    assert_eq!(created.body["output_usd_per_mtok"], "0.6");
    assert_eq!(created.header("ETag").as_deref(), Some("\"1\""));
    let position = position_of(&created);

    // Everyone signed in lists it: no URL, no key variable, prices as decimal strings.
    let list = app
        .get_at("/ai/models", token(&member), &position)
        .await
        .expect(200);
    let mini = by_name(&list.body, "mini").expect("listed");
    assert_eq!(
        *mini,
        json!({"name": "mini", "provider": "openai", "model": "gpt-4o-mini",
               "input_usd_per_mtok": "0.00015", "output_usd_per_mtok": "0.6",
               "max_output_tokens": 4096, "is_default": true})
    );
    let text = list.body.to_string();
    assert!(!text.contains("models.example.com") && !text.contains("BACKFORGE_AI_KEY"));

    // A second default takes the default from the first.
    let mut body = model_body("big");
    body["is_default"] = json!(true);
    body["input_usd_per_mtok"] = json!(2.5);
    let big = app
        .post("/admin/ai/models", token(&admin), body)
        .await
        .expect(201);
    let list = app
        .get_at("/ai/models", token(&member), &position_of(&big))
        .await
        .expect(200);
    assert_eq!(by_name(&list.body, "mini").unwrap()["is_default"], false);
    assert_eq!(by_name(&list.body, "big").unwrap()["is_default"], true);
    assert_eq!(
        by_name(&list.body, "big").unwrap()["input_usd_per_mtok"],
        "2.5"
    );

    // A partial update changes only what it names; `null` clears an optional member.
    let updated = app
        .put(
            "/admin/ai/models/mini",
            token(&admin),
            json!({"model": "gpt-4o", "api_key_env": null, "output_usd_per_mtok": "1.000001"}),
        )
        .await
        .expect(200);
    assert_eq!(updated.body["model"], "gpt-4o");
    assert_eq!(updated.body["output_usd_per_mtok"], "1.000001");
    assert_eq!(updated.body["input_usd_per_mtok"], "0.00015");
    assert!(updated.body.get("api_key_env").is_none());
    assert_eq!(updated.header("ETag").as_deref(), Some("\"2\""));

    // Bad input: a 422 at the member's pointer, never a 5xx.
    let bad = app
        .put(
            "/admin/ai/models/mini",
            token(&admin),
            json!({"input_usd_per_mtok": "0.0000001"}),
        )
        .await
        .expect(422);
    assert_eq!(pointers(&bad), ["/input_usd_per_mtok"]);
    let mut body = model_body("Not A Slug");
    let bad = app
        .post("/admin/ai/models", token(&admin), body.clone())
        .await
        .expect(422);
    assert_eq!(pointers(&bad), ["/name"]);
    body["name"] = json!("keyless");
    body["api_key_env"] = json!("HOME");
    let bad = app
        .post("/admin/ai/models", token(&admin), body.clone())
        .await
        .expect(422);
    assert_eq!(pointers(&bad), ["/api_key_env"]);
    body["api_key_env"] = json!("BACKFORGE_AI_KEY_X");
    body["base_url"] = json!(format!("https://{}.example", "a".repeat(3000)));
    let bad = app
        .post("/admin/ai/models", token(&admin), body)
        .await
        .expect(422);
    assert_eq!(pointers(&bad), ["/base_url"]);
    let bad = app
        .post("/admin/ai/models", token(&admin), json!({"name": "x"}))
        .await
        .expect(422);
    assert!(!pointers(&bad).is_empty(), "{}", bad.body);

    // A name is registered once.
    let taken = app
        .post("/admin/ai/models", token(&admin), model_body("mini"))
        .await
        .expect(409);
    assert!(
        taken.body["type"]
            .as_str()
            .unwrap()
            .ends_with("/name-taken")
    );

    // Members may not change or retire a model; unknown names are 404.
    app.put(
        "/admin/ai/models/mini",
        token(&member),
        json!({"model": "x"}),
    )
    .await
    .expect(403);
    app.delete("/admin/ai/models/mini", token(&member))
        .await
        .expect(403);
    app.put(
        "/admin/ai/models/nope",
        token(&admin),
        json!({"model": "x"}),
    )
    .await
    .expect(404);
    app.delete("/admin/ai/models/nope", token(&admin))
        .await
        .expect(404);
    app.delete("/admin/ai/models/Not%20A%20Slug", token(&admin))
        .await
        .expect(404);

    // Retiring: gone from the list, cannot be changed, its name stays taken; twice is fine.
    let retired = app
        .delete("/admin/ai/models/big", token(&admin))
        .await
        .expect(204);
    app.delete("/admin/ai/models/big", token(&admin))
        .await
        .expect(204);
    let list = app
        .get_at("/ai/models", token(&member), &position_of(&retired))
        .await
        .expect(200);
    assert!(by_name(&list.body, "big").is_none());
    app.put("/admin/ai/models/big", token(&admin), json!({"model": "x"}))
        .await
        .expect(409);
    app.post("/admin/ai/models", token(&admin), model_body("big"))
        .await
        .expect(409);

    // The events carry the configuration, with prices as exact decimal strings and no key.
    let client = s.pool.get().await.expect("client");
    let row = client
        .query_one(
            "SELECT data::text FROM events WHERE stream_id = 'aimodel-mini' AND stream_version = 1",
            &[],
        )
        .await
        .expect("event");
    let data: Value = serde_json::from_str(row.get(0)).expect("json");
    assert_eq!(data["config"]["input_usd_per_mtok"], "0.00015");
    assert_eq!(data["config"]["api_key_env"], "BACKFORGE_AI_KEY_OPENAI");
}

#[tokio::test]
async fn prompt_templates_are_versioned_checked_when_written_and_readable_at_any_version() {
    let s = serve(&[]).await;
    let app = &s.app;
    let (admin, _) = app.register("Ada").await;
    let (member, _) = app.register("Mel").await;
    make_admin(&s.pool, &admin).await;
    let prompt = json!({
        "name": "shop-config",
        "purpose": "generate_config",
        "system": "You design backends.\n{{ schema_language }}",
        "template": "Project: {{ project | tojson }}\nAsk: {{ prompt | tojson }}",
    });

    app.post("/admin/ai/prompts", token(&member), prompt.clone())
        .await
        .expect(403);
    let created = app
        .post("/admin/ai/prompts", token(&admin), prompt.clone())
        .await
        .expect(201);
    assert_eq!(created.body["version"], 1);
    assert_eq!(created.body["purpose"], "generate_config");
    app.post("/admin/ai/prompts", token(&admin), prompt.clone())
        .await
        .expect(409);

    let revised = app
        .put(
            "/admin/ai/prompts/shop-config",
            token(&admin),
            json!({"system": "Be brief.", "template": "{{ prompt }} for {{ project.name }}"}),
        )
        .await
        .expect(200);
    assert_eq!(revised.body["version"], 2);
    let position = position_of(&revised);

    // Any version reads back; the latest by default, and in the list.
    let v1 = app
        .get_at(
            "/ai/prompts/shop-config?version=1",
            token(&member),
            &position,
        )
        .await
        .expect(200);
    assert_eq!(v1.body["template"], prompt["template"]);
    assert_eq!(v1.body["purpose"], "generate_config");
    let latest = app
        .get_at("/ai/prompts/shop-config", token(&member), &position)
        .await
        .expect(200);
    assert_eq!(latest.body["version"], 2);
    assert_eq!(latest.body["system"], "Be brief.");
    let list = app
        .get_at("/ai/prompts", token(&member), &position)
        .await
        .expect(200);
    assert_eq!(by_name(&list.body, "shop-config").unwrap()["version"], 2);
    app.get_at(
        "/ai/prompts/shop-config?version=9",
        token(&member),
        &position,
    )
    .await
    .expect(404);
    app.get_at("/ai/prompts/nope", token(&member), &position)
        .await
        .expect(404);

    // The checks of a template, each a 422 at its pointer.
    let mut bad = prompt.clone();
    bad["name"] = json!("bad");
    bad["template"] = json!("{% for f in project.features %}never closed");
    let answer = app
        .post("/admin/ai/prompts", token(&admin), bad.clone())
        .await
        .expect(422);
    assert_eq!(pointers(&answer), ["/template"]);
    bad["template"] = json!("{{ prompt }} {{ env }}");
    let answer = app
        .post("/admin/ai/prompts", token(&admin), bad.clone())
        .await
        .expect(422);
    assert_eq!(pointers(&answer), ["/template"]);
    assert!(answer.body.to_string().contains("`env`"), "{}", answer.body);
    bad["template"] = json!("{{ prompt }}");
    bad["system"] = json!("x".repeat(8001));
    let answer = app
        .post("/admin/ai/prompts", token(&admin), bad.clone())
        .await
        .expect(422);
    assert_eq!(pointers(&answer), ["/system"]);
    bad["system"] = json!("x".repeat(8000));
    app.post("/admin/ai/prompts", token(&admin), bad)
        .await
        .expect(201);
    let answer = app
        .put(
            "/admin/ai/prompts/shop-config",
            token(&admin),
            json!({"purpose": "generate_code", "system": "", "template": "{{ prompt }}"}),
        )
        .await
        .expect(422);
    assert_eq!(pointers(&answer), ["/purpose"]);
    app.put(
        "/admin/ai/prompts/nope",
        token(&admin),
        json!({"system": "", "template": "{{ prompt }}"}),
    )
    .await
    .expect(404);
    app.put(
        "/admin/ai/prompts/shop-config",
        token(&member),
        json!({"system": "", "template": "{{ prompt }}"}),
    )
    .await
    .expect(403);

    // The effective prompt of a purpose: the admin's newest, else the built-in.
    let client = s.pool.get().await.expect("client");
    let config = effective_prompt(&client, Purpose::GenerateConfig)
        .await
        .expect("prompt");
    assert_eq!((config.name.as_str(), config.version), ("bad", 1));
    let code = effective_prompt(&client, Purpose::GenerateCode)
        .await
        .expect("prompt");
    assert_eq!(
        (code.name.as_str(), code.version),
        ("builtin.generate_code", 1)
    );
}

#[tokio::test]
async fn the_resolver_answers_ai_not_configured_until_a_model_exists_then_the_default() {
    let s = serve(&[]).await;
    let app = &s.app;
    let client = s.pool.get().await.expect("client");

    // No model at all: 503 ai-not-configured naming the four variables.
    let error = resolve_model(&client, None).await.unwrap_err();
    assert_eq!(error.kind(), ProblemType::AiNotConfigured);
    let problem = error.problem();
    assert_eq!(problem.status, 503);
    assert_eq!(
        problem.problem_type,
        "https://backforge.dev/problems/ai-not-configured"
    );
    for variable in [
        "BACKFORGE_AI_PROVIDER",
        "BACKFORGE_AI_BASE_URL",
        "BACKFORGE_AI_MODEL",
        "BACKFORGE_AI_API_KEY",
    ] {
        assert!(problem.detail.contains(variable), "{}", problem.detail);
    }

    let (admin, _) = app.register("Ada").await;
    make_admin(&s.pool, &admin).await;
    app.post("/admin/ai/models", token(&admin), model_body("plain"))
        .await
        .expect(201);
    // A model that is not the default serves requests that name it, not those that do not.
    let named = resolve_model(&client, Some("plain")).await.expect("named");
    assert_eq!(named.config.model, "gpt-4o-mini");
    assert_eq!(named.config.input_usd_per_mtok.to_string(), "0.00015");
    let error = resolve_model(&client, None).await.unwrap_err();
    assert_eq!(error.kind(), ProblemType::AiNotConfigured);

    let mut body = model_body("main");
    body["is_default"] = json!(true);
    app.post("/admin/ai/models", token(&admin), body)
        .await
        .expect(201);
    let chosen = resolve_model(&client, None).await.expect("default");
    assert_eq!(chosen.name.as_str(), "main");

    // Unknown or retired names are the request's fault: 422 at /model.
    for name in ["nope", "Not A Name"] {
        let error = resolve_model(&client, Some(name)).await.unwrap_err();
        assert_eq!(error.problem().status, 422);
        assert_eq!(error.problem().errors.unwrap()[0].field, "/model");
    }
    app.delete("/admin/ai/models/plain", token(&admin))
        .await
        .expect(204);
    let error = resolve_model(&client, Some("plain")).await.unwrap_err();
    assert!(error.problem().detail.contains("retired"));
    // Retiring the default leaves none.
    app.delete("/admin/ai/models/main", token(&admin))
        .await
        .expect(204);
    let error = resolve_model(&client, None).await.unwrap_err();
    assert_eq!(error.kind(), ProblemType::AiNotConfigured);
    drop(client);
}

#[tokio::test]
async fn the_ai_variables_record_a_default_model_once_and_never_the_key() {
    const KEY: &str = "sk-bootstrap-key-never-logged-0123";
    let env = [
        ("BACKFORGE_AI_PROVIDER", "openai"),
        ("BACKFORGE_AI_BASE_URL", "http://127.0.0.1:11434/v1"),
        ("BACKFORGE_AI_MODEL", "llama3.2"),
        ("BACKFORGE_AI_API_KEY", KEY),
        ("BACKFORGE_AI_OUTPUT_USD_PER_MTOK", "0.000150"),
    ];
    let mut s = serve(&env).await;
    let (member, _) = s.app.register("Mel").await;
    let list = eventually(
        "the bootstrap model is listed",
        Duration::from_secs(10),
        || {
            let (app, member) = (&s.app, &member);
            async move {
                let list = app.get("/ai/models", token(member)).await.expect(200);
                by_name(&list.body, "default").is_some().then_some(list)
            }
        },
    )
    .await;
    assert_eq!(
        *by_name(&list.body, "default").unwrap(),
        json!({"name": "default", "provider": "openai", "model": "llama3.2",
               "input_usd_per_mtok": "0", "output_usd_per_mtok": "0.00015",
               "max_output_tokens": 4096, "is_default": true})
    );
    let client = s.pool.get().await.expect("client");
    let resolved = resolve_model(&client, None).await.expect("default");
    assert_eq!(
        resolved.config.api_key_env.as_deref(),
        Some("BACKFORGE_AI_API_KEY")
    );

    // A restart with the same variables appends nothing; changed ones update the model.
    s.app.terminate();
    s.app.wait_exit(Duration::from_secs(15)).await;
    let first_log = s.app.log();
    let again = Backforge::start("serve", &s.db.url, &env).await;
    let events = |client: deadpool_postgres::Object| async move {
        client
            .query_one(
                "SELECT count(*) FROM events WHERE stream_id = 'aimodel-default'",
                &[],
            )
            .await
            .expect("count")
            .get::<_, i64>(0)
    };
    assert_eq!(events(s.pool.get().await.expect("client")).await, 1);
    drop(again);
    let mut changed = env.to_vec();
    changed.retain(|(k, _)| *k != "BACKFORGE_AI_MODEL");
    changed.push(("BACKFORGE_AI_MODEL", "qwen2.5"));
    let third = Backforge::start("serve", &s.db.url, &changed).await;
    assert_eq!(events(s.pool.get().await.expect("client")).await, 2);
    let resolved = resolve_model(&client, None).await.expect("default");
    assert_eq!(resolved.config.model, "qwen2.5");

    // The key's value is nowhere: not in an event, not in a log.
    let stored: Vec<String> = client
        .query("SELECT data::text || metadata::text FROM events", &[])
        .await
        .expect("events")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(stored.iter().all(|e| !e.contains(KEY)));
    for log in [first_log, third.log()] {
        assert!(!log.contains(KEY), "the key was logged");
    }
    drop(third);
    drop(client);
}
