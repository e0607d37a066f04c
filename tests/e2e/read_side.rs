//! Every read of `docs/api.md` against the real binary (`backforge serve`): profile, project
//! lists, project detail with ETags, time travel, history, features, the consistency header,
//! archived projects, and the operational routes. Reads follow writes with `Backforge-Min-Position`
//! and the write's `position`, never with sleeps.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tests::process::{Backforge, eventually, position_of};
use tests::{Answer, TestDatabase, TestUser};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `backforge serve` on a database of its own. The process goes before the database.
struct Serve {
    app: Backforge,
    db: TestDatabase,
}

async fn serve(extra_env: &[(&str, &str)]) -> Serve {
    let db = TestDatabase::create().await.expect("test database");
    let app = Backforge::start("serve", &db.url, extra_env).await;
    Serve { app, db }
}

fn token(user: &TestUser) -> Option<&str> {
    Some(user.access_token.as_str())
}

fn ids(answer: &Answer) -> Vec<String> {
    answer.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {}", answer.body))
        .iter()
        .map(|item| item["id"].as_str().expect("item id").to_owned())
        .collect()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format")
}

/// Percent-encodes a query value (RFC 3339 offsets carry `+`, which would decode as a space).
fn query_value(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Creates a project as `owner`; returns its id and the write's position.
async fn create_project(app: &Backforge, owner: &TestUser, body: Value) -> (String, String) {
    let answer = app.post("/projects", token(owner), body).await.expect(201);
    let id = answer.body["id"].as_str().expect("project id").to_owned();
    assert_eq!(
        answer.header("Location").as_deref(),
        Some(format!("/api/v1/projects/{id}").as_str()),
        "201 carries Location"
    );
    (id, position_of(&answer))
}

/// Creates the "Shop" project with two features, Customers (crud) and Login (auth).
async fn create_shop(app: &Backforge, owner: &TestUser) -> (String, String) {
    create_project(
        app,
        owner,
        json!({"name": "Shop", "features": [
            {"name": "Customers", "feature_type": "crud", "schema_definition":
                {"entity": "customer", "fields": [{"name": "email", "type": "string", "required": true}]}},
            {"name": "Login", "feature_type": "auth"}
        ]}),
    )
    .await
}

async fn add_viewer(app: &Backforge, owner: &TestUser, project: &str, member: &TestUser) -> String {
    let answer = app
        .put(
            &format!("/projects/{project}/members/{}", member.id),
            token(owner),
            json!({"role": "viewer"}),
        )
        .await
        .expect(200);
    position_of(&answer)
}

/// Follows `next_cursor` from `path?query` to the end. Later pages send the cursor with `limit`
/// only: the cursor replaces `after_version` (docs/api.md: `?after_version=&limit=` or `?cursor=`).
async fn all_pages(
    app: &Backforge,
    user: &TestUser,
    path: &str,
    query: &str,
    position: &str,
) -> (Vec<Value>, usize) {
    let keep: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("after_version="))
        .collect();
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("{path}?{query}"),
            Some(c) => {
                let mut params = keep.clone();
                let c = format!("cursor={}", query_value(c));
                params.push(&c);
                format!("{path}?{}", params.join("&"))
            }
        };
        let page = app.get_at(&url, token(user), position).await.expect(200);
        pages += 1;
        let page_items = page.body["items"].as_array().expect("items").clone();
        assert!(!page_items.is_empty(), "an empty page: {url}");
        items.extend(page_items);
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert!(
                    page.body["next_cursor"].is_null(),
                    "next_cursor: {}",
                    page.body
                );
                return (items, pages);
            }
        }
        assert!(pages < 50, "pagination never ends");
    }
}

#[tokio::test]
async fn the_profile_shows_the_caller_and_follows_their_profile_writes() {
    let s = serve(&[]).await;
    let app = &s.app;
    let (alice, registered) = app.register("Alice").await;

    let profile = app
        .get_at("/auth/profile", token(&alice), &registered)
        .await
        .expect(200);
    let keys: HashSet<&str> = profile
        .body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["id", "email", "name", "role", "created_at", "updated_at"]),
        "{}",
        profile.body
    );
    assert_eq!(profile.body["id"], json!(alice.id));
    assert_eq!(profile.body["email"], json!(alice.email));
    assert_eq!(profile.body["name"], json!("Alice"));
    assert_eq!(profile.body["role"], json!("member"));
    let created = profile.body["created_at"].as_str().expect("created_at");
    OffsetDateTime::parse(created, &Rfc3339).expect("created_at is RFC 3339");

    let renamed = app
        .put(
            "/auth/profile",
            token(&alice),
            json!({"name": "Alice Liddell"}),
        )
        .await
        .expect(200);
    assert!(renamed.body["version"].is_u64(), "{}", renamed.body);
    let profile = app
        .get_at("/auth/profile", token(&alice), &position_of(&renamed))
        .await
        .expect(200);
    assert_eq!(profile.body["name"], json!("Alice Liddell"));
    assert_eq!(profile.body["created_at"].as_str(), Some(created));
    let updated = OffsetDateTime::parse(profile.body["updated_at"].as_str().unwrap(), &Rfc3339)
        .expect("updated_at");
    assert!(updated >= OffsetDateTime::parse(created, &Rfc3339).unwrap());

    let anonymous = app.get("/auth/profile", None).await.expect(401);
    assert!(
        anonymous
            .header("WWW-Authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "401 carries WWW-Authenticate: Bearer"
    );
}

