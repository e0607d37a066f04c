//! The AI worker against the real binary and a scripted OpenAI-format model on 127.0.0.1: generated code is checked with its function's examples in the sandbox and repaired from a failing one, and a worker whose sandbox cannot run fails it keeping the paid attempt; a worker SIGKILLed while a model call is open loses no recorded cost and its redelivery continues from the recorded attempts; no stored event or process log holds any piece of the provider key; a replay rebuilds the same rm.ai_* rows.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::ids::AiRequestId;
use serde_json::{Value, json};
use tests::process::{Backforge, eventually, position_of, run};
use tests::{TestDatabase, TestUser};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use crate::fake_provider::{answer_with, read_request};
use crate::processes::{assert_same_read_models, dump, newest_event};

/// What the scripted model answers one request with.
#[derive(Clone)]
enum Reply {
    /// 200 with this Chat Completions body.
    Answer(Value),
    /// This status and body.
    Status(u16, String),
    /// Reads the request and never answers (the connection stays open).
    Hold,
}

/// A model server on 127.0.0.1 answering the nth request with the nth reply (the last repeats),
/// recording every request body.
struct Model {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Value>>>,
    replies: Arc<Mutex<Vec<Reply>>>,
}

impl Model {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let replies: Arc<Mutex<Vec<Reply>>> = Arc::new(Mutex::new(Vec::new()));
        let (recorded, scripted) = (requests.clone(), replies.clone());
        let count = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let reply = {
                    let replies = scripted.lock().expect("lock");
                    replies.get(n).or(replies.last()).cloned()
                };
                let reply = reply.unwrap_or(Reply::Status(500, "nothing scripted".into()));
                tokio::spawn(serve(stream, reply, recorded.clone()));
            }
        });
        Self {
            addr,
            requests,
            replies,
        }
    }

    /// Scripts the replies (before any request reached the server).
    fn script(&self, replies: Vec<Reply>) {
        assert!(self.requests().is_empty(), "scripted after a request");
        *self.replies.lock().expect("lock") = replies;
    }

    fn requests(&self) -> Vec<Value> {
        self.requests.lock().expect("lock").clone()
    }

    /// The user message of the nth request (from 0).
    fn prompt(&self, n: usize) -> String {
        self.requests()[n]["messages"][1]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

async fn serve(mut stream: TcpStream, reply: Reply, recorded: Arc<Mutex<Vec<Value>>>) {
    let Some((_, body)) = read_request(&mut stream).await else {
        return;
    };
    recorded.lock().expect("lock").push(body);
    let (status, text) = match reply {
        Reply::Answer(body) => (200, body.to_string()),
        Reply::Status(status, body) => (status, body),
        Reply::Hold => {
            // Until the caller goes away (or the test ends).
            let _ = stream.read(&mut [0u8; 64]).await;
            std::future::pending::<()>().await;
            return;
        }
    };
    answer_with(&mut stream, status, &text).await;
}

/// A Chat Completions answer whose content is `content` and its token counts.
fn answer_text(content: &str, prompt_tokens: u64, completion_tokens: u64) -> Reply {
    Reply::Answer(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "test-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        }
    }))
}

fn answer(content: &Value, prompt_tokens: u64, completion_tokens: u64) -> Reply {
    answer_text(&content.to_string(), prompt_tokens, completion_tokens)
}

/// One field in the strict answer form: every option present, `null` when unused.
fn field(name: &str, kind: &str) -> Value {
    json!({
        "name": name, "type": kind, "required": true, "unique": null, "default": null,
        "min_length": null, "max_length": null, "pattern": null, "min": null, "max": null,
        "precision": null, "scale": null, "values": null, "references": null,
    })
}

/// A `generate_config` proposal of one crud feature with the field `field_name`; `select` (an
/// SQL reserved word) breaks the domain's rules while meeting the JSON Schema.
fn config(field_name: &str) -> Value {
    feature_config("Customers", "customer", field_name)
}

/// A `generate_config` proposal of the crud feature `name` of `entity` with the field
/// `field_name`.
fn feature_config(name: &str, entity: &str, field_name: &str) -> Value {
    json!({"features": [{
        "name": name,
        "feature_type": "crud",
        "generation_mode": "ai_assisted",
        "configuration": null,
        "schema_definition": {
            "entity": entity,
            "plural": null,
            "fields": [field("full_name", "string"), field(field_name, "string")],
            "unique": null,
        },
        "is_enabled": true,
    }]})
}

