//! Feed consumers never stop silently and never skip on their own: a poison event stalls the
//! projection and the relays visibly (metrics, readiness) until an operator parks it, after which
//! later events of the same stream apply and replay skips it too; relays killed mid-stream lose
//! and skip nothing; a relay whose NATS server cannot carry the largest event refuses to start;
//! the sweeper fails generations stuck in the queue.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use deadpool_postgres::Pool;
use event_store::Position;
use reqwest::Method;
use serde_json::{Value, json};
use tests::nats::{PrivateNats, read_stream, shared_url};
use tests::process::{Backforge, eventually, nats_prefix, position_of, run};
use tests::{TestDatabase, TestUser};
use tokio::time::Instant;
use uuid::Uuid;

use crate::processes::{assert_same_read_models, dump, jitter, newest_event, write_until};

fn token(user: &TestUser) -> Option<&str> {
    Some(user.access_token.as_str())
}

fn pool(url: &str) -> Pool {
    event_store::setup::pool(url, 2).expect("pool")
}

/// Stores an event straight into the `events` table, behind the back of every writer and of
/// the append path's checks: how a poison event (one a consumer cannot process) gets in.
async fn insert_raw(pool: &Pool, stream: &str, version: i64, event_type: &str, data: &str) -> Uuid {
    let event_id = Uuid::now_v7();
    pool.get()
        .await
        .expect("client")
        .execute(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata)
             VALUES ($1, $2, $3, $4, 1, $5::text::json, '{}'::json)",
            &[&stream, &version, &event_id, &event_type, &data],
        )
        .await
        .expect("raw insert");
    event_id
}

/// `/health/ready` of `process`, whatever its status.
async fn ready(process: &Backforge) -> (u16, Value) {
    let answer = process
        .send_unchecked(Method::GET, "//health/ready", None, None, &[])
        .await;
    (answer.status.as_u16(), answer.body)
}

async fn metrics(process: &Backforge) -> String {
    let answer = process
        .send_unchecked(Method::GET, "//metrics", None, None, &[])
        .await;
    assert_eq!(answer.status.as_u16(), 200, "/metrics: {}", answer.body);
    answer.body.as_str().unwrap_or_default().to_owned()
}

/// The value of the series `name{labels}` in a metrics text.
fn series(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels))
        .and_then(|rest| rest.trim().parse().ok())
}

