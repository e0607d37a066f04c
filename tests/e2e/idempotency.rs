//! Idempotency-Key on project, feature and member writes: a retry returns the first answer and
//! appends nothing; the key is scoped to (caller, method, route); a different body is a 422; a
//! duplicate in flight is a 409; and of concurrent duplicates exactly one appends.

use std::sync::Arc;

use reqwest::Method;
use serde_json::json;
use tests::{Answer, TestApp, TestUser};

use crate::projects::{Shop, Write, all_writes, assert_write_headers, create_project};

const KEY: &str = "Idempotency-Key";

/// The status and the headers a replay must repeat.
fn fingerprint(answer: &Answer) -> Vec<(String, Option<String>)> {
    let mut parts = vec![(
        "status".to_owned(),
        Some(answer.status.as_u16().to_string()),
    )];
    for header in ["etag", "backforge-position", "location", "content-type"] {
        parts.push((header.to_owned(), answer.header(header)));
    }
    parts
}

#[track_caller]
fn assert_same_answer(first: &Answer, retry: &Answer, what: &str) {
    assert_eq!(
        fingerprint(first),
        fingerprint(retry),
        "{what}: the retry repeats the first status and headers"
    );
    // Compared as JSON values: the order of object members carries no meaning.
    assert_eq!(
        first.body, retry.body,
        "{what}: the retry repeats the first body"
    );
}

async fn key_count(app: &TestApp) -> i64 {
    let client = app.pool.get().await.expect("client");
    client
        .query_one("SELECT count(*) FROM idempotency_keys", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn a_retried_write_returns_the_first_answer_and_appends_nothing_on_every_route() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let third = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());

    let mut firsts = Vec::new();
    for (i, write) in all_writes(&shop.id, &shop.login, &third.id)
        .into_iter()
        .enumerate()
    {
        let key = format!("retry-{i}");
        let before = app.event_count().await;
        let first = write.send(&app, token, &[(KEY, &key)]).await;
        assert!(
            first.status.is_success(),
            "{}: {} {}",
            write.name(),
            first.status,
            first.body
        );
        assert_eq!(app.event_count().await, before + 1, "{}", write.name());
        for _ in 0..2 {
            let retry = write.send(&app, token, &[(KEY, &key)]).await;
            assert_same_answer(&first, &retry, &write.name());
        }
        assert_eq!(
            app.event_count().await,
            before + 1,
            "{}: retries appended nothing",
            write.name()
        );
        firsts.push((write, key, first));
    }

    // Long after, with the project moved on and even archived, a retry still gets its answer.
    for (write, key, first) in &firsts {
        let retry = write.send(&app, token, &[(KEY, key)]).await;
        assert_same_answer(first, &retry, &write.name());
    }
    let (_, _, update) = &firsts[1];
    assert_write_headers(update, 5);
}

