//! Custom functions against the real binary (`backforge serve`): every write route and its statuses
//! (syntax errors with line and column, schema errors, duplicate names and routes, the cap, routes
//! of the generated app), reads, history and time travel, who may do what, and test runs with an
//! input or with the examples. Reads follow writes with `Backforge-Min-Position`.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tests::nats::{read_stream, shared_url};
use tests::process::{Backforge, eventually, nats_prefix, position_of};
use tests::{Answer, TestDatabase, TestUser};

use crate::hostile_code::{Target, Uids, contain};
use crate::projects::{assert_invalid_at, customers};

const ECHO: &str = "def handler(input):\n    return input\n";

const TOTAL: &str = "def handler(input):\n    return {\"total\": sum(l[\"price\"] * l[\"qty\"] for l in input[\"lines\"])}\n";

/// `backforge serve` on a database of its own. The process goes before the database.
struct Serve {
    app: Backforge,
    db: TestDatabase,
}

/// Each server's sandbox gets uids of its own: `RLIMIT_NPROC` counts a uid's processes across the
/// machine, so two servers sharing slot uids (tests run in parallel) would share that limit.
async fn serve() -> Serve {
    let uid_base = (62_000 + (uuid::Uuid::new_v4().as_u128() % 500) * 8).to_string();
    serve_with(&[("BACKFORGE_SANDBOX_UID_BASE", uid_base.as_str())]).await
}

async fn serve_with(env: &[(&str, &str)]) -> Serve {
    let db = TestDatabase::create().await.expect("test database");
    let app = Backforge::start("serve", &db.url, env).await;
    Serve { app, db }
}

fn token(user: &TestUser) -> Option<&str> {
    Some(user.access_token.as_str())
}

/// Function writes compile in the sandbox, which answers 503 until its start-up self-test passed.
pub(crate) async fn sandbox_ready(app: &Backforge, user: &TestUser) {
    eventually(
        "the sandbox passes its self-test",
        Duration::from_secs(30),
        || async {
            let answer = app
                .send_unchecked(
                    Method::POST,
                    "/ai/sandbox-execute",
                    token(user),
                    Some(json!({"language": "python", "code": "pass"})),
                    &[],
                )
                .await;
            (answer.status == 200).then_some(())
        },
    )
    .await;
}

/// A signed-in owner with a ready sandbox and an empty project; returns the project id.
async fn project(app: &Backforge, owner: &TestUser) -> String {
    app.post("/projects", token(owner), json!({"name": "Shop"}))
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

fn functions_path(project: &str) -> String {
    format!("/projects/{project}/functions")
}

fn order_total() -> Value {
    json!({
        "name": "order_total",
        "description": "Sums an order.",
        "language": "python",
        "function_code": TOTAL,
        "input_schema": {
            "type": "object",
            "properties": {"lines": {"type": "array", "items": {
                "type": "object",
                "properties": {"price": {"type": "number"}, "qty": {"type": "integer"}},
                "required": ["price", "qty"]
            }}},
            "required": ["lines"]
        },
        "output_schema": {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]},
        "examples": [
            {"input": {"lines": [{"price": 2.5, "qty": 2}]}, "output": {"total": 5}},
            {"input": {"lines": []}, "output": {"total": 0}}
        ]
    })
}

fn simple(name: &str) -> Value {
    json!({"name": name, "language": "python", "function_code": ECHO})
}

async fn create(app: &Backforge, user: &TestUser, project: &str, body: Value) -> Answer {
    app.post(&functions_path(project), token(user), body).await
}

/// Creates a function that must be accepted; returns its id.
async fn create_id(app: &Backforge, user: &TestUser, project: &str, body: Value) -> String {
    let created = create(app, user, project, body).await.expect(201);
    created.body["id"].as_str().expect("id").to_owned()
}

fn problem_type(answer: &Answer) -> &str {
    answer.body["type"].as_str().unwrap_or_default()
}

