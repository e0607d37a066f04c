//! The application step seen from outside: idempotency scopes are the route and its typed ids,
//! `/auth/*` refuses a key before any work, every project-owned event carries its project's id
//! (metadata and column), the store refuses one without it, and old rows are back-filled.

use std::time::Instant;

use event_store::{EventStore, ExpectedVersion, NewEvent, StoreError, StreamAppend};
use reqwest::Method;
use serde_json::json;
use tests::TestApp;
use uuid::Uuid;

use crate::projects::{Shop, create_project};

#[tokio::test]
async fn a_key_replays_whatever_the_spelling_of_the_project_id_or_a_trailing_slash() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let project = create_project(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let key = [("Idempotency-Key", "rename-1")];
    let body = json!({"name": "Renamed"});
    let first = app
        .send(
            Method::PUT,
            &format!("/projects/{project}"),
            token,
            Some(body.clone()),
            &key,
        )
        .await
        .expect(200);
    let before = app.event_count().await;
    for path in [
        format!("/projects/{}", project.to_uppercase()),
        format!("/projects/{project}/"),
    ] {
        let retry = app
            .send(Method::PUT, &path, token, Some(body.clone()), &key)
            .await
            .expect(200);
        assert_eq!(retry.body, first.body, "{path} replays the first answer");
        assert_eq!(retry.header("etag"), first.header("etag"), "{path}");
    }
    assert_eq!(
        app.event_count().await,
        before,
        "the replays appended nothing"
    );
}

#[tokio::test]
async fn a_key_on_change_password_is_refused_before_any_hash_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.register("Olive").await;
    let hash_before = password_hash(&app, &user.id).await;
    // One argon2id check, as a login makes it: the yardstick of "any work".
    let login = Instant::now();
    app.post(
        "/auth/login",
        None,
        json!({"email": user.email, "password": user.password}),
    )
    .await
    .expect(200);
    let one_hash = login.elapsed();
    let started = Instant::now();
    let answer = app
        .send(
            Method::POST,
            "/auth/change-password",
            Some(&user.access_token),
            Some(json!({"current_password": user.password, "new_password": "another-secret-42"})),
            &[("Idempotency-Key", "pw-1")],
        )
        .await
        .expect(422);
    // Before the extractor refused it, this answer came after two hashes (check, then new).
    assert!(
        started.elapsed() < one_hash / 2,
        "refused in {:?}, a login took {one_hash:?}: {}",
        started.elapsed(),
        answer.body
    );
    assert_eq!(password_hash(&app, &user.id).await, hash_before);
}

async fn password_hash(app: &TestApp, user_id: &str) -> String {
    let client = app.pool.get().await.expect("client");
    let id: Uuid = user_id.parse().expect("user id");
    client
        .query_one(
            "SELECT password_hash FROM credentials WHERE user_id = $1",
            &[&id],
        )
        .await
        .expect("credentials")
        .get(0)
}

#[tokio::test]
async fn every_project_and_generation_event_carries_its_project_in_metadata_and_column() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let project = Shop::create(&app, &owner).await.id;
    let token = Some(owner.access_token.as_str());
    app.post(
        &format!("/projects/{project}/generations"),
        token,
        json!({}),
    )
    .await
    .expect(202);
    let client = app.pool.get().await.expect("client");
    let rows = client
        .query(
            "SELECT stream_id, event_type, metadata::jsonb ->> 'project_id', project_id
             FROM events WHERE stream_id LIKE 'project-%' OR stream_id LIKE 'generation-%'",
            &[],
        )
        .await
        .expect("events");
    let project: Uuid = project.parse().expect("project id");
    assert!(
        rows.len() >= 3,
        "created, feature added, generation requested"
    );
    assert!(
        rows.iter()
            .any(|r| r.get::<_, String>(0).starts_with("generation-"))
    );
    for row in &rows {
        let (stream, event): (String, String) = (row.get(0), row.get(1));
        let in_metadata: Option<String> = row.get(2);
        let column: Option<Uuid> = row.get(3);
        assert_eq!(
            in_metadata,
            Some(project.to_string()),
            "{event} of {stream}"
        );
        assert_eq!(column, Some(project), "{event} of {stream}");
    }
    let users: i64 = client
        .query_one(
            "SELECT count(*) FROM events WHERE stream_id LIKE 'user-%' AND project_id IS NOT NULL",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(users, 0, "user events belong to no project");
}