fn consumer<'a>(ready: &'a Value, name: &str) -> &'a Value {
    &ready["checks"]["consumers"][name]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_stalls_serve_visibly_until_it_is_parked_then_later_events_apply() {
    let db = TestDatabase::create().await.expect("test database");
    let pg = pool(&db.url);
    let app = Backforge::start("serve", &db.url, &[]).await;
    let (alice, _) = app.register("Alice").await;
    let created = app
        .post("/projects", token(&alice), json!({"name": "Victim"}))
        .await
        .expect(201);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/projects/{id}");
    app.get_at(&path, token(&alice), &position_of(&created))
        .await
        .expect(200);

    // Given a version 2 no consumer can decode, and a good version 3 of the same stream
    let stream = format!("project-{id}");
    let poison = insert_raw(&pg, &stream, 2, "ProjectUpdated", r#"{"project_id": 5}"#).await;
    let later = insert_raw(
        &pg,
        &stream,
        3,
        "ProjectUpdated",
        &json!({"project_id": id, "name": "After the poison", "updated_at": "2026-01-01T00:00:00Z"})
            .to_string(),
    )
    .await;
    // And another user's write after them
    let (bob, bob_at) = app.register("Bob").await;

    // Then the projection and the events relay stall on it, and say so
    let stalled = eventually(
        "serve reports the projection and the events relay stalled",
        Duration::from_secs(20),
        || async {
            let (status, body) = ready(&app).await;
            let stalled = |name| consumer(&body, name)["status"] == json!("stalled");
            // The jobs relay must be moving (it is "stalled" only until NATS connects at start).
            let jobs_ok = consumer(&body, "nats_jobs")["status"] == json!("ok");
            (status == 200 && stalled("read_models") && stalled("nats_events") && jobs_ok)
                .then_some(body)
        },
    )
    .await;
    assert_eq!(stalled["status"], json!("degraded"), "{stalled}");
    let read_models = consumer(&stalled, "read_models");
    assert_eq!(read_models["event_id"], json!(poison), "{stalled}");
    assert!(read_models["since"].is_string(), "{stalled}");
    assert!(
        read_models["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cannot be decoded")),
        "{stalled}"
    );
    assert_eq!(consumer(&stalled, "nats_jobs")["status"], json!("ok"));
    let text = eventually(
        "the lag grows while stalled",
        Duration::from_secs(10),
        || async {
            let text = metrics(&app).await;
            let lag = series(
                &text,
                "backforge_projection_lag_seconds{projection=\"read_models\"}",
            )?;
            (lag > 0.0).then_some(text)
        },
    )
    .await;
    assert_eq!(
        series(
            &text,
            "backforge_consumer_stalled{consumer=\"read_models\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "backforge_consumer_stalled{consumer=\"nats_jobs\"}"),
        Some(0.0)
    );
    assert!(
        series(
            &text,
            "backforge_consumer_lag_seconds{consumer=\"nats_events\"}"
        )
        .is_some()
    );
    // It never skipped: Bob is not in the read models yet.
    let count: i64 = pg
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM rm.users WHERE id = $1",
            &[&bob.id.parse::<Uuid>().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        count, 0,
        "the projection must not move past the poison on its own"
    );

    // When the operator parks it for every consumer
    let parked = run(
        &[
            "consumers",
            "park",
            "all",
            &poison.to_string(),
            "--reason",
            "undecodable test event",
        ],
        &db.url,
        &[],
        Duration::from_secs(30),
    )
    .await
    .expect_success();
    assert!(parked.output.contains("parked event"), "{}", parked.output);
    let listed = run(
        &["consumers", "list"],
        &db.url,
        &[],
        Duration::from_secs(30),
    )
    .await
    .expect_success();
    assert!(
        listed.output.contains(&poison.to_string()),
        "{}",
        listed.output
    );
    assert!(listed.output.contains("operator:"), "{}", listed.output);
    assert!(
        listed.output.contains("undecodable test event"),
        "{}",
        listed.output
    );
    let again = run(
        &[
            "consumers",
            "park",
            "all",
            &poison.to_string(),
            "--reason",
            "twice",
        ],
        &db.url,
        &[],
        Duration::from_secs(30),
    )
    .await
    .expect_success();
    assert!(again.output.contains("already"), "{}", again.output);
    let unknown = run(
        &[
            "consumers",
            "park",
            "projector",
            &poison.to_string(),
            "--reason",
            "x",
        ],
        &db.url,
        &[],
        Duration::from_secs(30),
    )
    .await;
    assert!(!unknown.status.success(), "{}", unknown.output);

    // Then everything moves again: the later version applies on the state without the poison,
    // and Bob's registration is projected
    let recovered = eventually("serve is ready again", Duration::from_secs(60), || async {
        let (status, body) = ready(&app).await;
        (status == 200 && body["status"] == json!("ready")).then_some(body)
    })
    .await;
    assert_eq!(consumer(&recovered, "read_models")["status"], json!("ok"));
    let project = app.get(&path, token(&alice)).await.expect(200);
    assert_eq!(project.body["name"], json!("After the poison"));
    assert_eq!(project.body["version"], json!(3));
    app.get_at("/auth/profile", token(&bob), &bob_at)
        .await
        .expect(200);
    let text = metrics(&app).await;
    assert_eq!(
        series(
            &text,
            "backforge_consumer_stalled{consumer=\"read_models\"}"
        ),
        Some(0.0)
    );

    // The park is audited in the operations stream, by the operator
    let audit = pg
        .get()
        .await
        .unwrap()
        .query(
            "SELECT event_type, data::jsonb FROM events WHERE stream_id = 'operations'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "one park, one audit event");
    let data: Value = audit[0].get(1);
    assert_eq!(audit[0].get::<_, String>(0), "EventParked");
    assert_eq!(data["event_id"], json!(poison));
    assert_eq!(data["consumer"], json!("all"));
    assert!(data["parked_by"].as_str().unwrap().starts_with("operator:"));

    // The events relay published the later event and never the poison
    let prefix = nats_prefix(&db.url);
    let stream_name = format!("{}_EVENTS", prefix.to_uppercase());
    let ids = eventually(
        "the later event is published",
        Duration::from_secs(20),
        || async {
            let messages = read_stream(&shared_url(), &stream_name).await.ok()?;
            let ids: HashSet<String> = messages.into_iter().filter_map(|(_, id, _)| id).collect();
            ids.contains(&later.to_string()).then_some(ids)
        },
    )
    .await;
    assert!(!ids.contains(&poison.to_string()));

    // A replay skips exactly the parked event and builds the same read models
    let fresh = TestDatabase::create().await.expect("replay target");
    let live = dump(&db.url).await;
    run(
        &["replay", "--into", &fresh.url],
        &db.url,
        &[],
        Duration::from_secs(60),
    )
    .await
    .expect_success();
    assert_same_read_models(&live, &dump(&fresh.url).await, "replay minus parked events");

    // Unparking lifts the park (the consumers have passed the event; they keep what they did)
    let unparked = run(
        &["consumers", "unpark", "all", &poison.to_string()],
        &db.url,
        &[],
        Duration::from_secs(30),
    )
    .await
    .expect_success();
    assert!(unparked.output.contains("unparked"), "{}", unparked.output);
    let listed = run(
        &["consumers", "list"],
        &db.url,
        &[],
        Duration::from_secs(30),
    )
    .await
    .expect_success();
    assert!(
        listed.output.contains("no parked events"),
        "{}",
        listed.output
    );
    assert!(
        !app.log().contains("Stack backtrace"),
        "a stalled consumer logs its cause chain, never a backtrace\n{}",
        app.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_projector_process_answers_503_and_exports_its_lag_also_after_a_restart() {
    let db = TestDatabase::create().await.expect("test database");
    let pg = pool(&db.url);
    let commands = Backforge::start("command-api", &db.url, &[]).await;
    let mut projector = Backforge::start("projector", &db.url, &[]).await;
    let (alice, _) = commands.register("Alice").await;
    let created = commands
        .post("/projects", token(&alice), json!({"name": "Victim"}))
        .await
        .expect(201);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let poison = insert_raw(&pg, &format!("project-{id}"), 2, "NoSuchEvent", "{}").await;

    for round in ["first run", "after a restart"] {
        let body = eventually(
            &format!("the projector answers 503 for its stalled projection ({round})"),
            Duration::from_secs(20),
            || async {
                let (status, body) = ready(&projector).await;
                (status == 503 && consumer(&body, "read_models")["status"] == json!("stalled"))
                    .then_some(body)
            },
        )
        .await;
        assert_eq!(
            consumer(&body, "read_models")["event_id"],
            json!(poison),
            "{body}"
        );
        let text = eventually(
            &format!("the lag is exported and grows ({round})"),
            Duration::from_secs(10),
            || async {
                let text = metrics(&projector).await;
                let lag = series(
                    &text,
                    "backforge_projection_lag_seconds{projection=\"read_models\"}",
                )?;
                (lag > 0.0).then_some(text)
            },
        )
        .await;
        assert_eq!(
            series(
                &text,
                "backforge_consumer_stalled{consumer=\"read_models\"}"
            ),
            Some(1.0),
            "{round}"
        );
        if round == "first run" {
            projector.kill();
            projector = Backforge::start("projector", &db.url, &[]).await;
        }
    }
    // One line per backoff step, never a backtrace.
    let log = projector.log();
    assert!(!log.contains("Stack backtrace"), "{}", projector.log_tail());
    assert!(
        log.contains("stays where it is and retries"),
        "{}",
        projector.log_tail()
    );

    run(
        &[
            "consumers",
            "park",
            "read_models",
            &poison.to_string(),
            "--reason",
            "unknown type",
        ],
        &db.url,
        &[],
        Duration::from_secs(30),
    )
    .await
    .expect_success();
    // A park is per consumer: the projection moves on, the events relay still waits for its own.
    let body = eventually(
        "the projection moves again",
        Duration::from_secs(60),
        || async {
            let (_, body) = ready(&projector).await;
            (consumer(&body, "read_models")["status"] == json!("ok")).then_some(body)
        },
    )
    .await;
    assert_eq!(
        consumer(&body, "nats_events")["status"],
        json!("stalled"),
        "{body}"
    );
    run(
        &[
            "consumers",
            "park",
            "nats_events",
            &poison.to_string(),
            "--reason",
            "unknown type",
        ],
        &db.url,
        &[],
        Duration::from_secs(30),
    )
    .await
    .expect_success();
    eventually(
        "the projector is ready again",
        Duration::from_secs(60),
        || async {
            let (status, _) = ready(&projector).await;
            (status == 200).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_refuses_a_server_whose_max_payload_is_too_small_and_the_sweeper_fails_queued_generations()
 {
    let db = TestDatabase::create().await.expect("test database");
    let mut nats = PrivateNats::new().with_max_payload(64 * 1024);
    nats.start();
    let app = Backforge::start(
        "serve",
        &db.url,
        &[
            ("NATS_URL", &nats.url()),
            ("BACKFORGE_GENERATION_QUEUE_TIMEOUT", "2s"),
        ],
    )
    .await;
    let body = eventually(
        "both relays refuse to start",
        Duration::from_secs(20),
        || async {
            let (status, body) = ready(&app).await;
            let refused = |name| {
                consumer(&body, name)["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("max_payload (65536 bytes)"))
            };
            (status == 200 && refused("nats_events") && refused("nats_jobs")).then_some(body)
        },
    )
    .await;
    assert_eq!(body["status"], json!("degraded"), "{body}");
    assert_eq!(consumer(&body, "nats_events")["status"], json!("stalled"));
    assert_eq!(consumer(&body, "read_models")["status"], json!("ok"));

    // No job is ever published, so the generation waits in `requested` until the sweeper ends it.
    let (owner, _) = app.register("Gen").await;
    let created = app
        .post(
            "/projects",
            token(&owner),
            json!({"name": "P", "features": [{"name": "Things", "feature_type": "crud", "schema_definition":
                {"entity": "thing", "fields": [{"name": "label", "type": "string", "required": true}]}}]}),
        )
        .await
        .expect(201);
    let id = created.body["id"].as_str().unwrap();
    let requested = app
        .post(
            &format!("/projects/{id}/generations"),
            token(&owner),
            json!({"verify": false}),
        )
        .await
        .expect(202);
    let generation = format!("/generations/{}", requested.body["id"].as_str().unwrap());
    let failed = eventually(
        "the sweeper fails the queued generation",
        Duration::from_secs(30),
        || async {
            let answer = app.get(&generation, token(&owner)).await;
            (answer.status.as_u16() == 200 && answer.body["status"] == json!("failed"))
                .then_some(answer.body)
        },
    )
    .await;
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("BACKFORGE_GENERATION_QUEUE_TIMEOUT")),
        "{failed}"
    );
    // Said once, not once per check.
    let refusals = app.log().matches("relay refuses to start").count();
    assert_eq!(refusals, 2, "one refusal per relay\n{}", app.log_tail());
}

/// Every event id published on `stream` with its stream version, in stream order.
async fn published(stream: &str) -> Vec<(String, Value)> {
    read_stream(&shared_url(), stream)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(_, id, payload)| {
            (
                id.unwrap_or_default(),
                serde_json::from_slice(&payload).unwrap_or(Value::Null),
            )
        })
        .collect()
}

async fn relay_checkpoint(pool: &Pool, name: &str) -> Position {
    let row = pool
        .get()
        .await
        .unwrap()
        .query_opt(
            "SELECT tx, seq FROM relay_checkpoints WHERE name = $1",
            &[&name],
        )
        .await
        .unwrap();
    row.map_or(Position::START, |r| Position {
        tx: r.get::<_, i64>(0) as u64,
        seq: r.get::<_, i64>(1) as u64,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_killed_again_and_again_mid_stream_lose_nothing_and_skip_nothing() {
    let db = TestDatabase::create().await.expect("test database");
    let pg = pool(&db.url);
    let commands = Backforge::start("command-api", &db.url, &[]).await;
    // Two processes, so a killed leader's relays are sometimes taken over, sometimes restarted.
    let mut relays = [
        Backforge::start("projector", &db.url, &[]).await,
        Backforge::start("projector", &db.url, &[]).await,
    ];
    let mut users = Vec::new();
    for name in ["Ann", "Ben", "Cat"] {
        users.push(commands.register(name).await.0);
    }
    let until = Instant::now() + Duration::from_secs(4);
    let mut writers: Vec<_> = users
        .iter()
        .map(|me| {
            let others: Vec<TestUser> = users.iter().filter(|u| u.id != me.id).cloned().collect();
            tokio::spawn(write_until(commands.api.clone(), me.clone(), others, until))
        })
        .collect();
    // And generation requests, so the jobs relay has work too.
    let requester = {
        let api = commands.api.clone();
        let me = users[0].clone();
        tokio::spawn(async move {
            let mut n = 0usize;
            while Instant::now() < until {
                let created = api
                    .post(
                        "/projects",
                        token(&me),
                        json!({"name": format!("gen {n}"), "features": [{"name": "Things",
                        "feature_type": "crud", "schema_definition": {"entity": "thing",
                        "fields": [{"name": "label", "type": "string", "required": true}]}}]}),
                    )
                    .await
                    .expect(201);
                let id = created.body["id"].as_str().unwrap().to_owned();
                api.post(
                    &format!("/projects/{id}/generations"),
                    token(&me),
                    json!({"verify": false}),
                )
                .await
                .expect(202);
                n += 1;
            }
            0
        })
    };
    writers.push(requester);

    let mut kills = 0;
    while kills < 5 || writers.iter().any(|w| !w.is_finished()) {
        tokio::time::sleep(jitter(300, 700)).await;
        let victim = kills % relays.len();
        relays[victim].kill();
        kills += 1;
        relays[victim] = Backforge::start("projector", &db.url, &[]).await;
    }
    for writer in writers {
        writer.await.expect("writer");
    }

    // Both relays catch up with everything committed.
    let head = newest_event(&pg).await;
    for name in ["nats_events", "nats_jobs"] {
        eventually(
            &format!("{name} reaches {head}"),
            Duration::from_secs(30),
            || async { (relay_checkpoint(&pg, name).await >= head).then_some(()) },
        )
        .await;
    }
    let client = pg.get().await.unwrap();
    let expected: HashSet<String> = client
        .query(
            "SELECT event_id::text FROM events WHERE stream_id NOT LIKE 'email-%' AND stream_id <> 'operations'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let jobs: HashSet<String> = client
        .query(
            "SELECT event_id::text FROM events WHERE event_type = 'GenerationRequested'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!jobs.is_empty(), "generations were requested");

    let prefix = nats_prefix(&db.url).to_uppercase();
    // A read of the stream may come back short while the server is busy: read until it holds
    // as many messages as expected (or the deadline passes), then compare.
    let deadline = Instant::now() + Duration::from_secs(15);
    let events = loop {
        let events = published(&format!("{prefix}_EVENTS")).await;
        if events.len() >= expected.len() || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ids: Vec<&String> = events.iter().map(|(id, _)| id).collect();
    let distinct: HashSet<String> = ids.iter().map(|s| (*s).clone()).collect();
    assert_eq!(distinct.len(), ids.len(), "no event is published twice");
    let missing: Vec<&String> = expected.difference(&distinct).collect();
    let extra: Vec<&String> = distinct.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "every event is published, none skipped: {} of {} missing {missing:?}, extra {extra:?}",
        missing.len(),
        expected.len()
    );
    // In the order of each stream.
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for (_, doc) in &events {
        let subject = doc["source"].as_str().unwrap_or_default().to_owned();
        let version = doc["streamversion"].as_u64().unwrap_or_default();
        let before = last.insert(subject.clone(), version).unwrap_or(0);
        assert!(
            version > before,
            "{subject}: version {version} after {before}"
        );
    }
    let published_jobs: HashSet<String> = published(&format!("{prefix}_JOBS"))
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(published_jobs, jobs, "one job per requested generation");
    eprintln!(
        "{kills} relay kills; {} events and {} jobs published once each",
        distinct.len(),
        jobs.len()
    );
}
