//! Poison-proofing over HTTP against the real binary: whatever the command side accepts, the
//! projector and the relays process; what they could not is refused with a clear 4xx.
//!
//! These drive `backforge serve` as a child process, so they also run against an older binary
//! (`BACKFORGE_BIN=<path>`), which is how the findings were shown to fail before the fix.

use std::time::Duration;

use event_store::{AppendRefusal, EventStore, ExpectedVersion, NewEvent, StoreError, StreamAppend};
use reqwest::Method;
use serde_json::{Value, json};
use tests::TestDatabase;
use tests::nats::{read_stream, shared_url};
use tests::process::{Backforge, eventually, nats_prefix, position_of};
use uuid::Uuid;

fn crud_feature(entity: &str) -> Value {
    json!({"name": entity, "feature_type": "crud", "schema_definition":
        {"entity": entity, "fields": [{"name": "title", "type": "string"}]}})
}

/// Every write route, each with a NUL in one of its strings (the pointer it must be refused at).
fn poisoned_writes(
    project: &str,
    feature: &str,
    member: &str,
) -> Vec<(Method, String, Value, &'static str)> {
    let nul = "a\u{0}b";
    vec![
        (
            Method::POST,
            "/auth/register".into(),
            json!({"email": "x@example.com", "password": "correct horse battery", "name": nul}),
            "/name",
        ),
        (
            Method::POST,
            "/auth/login".into(),
            json!({"email": "x@example.com", "password": nul}),
            "/password",
        ),
        (
            Method::POST,
            "/auth/refresh".into(),
            json!({"refresh_token": nul}),
            "/refresh_token",
        ),
        (
            Method::POST,
            "/auth/logout".into(),
            json!({"refresh_token": nul}),
            "/refresh_token",
        ),
        (
            Method::PUT,
            "/auth/profile".into(),
            json!({"name": nul}),
            "/name",
        ),
        (
            Method::POST,
            "/auth/change-password".into(),
            json!({"current_password": "correct horse battery", "new_password": nul}),
            "/new_password",
        ),
        (
            Method::POST,
            "/projects".into(),
            json!({"name": "poison", "description": nul}),
            "/description",
        ),
        (
            Method::POST,
            "/projects".into(),
            json!({"name": "p", "features": [{"name": "X", "feature_type": "crud", "schema_definition":
                {"entity": "x", "fields": [{"name": "t", "type": "string", "default": nul}]}}]}),
            "/features/0/schema_definition/fields/0/default",
        ),
        (
            Method::PUT,
            format!("/projects/{project}"),
            json!({"description": nul}),
            "/description",
        ),
        (
            Method::POST,
            format!("/projects/{project}/features"),
            json!({"name": "F", "feature_type": "auth", "configuration": {"k": nul}}),
            "/configuration/k",
        ),
        (
            Method::PUT,
            format!("/projects/{project}/features/{feature}"),
            json!({"name": nul}),
            "/name",
        ),
        (
            Method::PUT,
            format!("/projects/{project}/members/{member}"),
            json!({"role": nul}),
            "/role",
        ),
        (
            Method::POST,
            format!("/projects/{project}/generations"),
            json!({"target": nul}),
            "/target",
        ),
        // In a key, too.
        (
            Method::PUT,
            format!("/projects/{project}"),
            json!({"na\u{0}me": "x"}),
            "/na\u{FFFD}me",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_anywhere_in_any_body_is_refused_and_the_projector_keeps_moving_for_everyone() {
    let db = TestDatabase::create().await.expect("database");
    let serve = Backforge::start("serve", &db.url, &[]).await;
    let (mallory, _) = serve.register("Mallory").await;
    let token = Some(mallory.access_token.as_str());
    let (other, _) = serve.register("Victim").await;
    let created = serve
        .post(
            "/projects",
            token,
            json!({"name": "Target", "features": [crud_feature("item")]}),
        )
        .await
        .expect(201);
    let project = created.body["id"].as_str().expect("id").to_owned();
    let at = position_of(&created);
    let read = serve
        .get_at(&format!("/projects/{project}"), token, &at)
        .await
        .expect(200);
    let feature = read.body["features"][0]["id"]
        .as_str()
        .expect("feature id")
        .to_owned();

    for (method, path, body, pointer) in poisoned_writes(&project, &feature, &other.id) {
        let answer = serve
            .send(method.clone(), &path, token, Some(body), &[])
            .await;
        assert_eq!(
            answer.status.as_u16(),
            422,
            "{method} {path}: {}",
            answer.body
        );
        assert_eq!(
            answer.body["errors"][0]["field"],
            json!(pointer),
            "{method} {path}: {}",
            answer.body
        );
    }

    // L1: a NUL echoed into a 422 (an unknown field's name) with an Idempotency-Key used to answer
    // 500 and leave the key in flight for a minute. Now the refusal comes before the key is
    // claimed, and the same key is free for the corrected request at once.
    let key = [("Idempotency-Key", "poison-then-fixed")];
    for poisoned in [
        json!({"name": "p", "na\u{0}me": "x"}),
        json!({"name": "p", "description": "a\u{0}b"}),
    ] {
        let refused = serve
            .send(Method::POST, "/projects", token, Some(poisoned), &key)
            .await;
        assert_eq!(refused.status.as_u16(), 422, "{}", refused.body);
    }
    serve
        .send(
            Method::POST,
            "/projects",
            token,
            Some(json!({"name": "p"})),
            &key,
        )
        .await
        .expect(201);

    // Nothing poisoned reached the store, and the read model keeps moving for another user.
    let victim = Some(other.access_token.as_str());
    let theirs = serve
        .post("/projects", victim, json!({"name": "Unaffected"}))
        .await
        .expect(201);
    let id = theirs.body["id"].as_str().expect("id");
    serve
        .get_at(&format!("/projects/{id}"), victim, &position_of(&theirs))
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_refuses_an_event_no_consumer_could_process_whoever_appends_it() {
    let db = TestDatabase::create().await.expect("database");
    event_store::setup::migrate(&db.url).await.expect("migrate");
    let pool = event_store::setup::pool(&db.url, 2).expect("pool");
    let store = event_store::PgEventStore::new(
        pool.clone(),
        std::sync::Arc::new(domain::Upcasters::backforge()),
    )
    .with_max_event_bytes(64 * 1024);
    let event = |data: Value| NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "ProjectUpdated".into(),
        schema_version: 1,
        data,
        metadata: Default::default(),
    };
    let append = |data: Value| {
        vec![StreamAppend::new(
            format!("project-{}", Uuid::new_v4()),
            ExpectedVersion::Any,
            vec![event(data)],
        )]
    };
    match store
        .append(append(json!({"description": "a\u{0}b"})))
        .await
    {
        Err(StoreError::Refused(AppendRefusal::Nul { pointer, .. })) => {
            assert_eq!(pointer, "/description")
        }
        other => panic!("a NUL event was not refused: {other:?}"),
    }
    match store
        .append(append(json!({"description": "x".repeat(70_000)})))
        .await
    {
        Err(StoreError::Refused(AppendRefusal::TooLarge { limit, .. })) => {
            assert_eq!(limit, 64 * 1024)
        }
        other => panic!("an oversized event was not refused: {other:?}"),
    }
    let count: i64 = pool
        .get()
        .await
        .expect("client")
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 0, "a refused append wrote nothing");
}

/// A crud feature of `fields` json fields, each with a default of `default_bytes` bytes.
fn heavy_feature(fields: usize, default_bytes: usize) -> Value {
    let fields: Vec<Value> = (0..fields)
        .map(|i| json!({"name": format!("f{i}"), "type": "json", "default": "x".repeat(default_bytes)}))
        .collect();
    json!({"name": format!("Heavy {}", fields.len()), "feature_type": "crud",
           "schema_definition": {"entity": format!("heavy{}", fields.len()), "fields": fields}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_accepted_event_is_published_and_so_are_later_ones() {
    let db = TestDatabase::create().await.expect("database");
    let serve = Backforge::start("serve", &db.url, &[]).await;
    let (owner, _) = serve.register("Hugo").await;
    let token = Some(owner.access_token.as_str());
    let created = serve
        .post("/projects", token, json!({"name": "Heavy"}))
        .await
        .expect(201);
    let project = created.body["id"].as_str().expect("id").to_owned();

    // The finding: a text default of 1,048,376 characters in a body just under 1 MiB made a
    // CloudEvent over NATS's max_payload, and the relay retried it forever.
    let h1 = json!({"name": "Big", "feature_type": "crud", "schema_definition": {"entity": "big",
        "fields": [{"name": "t", "type": "text", "default": "x".repeat(1_048_376)}]}});
    let refused_h1 = serve
        .send(
            Method::POST,
            &format!("/projects/{project}/features"),
            token,
            Some(h1),
            &[],
        )
        .await;
    assert_eq!(refused_h1.status.as_u16(), 422, "{}", refused_h1.body);

    // From too large down to the first that fits: that one is as large as an event may be, to
    // within one field (about 10 KB of 512 KiB).
    let mut refused = 0;
    let mut accepted = None;
    for fields in (40..=70).rev() {
        let answer = serve
            .send_unchecked(
                Method::POST,
                &format!("/projects/{project}/features"),
                token,
                Some(heavy_feature(fields, 10_000)),
                &[],
            )
            .await;
        match answer.status.as_u16() {
            422 => {
                assert_eq!(
                    answer.body["type"],
                    json!("https://backforge.dev/problems/event-too-large"),
                    "{}",
                    answer.body
                );
                refused += 1;
            }
            201 => {
                accepted = Some(fields);
                break;
            }
            other => panic!("{fields} fields: {other} {}", answer.body),
        }
    }
    assert!(
        refused > 0,
        "no size was refused: the bound was never reached"
    );
    let accepted = accepted.expect("some size was accepted");
    let later = serve
        .put(
            &format!("/projects/{project}"),
            token,
            json!({"name": "Heavy, renamed"}),
        )
        .await
        .expect(200);
    let _ = position_of(&later);

    let stream = format!("{}_EVENTS", nats_prefix(&db.url).to_uppercase());
    let url = shared_url();
    let published = eventually(
        "the heavy FeatureAdded and the later ProjectUpdated on NATS",
        Duration::from_secs(30),
        || {
            let (url, stream) = (url.clone(), stream.clone());
            async move {
                let messages = read_stream(&url, &stream).await.ok()?;
                let types: Vec<(String, usize)> = messages
                    .iter()
                    .filter_map(|(_, _, payload)| {
                        let doc: Value = serde_json::from_slice(payload).ok()?;
                        Some((doc["type"].as_str()?.to_owned(), payload.len()))
                    })
                    .collect();
                let heavy = types.iter().find(|(t, _)| t.ends_with(".FeatureAdded"))?.1;
                types
                    .iter()
                    .any(|(t, _)| t.ends_with(".ProjectUpdated"))
                    .then_some(heavy)
            }
        },
    )
    .await;
    assert!(
        published > 400 * 1024,
        "the published event of {accepted} fields is {published} bytes"
    );
}
