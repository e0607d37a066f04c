//! `verify` in the sandbox through the real binary: a seven-entity project's generation with
//! `verify: true` succeeds in the sandbox's verify pool (its checks and its suite), and a function
//! test started while that verification runs answers 200, not 503 — the verify pool has slots and
//! uids of its own. And without a working sandbox, a verification fails naming the cause.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tests::TestDatabase;
use tests::process::{
    Backforge, eventually, finished_generation, request_verified_generation, worker_venvs,
};

/// Seven `crud` entities, each but the first referencing one before it, with every common kind of
/// field: the size of project whose `mypy --strict` the verify profile's limits must fit.
fn seven_entities() -> Value {
    let entity = |feature: &str, entity: &str, fields: Value| {
        json!({"name": feature, "feature_type": "crud",
               "schema_definition": {"entity": entity, "fields": fields}})
    };
    json!({"name": "Seven", "features": [
        entity("Customers", "customer", json!([
            {"name": "email", "type": "string", "required": true, "unique": true, "max_length": 200},
            {"name": "name", "type": "string", "required": true, "max_length": 80},
            {"name": "vip", "type": "boolean", "default": false}])),
        entity("Suppliers", "supplier", json!([
            {"name": "name", "type": "string", "required": true, "unique": true, "max_length": 80},
            {"name": "rating", "type": "integer", "min": 0, "max": 5}])),
        entity("Categories", "category", json!([
            {"name": "title", "type": "string", "required": true, "max_length": 60},
            {"name": "parent_id", "type": "reference", "references": "category"}])),
        entity("Products", "product", json!([
            {"name": "sku", "type": "string", "required": true, "unique": true,
             "pattern": "^[A-Z]{3}-[0-9]{4}$"},
            {"name": "price", "type": "decimal", "precision": 12, "scale": 2, "min": 0, "required": true},
            {"name": "tags", "type": "json"},
            {"name": "category_id", "type": "reference", "references": "category", "required": true},
            {"name": "supplier_id", "type": "reference", "references": "supplier"}])),
        entity("Warehouses", "warehouse", json!([
            {"name": "code", "type": "string", "required": true, "unique": true, "max_length": 10},
            {"name": "opened_on", "type": "date"}])),
        entity("Orders", "order", json!([
            {"name": "number", "type": "string", "required": true, "pattern": "^ORD-[0-9]{6}$"},
            {"name": "status", "type": "enum", "values": ["new", "paid", "shipped"], "default": "new"},
            {"name": "placed_at", "type": "datetime"},
            {"name": "customer_id", "type": "reference", "references": "customer", "required": true},
            {"name": "product_id", "type": "reference", "references": "product", "required": true},
            {"name": "quantity", "type": "integer", "min": 1, "max": 1000, "required": true}])),
        entity("Shipments", "shipment", json!([
            {"name": "order_id", "type": "reference", "references": "order", "required": true},
            {"name": "warehouse_id", "type": "reference", "references": "warehouse", "required": true},
            {"name": "weight", "type": "float", "min": 0},
            {"name": "notes", "type": "text", "max_length": 500}]))
    ]})
}

