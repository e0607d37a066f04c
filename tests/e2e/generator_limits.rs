//! The generator cannot hurt the server (issue 10, H2 and L4): hostile schemas are refused when
//! written or generated within seconds in a child process under its memory limit while another
//! user's reads stay fast; a generation over the memory limit fails once, for good; and the
//! verification cache must be private.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::TestDatabase;
use tests::process::{Backforge, eventually};

/// The three schemas of the finding, each one field of a `crud` entity.
fn hostile_fields() -> Vec<(&'static str, Value)> {
    vec![
        (
            "10,000 characters of [abc]",
            json!({"name": "code", "type": "string", "min_length": 10000, "max_length": 10000, "pattern": "[abc]"}),
        ),
        (
            "ten thousand nested a's",
            json!({"name": "code", "type": "string", "max_length": 10000, "pattern": "^(?:(?:(?:a{10}){10}){10}){10}$"}),
        ),
        (
            "a text of a billion characters",
            json!({"name": "body", "type": "text", "max_length": 1_000_000_000u32}),
        ),
    ]
}

fn project_with(name: &str, fields: Vec<Value>) -> Value {
    json!({"name": name, "features": [{"name": "Things", "feature_type": "crud",
        "schema_definition": {"entity": "thing", "fields": fields}}]})
}