#[tokio::test]
async fn project_lists_show_owned_and_shared_projects_newest_first_and_paginate_without_gaps() {
    let s = serve(&[]).await;
    let app = &s.app;
    let (alice, _) = app.register("Alice").await;
    let (bob, _) = app.register("Bob").await;
    let (carol, _) = app.register("Carol").await;

    let mut alices = Vec::new();
    for n in 0..7 {
        let (id, _) = create_project(app, &alice, json!({"name": format!("A{n}")})).await;
        alices.push(id);
    }
    let (b0, _) = create_project(app, &bob, json!({"name": "B0"})).await;
    add_viewer(app, &alice, &alices[2], &bob).await;
    let (b1, last) = create_project(app, &bob, json!({"name": "B1"})).await;

    // Owner: all seven, newest first, one page at the default limit.
    let list = app
        .get_at("/projects", token(&alice), &last)
        .await
        .expect(200);
    let newest_first: Vec<String> = alices.iter().rev().cloned().collect();
    assert_eq!(ids(&list), newest_first);
    assert!(list.body["next_cursor"].is_null());
    for item in list.body["items"].as_array().unwrap() {
        assert_eq!(item["owner_id"], json!(alice.id), "{item}");
        assert_eq!(item["status"], json!("active"), "{item}");
        assert!(item["version"].is_u64(), "{item}");
    }
    let created: Vec<OffsetDateTime> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| OffsetDateTime::parse(i["created_at"].as_str().unwrap(), &Rfc3339).unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first");

    // Pages of three: 3 + 3 + 1, in the same order, no duplicates and no gaps.
    let (paged, pages) = all_pages(app, &alice, "/projects", "limit=3", &last).await;
    assert_eq!(pages, 3);
    let paged_ids: Vec<String> = paged
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paged_ids, newest_first);
    let (paged, pages) = all_pages(app, &alice, "/projects", "limit=1&status=active", &last).await;
    assert_eq!(pages, 7);
    assert_eq!(paged.len(), 7);

    // A member sees what they own and what they were added to, newest first; others see nothing.
    let list = app
        .get_at("/projects", token(&bob), &last)
        .await
        .expect(200);
    assert_eq!(ids(&list), vec![b1.clone(), b0.clone(), alices[2].clone()]);
    let list = app
        .get_at("/projects", token(&carol), &last)
        .await
        .expect(200);
    assert_eq!(list.body, json!({"items": [], "next_cursor": null}));

    // Archived projects leave the default list and appear under status=archived.
    let archived = app
        .delete(&format!("/projects/{}", alices[4]), token(&alice))
        .await
        .expect(204);
    let at = position_of(&archived);
    let list = app
        .get_at("/projects", token(&alice), &at)
        .await
        .expect(200);
    assert!(!ids(&list).contains(&alices[4]));
    assert_eq!(ids(&list).len(), 6);
    let list = app
        .get_at("/projects?status=archived", token(&alice), &at)
        .await
        .expect(200);
    assert_eq!(ids(&list), vec![alices[4].clone()]);
    assert_eq!(list.body["items"][0]["status"], json!("archived"));
    let list = app
        .get_at("/projects?status=archived", token(&bob), &at)
        .await
        .expect(200);
    assert_eq!(ids(&list), Vec::<String>::new());

    // Query errors: malformed → 400, well-formed but out of range → 422.
    let bad = |q: &'static str| {
        let alice = &alice;
        async move { app.get(&format!("/projects?{q}"), token(alice)).await }
    };
    bad("cursor=not-a-cursor!").await.expect(400);
    bad("cursor=eyJ4IjoxfQ").await.expect(400); // base64 of {"x":1}: not ours
    bad("limit=0").await.expect(422);
    bad("limit=201").await.expect(422);
    bad("limit=-1").await.expect(422);
    bad("limit=abc").await.expect(400);
    bad("status=deleted").await.expect(422);
    bad("limit=200").await.expect(200);
    app.get("/projects", None).await.expect(401);
}