#[tokio::test]
async fn a_key_reused_with_a_different_body_is_422_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let token = Some(owner.access_token.as_str());

    let first = app
        .send(
            Method::POST,
            "/projects",
            token,
            Some(json!({"name": "Shop"})),
            &[(KEY, "k1")],
        )
        .await
        .expect(201);
    let id = first.body["id"].as_str().expect("id").to_owned();
    let updated = app
        .send(
            Method::PUT,
            &format!("/projects/{id}"),
            token,
            Some(json!({"name": "Market"})),
            &[(KEY, "k2")],
        )
        .await
        .expect(200);
    let before = app.event_count().await;

    for (method, path, body, key) in [
        (
            Method::POST,
            "/projects".to_owned(),
            json!({"name": "Other"}),
            "k1",
        ),
        (
            Method::POST,
            "/projects".to_owned(),
            json!({"name": "Shop", "description": "x"}),
            "k1",
        ),
        (
            Method::PUT,
            format!("/projects/{id}"),
            json!({"name": "Bazaar"}),
            "k2",
        ),
    ] {
        let answer = app
            .send(
                method.clone(),
                &path,
                token,
                Some(body.clone()),
                &[(KEY, key)],
            )
            .await
            .expect(422);
        assert_eq!(
            answer.body["type"], "https://backforge.dev/problems/idempotency-key-reused",
            "{method} {path} {body}"
        );
    }
    assert_eq!(app.event_count().await, before);

    // The first answers are still what the original requests replay.
    let replay = app
        .send(
            Method::POST,
            "/projects",
            token,
            Some(json!({"name": "Shop"})),
            &[(KEY, "k1")],
        )
        .await;
    assert_same_answer(&first, &replay, "POST /projects");
    let replay = app
        .send(
            Method::PUT,
            &format!("/projects/{id}"),
            token,
            Some(json!({"name": "Market"})),
            &[(KEY, "k2")],
        )
        .await;
    assert_same_answer(&updated, &replay, "PUT /projects/{id}");
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn the_same_key_on_another_route_or_by_another_user_is_independent() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let other = app.register("Omar").await;
    let key = [(KEY, "shared-key")];
    let body = json!({"name": "Shop"});
    let before = app.event_count().await;

    let mut created = Vec::new();
    for user in [&owner, &other] {
        let answer = app
            .send(
                Method::POST,
                "/projects",
                Some(&user.access_token),
                Some(body.clone()),
                &key,
            )
            .await
            .expect(201);
        created.push(answer);
    }
    let (mine, theirs) = (&created[0], &created[1]);
    assert_ne!(mine.body["id"], theirs.body["id"], "another user's key");
    assert_eq!(app.event_count().await, before + 2);

    // The same key on other routes of the same user, and on the same route of another project.
    let token = Some(owner.access_token.as_str());
    let first_project = mine.body["id"].as_str().expect("id").to_owned();
    let second_project = create_project(&app, &owner).await;
    let feature = json!({"name": "Login", "feature_type": "auth"});
    let mut ids = Vec::new();
    for project in [&first_project, &second_project] {
        let added = app
            .send(
                Method::POST,
                &format!("/projects/{project}/features"),
                token,
                Some(feature.clone()),
                &key,
            )
            .await
            .expect(201);
        ids.push(added.body["id"].clone());
    }
    assert_ne!(ids[0], ids[1]);
    let renamed = app
        .send(
            Method::PUT,
            &format!("/projects/{first_project}"),
            token,
            Some(json!({"name": "Market"})),
            &key,
        )
        .await
        .expect(200);
    assert_write_headers(&renamed, 3);
    app.send(
        Method::DELETE,
        &format!("/projects/{second_project}"),
        token,
        None,
        &key,
    )
    .await
    .expect(204);
    assert_eq!(app.event_count().await, before + 2 + 1 + 2 + 1 + 1);
}