#[tokio::test]
async fn the_store_refuses_a_generation_event_without_its_project() {
    let app = TestApp::spawn().await;
    let stream = domain::ids::GenerationId::from_uuid(Uuid::now_v7()).stream();
    let refused = app
        .store
        .append(vec![StreamAppend::new(
            stream,
            ExpectedVersion::NoStream,
            vec![NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "GenerationStarted".into(),
                schema_version: 1,
                data: json!({}),
                metadata: Default::default(),
            }],
        )])
        .await;
    assert!(
        matches!(refused, Err(StoreError::MissingProjectId { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_back_fill_gives_old_rows_their_project_in_batches_and_is_then_a_no_op() {
    let app = TestApp::spawn().await;
    let mut client = app.pool.get().await.expect("client");
    let project = Uuid::now_v7();
    let other = Uuid::now_v7();
    let generation = Uuid::now_v7();
    // Rows as an older version wrote them: no column, and the generation's later event without
    // the id in its metadata.
    let rows = [
        (
            format!("project-{project}"),
            1,
            "ProjectArchived",
            json!({}),
            json!({}),
        ),
        (
            format!("generation-{generation}"),
            1,
            "GenerationRequested",
            json!({"project_id": project}),
            json!({}),
        ),
        (
            format!("generation-{generation}"),
            2,
            "GenerationStarted",
            json!({}),
            json!({}),
        ),
        (
            format!("project-{other}"),
            1,
            "ProjectArchived",
            json!({}),
            json!({"project_id": other}),
        ),
        (
            format!("user-{}", Uuid::now_v7()),
            1,
            "UserRegistered",
            json!({}),
            json!({}),
        ),
    ];
    for (stream, version, event_type, data, metadata) in &rows {
        client
            .execute(
                "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version,
                                     data, metadata)
                 VALUES ($1, $2, $3, $4, 1, $5::jsonb::json, $6::jsonb::json)",
                &[&stream, &(*version as i64), &Uuid::now_v7(), event_type, data, metadata],
            )
            .await
            .expect("old row");
    }
    client
        .execute(
            "UPDATE event_backfills SET done_through = 0,
                    target = (SELECT max(position) FROM events) WHERE name = 'events.project_id'",
            &[],
        )
        .await
        .expect("reset the back-fill");
    let filled = event_store::backfill::project_ids(&mut client, 2)
        .await
        .expect("back-fill");
    assert_eq!(filled, 4);
    let found: Vec<(String, i64, Option<Uuid>)> = client
        .query(
            "SELECT stream_id, stream_version, project_id FROM events ORDER BY position",
            &[],
        )
        .await
        .expect("events")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let of = |stream: &str, version: i64| {
        found
            .iter()
            .find(|(s, v, _)| s == stream && *v == version)
            .and_then(|(_, _, p)| *p)
    };
    assert_eq!(of(&format!("project-{project}"), 1), Some(project));
    assert_eq!(of(&format!("generation-{generation}"), 1), Some(project));
    assert_eq!(of(&format!("generation-{generation}"), 2), Some(project));
    assert_eq!(of(&format!("project-{other}"), 1), Some(other));
    assert_eq!(
        of(&rows[4].0, 1),
        None,
        "a user's event belongs to no project"
    );
    let again = event_store::backfill::project_ids(&mut client, 2)
        .await
        .expect("second run");
    assert_eq!(again, 0, "done once, a no-op after");
}