#[tokio::test]
async fn a_project_is_read_with_its_etag_by_its_owner_and_viewers_and_hidden_from_strangers() {
    let s = serve(&[]).await;
    let app = &s.app;
    let (alice, _) = app.register("Alice").await;
    let (bob, _) = app.register("Bob").await;
    let (carol, _) = app.register("Carol").await;
    let (id, created) = create_project(
        app,
        &alice,
        json!({"name": "Shop", "description": "sells things"}),
    )
    .await;
    let path = format!("/projects/{id}");

    let read = app.get_at(&path, token(&alice), &created).await.expect(200);
    assert_eq!(read.header("ETag").as_deref(), Some("\"1\""));
    for key in [
        "id",
        "name",
        "description",
        "owner_id",
        "status",
        "generation_mode",
        "features",
        "members",
        "version",
        "created_at",
        "updated_at",
    ] {
        assert!(
            read.body.get(key).is_some(),
            "`{key}` missing: {}",
            read.body
        );
    }
    assert_eq!(read.body["id"], json!(id));
    assert_eq!(read.body["name"], json!("Shop"));
    assert_eq!(read.body["description"], json!("sells things"));
    assert_eq!(read.body["owner_id"], json!(alice.id));
    assert_eq!(read.body["status"], json!("active"));
    assert_eq!(read.body["generation_mode"], json!("manual"));
    assert_eq!(read.body["features"], json!([]));
    assert_eq!(read.body["members"], json!([]));
    assert_eq!(read.body["version"], json!(1));

    // If-None-Match: the current tag (strong, weak or *) → 304; an older one → 200.
    for tag in ["\"1\"", "W/\"1\"", "*", "\"7\", \"1\""] {
        let fresh = app
            .send(
                Method::GET,
                &path,
                token(&alice),
                None,
                &[("If-None-Match", tag)],
            )
            .await
            .expect(304);
        assert_eq!(fresh.header("ETag").as_deref(), Some("\"1\""), "{tag}");
        assert!(fresh.body.is_null(), "304 has no body");
    }
    let renamed = app
        .put(&path, token(&alice), json!({"name": "Shop 2"}))
        .await
        .expect(200);
    assert_eq!(renamed.body["version"], json!(2));
    let at = position_of(&renamed);
    let stale = app
        .send(
            Method::GET,
            &path,
            token(&alice),
            None,
            &[("If-None-Match", "\"1\""), ("Backforge-Min-Position", &at)],
        )
        .await
        .expect(200);
    assert_eq!(stale.header("ETag").as_deref(), Some("\"2\""));
    assert_eq!(stale.body["name"], json!("Shop 2"));
    assert_eq!(stale.body["version"], json!(2));

    // Unknown, not an id, or not visible: all 404.
    let unknown = uuid::Uuid::new_v4();
    app.get(&format!("/projects/{unknown}"), token(&alice))
        .await
        .expect(404);
    app.get("/projects/not-a-uuid", token(&alice))
        .await
        .expect(404);
    app.get_at(&path, token(&bob), &at).await.expect(404);

    // A viewer reads what the owner reads; a stranger still gets 404.
    let shared = add_viewer(app, &alice, &id, &bob).await;
    let owner_view = app.get_at(&path, token(&alice), &shared).await.expect(200);
    let viewer_view = app.get_at(&path, token(&bob), &shared).await.expect(200);
    assert_eq!(viewer_view.body, owner_view.body);
    assert_eq!(viewer_view.header("ETag").as_deref(), Some("\"3\""));
    let members = viewer_view.body["members"].as_array().expect("members");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["user_id"], json!(bob.id));
    assert_eq!(members[0]["role"], json!("viewer"));
    app.get_at(&path, token(&carol), &shared).await.expect(404);
    app.get(&path, None).await.expect(401);
}

#[tokio::test]
async fn time_travel_folds_the_project_as_it_was_at_a_version_or_an_instant() {
    let s = serve(&[]).await;
    let app = &s.app;
    let (alice, _) = app.register("Alice").await;
    let (bob, _) = app.register("Bob").await;
    let (carol, _) = app.register("Carol").await;
    let before_creation = OffsetDateTime::now_utc();
    let (id, created) = create_project(app, &alice, json!({"name": "Atlas"})).await;
    let path = format!("/projects/{id}");
    let at_version_1 = app.get_at(&path, token(&alice), &created).await.expect(200);
    assert_eq!(at_version_1.body["version"], json!(1));

    // An instant after the first write answered and before the second was sent.
    let between = OffsetDateTime::now_utc();

    let updated = app
        .put(
            &path,
            token(&alice),
            json!({"name": "Atlas 2", "description": "second"}),
        )
        .await
        .expect(200);
    let at_version_2 = app
        .get_at(&path, token(&alice), &position_of(&updated))
        .await
        .expect(200);
    app.post(
        &format!("{path}/features"),
        token(&alice),
        json!({"name": "Login", "feature_type": "auth"}),
    )
    .await
    .expect(201);
    let last = add_viewer(app, &alice, &id, &bob).await;
    let current = app.get_at(&path, token(&alice), &last).await.expect(200);
    assert_eq!(current.body["version"], json!(4));

    let travel = |query: String, user: &TestUser| {
        let path = format!("{path}?{query}");
        let token = user.access_token.clone();
        async move { app.get(&path, Some(&token)).await }
    };

    let v1 = travel("as_of_version=1".into(), &alice).await.expect(200);
    assert_eq!(
        v1.body, at_version_1.body,
        "as_of_version=1 is the state at version 1"
    );
    assert_eq!(v1.header("ETag").as_deref(), Some("\"1\""));
    let v2 = travel("as_of_version=2".into(), &alice).await.expect(200);
    assert_eq!(v2.body, at_version_2.body);
    let v4 = travel("as_of_version=4".into(), &alice).await.expect(200);
    assert_eq!(
        v4.body, current.body,
        "the last version is the current state"
    );

    let instant = travel(format!("as_of={}", query_value(&rfc3339(between))), &alice)
        .await
        .expect(200);
    assert_eq!(instant.body, at_version_1.body, "as_of between the writes");
    // The same instant in another offset is the same instant.
    let shifted = between.to_offset(time::UtcOffset::from_hms(5, 30, 0).unwrap());
    let instant = travel(format!("as_of={}", query_value(&rfc3339(shifted))), &alice)
        .await
        .expect(200);
    assert_eq!(instant.body, at_version_1.body);
    let now = travel(
        format!("as_of={}", query_value(&rfc3339(OffsetDateTime::now_utc()))),
        &alice,
    )
    .await
    .expect(200);
    assert_eq!(now.body, current.body);

    // A viewer may travel too; a stranger may not.
    let viewer = travel("as_of_version=1".into(), &bob).await.expect(200);
    assert_eq!(viewer.body, at_version_1.body);
    travel("as_of_version=1".into(), &carol).await.expect(404);

    // Errors.
    travel("as_of_version=5".into(), &alice).await.expect(404);
    travel(
        format!("as_of_version=1&as_of={}", query_value(&rfc3339(between))),
        &alice,
    )
    .await
    .expect(422);
    travel("as_of=yesterday".into(), &alice).await.expect(422);
    travel("as_of=2026-13-45T99:00:00Z".into(), &alice)
        .await
        .expect(422);
    travel("as_of_version=abc".into(), &alice).await.expect(400);
    // Before the project existed there is nothing to fold.
    travel(
        format!(
            "as_of={}",
            query_value(&rfc3339(before_creation - time::Duration::seconds(5)))
        ),
        &alice,
    )
    .await
    .expect(404);
}