#[tokio::test]
async fn a_4xx_answer_is_replayed_even_when_the_request_would_now_succeed() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let features = format!("{}/features", shop.path());
    let login = json!({"name": "login", "feature_type": "auth"});
    let key = [(KEY, "taken")];
    let before = app.event_count().await;

    let first = app
        .send(Method::POST, &features, token, Some(login.clone()), &key)
        .await
        .expect(409);
    assert_eq!(
        first.body["type"],
        "https://backforge.dev/problems/name-taken"
    );
    assert!(first.header("etag").is_none(), "a 4xx has no write headers");
    assert_eq!(app.event_count().await, before);
    app.delete(&shop.feature_path(&shop.login), token)
        .await
        .expect(204);
    let before = app.event_count().await;

    let retry = app
        .send(Method::POST, &features, token, Some(login.clone()), &key)
        .await;
    assert_same_answer(&first, &retry, "the stored 409");
    assert_eq!(app.event_count().await, before);

    // Without the key (or with a new one) the request runs again and now succeeds.
    app.send(
        Method::POST,
        &features,
        token,
        Some(login),
        &[(KEY, "fresh")],
    )
    .await
    .expect(201);

    // The same holds for a 404 and a 412.
    let unknown = shop.feature_path(&uuid::Uuid::new_v4().to_string());
    let not_found = app
        .send(
            Method::PUT,
            &unknown,
            token,
            Some(json!({"name": "X"})),
            &[(KEY, "nf")],
        )
        .await
        .expect(404);
    let stale = app
        .send(
            Method::PUT,
            &shop.path(),
            token,
            Some(json!({"name": "X"})),
            &[(KEY, "stale"), ("If-Match", "\"1\"")],
        )
        .await
        .expect(412);
    let before = app.event_count().await;
    let retry = app
        .send(
            Method::PUT,
            &unknown,
            token,
            Some(json!({"name": "X"})),
            &[(KEY, "nf")],
        )
        .await;
    assert_same_answer(&not_found, &retry, "the stored 404");
    let retry = app
        .send(
            Method::PUT,
            &shop.path(),
            token,
            Some(json!({"name": "X"})),
            &[(KEY, "stale"), ("If-Match", "\"1\"")],
        )
        .await;
    assert_same_answer(&stale, &retry, "the stored 412");
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn a_duplicate_while_the_first_is_in_flight_is_409_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let token = Some(owner.access_token.as_str());
    let body = json!({"name": "Shop"});
    app.send(
        Method::POST,
        "/projects",
        token,
        Some(body.clone()),
        &[(KEY, "slow")],
    )
    .await
    .expect(201);
    // Put the record back into the state it had while the first request ran.
    let client = app.pool.get().await.expect("client");
    let reset = client
        .execute(
            "UPDATE idempotency_keys SET state = 'in_flight', response = NULL, completed_at = NULL
             WHERE key = 'slow'",
            &[],
        )
        .await
        .expect("reset");
    assert_eq!(reset, 1);
    let before = app.event_count().await;

    let duplicate = app
        .send(
            Method::POST,
            "/projects",
            token,
            Some(body),
            &[(KEY, "slow")],
        )
        .await
        .expect(409);
    assert_eq!(
        duplicate.body["type"],
        "https://backforge.dev/problems/idempotency-key-in-flight"
    );
    let different = app
        .send(
            Method::POST,
            "/projects",
            token,
            Some(json!({"name": "Other"})),
            &[(KEY, "slow")],
        )
        .await
        .expect(422);
    assert_eq!(
        different.body["type"],
        "https://backforge.dev/problems/idempotency-key-reused"
    );
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn malformed_idempotency_keys_are_400_on_every_route_and_255_characters_are_accepted() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let third = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let before = app.event_count().await;
    let too_long = "k".repeat(256);

    for write in all_writes(&shop.id, &shop.login, &third.id) {
        for key in ["", "two words", "tab\there", "schlüssel", too_long.as_str()] {
            let answer = write.send(&app, token, &[(KEY, key)]).await;
            assert_eq!(
                answer.status,
                400,
                "{} with key {key:?}: {}",
                write.name(),
                answer.body
            );
            assert_eq!(
                answer.body["type"],
                "https://backforge.dev/problems/malformed-request"
            );
        }
    }
    assert_eq!(app.event_count().await, before);
    assert_eq!(key_count(&app).await, 0, "no malformed key was stored");

    let longest: String = (0x21u8..=0x7e).map(char::from).cycle().take(255).collect();
    app.send(
        Method::POST,
        "/projects",
        token,
        Some(json!({"name": "Longest key"})),
        &[(KEY, &longest)],
    )
    .await
    .expect(201);
    assert_eq!(key_count(&app).await, 1);
}

/// Sends `write` with `key` from eight tasks at once.
async fn eight_at_once(
    app: &Arc<TestApp>,
    write: &Write,
    user: &TestUser,
    key: &str,
) -> Vec<Answer> {
    let start = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (app, write, start) = (app.clone(), write.clone(), start.clone());
        let (token, key) = (user.access_token.clone(), key.to_owned());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            write.send(&app, Some(&token), &[(KEY, &key)]).await
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    answers
}