/// Requests a generation and waits (up to `deadline`) until it has finished; returns its document.
async fn generate(serve: &Backforge, token: &str, project: &str, deadline: Duration) -> Value {
    let requested = serve
        .post(
            &format!("/projects/{project}/generations"),
            Some(token),
            json!({}),
        )
        .await
        .expect(202);
    let id = requested.body["id"].as_str().expect("id").to_owned();
    eventually("the generation finishes", deadline, || async {
        let answer = serve.get(&format!("/generations/{id}"), Some(token)).await;
        matches!(answer.body["status"].as_str(), Some("succeeded" | "failed"))
            .then_some(answer.body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_schemas_are_refused_or_generated_quickly_while_another_user_reads() {
    let db = TestDatabase::create().await.expect("db");
    // `serve` runs everything in one process, the worker included: the finding's setting.
    let serve = Backforge::start("serve", &db.url, &[]).await;
    let (mallory, _) = serve.register("Mallory").await;
    let (rita, _) = serve.register("Rita").await;
    let mine = serve
        .post(
            "/projects",
            Some(&rita.access_token),
            json!({"name": "Rita's"}),
        )
        .await
        .expect(201);
    let rita_project = mine.body["id"].as_str().expect("id").to_owned();
    eventually(
        "Rita's project is readable",
        Duration::from_secs(10),
        || async {
            let answer = serve
                .get(
                    &format!("/projects/{rita_project}"),
                    Some(&rita.access_token),
                )
                .await;
            (answer.status == 200).then_some(())
        },
    )
    .await;

    // Rita reads her project over and over; every read is timed.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (api, token, stop) = ((*serve).clone(), rita.access_token.clone(), stop.clone());
        let path = format!("/projects/{rita_project}");
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            let mut reads = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                api.get(&path, Some(&token)).await.expect(200);
                slowest = slowest.max(t.elapsed());
                reads += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (reads, slowest)
        })
    };

    let mut outcomes = Vec::new();
    for (what, field) in hostile_fields() {
        let answer = serve
            .post(
                "/projects",
                Some(&mallory.access_token),
                project_with(what, vec![field]),
            )
            .await;
        if answer.status == 422 {
            let pointers = answer.body["errors"].to_string();
            assert!(
                pointers.contains("/features/0/schema_definition/fields/0/"),
                "{what}: the refusal points at the field: {}",
                answer.body
            );
            outcomes.push(format!("{what}: refused"));
            continue;
        }
        assert_eq!(answer.status, 201, "{what}: {}", answer.body);
        let project = answer.body["id"].as_str().expect("id").to_owned();
        let t = Instant::now();
        let done = generate(
            &serve,
            &mallory.access_token,
            &project,
            Duration::from_secs(60),
        )
        .await;
        let took = t.elapsed();
        assert_eq!(done["status"], "succeeded", "{what}: {done}");
        assert!(
            took < Duration::from_secs(10),
            "{what}: generated in {took:?}, more than 10 s"
        );
        outcomes.push(format!("{what}: generated in {took:?}"));
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, slowest) = reader.await.expect("reader");
    assert!(reads > 0);
    assert!(
        slowest < Duration::from_secs(1),
        "another user's read took {slowest:?} while: {outcomes:?}"
    );
}

/// The (pending, waiting for an ack, redelivered) counts summed over the jobs stream's
/// consumers (the worker's is the only one), read whatever its name.
async fn job_consumers(prefix: &str) -> (u64, usize, usize) {
    use futures::StreamExt;
    let client = async_nats::connect(tests::nats::shared_url())
        .await
        .expect("nats");
    let js = async_nats::jetstream::new(client);
    let stream = js
        .get_stream(format!("{}_JOBS", prefix.to_uppercase()))
        .await
        .expect("the jobs stream");
    let infos: Vec<_> = stream.consumers().collect().await;
    assert!(!infos.is_empty(), "the worker has a consumer");
    infos.into_iter().fold((0, 0, 0), |sum, info| {
        let info = info.expect("consumer info");
        (
            sum.0 + info.num_pending,
            sum.1 + info.num_ack_pending,
            sum.2 + info.num_redelivered,
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_over_the_memory_limit_fails_once_and_for_good() {
    let db = TestDatabase::create().await.expect("db");
    let serve = Backforge::start(
        "serve",
        &db.url,
        &[("BACKFORGE_GENERATOR_MEMORY_BYTES", "167772160")],
    )
    .await;
    let (owner, _) = serve.register("Owner").await;
    let token = owner.access_token.as_str();
    // A small project fits in 160 MiB (a debug build's child needs ~84 MiB of address space for
    // one entity: its own mapped text is ~60 MB).
    let small = serve
        .post(
            "/projects",
            Some(token),
            project_with("Small", vec![json!({"name": "label", "type": "string"})]),
        )
        .await
        .expect(201);
    let small = small.body["id"].as_str().expect("id").to_owned();
    let done = generate(&serve, token, &small, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    // Four entities of a hundred 10,000-character fields do not (they need over 400 MiB): their
    // test data alone is tens of megabytes per entity.
    let features: Vec<Value> = (0..4)
        .map(|e| {
            let fields: Vec<Value> = (0..100)
                .map(|f| json!({"name": format!("f{f}"), "type": "string", "min_length": 10000, "max_length": 10000}))
                .collect();
            json!({"name": format!("Wide {e}"), "feature_type": "crud",
                "schema_definition": {"entity": format!("wide_{e}"), "fields": fields}})
        })
        .collect();
    let large = serve
        .post(
            "/projects",
            Some(token),
            json!({"name": "Large", "features": features}),
        )
        .await
        .expect(201);
    let large = large.body["id"].as_str().expect("id").to_owned();
    let done = generate(&serve, token, &large, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("exceeded its memory limit of 160 MiB"),
        "a clear reason: {done}"
    );
    assert_eq!(done["attempt"], 1, "failed on its first delivery: {done}");
    let generate_step = done["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "generate"))
        .expect("a generate step");
    assert_eq!(generate_step["status"], "failed");

    // The job is settled: nothing waits for an ack or a redelivery.
    let prefix = tests::process::nats_prefix(&db.url);
    let counts = eventually(
        "the job is acknowledged",
        Duration::from_secs(10),
        || async {
            let counts = job_consumers(&prefix).await;
            (counts.0 == 0 && counts.1 == 0).then_some(counts)
        },
    )
    .await;
    assert_eq!(counts.2, 0, "no job was redelivered: {counts:?}");
    // And the server is fine.
    serve.get("/auth/profile", Some(token)).await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_refuses_a_cache_directory_other_users_can_write() {
    let db = TestDatabase::create().await.expect("db");
    let shared =
        std::env::temp_dir().join(format!("bf-shared-venvs-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&shared).expect("dir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let planted = shared.join("planted");
    std::fs::write(&planted, b"x").expect("plant");
    let dir = shared.display().to_string();
    let serve = Backforge::start("serve", &db.url, &[("BACKFORGE_VENV_DIR", dir.as_str())]).await;
    let (owner, _) = serve.register("Owner").await;
    let token = owner.access_token.as_str();
    let project = serve
        .post(
            "/projects",
            Some(token),
            project_with("Verified", vec![json!({"name": "label", "type": "string"})]),
        )
        .await
        .expect(201);
    let project = project.body["id"].as_str().expect("id").to_owned();
    let requested = serve
        .post(
            &format!("/projects/{project}/generations"),
            Some(token),
            json!({"verify": true}),
        )
        .await
        .expect(202);
    let id = requested.body["id"].as_str().expect("id").to_owned();
    let done = eventually(
        "the generation finishes",
        Duration::from_secs(60),
        || async {
            let answer = serve.get(&format!("/generations/{id}"), Some(token)).await;
            matches!(answer.body["status"].as_str(), Some("succeeded" | "failed"))
                .then_some(answer.body)
        },
    )
    .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"]
            .as_str()
            .is_some_and(|e| e.contains("writable by other users")),
        "{done}"
    );
    assert_eq!(
        std::fs::read_dir(&shared).expect("list").count(),
        1,
        "nothing was written into the shared directory"
    );
    let _ = std::fs::remove_dir_all(&shared);
}