/// The message of the first problem at `pointer`.
fn message_at(answer: &Answer, pointer: &str) -> String {
    answer.body["errors"]
        .as_array()
        .and_then(|errors| errors.iter().find(|e| e["field"] == pointer))
        .and_then(|e| e["message"].as_str())
        .unwrap_or_else(|| panic!("no problem at {pointer}: {}", answer.body))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_is_created_read_changed_and_deleted_with_history_and_time_travel() {
    let s = serve().await;
    let app = &s.app;
    let (owner, _) = app.register("Ada").await;
    sandbox_ready(app, &owner).await;
    let project = project(app, &owner).await;

    // Created: 201 with its id, the project's version and position, Location and ETag.
    let created = create(app, &owner, &project, order_total())
        .await
        .expect(201);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let path = format!("{}/{id}", functions_path(&project));
    assert_eq!(
        created.header("Location").as_deref(),
        Some(format!("/api/v1{path}").as_str())
    );
    let version = created.body["version"].as_u64().expect("version");
    assert_eq!(created.header("ETag"), Some(format!("\"{version}\"")));
    let at = position_of(&created);

    // Read back through the query side, defaults filled in.
    let one = app.get_at(&path, token(&owner), &at).await.expect(200);
    assert_eq!(one.body["name"], "order_total");
    assert_eq!(one.body["endpoint_path"], "/fn/order_total");
    assert_eq!(one.body["http_method"], "POST");
    assert_eq!(one.body["is_active"], true);
    assert_eq!(one.body["language"], "python");
    assert_eq!(one.body["examples"].as_array().map(Vec::len), Some(2));
    let list = app
        .get_at(&functions_path(&project), token(&owner), &at)
        .await
        .expect(200);
    assert_eq!(list.body["items"][0]["id"], id.as_str(), "{}", list.body);
    assert_eq!(list.body["next_cursor"], Value::Null);
    // The project's list leaves functions out, as it does features.
    let projects = app
        .get_at("/projects", token(&owner), &at)
        .await
        .expect(200);
    assert!(projects.body["items"][0].get("functions").is_none());

    // A partial update under If-Match; a stale version is 412.
    let changed = app
        .send(
            Method::PUT,
            &path,
            token(&owner),
            Some(json!({"description": null, "http_method": "PUT", "endpoint_path": "/orders/total"})),
            &[("If-Match", &format!("\"{version}\""))],
        )
        .await
        .expect(200);
    assert_eq!(changed.body["version"], version + 1);
    app.send(
        Method::PUT,
        &path,
        token(&owner),
        Some(json!({"is_active": false})),
        &[("If-Match", &format!("\"{version}\""))],
    )
    .await
    .expect(412);
    let after = app
        .get_at(&path, token(&owner), &position_of(&changed))
        .await
        .expect(200);
    assert_eq!(after.body["http_method"], "PUT");
    assert_eq!(after.body["endpoint_path"], "/orders/total");
    assert_eq!(after.body["description"], Value::Null);
    // Changed code is compiled again.
    let broken = app
        .put(
            &path,
            token(&owner),
            json!({"function_code": "def handler(input):\n    return (\n"}),
        )
        .await;
    assert_invalid_at(broken, "/function_code");

    // The same Idempotency-Key answers the first creation again, creating nothing more.
    let key = [("Idempotency-Key", "fn-create-1")];
    let first = app
        .send(
            Method::POST,
            &functions_path(&project),
            token(&owner),
            Some(simple("echo")),
            &key,
        )
        .await
        .expect(201);
    let again = app
        .send(
            Method::POST,
            &functions_path(&project),
            token(&owner),
            Some(simple("echo")),
            &key,
        )
        .await
        .expect(201);
    assert_eq!(first.body, again.body);

    // Deleted: 204, then 404 on read; time travel still shows it.
    let deleted = app.delete(&path, token(&owner)).await.expect(204);
    app.get_at(&path, token(&owner), &position_of(&deleted))
        .await
        .expect(404);
    app.delete(&path, token(&owner)).await.expect(404);
    let then = app
        .get(
            &format!("/projects/{project}?as_of_version={version}"),
            token(&owner),
        )
        .await
        .expect(200);
    assert_eq!(
        then.body["functions"][0]["name"], "order_total",
        "{}",
        then.body
    );

    // History shows the function's events with their writer.
    let history = app
        .get_at(
            &format!("/projects/{project}/history"),
            token(&owner),
            &position_of(&deleted),
        )
        .await
        .expect(200);
    let types: Vec<&str> = history.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["type"].as_str())
        .collect();
    for expected in ["FunctionCreated", "FunctionUpdated", "FunctionDeleted"] {
        assert!(types.contains(&expected), "{expected} not in {types:?}");
    }
    let created_event = history.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|item| item["type"] == "FunctionCreated")
        .expect("FunctionCreated");
    assert_eq!(created_event["data"]["function_code"], TOTAL);
    assert_eq!(created_event["metadata"]["actor"], owner.id.as_str());

    // And they are published on the project's NATS subjects.
    let prefix = nats_prefix(&s.db.url);
    let stream = format!("{}_EVENTS", prefix.to_uppercase());
    let follow = format!("{prefix}.events.{project}.project.{project}.");
    let published = eventually(
        "the function's events are published",
        Duration::from_secs(15),
        || async {
            let messages = read_stream(&shared_url(), &stream).await.ok()?;
            let types: Vec<String> = messages
                .iter()
                .filter_map(|(subject, _, _)| subject.strip_prefix(&follow).map(str::to_owned))
                .filter(|t| t.starts_with("Function"))
                .collect();
            (types.len() >= 3).then_some(types)
        },
    )
    .await;
    for expected in ["FunctionCreated", "FunctionUpdated", "FunctionDeleted"] {
        assert!(
            published.iter().any(|t| t == expected),
            "{expected} not in {published:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_function_gets_its_422_at_its_pointer() {
    let s = serve().await;
    let app = &s.app;
    let (owner, _) = app.register("Ada").await;
    sandbox_ready(app, &owner).await;
    let project = project(app, &owner).await;
    app.post(
        &format!("/projects/{project}/features"),
        token(&owner),
        customers(),
    )
    .await
    .expect(201);
    let with = |changes: Value| {
        let mut body = simple("f");
        for (k, v) in changes.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };

    // A syntax error, with the interpreter's line and column.
    let syntax = create(
        app,
        &owner,
        &project,
        with(json!({"function_code": "def handler(input):\n    return 1 +\n"})),
    )
    .await
    .expect(422);
    let message = message_at(&syntax, "/function_code");
    assert!(message.starts_with("line 2, column "), "{message}");
    assert!(message.contains("SyntaxError"), "{message}");
    // No top-level handler(input).
    for code in [
        "def main(input):\n    return 1\n",
        "def handler():\n    return 1\n",
        "class A:\n    def handler(input):\n        return 1\n",
    ] {
        let answer = create(app, &owner, &project, with(json!({"function_code": code}))).await;
        let answer = answer.expect(422);
        assert!(
            message_at(&answer, "/function_code").contains("def handler(input)"),
            "{code}: {}",
            answer.body
        );
    }
    // Each bad member of a body under the body limit, answered at its own pointer: code over
    // 64 KiB, an unknown language or method, a name that is not snake_case, a schema the
    // meta-schema refuses or of another draft, an example its input schema refuses.
    let big = format!("{ECHO}#{}", "x".repeat(64 * 1024));
    for (change, pointer) in [
        (json!({"function_code": big}), "/function_code"),
        (json!({"language": "javascript"}), "/language"),
        (json!({"http_method": "GET"}), "/http_method"),
        (json!({"name": "NotSnake"}), "/name"),
        (
            json!({"input_schema": {"type": "strin"}}),
            "/input_schema/type",
        ),
        (
            json!({"output_schema": {"$schema": "http://json-schema.org/draft-07/schema#"}}),
            "/output_schema/$schema",
        ),
        (
            json!({"input_schema": {"type": "object", "required": ["n"]},
                    "examples": [{"input": {}, "output": 1}]}),
            "/examples/0/input",
        ),
    ] {
        assert_invalid_at(create(app, &owner, &project, with(change)).await, pointer);
    }
    // Paths the generated app owns.
    for path in [
        "/api/customers",
        "/api/customers/export",
        "/api/auth/login",
        "/health",
    ] {
        let answer = create(app, &owner, &project, with(json!({"endpoint_path": path}))).await;
        assert_invalid_at(answer, "/endpoint_path");
    }
    assert_invalid_at(
        create(
            app,
            &owner,
            &project,
            with(json!({"endpoint_path": "no/slash"})),
        )
        .await,
        "/endpoint_path",
    );
    // And the other direction: an entity whose routes would take a function's path.
    let exporter = create(
        app,
        &owner,
        &project,
        with(json!({"endpoint_path": "/api/invoices/export"})),
    )
    .await
    .expect(201);
    let exporter = exporter.body["id"].as_str().expect("id").to_owned();
    assert_invalid_at(
        app.post(
            &format!("/projects/{project}/features"),
            token(&owner),
            json!({"name": "Invoices", "feature_type": "crud",
                   "schema_definition": {"entity": "invoice", "fields": [{"name": "n", "type": "integer"}]}}),
        )
        .await,
        "/schema_definition/plural",
    );
    // New custom_function features point to functions.
    let feature = app
        .post(
            &format!("/projects/{project}/features"),
            token(&owner),
            json!({"name": "Hooks", "feature_type": "custom_function"}),
        )
        .await
        .expect(422);
    assert!(message_at(&feature, "/feature_type").contains("/functions"));
    // An unknown member, and an empty update.
    assert_invalid_at(
        app.post(
            &functions_path(&project),
            token(&owner),
            with(json!({"runtime": "pypy"})),
        )
        .await,
        "/runtime",
    );
    let exporter = format!("{}/{exporter}", functions_path(&project));
    assert_invalid_at(app.put(&exporter, token(&owner), json!({})).await, "");
    assert_invalid_at(
        app.put(&exporter, token(&owner), json!({"name": null}))
            .await,
        "/name",
    );
}

/// Code holding U+0000 (valid JSON, and a string PostgreSQL's `jsonb` would refuse) is refused at
/// `/function_code` when a function is created or changed, naming the character (the request's
/// own check, before any compile); nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_with_a_nul_character_is_refused_at_function_code() {
    let s = serve().await;
    let app = &s.app;
    let (owner, _) = app.register("Ada").await;
    sandbox_ready(app, &owner).await;
    let project = project(app, &owner).await;
    let nul = format!("{ECHO}# \u{0}\n");
    let mut body = simple("f");
    body["function_code"] = json!(nul);
    let refused = create(app, &owner, &project, body).await.expect(422);
    let message = message_at(&refused, "/function_code");
    assert!(message.contains("U+0000"), "{message}");
    assert_invalid_at(refused, "/function_code");
    let created = create(app, &owner, &project, simple("f")).await.expect(201);
    let id = created.body["id"].as_str().expect("id");
    let path = format!("{}/{id}", functions_path(&project));
    let changed = app
        .put(&path, token(&owner), json!({"function_code": nul}))
        .await;
    assert_invalid_at(changed, "/function_code");
    let stored = app
        .get_at(&path, token(&owner), &position_of(&created))
        .await
        .expect(200);
    assert_eq!(stored.body["function_code"], ECHO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_names_and_routes_conflict_and_a_project_holds_at_most_50_functions() {
    let s = serve().await;
    let app = &s.app;
    let (owner, _) = app.register("Ada").await;
    sandbox_ready(app, &owner).await;
    let project = project(app, &owner).await;
    create(app, &owner, &project, simple("f0"))
        .await
        .expect(201);

    let same_name = create(
        app,
        &owner,
        &project,
        json!({"name": "f0", "language": "python", "function_code": ECHO, "endpoint_path": "/other"}),
    )
    .await
    .expect(409);
    assert_eq!(
        problem_type(&same_name),
        "https://backforge.dev/problems/function-conflict"
    );
    let same_route = create(
        app,
        &owner,
        &project,
        json!({"name": "g", "language": "python", "function_code": ECHO, "endpoint_path": "/fn/f0"}),
    )
    .await
    .expect(409);
    assert_eq!(
        problem_type(&same_route),
        "https://backforge.dev/problems/function-conflict"
    );
    // The same path under another method is another route.
    create(
        app,
        &owner,
        &project,
        json!({"name": "g", "language": "python", "function_code": ECHO,
               "endpoint_path": "/fn/f0", "http_method": "PATCH"}),
    )
    .await
    .expect(201);

    for i in 2..50 {
        create(app, &owner, &project, simple(&format!("f{i}")))
            .await
            .expect(201);
    }
    let over = create(app, &owner, &project, simple("f50"))
        .await
        .expect(409);
    assert!(
        over.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("50 functions")),
        "{}",
        over.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_creates_of_one_name_make_one_function_and_fifteen_conflicts() {
    let s = serve().await;
    let app = &s.app;
    let (owner, _) = app.register("Ada").await;
    sandbox_ready(app, &owner).await;
    let project = project(app, &owner).await;
    let answers =
        futures::future::join_all((0..16).map(|_| create(app, &owner, &project, simple("race"))))
            .await;
    let created = answers.iter().filter(|a| a.status == 201).count();
    let conflicts: Vec<&Answer> = answers.iter().filter(|a| a.status == 409).collect();
    assert_eq!(
        (created, conflicts.len()),
        (1, 15),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    for conflict in conflicts {
        assert_eq!(
            problem_type(conflict),
            "https://backforge.dev/problems/function-conflict"
        );
    }
    let winner = answers
        .iter()
        .find(|a| a.status == 201)
        .expect("one created");
    let list = app
        .get_at(
            &functions_path(&project),
            token(&owner),
            &position_of(winner),
        )
        .await
        .expect(200);
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["race"]);
}

/// Makes `user` a global admin the way `backforge admin grant` ends up: the credentials row.
async fn make_admin(db: &TestDatabase, user: &TestUser) {
    let pool = event_store::setup::pool(&db.url, 1).expect("pool");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_and_admins_write_and_run_viewers_read_and_strangers_see_nothing() {
    let s = serve().await;
    let app = &s.app;
    let (owner, _) = app.register("Owen").await;
    let (viewer, _) = app.register("Victor").await;
    let (stranger, _) = app.register("Sam").await;
    let (admin, _) = app.register("Ann").await;
    make_admin(&s.db, &admin).await;
    sandbox_ready(app, &owner).await;
    let project = project(app, &owner).await;
    app.put(
        &format!("/projects/{project}/members/{}", viewer.id),
        token(&owner),
        json!({"role": "viewer"}),
    )
    .await
    .expect(200);
    let created = create(app, &owner, &project, simple("echo"))
        .await
        .expect(201);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let at = position_of(&created);
    let one = format!("{}/{id}", functions_path(&project));
    let test = format!("/functions/{id}/test");

    // A viewer reads but may neither write nor run.
    app.get_at(&functions_path(&project), token(&viewer), &at)
        .await
        .expect(200);
    app.get_at(&one, token(&viewer), &at).await.expect(200);
    create(app, &viewer, &project, simple("mine"))
        .await
        .expect(403);
    app.put(&one, token(&viewer), json!({"is_active": false}))
        .await
        .expect(403);
    app.delete(&one, token(&viewer)).await.expect(403);
    let refused = app
        .post(&test, token(&viewer), json!({"input": 1}))
        .await
        .expect(403);
    assert_eq!(
        refused.body["type"],
        "https://backforge.dev/problems/forbidden"
    );

    // A stranger gets the 404 of a project or function that does not exist.
    app.get_at(&functions_path(&project), token(&stranger), &at)
        .await
        .expect(404);
    app.get_at(&one, token(&stranger), &at).await.expect(404);
    create(app, &stranger, &project, simple("mine"))
        .await
        .expect(404);
    app.put(&one, token(&stranger), json!({"is_active": false}))
        .await
        .expect(404);
    app.delete(&one, token(&stranger)).await.expect(404);
    app.post(&test, token(&stranger), json!({"input": 1}))
        .await
        .expect(404);
    app.post(
        &format!("/functions/{}/test", uuid::Uuid::now_v7()),
        token(&owner),
        json!({"input": 1}),
    )
    .await
    .expect(404);
    // Signed out: 401.
    app.post(&test, None, json!({"input": 1})).await.expect(401);

    // The owner and an admin write and run.
    let ran = app
        .post(&test, token(&owner), json!({"input": {"a": 1}}))
        .await
        .expect(200);
    assert_eq!(ran.body["status"], "ok", "{}", ran.body);
    assert_eq!(ran.body["output"], json!({"a": 1}));
    app.post(&test, token(&admin), json!({"input": 2}))
        .await
        .expect(200);
    app.put(&one, token(&admin), json!({"description": "by an admin"}))
        .await
        .expect(200);
    create(app, &admin, &project, simple("admins"))
        .await
        .expect(201);
    app.delete(&one, token(&admin)).await.expect(204);
    app.post(&test, token(&owner), json!({"input": 1}))
        .await
        .expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_test_runs_an_input_or_every_example_and_checks_both_schemas() {
    let s = serve().await;
    let app = &s.app;
    let (owner, _) = app.register("Ada").await;
    sandbox_ready(app, &owner).await;
    let project = project(app, &owner).await;
    let id = create_id(app, &owner, &project, order_total()).await;
    let test = format!("/functions/{id}/test");

    let ran = app
        .post(
            &test,
            token(&owner),
            json!({"input": {"lines": [{"price": 1.5, "qty": 4}]}}),
        )
        .await
        .expect(200);
    assert_eq!(ran.body["status"], "ok", "{}", ran.body);
    assert_eq!(ran.body["output"], json!({"total": 6.0}));
    for member in ["stdout", "stderr", "truncated", "duration_ms"] {
        assert!(ran.body.get(member).is_some(), "{member}: {}", ran.body);
    }

    // Input that fails input_schema: 422 with pointers into `input`.
    let bad = app
        .post(
            &test,
            token(&owner),
            json!({"input": {"lines": [{"price": "cheap", "qty": 1}]}}),
        )
        .await;
    assert_invalid_at(bad, "/input/lines/0/price");
    app.post(&test, token(&owner), json!({})).await.expect(422);
    app.post(&test, token(&owner), json!({"input": 1, "examples": true}))
        .await
        .expect(422);

    // Every example, each with its verdict.
    let examples = app
        .post(&test, token(&owner), json!({"examples": true}))
        .await
        .expect(200);
    assert_eq!(examples.body["status"], "ok", "{}", examples.body);
    let runs = examples.body["examples"].as_array().expect("examples");
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_eq!(run["passed"], true, "{run}");
        for member in ["input", "expected", "actual"] {
            assert!(run.get(member).is_some(), "{member}: {run}");
        }
    }
    // A wrong example is reported, not hidden.
    app.put(
        &format!("{}/{id}", functions_path(&project)),
        token(&owner),
        json!({"examples": [{"input": {"lines": []}, "output": {"total": 1}}]}),
    )
    .await
    .expect(200);
    let wrong = app
        .post(&test, token(&owner), json!({"examples": true}))
        .await
        .expect(200);
    assert_eq!(wrong.body["examples"][0]["passed"], false, "{}", wrong.body);
    assert_eq!(wrong.body["examples"][0]["actual"], json!({"total": 0}));

    // Output that fails output_schema: invalid_output.
    let liar = create(
        app,
        &owner,
        &project,
        json!({"name": "liar", "language": "python",
               "function_code": "def handler(input):\n    return 42\n",
               "output_schema": {"type": "string"}}),
    )
    .await
    .expect(201);
    let liar = liar.body["id"].as_str().expect("id");
    let invalid = app
        .post(
            &format!("/functions/{liar}/test"),
            token(&owner),
            json!({"input": null}),
        )
        .await
        .expect(200);
    assert_eq!(invalid.body["status"], "invalid_output", "{}", invalid.body);
    assert_eq!(invalid.body["output"], 42);
    // A function that raises is `error`, with its line.
    let raising = create(
        app,
        &owner,
        &project,
        json!({"name": "raising", "language": "python",
               "function_code": "def handler(input):\n    return 1 / 0\n"}),
    )
    .await
    .expect(201);
    let raising = raising.body["id"].as_str().expect("id");
    let error = app
        .post(
            &format!("/functions/{raising}/test"),
            token(&owner),
            json!({"input": 1}),
        )
        .await
        .expect(200);
    assert_eq!(error.body["status"], "error");
    assert_eq!(error.body["error"]["type"], "ZeroDivisionError");
    assert_eq!(error.body["error"]["line"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_schemas_resolve_nothing_remote_and_match_patterns_in_linear_time() {
    let s = serve().await;
    let app = &s.app;
    let (owner, _) = app.register("Mallory").await;
    sandbox_ready(app, &owner).await;
    let project = project(app, &owner).await;

    // A `$ref` to a listener on this machine: 422, and the listener sees no connection.
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    for (member, schema) in [
        (
            "/input_schema/$ref",
            json!({"$ref": format!("http://127.0.0.1:{port}/schema.json")}),
        ),
        (
            "/input_schema/properties/a/$ref",
            json!({"properties": {"a": {"$ref": format!("http://127.0.0.1:{port}/a.json#/x")}}}),
        ),
        ("/input_schema/$ref", json!({"$ref": "file:///etc/passwd"})),
    ] {
        let answer = create(
            app,
            &owner,
            &project,
            json!({"name": "remote", "language": "python", "function_code": ECHO,
                   "input_schema": schema}),
        )
        .await;
        assert_invalid_at(answer, member);
    }
    assert!(
        listener.accept().is_err(),
        "the server connected to the listener"
    );

    // `(a+)+$` against 50 KB of `a`s and a `!`: answered within a second.
    let created = create(
        app,
        &owner,
        &project,
        json!({"name": "pattern", "language": "python", "function_code": ECHO,
               "input_schema": {"type": "string", "pattern": "(a+)+$"}}),
    )
    .await
    .expect(201);
    let id = created.body["id"].as_str().expect("id");
    let hostile = format!("{}!", "a".repeat(50_000));
    let started = Instant::now();
    let answer = app
        .post(
            &format!("/functions/{id}/test"),
            token(&owner),
            json!({"input": hostile}),
        )
        .await;
    let elapsed = started.elapsed();
    // `$` must follow the `a`s, and `!` does: no match, found without backtracking.
    assert_invalid_at(answer, "/input");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    let health = Instant::now();
    app.get("//health", None).await.expect(200);
    assert!(health.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_functions_are_contained_by_a_test_run_and_the_server_keeps_answering() {
    let uids = Uids::fresh();
    let s = serve_with(&uids.settings()).await;
    let app = &s.app;
    let (owner, _) = app.register("Mallory").await;
    sandbox_ready(app, &owner).await;
    let project = project(app, &owner).await;
    let target = Target {
        address: &app.address,
        database_url: &s.db.url,
        uids: &uids,
    };
    let made = std::sync::atomic::AtomicUsize::new(0);
    contain(target, |code| {
        let (owner, project, made) = (&owner, &project, &made);
        async move {
            let n = made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("hostile_{n}");
            let body = json!({"name": name, "language": "python", "function_code": code});
            let id = create_id(app, owner, project, body).await;
            let test = format!("/functions/{id}/test");
            let answer = app.post(&test, token(owner), json!({"input": null})).await;
            answer.expect(200).body
        }
    })
    .await;
}

/// One allowance per user (`BACKFORGE_SANDBOX_EXECUTIONS_PER_MINUTE`) covers test runs and sandbox
/// runs together, and both are counted by route and status in `backforge_sandbox_runs_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_runs_share_the_sandbox_allowance_and_are_counted_beside_sandbox_runs() {
    let uid_base = (62_000 + (uuid::Uuid::new_v4().as_u128() % 500) * 8).to_string();
    let s = serve_with(&[
        ("BACKFORGE_SANDBOX_UID_BASE", uid_base.as_str()),
        ("BACKFORGE_SANDBOX_EXECUTIONS_PER_MINUTE", "4"),
    ])
    .await;
    let app = &s.app;
    let (owner, _) = app.register("Ada").await;
    let (other, _) = app.register("Bea").await;
    // Readiness is polled by the other user, whose allowance this spends.
    sandbox_ready(app, &other).await;
    let project = project(app, &owner).await;
    let id = create_id(app, &owner, &project, simple("echo")).await;
    let test = format!("/functions/{id}/test");
    let pass = json!({"language": "python", "code": "pass"});
    let execute = || app.post("/ai/sandbox-execute", token(&owner), pass.clone());
    execute().await.expect(200);
    for _ in 0..3 {
        app.post(&test, token(&owner), json!({"input": 1}))
            .await
            .expect(200);
    }
    let refused = app
        .post(&test, token(&owner), json!({"input": 1}))
        .await
        .expect(429);
    assert!(
        refused.header("retry-after").is_some(),
        "{:?}",
        refused.headers
    );
    execute().await.expect(429);

    let metrics = app.get("//metrics", None).await.expect(200);
    let text = metrics.body.as_str().expect("metrics are text");
    let count = |route: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix("backforge_sandbox_runs_total{")
                    .filter(|rest| {
                        rest.contains(&format!("route=\"{route}\""))
                            && rest.contains("status=\"ok\"")
                    })
                    .and_then(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
            })
            .unwrap_or_default()
    };
    assert_eq!(count("function-test"), 3.0, "{text}");
    assert!(count("sandbox-execute") >= 2.0, "{text}");
}