/// Of concurrent duplicates, one ran; the others repeat its answer or were told it is in flight.
#[track_caller]
fn assert_one_ran(answers: &[Answer], success: u16, what: &str) {
    let ran: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status.as_u16() == success)
        .collect();
    assert!(
        !ran.is_empty(),
        "{what}: one of them ran: {:?}",
        answers
            .iter()
            .map(|a| (a.status.as_u16(), a.body.to_string()))
            .collect::<Vec<_>>()
    );
    for answer in &ran {
        assert_same_answer(ran[0], answer, what);
    }
    for answer in answers.iter().filter(|a| a.status.as_u16() != success) {
        assert_eq!(answer.status, 409, "{what}: {}", answer.body);
        assert_eq!(
            answer.body["type"],
            "https://backforge.dev/problems/idempotency-key-in-flight"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_duplicates_append_exactly_once_on_create_add_and_remove() {
    let app = Arc::new(TestApp::spawn().await);
    let owner = app.register("Olive").await;
    let shop = Shop::create(&app, &owner).await;

    let create = Write::new(
        Method::POST,
        "/projects".into(),
        Some(json!({"name": "Race"})),
    );
    let add = Write::new(
        Method::POST,
        format!("{}/features", shop.path()),
        Some(json!({"name": "Reports", "feature_type": "analytics"})),
    );
    let remove = Write::new(Method::DELETE, shop.feature_path(&shop.login), None);
    for (i, (write, success)) in [(create, 201), (add, 201), (remove, 204)]
        .into_iter()
        .enumerate()
    {
        let before = app.event_count().await;
        let key = format!("race-{i}");
        let answers = eight_at_once(&app, &write, &owner, &key).await;
        assert_one_ran(&answers, success, &write.name());
        assert_eq!(
            app.event_count().await,
            before + 1,
            "{}: exactly one append",
            write.name()
        );
        // Afterwards every retry is the replay.
        let first = answers
            .iter()
            .find(|a| a.status.as_u16() == success)
            .expect("one ran");
        let retry = write
            .send(&app, Some(&owner.access_token), &[(KEY, &key)])
            .await;
        assert_same_answer(first, &retry, &write.name());
        assert_eq!(app.event_count().await, before + 1);
    }
    // The project stream took one event per race: features at versions 5 and 6.
    let events = app.all_events().await;
    let ours: Vec<&str> = events
        .iter()
        .filter(|e| e.0 == format!("project-{}", shop.id))
        .map(|e| e.1.as_str())
        .collect();
    assert_eq!(
        ours,
        [
            "ProjectCreated",
            "FeatureAdded",
            "FeatureAdded",
            "FeatureAdded",
            "FeatureAdded",
            "FeatureRemoved"
        ]
    );
    assert_eq!(
        events.iter().filter(|e| e.1 == "ProjectCreated").count(),
        2,
        "the shop and one Race"
    );
}

#[tokio::test]
async fn keys_older_than_their_retention_are_purged_and_younger_ones_kept() {
    let app = TestApp::spawn().await;
    let owner = app.register("Purge").await;
    for key in ["old-key", "new-key"] {
        app.send(
            reqwest::Method::POST,
            "/projects",
            Some(&owner.access_token),
            Some(serde_json::json!({"name": key})),
            &[("Idempotency-Key", key)],
        )
        .await
        .expect(201);
    }
    let client = app.pool.get().await.expect("client");
    client
        .execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old-key'",
            &[],
        )
        .await
        .expect("age the key");
    let purged = command_api::idempotency::purge_expired(
        &app.pool,
        std::time::Duration::from_secs(24 * 3600),
    )
    .await
    .expect("purge");
    assert_eq!(purged, 1);
    let left: Vec<String> = client
        .query("SELECT key FROM idempotency_keys", &[])
        .await
        .expect("keys")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec!["new-key".to_owned()]);
}