/// Processes on the host owned by `uid`.
fn processes_of(uid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .is_some_and(|u| u == uid.to_string())
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seven_entity_project_verifies_in_the_sandbox_while_a_function_test_answers_200() {
    let db = TestDatabase::create().await.expect("db");
    let venvs = worker_venvs();
    // Uids of this server's own, apart from every other test's: two function slots, then the
    // verify slot.
    let uid_base = 70_000 + (uuid::Uuid::new_v4().as_u128() % 100) as u32 * 8;
    let verify_uid = uid_base + 2;
    let (base, slots) = (uid_base.to_string(), "2".to_owned());
    let app = Backforge::start(
        "serve",
        &db.url,
        &[
            ("BACKFORGE_VENV_DIR", venvs.as_str()),
            ("BACKFORGE_JOB_DEADLINE_SECS", "900"),
            ("BACKFORGE_VERIFY_TIMEOUT_SECS", "600"),
            ("BACKFORGE_SANDBOX_UID_BASE", base.as_str()),
            ("BACKFORGE_SANDBOX_SLOTS", slots.as_str()),
        ],
    )
    .await;
    let (owner, _) = app.register("Vera").await;
    let token = Some(owner.access_token.as_str());
    let project = app
        .post("/projects", token, seven_entities())
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Writing a function compiles it in the sandbox, which answers 503 until its self-test passed.
    let function = eventually(
        "the function is created once the sandbox is up",
        Duration::from_secs(30),
        || async {
            let answer = app
                .send_unchecked(
                    Method::POST,
                    &format!("/projects/{project}/functions"),
                    token,
                    Some(json!({"name": "double", "language": "python",
                                "function_code": "def handler(input):\n    return input * 2\n"})),
                    &[],
                )
                .await;
            (answer.status == 201).then(|| answer.body["id"].as_str().map(str::to_owned))
        },
    )
    .await
    .expect("the function's id");

    let started = Instant::now();
    let generation = request_verified_generation(&app, &project, &owner.access_token).await;
    // The verification is under way once a process of the verify slot's uid runs (the virtualenv
    // is built first when the suite's cache has none yet).
    eventually(
        "the verification runs in the verify slot",
        Duration::from_secs(600),
        || async { (processes_of(verify_uid) > 0).then_some(()) },
    )
    .await;
    let test = app
        .send_unchecked(
            Method::POST,
            &format!("/functions/{function}/test"),
            token,
            Some(json!({"input": 21})),
            &[],
        )
        .await;
    let verifying = processes_of(verify_uid) > 0;
    assert_eq!(
        test.status, 200,
        "a function test during verify: {:?}",
        test.body
    );
    assert_eq!(test.body["status"], "ok", "{:?}", test.body);
    assert_eq!(test.body["output"], 42);
    assert!(
        verifying,
        "the verification was still running when the test answered"
    );

    let done = finished_generation(
        &app,
        &generation,
        &owner.access_token,
        Duration::from_secs(900),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(done["status"], "succeeded", "{done}");
    let ready = app
        .send_unchecked(Method::GET, "//health/ready", None, None, &[])
        .await;
    assert_eq!(
        ready.body["checks"]["verify_sandbox"], "up",
        "{:?}",
        ready.body
    );
    let steps = done["steps"].as_array().expect("steps");
    for step in steps {
        eprintln!(
            "{}: {} in {} ms",
            step["name"], step["status"], step["duration_ms"]
        );
    }
    for name in ["ruff check", "ruff format --check", "mypy", "verify"] {
        let step = steps
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} step in {done}"));
        assert_eq!(step["status"], "succeeded", "{name}: {step}");
    }
    assert!(
        done["tests"]["passed"].as_u64().is_some_and(|n| n > 50),
        "{}",
        done["tests"]
    );
    assert_eq!(done["tests"]["failed"], 0);
    // One delivery: a job still running is not delivered again (a second delivery would verify
    // the same project again, after this one, in the one verify slot).
    assert_eq!(done["attempt"], 1, "{done}");
    eprintln!("the seven-entity generation, verified in the sandbox, took {elapsed:.1?}");
    // The run's PID namespace ends with it; its processes are reaped a moment later.
    let left = Instant::now() + Duration::from_secs(10);
    while processes_of(verify_uid) > 0 && Instant::now() < left {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        processes_of(verify_uid),
        0,
        "a process of the verify slot (uid {verify_uid}) is left: {done}"
    );
}

/// A server whose sandbox cannot run (its self-test fails) records a verified generation as
/// failed, naming `sandbox-unavailable` and the cause, rather than running the suite unsandboxed;
/// `/health/ready` reports the verify pool `down`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_working_sandbox_verify_fails_naming_the_cause() {
    let db = TestDatabase::create().await.expect("db");
    let venvs = worker_venvs();
    let uid_base = (70_000 + (uuid::Uuid::new_v4().as_u128() % 100) as u32 * 8).to_string();
    let app = Backforge::start(
        "serve",
        &db.url,
        &[
            ("BACKFORGE_VENV_DIR", venvs.as_str()),
            ("BACKFORGE_SANDBOX_PYTHON", "/nonexistent/bin/python3"),
            ("BACKFORGE_SANDBOX_UID_BASE", uid_base.as_str()),
        ],
    )
    .await;
    let (owner, _) = app.register("Ned").await;
    let token = Some(owner.access_token.as_str());
    let project = app
        .post("/projects", token, seven_entities())
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let generation = request_verified_generation(&app, &project, &owner.access_token).await;
    let done = finished_generation(
        &app,
        &generation,
        &owner.access_token,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("sandbox-unavailable") && error.contains("/nonexistent"),
        "{done}"
    );
    let ready = app
        .send_unchecked(Method::GET, "//health/ready", None, None, &[])
        .await;
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    assert_eq!(ready.body["status"], "degraded", "{:?}", ready.body);
    assert_eq!(
        ready.body["checks"]["verify_sandbox"], "down",
        "{:?}",
        ready.body
    );
}
