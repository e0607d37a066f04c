//! Custom functions in verified generations through the real binary: their examples as tests.
//!
//! Two projects, each with an entity and two functions written through `POST
//! /projects/{id}/functions` (`total` with schemas and examples, `shout` on `PUT /tools/shout`
//! without), are generated with `verify: true` at once. In the first the examples are right: the
//! generation succeeds, its suite having run `test_total_example_1` and `_2`. In the second one
//! example's output is wrong (still valid against the output schema, so the platform stores it):
//! the generation fails with exactly that test reported failing, by name.

use std::time::Duration;

use serde_json::{Value, json};
use tests::TestDatabase;
use tests::process::{Backforge, finished_generation, request_verified_generation, worker_venvs};

use crate::functions::sandbox_ready;

const TOTAL: &str = "def handler(input):\n    total = sum(line[\"qty\"] * line[\"price\"] for line in input[\"lines\"])\n    return {\"total\": total, \"currency\": input.get(\"currency\", \"EUR\")}\n";

const SHOUT: &str = "def handler(input):\n    return str(input).upper()\n";

fn total(second_output: Value) -> Value {
    json!({
        "name": "total",
        "description": "Sums an order's lines.",
        "language": "python",
        "function_code": TOTAL,
        "input_schema": {
            "type": "object",
            "required": ["lines"],
            "properties": {
                "lines": {"type": "array", "items": {
                    "type": "object",
                    "required": ["qty", "price"],
                    "properties": {"qty": {"type": "integer", "minimum": 1}, "price": {"type": "number"}}
                }},
                "currency": {"type": "string", "minLength": 3, "maxLength": 3}
            }
        },
        "output_schema": {
            "type": "object",
            "required": ["total", "currency"],
            "properties": {"total": {"type": "number"}, "currency": {"type": "string"}}
        },
        "examples": [
            {"input": {"lines": []}, "output": {"total": 0, "currency": "EUR"}},
            {"input": {"lines": [{"qty": 2, "price": 1.5}, {"qty": 1, "price": 4}], "currency": "USD"},
             "output": second_output}
        ]
    })
}

fn shout() -> Value {
    json!({
        "name": "shout",
        "language": "python",
        "function_code": SHOUT,
        "endpoint_path": "/tools/shout",
        "http_method": "PUT"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_generation_tests_every_function_example_and_fails_on_a_wrong_one() {
    let db = TestDatabase::create().await.expect("db");
    let venvs = worker_venvs();
    // Uids of its own for both sandbox pools: RLIMIT_NPROC counts a uid's processes machine-wide.
    let base = 63_200 + (uuid::Uuid::new_v4().as_u128() % 100) as u32 * 8;
    let (uids, verify_uids) = (base.to_string(), (base + 4).to_string());
    let env = [
        ("BACKFORGE_VENV_DIR", venvs.as_str()),
        ("BACKFORGE_VERIFY_TIMEOUT_SECS", "600"),
        ("BACKFORGE_SANDBOX_UID_BASE", uids.as_str()),
        ("BACKFORGE_SANDBOX_VERIFY_UID_BASE", verify_uids.as_str()),
    ];
    let app = Backforge::start("serve", &db.url, &env).await;
    let (owner, _) = app.register("Fen").await;
    let token = owner.access_token.as_str();
    sandbox_ready(&app, &owner).await;

    let right = json!({"total": 7.0, "currency": "USD"});
    let wrong = json!({"total": 8, "currency": "USD"});
    let mut generations = Vec::new();
    for (label, second_output) in [("right", right), ("wrong", wrong)] {
        let project = app
            .post(
                "/projects",
                Some(token),
                json!({"name": format!("Functions {label}"), "features": [
                    {"name": "Notes", "feature_type": "crud", "schema_definition": {
                        "entity": "note",
                        "fields": [{"name": "body", "type": "text", "required": true}]
                    }}
                ]}),
            )
            .await
            .expect(201)
            .body["id"]
            .as_str()
            .expect("id")
            .to_owned();
        for function in [total(second_output), shout()] {
            app.post(
                &format!("/projects/{project}/functions"),
                Some(token),
                function,
            )
            .await
            .expect(201);
        }
        let generation = request_verified_generation(&app, &project, token).await;
        generations.push((label, generation));
    }

    for (label, generation) in &generations {
        let done = finished_generation(&app, generation, token, Duration::from_secs(900)).await;
        let tests = &done["tests"];
        let report = tests["report"].as_str().unwrap_or_default();
        eprintln!(
            "{label}: {} — {} passed, {} failed",
            done["status"], tests["passed"], tests["failed"]
        );
        if *label == "right" {
            assert_eq!(done["status"], "succeeded", "{done}");
            assert_eq!(tests["failed"], 0, "{report}");
            for step in done["steps"].as_array().expect("steps") {
                if ["ruff check", "ruff format --check", "mypy"]
                    .contains(&step["name"].as_str().unwrap_or_default())
                {
                    assert_eq!(step["status"], "succeeded", "{step}");
                }
            }
            // The suite that passed holds a test per example, and the functions' code as written.
            let zip = app
                .client
                .get(app.url(&format!("/generations/{generation}/download")))
                .bearer_auth(token)
                .send()
                .await
                .expect("download");
            assert_eq!(zip.status().as_u16(), 200);
            let files = generator::read_zip(&zip.bytes().await.expect("the ZIP")).expect("a ZIP");
            let text = |name: &str| {
                String::from_utf8(files.get(name).cloned().unwrap_or_default()).expect("UTF-8")
            };
            let suite = text("tests/test_functions.py");
            for test in ["def test_total_example_1(", "def test_total_example_2("] {
                assert!(suite.contains(test), "{test} missing:\n{suite}");
            }
            assert!(
                !suite.contains("test_shout_example"),
                "shout has no examples"
            );
            assert_eq!(text("app/functions/total.py"), TOTAL);
            assert_eq!(text("app/functions/shout.py"), SHOUT);
        } else {
            assert_eq!(done["status"], "failed", "{done}");
            assert!(
                done["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("the generated test suite failed")),
                "{done}"
            );
            assert_eq!(tests["failed"], 1, "{report}");
            assert!(
                report.contains("test_total_example_2"),
                "the report names the failing example's test: {report}"
            );
        }
    }
}
