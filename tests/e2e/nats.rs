//! The NATS relays end to end: every event published once as a CloudEvent, without e-mail
//! addresses, in feed order; one project followed on its own subjects; and generation jobs
//! published once NATS comes back after an outage.

use std::time::Duration;

use event_store::EventStore;
use futures::StreamExt;
use messaging::{CloudEvent, GenerationJob, Job, Names, StoredEvent};
use projector::relay::{Relay, RelayKind};
use serde_json::{Value, json};
use tests::TestApp;
use tests::nats::{PrivateNats, delete_streams, read_stream, shared_url, unique_prefix};
use tokio::sync::watch;

fn relay(app: &TestApp, kind: RelayKind, nats: async_nats::Client, prefix: &str) -> Relay {
    Relay::new(
        kind,
        (*app.store).clone(),
        app.db.url.clone(),
        nats,
        Names::new(prefix),
        runtime::metrics::Metrics::new(),
    )
}

/// Polls `stream` until it holds `count` messages or 15 s pass.
async fn wait_for_messages(
    url: &str,
    stream: &str,
    count: usize,
) -> Vec<(String, Option<String>, Vec<u8>)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let messages = read_stream(url, stream).await.unwrap_or_default();
        if messages.len() >= count || tokio::time::Instant::now() > deadline {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_published_once_as_a_cloudevent_without_e_mail_addresses() {
    let app = TestApp::spawn().await;
    let prefix = unique_prefix();
    let url = shared_url();
    let owner = app.register("Ivy").await;
    let created = app
        .post(
            "/projects",
            Some(&owner.access_token),
            json!({"name": "Integrations", "features": [{"name": "Login", "feature_type": "auth"}]}),
        )
        .await
        .expect(201);
    let id = created.body["id"].as_str().expect("id").to_owned();
    app.put(
        &format!("/projects/{id}"),
        Some(&owner.access_token),
        json!({"name": "Renamed"}),
    )
    .await
    .expect(200);

    let client = messaging::connect(&url).await.expect("nats");
    let (stop_tx, stop_rx) = watch::channel(false);
    let events_relay = relay(&app, RelayKind::Events, client, &prefix);
    let task = tokio::spawn(async move { events_relay.run(stop_rx).await });

    // Everything but the e-mail reservation: UserRegistered, ProjectCreated, FeatureAdded, ProjectUpdated.
    let stream = format!("{}_EVENTS", prefix.to_uppercase());
    let messages = wait_for_messages(&url, &stream, 4).await;
    let _ = stop_tx.send(true);
    let _ = task.await;
    assert_eq!(messages.len(), 4, "one message per published event");

    let feed = app
        .store
        .read_feed(event_store::Position::START, 100)
        .await
        .expect("feed");
    let published: Vec<&event_store::RecordedEvent> = feed
        .iter()
        .filter(|e| e.event_type != "EmailReserved")
        .collect();
    for ((subject, msg_id, payload), recorded) in messages.iter().zip(&published) {
        let doc: Value = serde_json::from_slice(payload).expect("json");
        let aggregate = if recorded.stream_id.starts_with("user-") {
            "user"
        } else {
            "project"
        };
        let aggregate_id = recorded.stream_id.split_once('-').expect("id").1;
        assert_eq!(doc["specversion"], "1.0");
        assert_eq!(doc["id"], json!(recorded.event_id), "feed order is kept");
        assert_eq!(
            msg_id.as_deref(),
            Some(recorded.event_id.to_string().as_str()),
            "Nats-Msg-Id is the event id"
        );
        assert_eq!(
            doc["type"],
            format!("{prefix}.{aggregate}.{}", recorded.event_type)
        );
        assert_eq!(
            doc["source"],
            format!("/{prefix}/{aggregate}/{aggregate_id}")
        );
        assert_eq!(doc["subject"], aggregate_id);
        // The project first (`_` for none), so one project can be followed with a wildcard.
        let project = recorded
            .metadata
            .project_id
            .map_or_else(|| "_".to_owned(), |p| p.to_string());
        assert_eq!(
            subject,
            &format!(
                "{prefix}.events.{project}.{aggregate}.{aggregate_id}.{}",
                recorded.event_type
            )
        );
        assert_eq!(
            doc.get("projectid").cloned().unwrap_or(Value::Null),
            json!(recorded.metadata.project_id),
            "the projectid extension is the event's project, absent for none"
        );
        if aggregate == "project" {
            assert_eq!(
                doc["projectid"], aggregate_id,
                "a project's events are its own"
            );
        }
        assert_eq!(doc["datacontenttype"], "application/json");
        assert_eq!(doc["streamversion"], json!(recorded.stream_version));
        assert_eq!(doc["position"], recorded.position.to_token());
        assert_eq!(
            doc["correlationid"],
            json!(recorded.metadata.correlation_id)
        );
        assert!(doc["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(
            !String::from_utf8_lossy(payload).contains(&owner.email),
            "no e-mail address is published"
        );
    }
    let client = app.pool.get().await.expect("client");
    let row = client
        .query_one(
            "SELECT tx, seq FROM relay_checkpoints WHERE name = 'nats_events'",
            &[],
        )
        .await
        .expect("checkpoint");
    let last = feed.last().expect("events").position;
    assert_eq!(
        (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64),
        (last.tx, last.seq),
        "the checkpoint reached the end of the acknowledged prefix"
    );
    delete_streams(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_requested_while_nats_is_down_is_published_once_it_returns() {
    let app = TestApp::spawn().await;
    let prefix = unique_prefix();
    let mut nats = PrivateNats::new();
    let owner = app.register("Noa").await;
    let created = app
        .post(
            "/projects",
            Some(&owner.access_token),
            json!({"name": "Offline", "features": [{"name": "Things", "feature_type": "crud",
                "schema_definition": {"entity": "thing", "fields": [{"name": "label", "type": "string"}]}}]}),
        )
        .await
        .expect(201);
    let id = created.body["id"].as_str().expect("id").to_owned();

    // NATS is down: the relay runs and retries, and the command still succeeds.
    let client = messaging::connect(&nats.url())
        .await
        .expect("a client that retries");
    let (stop_tx, stop_rx) = watch::channel(false);
    let jobs_relay = relay(&app, RelayKind::Jobs, client, &prefix);
    let task = tokio::spawn(async move { jobs_relay.run(stop_rx).await });
    let requested = app
        .post(
            &format!("/projects/{id}/generations"),
            Some(&owner.access_token),
            json!({}),
        )
        .await
        .expect(202);
    let generation_id = requested.body["id"]
        .as_str()
        .expect("generation id")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;

    nats.start();
    let stream = format!("{}_JOBS", prefix.to_uppercase());
    let messages = wait_for_messages(&nats.url(), &stream, 1).await;
    let _ = stop_tx.send(true);
    let _ = task.await;
    assert_eq!(messages.len(), 1, "the job is published exactly once");
    let (subject, msg_id, payload) = &messages[0];
    assert_eq!(subject, &format!("{prefix}.jobs.generation"));
    let job: Value = serde_json::from_slice(payload).expect("json");
    let typed = GenerationJob::from_body(payload).expect("the worker's own type reads the body");
    assert_eq!(typed.generation_id.to_string(), generation_id);
    assert_eq!(job["generation_id"], generation_id);
    assert_eq!(job["project_id"], id);
    assert_eq!(job["project_version"], 2);
    let requested_event = app
        .all_events()
        .await
        .into_iter()
        .filter(|e| e.1 == "GenerationRequested")
        .count();
    assert_eq!(requested_event, 1);
    assert_eq!(
        msg_id.as_deref(),
        job["event_id"].as_str(),
        "Nats-Msg-Id is the event id"
    );
}

/// Receives messages of `subscription` until `count` arrived (or 15 s pass), then whatever else
/// arrives within a short grace period, so a message that should not be there is seen.
async fn receive(
    subscription: &mut async_nats::Subscriber,
    count: usize,
) -> Vec<async_nats::Message> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while out.len() < count {
        match tokio::time::timeout_at(deadline, subscription.next()).await {
            Ok(Some(message)) => out.push(message),
            _ => return out,
        }
    }
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(500), subscription.next()).await
    {
        out.push(message);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_follows_one_project_with_its_generations_and_nothing_of_another() {
    let app = TestApp::spawn().await;
    let prefix = unique_prefix();
    let url = shared_url();
    let names = Names::new(&prefix);
    let owner = app.register("Ada").await;
    let crud = json!([{"name": "Things", "feature_type": "crud",
        "schema_definition": {"entity": "thing", "fields": [{"name": "label", "type": "string"}]}}]);
    let mut projects = Vec::new();
    for name in ["Followed", "Other"] {
        let created = app
            .post(
                "/projects",
                Some(&owner.access_token),
                json!({"name": name, "features": crud.clone()}),
            )
            .await
            .expect(201);
        let id: uuid::Uuid = created.body["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("project id");
        // Each project gets a generation, so each has events on two streams.
        app.post(
            &format!("/projects/{id}/generations"),
            Some(&owner.access_token),
            json!({}),
        )
        .await
        .expect(202);
        projects.push(id);
    }

    // Subscribed before anything is published, as an integrator following the projects would be.
    let listener = async_nats::connect(&url).await.expect("nats");
    let mut followers = Vec::new();
    for project in &projects {
        let subscription = listener
            .subscribe(names.project_events(*project))
            .await
            .expect("subscribe");
        followers.push(subscription);
    }
    listener.flush().await.expect("subscriptions registered");

    let client = messaging::connect(&url).await.expect("nats");
    let (stop_tx, stop_rx) = watch::channel(false);
    let events_relay = relay(&app, RelayKind::Events, client, &prefix);
    let task = tokio::spawn(async move { events_relay.run(stop_rx).await });

    // The feed shows only what lies below the cluster's xmin horizon, which any transaction of
    // another test can hold back for a moment: wait until both generations' requests are visible.
    let mut feed = Vec::new();
    for _ in 0..100 {
        feed = app
            .store
            .read_feed(event_store::Position::START, 1_000)
            .await
            .expect("feed");
        if feed
            .iter()
            .filter(|e| e.event_type == "GenerationRequested")
            .count()
            == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The events of one project: its own stream's and its generation's, found by stream (not by
    // the metadata under test).
    let generations: Vec<(uuid::Uuid, String)> = feed
        .iter()
        .filter(|e| e.event_type == "GenerationRequested")
        .filter_map(|e| {
            let data = e.data_value().ok()?;
            let project = data["project_id"].as_str()?.parse().ok()?;
            Some((project, e.stream_id.clone()))
        })
        .collect();
    assert_eq!(generations.len(), 2, "one generation per project");
    let belongs = |project: uuid::Uuid, e: &event_store::RecordedEvent| {
        e.stream_id == format!("project-{project}")
            || generations
                .iter()
                .any(|(p, stream)| *p == project && *stream == e.stream_id)
    };
    let published = feed
        .iter()
        .filter(|e| e.event_type != "EmailReserved")
        .count();
    let stream = names.events_stream();
    assert_eq!(
        wait_for_messages(&url, &stream, published).await.len(),
        published,
        "the relay published the whole feed"
    );

    for (project, subscription) in projects.iter().zip(followers.iter_mut()) {
        let expected: Vec<&event_store::RecordedEvent> =
            feed.iter().filter(|e| belongs(*project, e)).collect();
        assert!(
            expected
                .iter()
                .any(|e| e.stream_id.starts_with("generation-")),
            "the project has generation events to follow"
        );
        let received = receive(subscription, expected.len()).await;
        let ids: Vec<String> = received
            .iter()
            .map(|m| {
                let doc: Value = serde_json::from_slice(&m.payload).expect("json");
                assert_eq!(
                    doc["projectid"],
                    project.to_string(),
                    "every followed event names its project"
                );
                assert!(
                    m.subject
                        .starts_with(&format!("{prefix}.events.{project}.")),
                    "subject {} is the project's",
                    m.subject
                );
                doc["id"].as_str().expect("id").to_owned()
            })
            .collect();
        let want: Vec<String> = expected.iter().map(|e| e.event_id.to_string()).collect();
        assert_eq!(
            ids, want,
            "exactly the project's own and its generation's events, in feed order"
        );
    }
    let _ = stop_tx.send(true);
    let _ = task.await;
    delete_streams(&url, &prefix).await;
}

/// The append guard refuses an event whose CloudEvent could exceed what the relays may publish,
/// using `event_store::cloud_event_bound`; the relay's own document (the longest prefix, every
/// metadata member, the project in subject and extension, the longest position and time) stays
/// within that bound.
#[test]
fn the_longest_cloud_event_envelope_stays_within_the_append_guards_bound() {
    let project = uuid::Uuid::now_v7();
    let names = Names::new(&"p".repeat(64));
    let metadata = domain::EventMetadata {
        actor: Some(uuid::Uuid::now_v7()),
        correlation_id: Some(uuid::Uuid::now_v7()),
        causation_id: Some(uuid::Uuid::now_v7()),
        request_id: Some(uuid::Uuid::now_v7().to_string()),
        traceparent: Some(format!("00-{}-{}-01", "a".repeat(32), "b".repeat(16))),
        project_id: Some(project),
        source: None,
    };
    let data =
        json!({"project_id": project, "archived_at": "2026-11-25T20:10:46.638933Z"}).to_string();
    let stream = format!("project-{project}");
    let position = event_store::Position {
        tx: u64::MAX,
        seq: u64::MAX,
    }
    .to_token();
    let stored = StoredEvent {
        event_id: uuid::Uuid::now_v7(),
        stream_id: &stream,
        stream_version: u64::MAX,
        event_type: "ProjectArchived",
        position: &position,
        metadata: &metadata,
        recorded_at: time::macros::datetime!(9999-12-31 23:59:59.999999999 UTC),
        data: &data,
    };
    let event = <domain::AnyEvent as domain::DomainEvent>::from_json("ProjectArchived", &data)
        .expect("a domain event");
    let (subject, document) = CloudEvent::of(&names, &stored, &event)
        .expect("publishable")
        .expect("published");
    let body = document.to_body().expect("a body");
    let headers = format!("NATS/1.0\r\nNats-Msg-Id: {}\r\n\r\n", stored.event_id);
    let on_the_wire = body.len() + subject.len() + headers.len();
    let metadata_bytes = serde_json::to_string(&metadata).expect("metadata").len();
    let bound =
        event_store::cloud_event_bound(&stream, "ProjectArchived", data.len(), metadata_bytes);
    assert!(
        on_the_wire <= bound,
        "{on_the_wire} bytes on the wire, above the guard's bound of {bound}"
    );
}