#[tokio::test]
async fn history_lists_every_event_oldest_first_with_its_writer_and_pages_by_version_and_cursor() {
    let s = serve(&[]).await;
    let app = &s.app;
    let (alice, _) = app.register("Alice").await;
    let (bob, _) = app.register("Bob").await;
    let (carol, _) = app.register("Carol").await;
    let (id, p1) = create_project(app, &alice, json!({"name": "Chronicle"})).await;
    let path = format!("/projects/{id}");
    let mut positions = vec![p1];
    let update = app
        .put(&path, token(&alice), json!({"description": "kept"}))
        .await
        .expect(200);
    positions.push(position_of(&update));
    let feature = app
        .post(
            &format!("{path}/features"),
            token(&alice),
            json!({"name": "Login", "feature_type": "auth"}),
        )
        .await
        .expect(201);
    positions.push(position_of(&feature));
    positions.push(add_viewer(app, &alice, &id, &bob).await);
    let last = positions.last().unwrap().clone();

    let history = app
        .get_at(&format!("{path}/history"), token(&alice), &last)
        .await
        .expect(200);
    let items = history.body["items"].as_array().expect("items").clone();
    assert!(history.body["next_cursor"].is_null());
    let types: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec![
            "ProjectCreated",
            "ProjectUpdated",
            "FeatureAdded",
            "ProjectMemberAdded"
        ]
    );
    let mut event_ids = HashSet::new();
    let mut previous: Option<OffsetDateTime> = None;
    for (n, item) in items.iter().enumerate() {
        assert_eq!(item["version"], json!(n + 1), "oldest first: {item}");
        assert_eq!(item["position"], json!(positions[n]), "{item}");
        assert!(event_ids.insert(item["event_id"].as_str().unwrap().to_owned()));
        assert!(item["data"].is_object(), "{item}");
        let metadata = &item["metadata"];
        assert_eq!(metadata["actor"], json!(alice.id), "the writer: {item}");
        for key in ["correlation_id", "causation_id"] {
            let value = metadata[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key}: {item}"));
            uuid::Uuid::parse_str(value).expect("a uuid");
        }
        let recorded = OffsetDateTime::parse(item["recorded_at"].as_str().unwrap(), &Rfc3339)
            .expect("recorded_at");
        if let Some(p) = previous {
            assert!(recorded >= p, "recorded_at never goes back");
        }
        previous = Some(recorded);
    }

    // after_version starts after that version; cursor pages are the same list cut in pieces.
    let after = app
        .get(&format!("{path}/history?after_version=2"), token(&alice))
        .await
        .expect(200);
    assert_eq!(
        after.body["items"].as_array().unwrap().as_slice(),
        &items[2..]
    );
    let (paged, pages) = all_pages(app, &alice, &format!("{path}/history"), "limit=3", &last).await;
    assert_eq!((paged.as_slice(), pages), (items.as_slice(), 2));
    let (paged, pages) = all_pages(
        app,
        &alice,
        &format!("{path}/history"),
        "after_version=1&limit=1",
        &last,
    )
    .await;
    assert_eq!((paged.as_slice(), pages), (&items[1..], 3));
    let none = app
        .get(&format!("{path}/history?after_version=4"), token(&alice))
        .await
        .expect(200);
    assert_eq!(none.body, json!({"items": [], "next_cursor": null}));

    // A viewer reads the same audit trail; strangers and bad queries are refused.
    let viewer = app
        .get(&format!("{path}/history"), token(&bob))
        .await
        .expect(200);
    assert_eq!(viewer.body["items"].as_array().unwrap(), &items);
    app.get(&format!("{path}/history"), token(&carol))
        .await
        .expect(404);
    app.get(
        &format!("/projects/{}/history", uuid::Uuid::new_v4()),
        token(&alice),
    )
    .await
    .expect(404);
    app.get("/projects/nope/history", token(&alice))
        .await
        .expect(404);
    app.get(&format!("{path}/history?cursor=%%%"), token(&alice))
        .await
        .expect(400);
    app.get(&format!("{path}/history?cursor=bm9wZQ"), token(&alice))
        .await
        .expect(400);
    app.get(&format!("{path}/history?limit=0"), token(&alice))
        .await
        .expect(422);
    app.get(&format!("{path}/history?after_version=x"), token(&alice))
        .await
        .expect(400);
}