/// The default model's variables: the scripted model at 2.5 and 10 USD per million tokens, its
/// key in `BACKFORGE_AI_API_KEY` (the variable the default model names).
fn model_env(model: &Model, key: &str) -> Vec<(String, String)> {
    [
        ("BACKFORGE_AI_PROVIDER", "openai".to_owned()),
        ("BACKFORGE_AI_BASE_URL", format!("http://{}/v1", model.addr)),
        ("BACKFORGE_AI_MODEL", "test-model".to_owned()),
        ("BACKFORGE_AI_API_KEY", key.to_owned()),
        ("BACKFORGE_AI_INPUT_USD_PER_MTOK", "2.5".to_owned()),
        ("BACKFORGE_AI_OUTPUT_USD_PER_MTOK", "10".to_owned()),
        ("BACKFORGE_AI_MAX_OUTPUT_TOKENS", "2000".to_owned()),
        // A worker that dies holding a job has it redelivered after 3 s.
        ("BACKFORGE_JOB_ACK_WAIT_SECS", "3".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn token(user: &TestUser) -> Option<&str> {
    Some(user.access_token.as_str())
}

/// The services as separate processes on one database: the command API, the query API, the
/// projector (with the relays) and a worker, each with the model's variables.
struct Stack {
    commands: Backforge,
    reads: Backforge,
    projector: Backforge,
    workers: Vec<Backforge>,
    env: Vec<(String, String)>,
    db: TestDatabase,
}

impl Stack {
    async fn start(model: &Model, key: &str) -> Self {
        Self::start_with(model, key, &[]).await
    }

    /// [`Stack::start`] with more variables for every process.
    async fn start_with(model: &Model, key: &str, extra: &[(&str, &str)]) -> Self {
        let db = TestDatabase::create().await.expect("test database");
        let mut env = model_env(model, key);
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let commands = Backforge::start("command-api", &db.url, &vars).await;
        let reads = Backforge::start("query-api", &db.url, &vars).await;
        let projector = Backforge::start("projector", &db.url, &vars).await;
        let mut stack = Self {
            commands,
            reads,
            projector,
            workers: Vec::new(),
            env,
            db,
        };
        stack.start_worker().await;
        stack
    }

    async fn start_worker(&mut self) {
        self.start_worker_with(&[]).await;
    }

    /// A worker whose variables `extra` replaces.
    async fn start_worker_with(&mut self, extra: &[(&str, &str)]) {
        let mut vars: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        vars.extend_from_slice(extra);
        let worker = Backforge::start("worker", &self.db.url, &vars).await;
        self.workers.push(worker);
    }

    /// SIGKILLs the newest worker (its log stays readable).
    fn kill_worker(&mut self) {
        self.workers.last_mut().expect("a worker").kill();
    }

    /// An owner and their project.
    async fn owner_and_project(&self) -> (TestUser, String) {
        let (owner, _) = self.commands.register("Ada").await;
        let project = self
            .commands
            .post("/projects", token(&owner), json!({"name": "Shop"}))
            .await
            .expect(201)
            .body["id"]
            .as_str()
            .expect("id")
            .to_owned();
        (owner, project)
    }

    /// Every process's log so far.
    fn logs(&self) -> Vec<(String, String)> {
        [&self.commands, &self.reads, &self.projector]
            .into_iter()
            .chain(&self.workers)
            .map(|p| (p.subcommand.clone(), p.log()))
            .collect()
    }
}

/// Posts `body` to `route` on `writes` (202): the AI request's id.
async fn request(writes: &Backforge, user: &TestUser, route: &str, body: Value) -> String {
    let accepted = writes.post(route, token(user), body).await.expect(202);
    accepted.body["id"].as_str().expect("id").to_owned()
}

/// The AI request as `reads` serves it once `done` says so.
async fn read_when(
    reads: &Backforge,
    user: &TestUser,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, Duration::from_secs(90), || async {
        let answer = reads.get(&format!("/ai/requests/{id}"), token(user)).await;
        (answer.status.as_u16() == 200 && done(&answer.body)).then_some(answer.body)
    })
    .await
}

fn finished(body: &Value) -> bool {
    matches!(body["status"].as_str(), Some("succeeded" | "failed"))
}

/// A decimal amount of USD with 6 places (`"0.007500"`) in millionths, exactly.
fn micro_usd(amount: &Value) -> u64 {
    let text = amount
        .as_str()
        .unwrap_or_else(|| panic!("{amount} is no amount"));
    let (whole, fraction) = text.split_once('.').expect("a decimal amount");
    assert_eq!(fraction.len(), 6, "{text}");
    whole.parse::<u64>().expect("whole") * 1_000_000 + fraction.parse::<u64>().expect("fraction")
}

/// Code that doubles `n`.
const DOUBLE: &str = "def handler(input):\n    return {\"n\": input[\"n\"] * 2}\n";

#[tokio::test]
async fn generated_code_passes_its_examples_in_the_sandbox_after_a_repair_from_a_failing_one() {
    let model = Model::start().await;
    let db = TestDatabase::create().await.expect("test database");
    // The sandbox's uids are this server's own (as in `functions.rs`).
    let uid_base = (62_000 + (Uuid::new_v4().as_u128() % 500) * 8).to_string();
    let mut env = model_env(&model, "sk-e2e-0123456789abcdef");
    env.push(("BACKFORGE_SANDBOX_UID_BASE".into(), uid_base));
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = Backforge::start("serve", &db.url, &vars).await;
    let (owner, _) = app.register("Ada").await;
    let project = app
        .post("/projects", token(&owner), json!({"name": "Shop"}))
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    crate::functions::sandbox_ready(&app, &owner).await;
    let examples = json!([
        {"input": {"n": 2}, "output": {"n": 4}},
        {"input": {"n": -3}, "output": {"n": -6}},
    ]);
    let function = app
        .post(
            &format!("/projects/{project}/functions"),
            token(&owner),
            json!({"name": "double", "description": "Doubles n.", "language": "python",
                "function_code": "def handler(input):\n    return input\n",
                "examples": examples}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let code = |c: &str| json!({"function_id": function, "function_code": c});
    // The first answer compiles and passes example 1 (2 + 2 = 4) but not example 2.
    let adds_two = "def handler(input):\n    return {\"n\": input[\"n\"] + 2}\n";
    model.script(vec![
        answer(&code(adds_two), 600, 200),
        answer(&code(DOUBLE), 700, 250),
        // For the last request below: every example raises.
        answer(
            &code("def handler(input):\n    return {\"n\": input[\"n\"] // 0}\n"),
            500,
            100,
        ),
    ]);

    let id = request(
        &app,
        &owner,
        "/ai/generate-code",
        json!({"project_id": project, "function_id": function, "prompt": "Double n"}),
    )
    .await;
    let done = read_when(&app, &owner, &id, "the AI request finishes", finished).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let attempts = done["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{done}");
    let failing =
        r#"/function_code: example 2 (input {"n":-3}) returned {"n":-1}, expected {"n":-6}"#;
    assert_eq!(attempts[0]["error"], failing, "{done}");
    assert!(attempts[1].get("error").is_none(), "{done}");
    assert_eq!(done["proposal"], code(DOUBLE));
    // The repair's prompt carries the failing example's error; the first prompt had none.
    assert_eq!(model.requests().len(), 2);
    assert!(
        !model.prompt(0).contains("example 2"),
        "{}",
        model.prompt(0)
    );
    assert!(model.prompt(1).contains(failing), "{}", model.prompt(1));

    // Apply, then the platform's own run of the function returns each example's output.
    let applied = app
        .post(
            &format!("/ai/requests/{id}/apply"),
            token(&owner),
            json!({}),
        )
        .await
        .expect(200);
    let position = position_of(&applied);
    let stored = app
        .get_at(
            &format!("/projects/{project}/functions/{function}"),
            token(&owner),
            &position,
        )
        .await
        .expect(200);
    assert_eq!(stored.body["function_code"], DOUBLE, "{}", stored.body);
    for example in examples.as_array().expect("examples") {
        let ran = app
            .post(
                &format!("/functions/{function}/test"),
                token(&owner),
                json!({"input": example["input"]}),
            )
            .await
            .expect(200);
        assert_eq!(ran.body["status"], "ok", "{}", ran.body);
        assert_eq!(ran.body["output"], example["output"], "{}", ran.body);
    }
    let all = app
        .post(
            &format!("/functions/{function}/test"),
            token(&owner),
            json!({"examples": true}),
        )
        .await
        .expect(200);
    assert_eq!(all.body["status"], "ok", "{}", all.body);
    assert!(
        all.body["examples"]
            .as_array()
            .is_some_and(|e| e.len() == 2 && e.iter().all(|e| e["passed"] == true)),
        "{}",
        all.body
    );

    // Code that raises on every example never gets right: failed after 3 attempts, each
    // naming the exception and its line, and the function keeps its code.
    let raises = request(
        &app,
        &owner,
        "/ai/generate-code",
        json!({"project_id": project, "function_id": function}),
    )
    .await;
    let done = read_when(&app, &owner, &raises, "the AI request finishes", finished).await;
    assert_eq!(done["status"], "failed", "{done}");
    let attempts = done["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3, "{done}");
    for attempt in attempts {
        let error = attempt["error"].as_str().unwrap_or_default();
        for n in [1, 2] {
            assert!(error.contains(&format!("example {n} (input")), "{error}");
        }
        assert!(
            error.contains("raised ZeroDivisionError: integer division or modulo by zero (line 2)"),
            "{error}"
        );
    }
    app.post(
        &format!("/ai/requests/{raises}/apply"),
        token(&owner),
        json!({}),
    )
    .await
    .expect(409);
    let still = app
        .get(
            &format!("/projects/{project}/functions/{function}"),
            token(&owner),
        )
        .await
        .expect(200);
    assert_eq!(still.body["function_code"], DOUBLE, "{}", still.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_sandbox_cannot_run_fails_generated_code_with_the_cause_and_keeps_its_cost()
{
    let model = Model::start().await;
    // The command API's sandbox works (the function is compiled when it is created); the
    // worker's interpreter does not exist, so its pool never passes its self-test.
    let uid_base = (62_000 + (Uuid::new_v4().as_u128() % 500) * 8).to_string();
    let mut stack = Stack::start_with(
        &model,
        "sk-e2e-0123456789abcdef",
        &[("BACKFORGE_SANDBOX_UID_BASE", uid_base.as_str())],
    )
    .await;
    stack.kill_worker();
    stack
        .start_worker_with(&[("BACKFORGE_SANDBOX_PYTHON", "/nonexistent/bin/python3")])
        .await;
    let (owner, project) = stack.owner_and_project().await;
    crate::functions::sandbox_ready(&stack.commands, &owner).await;
    let function = stack
        .commands
        .post(
            &format!("/projects/{project}/functions"),
            token(&owner),
            json!({"name": "double", "language": "python",
                "function_code": "def handler(input):\n    return input\n",
                "examples": [{"input": {"n": 2}, "output": {"n": 4}}]}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    model.script(vec![answer(
        &json!({"function_id": function, "function_code": DOUBLE}),
        700,
        250,
    )]);
    let id = request(
        &stack.commands,
        &owner,
        "/ai/generate-code",
        json!({"project_id": project, "function_id": function}),
    )
    .await;
    let done = read_when(
        &stack.reads,
        &owner,
        &id,
        "the AI request finishes",
        finished,
    )
    .await;
    assert_eq!(done["status"], "failed", "{done}");
    let attempts = done["attempts"].as_array().expect("attempts");
    assert_eq!(
        attempts.len(),
        1,
        "no repair for the sandbox's failure: {done}"
    );
    // 700 × 2.5 / 1e6 + 250 × 10 / 1e6 = 0.00425: the paid call is counted.
    assert_eq!(attempts[0]["cost_usd"], "0.004250", "{done}");
    assert_eq!(done["cost_usd"], "0.004250", "{done}");
    let error = done["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("the proposal could not be checked: the sandbox is unavailable"),
        "{done}"
    );
    assert_eq!(attempts[0]["error"].as_str(), Some(error), "{done}");
    assert_eq!(model.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_during_a_model_call_loses_no_cost_and_its_redelivery_continues() {
    let model = Model::start().await;
    // Attempt 1 breaks the rules (a paid answer); attempt 2's call is held open until the worker
    // dies; the redelivery's attempt 2 gets the valid answer.
    model.script(vec![
        answer(&config("select"), 1000, 500),
        Reply::Hold,
        answer(&config("email"), 1200, 400),
    ]);
    let mut stack = Stack::start(&model, "sk-e2e-0123456789abcdef").await;
    let (owner, project) = stack.owner_and_project().await;
    let id = request(
        &stack.commands,
        &owner,
        "/ai/generate-config",
        json!({"project_id": project, "prompt": "A shop with customers"}),
    )
    .await;
    let running = read_when(
        &stack.reads,
        &owner,
        &id,
        "attempt 1 is recorded and attempt 2's call is open",
        |body| body["attempts"].as_array().is_some_and(|a| a.len() == 1),
    )
    .await;
    eventually(
        "the model holds attempt 2's call",
        Duration::from_secs(30),
        || async { (model.requests().len() == 2).then_some(()) },
    )
    .await;
    assert_eq!(running["status"], "running", "{running}");
    assert_eq!(running["attempts"][0]["cost_usd"], "0.007500", "{running}");
    stack.kill_worker();

    stack.start_worker().await;
    let done = read_when(
        &stack.reads,
        &owner,
        &id,
        "the redelivered job finishes",
        finished,
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let attempts = done["attempts"].as_array().expect("attempts");
    let numbers: Vec<u64> = attempts.iter().filter_map(|a| a["n"].as_u64()).collect();
    assert_eq!(
        numbers,
        [1, 2],
        "continued with attempt 2, not a fresh 1: {done}"
    );
    // 1000 × 2.5 / 1e6 + 500 × 10 / 1e6 = 0.0075; 1200 × 2.5 / 1e6 + 400 × 10 / 1e6 = 0.007
    assert_eq!(attempts[0]["cost_usd"], "0.007500");
    assert_eq!(attempts[1]["cost_usd"], "0.007000");
    let sum: u64 = attempts.iter().map(|a| micro_usd(&a["cost_usd"])).sum();
    assert_eq!(micro_usd(&done["cost_usd"]), sum, "{done}");
    assert_eq!(done["cost_usd"], "0.014500");
    assert_eq!(
        done["usage"],
        json!({"input_tokens": 2200, "output_tokens": 900})
    );
    // Three calls: the killed worker's two, the redelivery's one, which repairs attempt 1's
    // errors (read from the stream, as the held call did).
    assert_eq!(model.requests().len(), 3);
    let first_error = "/features/0/schema_definition/fields/1/name";
    assert!(!model.prompt(0).contains(first_error));
    assert!(model.prompt(1).contains(first_error), "{}", model.prompt(1));
    assert!(model.prompt(2).contains(first_error), "{}", model.prompt(2));
    // The stream: two starts (deliveries 1 and 2), two attempts, one success.
    let stream = AiRequestId::from_uuid(id.parse().expect("uuid")).stream();
    let pool = event_store::setup::pool(&stack.db.url, 2).expect("pool");
    let client = pool.get().await.expect("client");
    let rows = client
        .query(
            "SELECT event_type, data FROM events WHERE stream_id = $1 ORDER BY position",
            &[&stream],
        )
        .await
        .expect("events");
    let events: Vec<(String, Value)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let kinds: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "AiRequested",
            "AiRequestStarted",
            "AiAttemptRecorded",
            "AiRequestStarted",
            "AiAttemptRecorded",
            "AiRequestSucceeded"
        ],
        "{events:?}"
    );
    let deliveries: Vec<u64> = events
        .iter()
        .filter(|(t, _)| t == "AiRequestStarted")
        .filter_map(|(_, d)| d["delivery"].as_u64())
        .collect();
    assert_eq!(deliveries, [1, 2], "{events:?}");
}

/// A provider key of letters only (no piece of it is hex, so no id or hash in a log matches it).
fn secret_key() -> String {
    let letters: String = Uuid::new_v4()
        .simple()
        .to_string()
        .bytes()
        .map(|b| {
            let v = if b.is_ascii_digit() {
                b - b'0'
            } else {
                b - b'a' + 10
            };
            char::from(b'g' + v)
        })
        .collect();
    format!("sk-proj-{letters}")
}

/// AI requests in every state on `stack`, the model echoing `key` in an error body and in its
/// answers: a failed request (401 quoting the key), an enhancement whose first answer is text
/// quoting the key and whose second quotes it in its rationale (succeeded, then applied), a
/// `generate_config` that succeeds and is not applied, and — once the worker is killed — one left
/// `requested`. Returns the owner and the request ids by state.
async fn every_state(
    stack: &mut Stack,
    model: &Model,
    key: &str,
) -> (TestUser, Vec<(String, &'static str)>) {
    let (owner, project) = stack.owner_and_project().await;
    let feature = stack
        .commands
        .post(
            &format!("/projects/{project}/features"),
            token(&owner),
            json!({"name": "Customers", "feature_type": "crud", "generation_mode": "mixed",
                "schema_definition": {"entity": "customer",
                    "fields": [{"name": "email", "type": "string", "required": true}]}}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let enhancement = json!({
        "feature_id": feature,
        "changes": {
            "name": "Clients", "generation_mode": "mixed", "configuration": null,
            "schema_definition": {"entity": "customer", "plural": null,
                "fields": [field("email", "string"), field("phone", "string")], "unique": null},
            "is_enabled": null,
        },
        "rationale": format!("Your key {key} works; clients have phones."),
    });
    let rejected = json!({"error": {
        "message": format!("Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys."),
        "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
    model.script(vec![
        Reply::Status(401, rejected.to_string()),
        answer_text(&format!("I cannot answer; my key is {key}"), 300, 40),
        answer(&enhancement, 800, 300),
        answer(&feature_config("Suppliers", "supplier", "email"), 1200, 400),
    ]);
    let mut ids = Vec::new();
    let failed = request(
        &stack.commands,
        &owner,
        "/ai/generate-config",
        json!({"project_id": project, "prompt": "A shop"}),
    )
    .await;
    let done = read_when(
        &stack.reads,
        &owner,
        &failed,
        "the refused request fails",
        finished,
    )
    .await;
    assert_eq!(done["status"], "failed", "{done}");
    ids.push((failed, "failed"));
    let enhanced = request(
        &stack.commands,
        &owner,
        "/ai/enhance-config",
        json!({"project_id": project, "feature_id": feature, "prompt": "Clients with phones"}),
    )
    .await;
    let done = read_when(
        &stack.reads,
        &owner,
        &enhanced,
        "the enhancement finishes",
        finished,
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"].as_array().map(Vec::len), Some(2), "{done}");
    stack
        .commands
        .post(
            &format!("/ai/requests/{enhanced}/apply"),
            token(&owner),
            json!({}),
        )
        .await
        .expect(200);
    read_when(&stack.reads, &owner, &enhanced, "the apply is read", |b| {
        b["applied_at"].is_string()
    })
    .await;
    ids.push((enhanced, "applied"));
    let succeeded = request(
        &stack.commands,
        &owner,
        "/ai/generate-config",
        json!({"project_id": project, "prompt": "A shop with customers"}),
    )
    .await;
    let done = read_when(
        &stack.reads,
        &owner,
        &succeeded,
        "the config request finishes",
        finished,
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    ids.push((succeeded, "succeeded"));
    stack.kill_worker();
    let waiting = request(
        &stack.commands,
        &owner,
        "/ai/generate-config",
        json!({"project_id": project, "prompt": "Nobody runs this"}),
    )
    .await;
    let read = read_when(
        &stack.reads,
        &owner,
        &waiting,
        "the waiting request is read",
        |b| b["status"].is_string(),
    )
    .await;
    assert_eq!(read["status"], "requested", "{read}");
    ids.push((waiting, "requested"));
    (owner, ids)
}

/// Every piece of `key` of 8 characters (so every longer piece too) found in `text`.
fn pieces_in(key: &str, text: &str) -> Vec<String> {
    let chars: Vec<char> = key.chars().collect();
    chars
        .windows(8)
        .map(|w| w.iter().collect::<String>())
        .filter(|piece| text.contains(piece.as_str()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stored_event_answer_or_process_log_holds_any_piece_of_the_provider_key() {
    let model = Model::start().await;
    let key = secret_key();
    // The scan finds any 8 characters of the key, wherever they stand.
    let fragment = format!("…{}…", &key[10..20]);
    assert_eq!(pieces_in(&key, &fragment).len(), 3, "{fragment}");
    // Every process logs at debug: whatever a library logs of a request or a statement is
    // scanned too.
    let mut stack = Stack::start_with(&model, &key, &[("RUST_LOG", "debug")]).await;
    let (owner, ids) = every_state(&mut stack, &model, &key).await;

    // The provider did get the key, and did echo it: the test exercises the redaction.
    assert_eq!(model.requests().len(), 4);
    let reads = &stack.reads;
    let failed = reads
        .get(&format!("/ai/requests/{}", ids[0].0), token(&owner))
        .await
        .expect(200);
    assert!(
        failed.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("401")),
        "the failure says what the provider answered: {}",
        failed.body
    );

    // Every stored event's data and metadata.
    let pool = event_store::setup::pool(&stack.db.url, 2).expect("pool");
    let client = pool.get().await.expect("client");
    let rows = client
        .query(
            "SELECT event_type, data::text, metadata::text FROM events ORDER BY position",
            &[],
        )
        .await
        .expect("events");
    assert!(rows.len() > 10, "{} events", rows.len());
    let mut found = Vec::new();
    for row in &rows {
        let (kind, data, metadata): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        for piece in pieces_in(&key, &format!("{data}\n{metadata}")) {
            found.push(format!("event {kind}: `{piece}`"));
        }
    }
    // What the API answers about each request.
    for (id, _) in &ids {
        let answer = reads
            .get(&format!("/ai/requests/{id}"), token(&owner))
            .await;
        for piece in pieces_in(&key, &answer.body.to_string()) {
            found.push(format!("GET /ai/requests/{id}: `{piece}`"));
        }
    }
    // Every process's log, the killed worker's too.
    let logs = stack.logs();
    assert_eq!(logs.len(), 4, "command-api, query-api, projector, worker");
    for (process, log) in &logs {
        assert!(log.contains("DEBUG"), "{process} did not log at debug");
        for piece in pieces_in(&key, log) {
            found.push(format!("log of {process}: `{piece}`"));
        }
    }
    assert!(found.is_empty(), "pieces of the key were found: {found:#?}");
    // The redaction marks where the echoes were.
    let enhanced = reads
        .get(&format!("/ai/requests/{}", ids[1].0), token(&owner))
        .await
        .expect(200);
    assert!(
        enhanced.body.to_string().contains("[redacted]"),
        "{}",
        enhanced.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_rebuilds_the_same_ai_request_rows_for_requests_in_every_state() {
    let model = Model::start().await;
    let key = secret_key();
    let mut stack = Stack::start(&model, &key).await;
    let (_, ids) = every_state(&mut stack, &model, &key).await;

    // The live projection, once it has every event.
    let pool = event_store::setup::pool(&stack.db.url, 2).expect("pool");
    let head = newest_event(&pool).await;
    eventually(
        "the projection reaches the newest event",
        Duration::from_secs(30),
        || async {
            let client = pool.get().await.ok()?;
            let row = client
                .query_one(
                    "SELECT tx, seq FROM rm.checkpoints WHERE name = 'read_models'",
                    &[],
                )
                .await
                .ok()?;
            let at = event_store::Position {
                tx: row.get::<_, i64>(0) as u64,
                seq: row.get::<_, i64>(1) as u64,
            };
            (at >= head).then_some(())
        },
    )
    .await;
    let live = dump(&stack.db.url).await;
    let ai_rows = |d: &[(String, Vec<Value>)]| -> Vec<Value> {
        d.iter()
            .find(|(t, _)| t == "ai_requests")
            .map(|(_, rows)| rows.clone())
            .unwrap_or_default()
    };
    let rows = ai_rows(&live);
    assert_eq!(rows.len(), ids.len(), "{rows:#?}");
    for (id, state) in &ids {
        let row = rows
            .iter()
            .find(|r| r["id"] == id.as_str())
            .unwrap_or_else(|| panic!("no row for {id}"));
        let (status, applied) = match *state {
            "applied" => ("succeeded", true),
            other => (other, false),
        };
        assert_eq!(row["status"], status, "{row}");
        assert_eq!(row["document"]["applied_at"].is_string(), applied, "{row}");
    }

    let fresh = TestDatabase::create().await.expect("replay target");
    run(
        &["replay", "--into", &fresh.url],
        &stack.db.url,
        &[],
        Duration::from_secs(120),
    )
    .await
    .expect_success();
    let replayed = dump(&fresh.url).await;
    let ai_tables = |d: &[(String, Vec<Value>)]| -> Vec<(String, Vec<Value>)> {
        d.iter()
            .filter(|(t, _)| t.starts_with("ai_"))
            .cloned()
            .collect()
    };
    assert_eq!(
        ai_tables(&live).len(),
        4,
        "rm.ai_models, rm.ai_prompt_versions, rm.ai_requests and rm.ai_usage"
    );
    assert_same_read_models(&ai_tables(&live), &ai_tables(&replayed), "replayed rm.ai_*");
    assert_same_read_models(&live, &replayed, "every replayed read model");
}