#[tokio::test]
async fn features_are_listed_in_creation_order_and_read_one_by_one() {
    let s = serve(&[]).await;
    let app = &s.app;
    let (alice, _) = app.register("Alice").await;
    let (bob, _) = app.register("Bob").await;
    let (carol, _) = app.register("Carol").await;
    let (id, _) = create_shop(app, &alice).await;
    let path = format!("/projects/{id}");
    for (name, kind) in [
        ("Jobs", "background_jobs"),
        ("Stats", "analytics"),
        ("Files", "file_storage"),
    ] {
        app.post(
            &format!("{path}/features"),
            token(&alice),
            json!({"name": name, "feature_type": kind}),
        )
        .await
        .expect(201);
    }
    // The last write: reading at its position sees every earlier one.
    let last = add_viewer(app, &alice, &id, &bob).await;

    let list = app
        .get_at(&format!("{path}/features"), token(&alice), &last)
        .await
        .expect(200);
    let items = list.body["items"].as_array().expect("items").clone();
    let names: Vec<&str> = items.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["Customers", "Login", "Jobs", "Stats", "Files"]);
    assert!(list.body["next_cursor"].is_null());
    assert_eq!(items[0]["feature_type"], json!("crud"));
    assert_eq!(items[0]["schema_definition"]["entity"], json!("customer"));
    let (paged, pages) =
        all_pages(app, &alice, &format!("{path}/features"), "limit=2", &last).await;
    assert_eq!((paged.as_slice(), pages), (items.as_slice(), 3));

    for item in &items {
        let fid = item["id"].as_str().expect("feature id");
        let one = app
            .get(&format!("{path}/features/{fid}"), token(&alice))
            .await
            .expect(200);
        assert_eq!(&one.body, item);
        let seen_by_viewer = app
            .get(&format!("{path}/features/{fid}"), token(&bob))
            .await
            .expect(200);
        assert_eq!(&seen_by_viewer.body, item);
        app.get(&format!("{path}/features/{fid}"), token(&carol))
            .await
            .expect(404);
    }
    let viewer = app
        .get(&format!("{path}/features"), token(&bob))
        .await
        .expect(200);
    assert_eq!(viewer.body["items"].as_array().unwrap(), &items);
    app.get(&format!("{path}/features"), token(&carol))
        .await
        .expect(404);

    // A feature of another project, an unknown one, or not an id: 404.
    let (other, other_at) = create_project(app, &alice, json!({"name": "Other"})).await;
    let fid = items[1]["id"].as_str().unwrap();
    app.get_at(
        &format!("/projects/{other}/features/{fid}"),
        token(&alice),
        &other_at,
    )
    .await
    .expect(404);
    app.get(
        &format!("{path}/features/{}", uuid::Uuid::new_v4()),
        token(&alice),
    )
    .await
    .expect(404);
    app.get(&format!("{path}/features/login"), token(&alice))
        .await
        .expect(404);
    app.get(&format!("{path}/features?cursor=zzz"), token(&alice))
        .await
        .expect(400);
    app.get(&format!("{path}/features?limit=201"), token(&alice))
        .await
        .expect(422);

    // A removed feature leaves the list and its own URL.
    let removed = app
        .delete(&format!("{path}/features/{fid}"), token(&alice))
        .await
        .expect(204);
    let at = position_of(&removed);
    let list = app
        .get_at(&format!("{path}/features"), token(&alice), &at)
        .await
        .expect(200);
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Customers", "Jobs", "Stats", "Files"]);
    app.get(&format!("{path}/features/{fid}"), token(&alice))
        .await
        .expect(404);
}

/// Reads a project at `at` from the process whose feature lists are cached (and carried forward
/// by its projector) and from one that aggregates them from the rows every time: the same body.
async fn same_from_both(
    cached: &Backforge,
    rows: &Backforge,
    owner: &TestUser,
    project: &str,
    at: &str,
) -> Vec<String> {
    let path = format!("/projects/{project}");
    let from_cache = cached.get_at(&path, token(owner), at).await.expect(200);
    let from_rows = rows.get_at(&path, token(owner), at).await.expect(200);
    assert_eq!(
        from_cache.body, from_rows.body,
        "the cached list differs from the rows"
    );
    assert_eq!(from_cache.header("etag"), from_rows.header("etag"));
    let listed = cached
        .get_at(&format!("{path}/features"), token(owner), at)
        .await
        .expect(200);
    assert_eq!(listed.body["items"], from_cache.body["features"]);
    from_cache.body["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["name"].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test]
async fn a_held_feature_list_follows_every_kind_of_write_as_the_rows_do() {
    // given `serve` (whose projector carries the feature lists its reads hold) and a query
    // process on the same database that keeps no lists, and a project read once through `serve`
    let s = serve(&[]).await;
    let cached = &s.app;
    let rows = Backforge::start(
        "query-api",
        &s.db.url,
        &[("BACKFORGE_FEATURE_LIST_CACHE_BYTES", "0")],
    )
    .await;
    let (alice, _) = cached.register("Alice").await;
    let (bob, _) = cached.register("Bob").await;
    let (carol, _) = cached.register("Carol").await;
    let (id, at) = create_shop(cached, &alice).await;
    let path = format!("/projects/{id}");
    let names = same_from_both(cached, &rows, &alice, &id, &at).await;
    assert_eq!(names, ["Customers", "Login"]);
    let login = cached
        .get(&format!("{path}/features"), token(&alice))
        .await
        .expect(200)
        .body["items"][1]["id"]
        .as_str()
        .expect("feature id")
        .to_owned();

    // when features are added, renamed, given another schema and removed, and the project is
    // renamed and shared, then after each write both processes show the same project
    let added = cached
        .post(
            &format!("{path}/features"),
            token(&alice),
            json!({"name": "Jobs", "feature_type": "background_jobs"}),
        )
        .await
        .expect(201);
    let names = same_from_both(cached, &rows, &alice, &id, &position_of(&added)).await;
    assert_eq!(names, ["Customers", "Login", "Jobs"]);
    let jobs = added.body["id"].as_str().expect("feature id").to_owned();
    // (a list the projector rendered, extended by the next added feature)
    let appended = cached
        .post(
            &format!("{path}/features"),
            token(&alice),
            json!({"name": "Stats", "feature_type": "analytics"}),
        )
        .await
        .expect(201);
    let names = same_from_both(cached, &rows, &alice, &id, &position_of(&appended)).await;
    assert_eq!(names, ["Customers", "Login", "Jobs", "Stats"]);
    let renamed = cached
        .put(
            &format!("{path}/features/{jobs}"),
            token(&alice),
            json!({"name": "Queues"}),
        )
        .await
        .expect(200);
    let names = same_from_both(cached, &rows, &alice, &id, &position_of(&renamed)).await;
    assert_eq!(names, ["Customers", "Login", "Queues", "Stats"]);
    let customers = cached
        .get(&format!("{path}/features"), token(&alice))
        .await
        .expect(200)
        .body["items"][0]["id"]
        .as_str()
        .expect("feature id")
        .to_owned();
    let reshaped = cached
        .put(
            &format!("{path}/features/{customers}"),
            token(&alice),
            json!({"schema_definition": {"entity": "customer", "fields": [
                {"name": "email", "type": "string", "required": true},
                {"name": "vip", "type": "boolean"}]}}),
        )
        .await
        .expect(200);
    same_from_both(cached, &rows, &alice, &id, &position_of(&reshaped)).await;
    let removed = cached
        .delete(&format!("{path}/features/{login}"), token(&alice))
        .await
        .expect(204);
    let names = same_from_both(cached, &rows, &alice, &id, &position_of(&removed)).await;
    assert_eq!(names, ["Customers", "Queues", "Stats"]);
    let project_renamed = cached
        .put(&path, token(&alice), json!({"name": "Shop 2"}))
        .await
        .expect(200);
    same_from_both(cached, &rows, &alice, &id, &position_of(&project_renamed)).await;
    let shared = add_viewer(cached, &alice, &id, &bob).await;
    let names = same_from_both(cached, &rows, &alice, &id, &shared).await;
    assert_eq!(names, ["Customers", "Queues", "Stats"]);
    // and a viewer reads the held list too, while a stranger still gets 404 from both routes
    let seen = cached.get(&path, token(&bob)).await.expect(200);
    assert_eq!(seen.body["features"].as_array().map(Vec::len), Some(3));
    cached.get(&path, token(&carol)).await.expect(404);
    cached
        .get(&format!("{path}/features"), token(&carol))
        .await
        .expect(404);
    assert_eq!(seen.body["features"][1]["name"], json!("Queues"));
}

#[tokio::test]
async fn a_malformed_min_position_is_a_400_and_an_unreached_one_a_503_with_retry_after() {
    let s = serve(&[("BACKFORGE_MIN_POSITION_WAIT_MS", "300")]).await;
    let app = &s.app;
    let (alice, registered) = app.register("Alice").await;
    let (id, created) = create_project(app, &alice, json!({"name": "Shop"})).await;
    // 300 ms is shorter than the feed may be held back (the xmin horizon is cluster-wide, and
    // other tests hold transactions open): retry until the read models have the last write, so
    // every read below at an earlier position is answered at once.
    eventually(
        "the read models reach the project's creation",
        Duration::from_secs(20),
        || async {
            let answer = app
                .send_unchecked(
                    Method::GET,
                    "/auth/profile",
                    token(&alice),
                    None,
                    &[("Backforge-Min-Position", &created)],
                )
                .await;
            match answer.status.as_u16() {
                200 => Some(()),
                503 => None,
                other => panic!("{other}: {}", answer.body),
            }
        },
    )
    .await;
    app.get_at("/auth/profile", token(&alice), &registered)
        .await
        .expect(200);

    let routes = [
        "/auth/profile".to_owned(),
        "/projects".to_owned(),
        format!("/projects/{id}"),
        format!("/projects/{id}?as_of_version=1"),
        format!("/projects/{id}/history"),
        format!("/projects/{id}/features"),
    ];
    for route in &routes {
        for malformed in [
            "garbage",
            "",
            "1.2.3",
            "zz.1",
            "1",
            ".1",
            "12345678901234567.1",
        ] {
            let answer = app.get_at(route, token(&alice), malformed).await;
            assert_eq!(
                answer.status.as_u16(),
                400,
                "{route} with Backforge-Min-Position `{malformed}`: {}",
                answer.body
            );
        }
        app.get_at(route, token(&alice), &created).await.expect(200);
    }

    // A position the feed will not reach for a long time: 503 after the configured wait.
    let far = format!("{:x}.{:x}", u64::MAX >> 4, 1);
    for route in &routes {
        let started = Instant::now();
        let answer = app
            .send_unchecked(
                Method::GET,
                route,
                token(&alice),
                None,
                &[("Backforge-Min-Position", &far)],
            )
            .await;
        let waited = started.elapsed();
        assert_eq!(answer.status.as_u16(), 503, "{route}: {}", answer.body);
        let retry_after: u64 = answer
            .header("Retry-After")
            .expect("503 carries Retry-After")
            .parse()
            .expect("Retry-After in seconds");
        assert!(retry_after >= 1);
        assert_eq!(
            answer.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        assert_eq!(answer.body["status"], json!(503));
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
            "{route} waited {waited:?}, configured 300 ms"
        );
    }
}

#[tokio::test]
async fn an_archived_project_is_gone_for_current_reads_and_writes_but_its_past_stays_with_its_owner()
 {
    let s = serve(&[]).await;
    let app = &s.app;
    let (alice, _) = app.register("Alice").await;
    let (bob, _) = app.register("Bob").await;
    let (id, _) = create_project(app, &alice, json!({"name": "Old"})).await;
    let path = format!("/projects/{id}");
    let feature = app
        .post(
            &format!("{path}/features"),
            token(&alice),
            json!({"name": "Login", "feature_type": "auth"}),
        )
        .await
        .expect(201);
    let fid = feature.body["id"].as_str().unwrap().to_owned();
    let shared = add_viewer(app, &alice, &id, &bob).await;
    let before = app.get_at(&path, token(&bob), &shared).await.expect(200);
    assert_eq!(before.body["version"], json!(3));

    let archived = app.delete(&path, token(&alice)).await.expect(204);
    assert!(archived.body.is_null());
    assert_eq!(archived.header("ETag").as_deref(), Some("\"4\""));
    let at = position_of(&archived);

    // Current state: 404 for everyone, reads and writes alike.
    for user in [&alice, &bob] {
        app.get_at(&path, token(user), &at).await.expect(404);
        app.get_at(&format!("{path}/features"), token(user), &at)
            .await
            .expect(404);
        app.get_at(&format!("{path}/features/{fid}"), token(user), &at)
            .await
            .expect(404);
    }
    app.put(&path, token(&alice), json!({"name": "New"}))
        .await
        .expect(404);
    app.delete(&path, token(&alice)).await.expect(404);
    app.post(
        &format!("{path}/features"),
        token(&alice),
        json!({"name": "Jobs", "feature_type": "background_jobs"}),
    )
    .await
    .expect(404);
    app.delete(&format!("{path}/features/{fid}"), token(&alice))
        .await
        .expect(404);

    // The past: the owner keeps history and time travel; the former viewer does not.
    let history = app
        .get_at(&format!("{path}/history"), token(&alice), &at)
        .await
        .expect(200);
    let types: Vec<&str> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.last(), Some(&"ProjectArchived"));
    assert_eq!(types.len(), 4);
    let v3 = app
        .get(&format!("{path}?as_of_version=3"), token(&alice))
        .await
        .expect(200);
    assert_eq!(v3.body, before.body, "the state before archiving");
    let v4 = app
        .get(&format!("{path}?as_of_version=4"), token(&alice))
        .await
        .expect(200);
    assert_eq!(v4.body["status"], json!("archived"));
    let now = query_value(&rfc3339(OffsetDateTime::now_utc()));
    app.get(&format!("{path}?as_of={now}"), token(&alice))
        .await
        .expect(200);
    app.get(&format!("{path}/history"), token(&bob))
        .await
        .expect(404);
    app.get(&format!("{path}?as_of_version=3"), token(&bob))
        .await
        .expect(404);
    app.get(&format!("{path}?as_of={now}"), token(&bob))
        .await
        .expect(404);
}

#[tokio::test]
async fn health_readiness_metrics_and_the_openapi_document_are_served() {
    let s = serve(&[]).await;
    let app = &s.app;

    let health = app.get("//health", None).await.expect(200);
    assert_eq!(health.body["status"], json!("ok"));
    let ready = app.get("//health/ready", None).await.expect(200);
    assert_eq!(
        ready.body["checks"]["postgres"],
        json!("up"),
        "{}",
        ready.body
    );

    let (alice, registered) = app.register("Alice").await;
    app.get_at("/projects", token(&alice), &registered)
        .await
        .expect(200);
    app.get("/projects?limit=0", token(&alice))
        .await
        .expect(422);
    app.get("//no/such/route", None).await.expect(404);

    let metrics = app.get("//metrics", None).await.expect(200);
    let text = metrics.body.as_str().expect("metrics are text").to_owned();
    assert!(
        text.contains("backforge_projection_lag_seconds{"),
        "projection lag is exported:\n{text}"
    );
    let counted = |route: &str, status: &str| {
        text.lines().any(|l| {
            l.starts_with("backforge_http_requests_total{")
                && l.contains("method=\"GET\"")
                && l.contains(&format!("route=\"{route}\""))
                && l.contains(&format!("status=\"{status}\""))
        })
    };
    assert!(
        counted("/api/v1/projects", "200"),
        "request counter:\n{text}"
    );
    assert!(
        counted("/api/v1/projects", "422"),
        "request counter:\n{text}"
    );
    assert!(text.contains("backforge_http_request_duration_seconds"));

    let doc = app.get("/openapi.json", None).await.expect(200);
    let version = doc.body["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1"), "OpenAPI 3.1, got {version}");
    let paths = doc.body["paths"].as_object().expect("paths");
    let phase_1 = [
        ("post", "/api/v1/auth/register"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/refresh"),
        ("post", "/api/v1/auth/logout"),
        ("get", "/api/v1/auth/profile"),
        ("put", "/api/v1/auth/profile"),
        ("post", "/api/v1/auth/change-password"),
        ("post", "/api/v1/projects"),
        ("get", "/api/v1/projects"),
        ("get", "/api/v1/projects/{id}"),
        ("put", "/api/v1/projects/{id}"),
        ("delete", "/api/v1/projects/{id}"),
        ("get", "/api/v1/projects/{id}/history"),
        ("put", "/api/v1/projects/{id}/members/{user_id}"),
        ("delete", "/api/v1/projects/{id}/members/{user_id}"),
        ("post", "/api/v1/projects/{id}/features"),
        ("get", "/api/v1/projects/{id}/features"),
        ("get", "/api/v1/projects/{id}/features/{feature_id}"),
        ("put", "/api/v1/projects/{id}/features/{feature_id}"),
        ("delete", "/api/v1/projects/{id}/features/{feature_id}"),
        ("get", "/health"),
        ("get", "/health/ready"),
    ];
    let missing: Vec<String> = phase_1
        .iter()
        .filter(|(method, path)| paths.get(*path).and_then(|p| p.get(*method)).is_none())
        .map(|(method, path)| format!("{} {path}", method.to_uppercase()))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}; it has {:?}",
        paths.keys().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn read_models_of_an_older_shape_are_dropped_and_rebuilt_from_the_feed() {
    // Given read models written by an older build (shape 1), with a table this build never made
    let db = TestDatabase::create().await.expect("test database");
    event_store::setup::migrate(&db.url).await.expect("migrate");
    read_model::ensure(&db.url).await.expect("ensure");
    let pool = event_store::setup::pool(&db.url, 2).expect("pool");
    let client = pool.get().await.expect("connection");
    client
        .batch_execute(
            "UPDATE rm.checkpoints SET shape_version = 1, tx = 7, seq = 7;
             CREATE TABLE rm.left_by_shape_1 (x int);",
        )
        .await
        .expect("age the read models");
    // When this build starts
    read_model::ensure(&db.url).await.expect("ensure again");
    // Then the old tables are gone and the projection starts again from the feed's beginning
    let row = client
        .query_one(
            "SELECT shape_version, tx, seq, to_regclass('rm.left_by_shape_1') IS NULL
             FROM rm.checkpoints",
            &[],
        )
        .await
        .expect("checkpoint");
    let (shape, tx, seq, gone): (i32, i64, i64, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(shape, read_model::SHAPE_VERSION);
    assert_eq!((tx, seq), (0, 0));
    assert!(gone);
    // And a current shape is left alone
    client
        .batch_execute("UPDATE rm.checkpoints SET tx = 5, seq = 5")
        .await
        .expect("advance");
    read_model::ensure(&db.url)
        .await
        .expect("ensure a third time");
    let row = client
        .query_one("SELECT tx FROM rm.checkpoints", &[])
        .await
        .expect("checkpoint");
    assert_eq!(row.get::<_, i64>(0), 5);
}
