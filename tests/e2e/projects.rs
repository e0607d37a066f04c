//! Project, feature and member writes end to end: every route's success answers and headers, its
//! status codes, and the JSON Pointers of its validation errors. Access is in `access`, idempotent
//! retries in `idempotency`; the helpers here are shared with both.

use event_store::Position;
use reqwest::Method;
use serde_json::{Value, json};
use tests::{Answer, TestApp, TestUser};

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// A crud feature defining the entity `customer`.
pub(crate) fn customers() -> Value {
    json!({"name": "Customers", "feature_type": "crud", "schema_definition":
        {"entity": "customer", "fields": [{"name": "email", "type": "string", "required": true}]}})
}

/// A crud feature defining the entity `order`, which references `customer`.
pub(crate) fn orders() -> Value {
    json!({"name": "Orders", "feature_type": "crud", "schema_definition":
        {"entity": "order", "plural": "orders", "fields": [
            {"name": "title", "type": "string", "required": true, "max_length": 120},
            {"name": "customer_id", "type": "reference", "references": "customer", "required": true}]}})
}

/// A project of `owner` with three features added one by one: `customers` (version 2),
/// `orders` referencing it (version 3) and `login`, an `auth` feature nobody references (version 4).
pub(crate) struct Shop {
    pub id: String,
    pub customers: String,
    pub orders: String,
    pub login: String,
}

impl Shop {
    pub(crate) async fn create(app: &TestApp, owner: &TestUser) -> Shop {
        let id = create_project(app, owner).await;
        let customers = add_feature(app, owner, &id, customers()).await;
        let orders = add_feature(app, owner, &id, orders()).await;
        let login = add_feature(
            app,
            owner,
            &id,
            json!({"name": "Login", "feature_type": "auth"}),
        )
        .await;
        Shop {
            id,
            customers,
            orders,
            login,
        }
    }

    pub(crate) fn path(&self) -> String {
        format!("/projects/{}", self.id)
    }

    pub(crate) fn feature_path(&self, feature: &str) -> String {
        format!("/projects/{}/features/{feature}", self.id)
    }
}

/// Creates a bare project named "Shop" owned by `owner` and returns its id.
pub(crate) async fn create_project(app: &TestApp, owner: &TestUser) -> String {
    let answer = app
        .post(
            "/projects",
            Some(&owner.access_token),
            json!({"name": "Shop"}),
        )
        .await
        .expect(201);
    answer.body["id"].as_str().expect("project id").to_owned()
}

/// Adds a feature to `project` as `owner` and returns its id.
pub(crate) async fn add_feature(
    app: &TestApp,
    owner: &TestUser,
    project: &str,
    body: Value,
) -> String {
    let answer = app
        .post(
            &format!("/projects/{project}/features"),
            Some(&owner.access_token),
            body,
        )
        .await
        .expect(201);
    answer.body["id"].as_str().expect("feature id").to_owned()
}

/// Makes `member` a viewer of `project` (as its owner).
pub(crate) async fn add_viewer(app: &TestApp, owner: &TestUser, project: &str, member: &TestUser) {
    app.put(
        &format!("/projects/{project}/members/{}", member.id),
        Some(&owner.access_token),
        json!({"role": "viewer"}),
    )
    .await
    .expect(200);
}

/// The JSON Pointers a 422 names, in order.
pub(crate) fn pointers(answer: &Answer) -> Vec<String> {
    answer.body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {}", answer.body))
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_owned())
        .collect()
}

/// Asserts a 422 whose errors name `pointer` (among others).
#[track_caller]
pub(crate) fn assert_invalid_at(answer: Answer, pointer: &str) {
    let answer = answer.expect(422);
    assert_eq!(
        answer.body["type"],
        "https://backforge.dev/problems/validation-failed"
    );
    let found = pointers(&answer);
    assert!(
        found.iter().any(|p| p == pointer),
        "{pointer} not among {found:?}: {}",
        answer.body
    );
}

/// Asserts the headers of a successful write at stream `version` and returns its position:
/// `ETag: "<version>"` and `Backforge-Position` always; `version` and `position` in a body, which
/// only a 204 lacks.
#[track_caller]
pub(crate) fn assert_write_headers(answer: &Answer, version: u64) -> Position {
    assert!(answer.status.is_success(), "{}", answer.body);
    assert_eq!(
        answer.header("etag"),
        Some(format!("\"{version}\"")),
        "ETag of {}",
        answer.body
    );
    let token = answer
        .header("backforge-position")
        .expect("Backforge-Position header");
    let position = Position::parse_token(&token).expect("a well-formed position token");
    if answer.status.as_u16() == 204 {
        assert_eq!(answer.body, Value::Null, "a 204 carries only the headers");
    } else {
        assert_eq!(answer.body["version"], json!(version));
        assert_eq!(answer.body["position"], json!(token));
        assert_eq!(
            answer.header("content-type").as_deref(),
            Some("application/json")
        );
    }
    position
}

/// One write request: method, path under `/api/v1`, and JSON body (none for DELETE).
#[derive(Debug, Clone)]
pub(crate) struct Write {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
}

impl Write {
    pub(crate) fn new(method: Method, path: String, body: Option<Value>) -> Self {
        Self { method, path, body }
    }

    pub(crate) async fn send(
        &self,
        app: &TestApp,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        app.send(
            self.method.clone(),
            &self.path,
            token,
            self.body.clone(),
            headers,
        )
        .await
    }

    pub(crate) fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Every write route that names a project, in an order its owner can run one after another:
/// `feature` is a feature nobody references, `user` a registered user who is not yet a member.
/// The last one archives the project.
pub(crate) fn id_bearing_writes(project: &str, feature: &str, user: &str) -> Vec<Write> {
    let p = format!("/projects/{project}");
    vec![
        Write::new(
            Method::PUT,
            p.clone(),
            Some(json!({"description": "changed"})),
        ),
        Write::new(
            Method::POST,
            format!("{p}/features"),
            Some(json!({"name": "Reports", "feature_type": "analytics"})),
        ),
        Write::new(
            Method::PUT,
            format!("{p}/features/{feature}"),
            Some(json!({"name": "Sign-in"})),
        ),
        Write::new(Method::DELETE, format!("{p}/features/{feature}"), None),
        Write::new(
            Method::PUT,
            format!("{p}/members/{user}"),
            Some(json!({"role": "viewer"})),
        ),
        Write::new(Method::DELETE, format!("{p}/members/{user}"), None),
        Write::new(Method::DELETE, p, None),
    ]
}

/// Every project, feature and member write route: `POST /projects` and the id-bearing ones.
pub(crate) fn all_writes(project: &str, feature: &str, user: &str) -> Vec<Write> {
    let mut writes = vec![Write::new(
        Method::POST,
        "/projects".into(),
        Some(json!({"name": "Another"})),
    )];
    writes.extend(id_bearing_writes(project, feature, user));
    writes
}

fn random_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------------------------------------
// Successful writes: status, body, headers, events
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_project_created_with_features_is_one_atomic_append() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let created = app
        .post(
            "/projects",
            Some(&owner.access_token),
            json!({"name": "Shop", "description": "orders and customers", "features": [
                customers(), orders(), {"name": "Login", "feature_type": "auth"}
            ]}),
        )
        .await
        .expect(201);
    assert_eq!(created.body["version"], 4);
    assert_eq!(created.header("etag").as_deref(), Some("\"4\""));
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/projects/{id}"))
    );
    assert_eq!(app.event_count().await, 2 + 4);
}

#[tokio::test]
async fn creating_a_project_answers_201_with_location_etag_and_position() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let before = app.event_count().await;
    let created = app
        .post(
            "/projects",
            Some(&owner.access_token),
            json!({"name": "  Shop  ", "description": "orders", "generation_mode": "mixed"}),
        )
        .await
        .expect(201);
    assert_write_headers(&created, 1);
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "the id is a UUID: {id}");
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/projects/{id}"))
    );
    let keys: Vec<&String> = created.body.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["id", "version", "position"]);
    assert_eq!(app.event_count().await, before + 1);

    let events = app.all_events().await;
    let (stream, event_type, data, metadata) = events.last().expect("an event");
    assert_eq!(stream, &format!("project-{id}"));
    assert_eq!(event_type, "ProjectCreated");
    assert_eq!(data["owner_id"], json!(owner.id));
    assert_eq!(data["name"], "Shop", "the name is trimmed");
    assert_eq!(data["generation_mode"], "mixed");
    assert_eq!(metadata["actor"], json!(owner.id));
}

#[tokio::test]
async fn a_project_update_answers_200_with_its_id_and_the_new_version() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let id = create_project(&app, &owner).await;
    let path = format!("/projects/{id}");
    let token = Some(owner.access_token.as_str());

    let first = app
        .put(
            &path,
            token,
            json!({"name": "Market", "description": "stalls"}),
        )
        .await
        .expect(200);
    let p2 = assert_write_headers(&first, 2);
    assert_eq!(first.body["id"], json!(id));
    assert!(first.header("location").is_none());

    let cleared = app
        .put(&path, token, json!({"description": null}))
        .await
        .expect(200);
    let p3 = assert_write_headers(&cleared, 3);
    assert!(p3 > p2, "positions grow with each write");
    let mode = app
        .put(&path, token, json!({"generation_mode": "ai_assisted"}))
        .await
        .expect(200);
    assert_write_headers(&mode, 4);

    let events = app.all_events().await;
    let updates: Vec<&Value> = events
        .iter()
        .filter(|e| e.1 == "ProjectUpdated")
        .map(|e| &e.2)
        .collect();
    assert_eq!(updates.len(), 3);
    assert_eq!(updates[0]["name"], "Market");
    assert_eq!(updates[1]["description"], Value::Null);
    assert!(
        updates[1].get("name").is_none(),
        "only changed members are recorded"
    );
    assert_eq!(updates[2]["generation_mode"], "ai_assisted");
}

#[tokio::test]
async fn a_put_that_changes_nothing_answers_200_with_the_same_version_and_no_event() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let viewer = app.register("Victor").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let added = app
        .put(
            &format!("{}/members/{}", shop.path(), viewer.id),
            token,
            json!({"role": "viewer"}),
        )
        .await
        .expect(200);
    let last = assert_write_headers(&added, 5);
    let before = app.event_count().await;

    let unchanged = [
        (shop.path(), json!({"name": "Shop"})),
        (shop.path(), json!({"name": "  Shop "})),
        (shop.path(), json!({"description": null})),
        (shop.path(), json!({"generation_mode": "manual"})),
        (
            shop.feature_path(&shop.customers),
            json!({"name": "Customers", "is_enabled": true}),
        ),
        (
            shop.feature_path(&shop.customers),
            json!({"schema_definition": customers()["schema_definition"].clone()}),
        ),
        (
            shop.feature_path(&shop.login),
            json!({"configuration": {}, "generation_mode": null}),
        ),
        (
            format!("{}/members/{}", shop.path(), viewer.id),
            json!({"role": "viewer"}),
        ),
    ];
    for (path, body) in unchanged {
        let answer = app.put(&path, token, body.clone()).await.expect(200);
        let position = assert_write_headers(&answer, 5);
        assert_eq!(
            position, last,
            "a no-op answers with the last event's position: PUT {path} {body}"
        );
    }
    assert_eq!(app.event_count().await, before, "no-ops append nothing");
}

#[tokio::test]
async fn archiving_a_project_answers_204_with_the_write_headers() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let id = create_project(&app, &owner).await;
    let before = app.event_count().await;
    let archived = app
        .delete(&format!("/projects/{id}"), Some(&owner.access_token))
        .await
        .expect(204);
    assert_write_headers(&archived, 2);
    assert_eq!(app.event_count().await, before + 1);
    assert_eq!(
        app.all_events().await.last().expect("event").1,
        "ProjectArchived"
    );
    let again = app
        .delete(&format!("/projects/{id}"), Some(&owner.access_token))
        .await
        .expect(404);
    assert_eq!(
        again.body["type"],
        "https://backforge.dev/problems/not-found"
    );
    assert_eq!(app.event_count().await, before + 1);
}

#[tokio::test]
async fn a_member_is_added_with_200_and_removed_with_204() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let viewer = app.register("Victor").await;
    let id = create_project(&app, &owner).await;
    let member_path = format!("/projects/{id}/members/{}", viewer.id);
    let token = Some(owner.access_token.as_str());
    let before = app.event_count().await;

    let added = app
        .put(&member_path, token, json!({"role": "viewer"}))
        .await
        .expect(200);
    assert_write_headers(&added, 2);
    let keys: Vec<&String> = added.body.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["version", "position"], "a member write names no id");
    let (_, event_type, data, _) = app.all_events().await.pop().expect("event");
    assert_eq!(event_type, "ProjectMemberAdded");
    assert_eq!(data["user_id"], json!(viewer.id));
    assert_eq!(data["role"], "viewer");

    let removed = app.delete(&member_path, token).await.expect(204);
    assert_write_headers(&removed, 3);
    assert_eq!(app.event_count().await, before + 2);

    let again = app.delete(&member_path, token).await.expect(404);
    assert_eq!(
        again.body["type"],
        "https://backforge.dev/problems/not-found"
    );
    assert_eq!(app.event_count().await, before + 2);
}

#[tokio::test]
async fn adding_a_member_who_is_unknown_malformed_or_the_owner_is_refused() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let viewer = app.register("Victor").await;
    let id = create_project(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let before = app.event_count().await;
    let member = |user: &str| format!("/projects/{id}/members/{user}");
    let viewer_role = json!({"role": "viewer"});

    for user in [random_id(), "not-a-uuid".into(), id.clone()] {
        app.put(&member(&user), token, viewer_role.clone())
            .await
            .expect(404);
        app.delete(&member(&user), token).await.expect(404);
    }
    app.delete(&member(&viewer.id), token).await.expect(404);
    assert_invalid_at(
        app.put(&member(&owner.id), token, viewer_role.clone())
            .await,
        "/user_id",
    );
    assert_invalid_at(
        app.put(&member(&viewer.id), token, json!({"role": "owner"}))
            .await,
        "/role",
    );
    assert_invalid_at(
        app.put(&member(&viewer.id), token, json!({"role": "admin"}))
            .await,
        "/role",
    );
    assert_invalid_at(
        app.put(
            &member(&viewer.id),
            token,
            json!({"role": "viewer", "admin": true}),
        )
        .await,
        "/admin",
    );
    app.put(&member(&viewer.id), token, json!({}))
        .await
        .expect(422);
    assert_eq!(app.event_count().await, before, "no refused request wrote");
}

#[tokio::test]
async fn a_feature_is_added_updated_and_removed() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let id = create_project(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let before = app.event_count().await;

    let added = app
        .post(&format!("/projects/{id}/features"), token, customers())
        .await
        .expect(201);
    assert_write_headers(&added, 2);
    let feature = added.body["id"].as_str().expect("feature id").to_owned();
    assert_eq!(
        added.header("location"),
        Some(format!("/api/v1/projects/{id}/features/{feature}"))
    );
    let path = format!("/projects/{id}/features/{feature}");

    let updated = app
        .put(
            &path,
            token,
            json!({"name": "Clients", "is_enabled": false, "generation_mode": "mixed"}),
        )
        .await
        .expect(200);
    assert_write_headers(&updated, 3);
    assert_eq!(updated.body["id"], json!(feature), "the feature's id");

    let removed = app.delete(&path, token).await.expect(204);
    assert_write_headers(&removed, 4);
    assert_eq!(app.event_count().await, before + 3);

    let events = app.all_events().await;
    let types: Vec<&str> = events[events.len() - 3..]
        .iter()
        .map(|e| e.1.as_str())
        .collect();
    assert_eq!(types, ["FeatureAdded", "FeatureUpdated", "FeatureRemoved"]);
    let added_data = &events[events.len() - 3].2;
    assert_eq!(added_data["feature_id"], json!(feature));
    assert_eq!(added_data["is_enabled"], true, "features start enabled");
    assert_eq!(
        added_data["schema_definition"]["plural"], "customers",
        "the stored schema is normalised"
    );
    assert_eq!(events[events.len() - 2].2["name"], "Clients");

    for (method, body) in [
        (Method::PUT, Some(json!({"name": "Again"}))),
        (Method::DELETE, None),
    ] {
        app.send(method, &path, token, body, &[]).await.expect(404);
    }
    assert_eq!(app.event_count().await, before + 3);
}

// ---------------------------------------------------------------------------------------------
// 404: unknown, malformed and foreign ids
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_and_malformed_ids_are_404_and_write_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let other = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let before = app.event_count().await;

    // An unknown project, a non-UUID, and the id of something that is not a project (a user).
    for project in [
        random_id(),
        "not-a-uuid".into(),
        "42".into(),
        owner.id.clone(),
    ] {
        for write in id_bearing_writes(&project, &shop.login, &other.id) {
            let answer = write.send(&app, token, &[]).await;
            assert_eq!(answer.status, 404, "{}: {}", write.name(), answer.body);
            assert_eq!(
                answer.body["type"],
                "https://backforge.dev/problems/not-found"
            );
        }
    }
    // Unknown and malformed features of a real project.
    for feature in [random_id(), "nope".into(), shop.id.clone()] {
        let path = shop.feature_path(&feature);
        app.put(&path, token, json!({"name": "X"}))
            .await
            .expect(404);
        app.delete(&path, token).await.expect(404);
    }
    assert_eq!(app.event_count().await, before);
}

// ---------------------------------------------------------------------------------------------
// 409: names taken, entities still referenced
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_feature_name_entity_or_plural_taken_in_the_project_is_409() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let features = format!("{}/features", shop.path());
    let before = app.event_count().await;

    let taken = [
        json!({"name": "CUSTOMERS", "feature_type": "auth"}),
        json!({"name": "Clients", "feature_type": "crud", "schema_definition":
            {"entity": "customer", "plural": "clients", "fields": [{"name": "n", "type": "text"}]}}),
        json!({"name": "Clients", "feature_type": "crud", "schema_definition":
            {"entity": "client", "plural": "customers", "fields": [{"name": "n", "type": "text"}]}}),
    ];
    for body in taken {
        let answer = app.post(&features, token, body).await.expect(409);
        assert_eq!(
            answer.body["type"],
            "https://backforge.dev/problems/name-taken"
        );
    }
    let renamed = app
        .put(
            &shop.feature_path(&shop.login),
            token,
            json!({"name": "orders"}),
        )
        .await
        .expect(409);
    assert_eq!(
        renamed.body["type"],
        "https://backforge.dev/problems/name-taken"
    );
    let entity_clash = app
        .put(
            &shop.feature_path(&shop.orders),
            token,
            json!({"schema_definition": {"entity": "customer", "plural": "buyers",
                "fields": [{"name": "n", "type": "text"}]}}),
        )
        .await
        .expect(409);
    assert_eq!(
        entity_clash.body["type"],
        "https://backforge.dev/problems/name-taken"
    );
    assert_eq!(app.event_count().await, before);

    // A feature may change the case of its own name.
    app.put(
        &shop.feature_path(&shop.login),
        token,
        json!({"name": "LOGIN"}),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn a_referenced_entity_cannot_be_removed_renamed_or_disabled() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let customers_path = shop.feature_path(&shop.customers);
    let before = app.event_count().await;

    let still_referenced = "https://backforge.dev/problems/still-referenced";
    let removed = app.delete(&customers_path, token).await.expect(409);
    assert_eq!(removed.body["type"], still_referenced);
    assert!(
        removed.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("order")),
        "names the referencing entity: {}",
        removed.body
    );
    let renamed = app
        .put(
            &customers_path,
            token,
            json!({"schema_definition": {"entity": "client",
                "fields": [{"name": "email", "type": "string", "required": true}]}}),
        )
        .await
        .expect(409);
    assert_eq!(renamed.body["type"], still_referenced);
    let disabled = app
        .put(&customers_path, token, json!({"is_enabled": false}))
        .await
        .expect(409);
    assert_eq!(disabled.body["type"], still_referenced);
    assert_eq!(app.event_count().await, before);

    // Once nothing references it, all three are allowed.
    app.delete(&shop.feature_path(&shop.orders), token)
        .await
        .expect(204);
    app.put(&customers_path, token, json!({"is_enabled": false}))
        .await
        .expect(200);
    app.delete(&customers_path, token).await.expect(204);
}

// ---------------------------------------------------------------------------------------------
// 400, 401, 413, 415: what never reaches the domain
// ---------------------------------------------------------------------------------------------

/// The routes that take a JSON body, for `owner`'s shop.
fn body_routes(shop: &Shop, user: &TestUser) -> Vec<(Method, String)> {
    vec![
        (Method::POST, "/projects".into()),
        (Method::PUT, shop.path()),
        (Method::POST, format!("{}/features", shop.path())),
        (Method::PUT, shop.feature_path(&shop.login)),
        (Method::PUT, format!("{}/members/{}", shop.path(), user.id)),
    ]
}

#[tokio::test]
async fn malformed_json_is_400_on_every_body_route() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let other = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    let before = app.event_count().await;
    // Broken before any member is read, so no route can judge the shape first (see the ignored
    // test below for the other cases).
    let broken: [&[u8]; 7] = [
        b"{",
        b"{,}",
        b"",
        b"   ",
        b"\xff\xfe",
        b"{'name': 'x'}",
        b"nul",
    ];
    for (method, path) in body_routes(&shop, &other) {
        for body in broken {
            let answer = app
                .send_raw(
                    method.clone(),
                    &path,
                    Some(&owner.access_token),
                    Some("application/json"),
                    body.to_vec(),
                )
                .await;
            assert_eq!(
                answer.status,
                400,
                "{method} {path} {:?}: {}",
                String::from_utf8_lossy(body),
                answer.body
            );
            assert_eq!(
                answer.body["type"],
                "https://backforge.dev/problems/malformed-request"
            );
        }
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415_on_every_body_route() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let other = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    let before = app.event_count().await;
    for (method, path) in body_routes(&shop, &other) {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            None,
        ] {
            let answer = app
                .send_raw(
                    method.clone(),
                    &path,
                    Some(&owner.access_token),
                    content_type,
                    br#"{"name": "X", "role": "viewer"}"#.to_vec(),
                )
                .await;
            assert_eq!(
                answer.status, 415,
                "{method} {path} {content_type:?}: {}",
                answer.body
            );
        }
    }
    assert_eq!(app.event_count().await, before);
}

/// The limit is lowered so the refused body fits the socket buffers: a server that answers 413
/// before reading a 1 MiB body may close the connection while a client still writes it (the
/// auth suite covers the 1 MiB default of the same extractor).
#[tokio::test]
async fn a_body_over_the_limit_is_413_on_every_body_route() {
    let app = TestApp::spawn_with(&[("BACKFORGE_BODY_LIMIT_BYTES", "2048")]).await;
    let owner = app.register("Olive").await;
    let other = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    let before = app.event_count().await;
    let over = format!("{{\"description\":\"{}\"}}", "a".repeat(2048));
    for (method, path) in body_routes(&shop, &other) {
        let answer = app
            .send_raw(
                method.clone(),
                &path,
                Some(&owner.access_token),
                Some("application/json"),
                over.clone().into_bytes(),
            )
            .await;
        assert_eq!(answer.status, 413, "{method} {path}: {}", answer.body);
        assert_eq!(
            answer.body["type"],
            "https://backforge.dev/problems/payload-too-large"
        );
    }
    assert_eq!(app.event_count().await, before);
    // A body at the limit is read (and judged on its content).
    let at_limit = format!(
        "{{\"description\":\"at the limit\"{}}}",
        " ".repeat(2048 - 30)
    );
    assert_eq!(at_limit.len(), 2048);
    app.send_raw(
        Method::PUT,
        &shop.path(),
        Some(&owner.access_token),
        Some("application/json"),
        at_limit.into_bytes(),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn a_write_without_a_valid_token_is_401_with_www_authenticate_on_every_route() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let other = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    let before = app.event_count().await;
    for write in all_writes(&shop.id, &shop.login, &other.id) {
        let mut answers = vec![
            write.send(&app, None, &[]).await,
            write.send(&app, Some("not.a.jwt"), &[]).await,
        ];
        // A scheme other than Bearer carries no token either.
        answers.push(
            write
                .send(
                    &app,
                    None,
                    &[("Authorization", &format!("Basic {}", owner.access_token))],
                )
                .await,
        );
        for answer in answers {
            assert_eq!(answer.status, 401, "{}: {}", write.name(), answer.body);
            assert!(
                answer
                    .header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{}: WWW-Authenticate",
                write.name()
            );
        }
    }
    assert_eq!(app.event_count().await, before);
}

/// docs/api.md: 400 is for malformed JSON, whatever the shape of what precedes the error.
#[tokio::test]
async fn malformed_json_is_400_even_when_its_valid_prefix_has_the_wrong_shape() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let other = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    let before = app.event_count().await;
    for (method, path) in body_routes(&shop, &other) {
        for body in [
            &b"{\"colour\": 1} trailing"[..],
            b"{\"colour\":",
            b"{\"colour\": 1,}",
            b"{} {}",
        ] {
            let answer = app
                .send_raw(
                    method.clone(),
                    &path,
                    Some(&owner.access_token),
                    Some("application/json"),
                    body.to_vec(),
                )
                .await;
            assert_eq!(
                answer.status,
                400,
                "{method} {path} {:?}: {}",
                String::from_utf8_lossy(body),
                answer.body
            );
        }
    }
    assert_eq!(app.event_count().await, before);
}

// ---------------------------------------------------------------------------------------------
// 422: shape, mass assignment, partial-update rules, limits, configuration, schemas
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_fields_and_wrong_types_are_422_with_json_pointers() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let features = format!("{}/features", shop.path());
    let login = shop.feature_path(&shop.login);
    let before = app.event_count().await;

    let cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/projects".into(),
            json!({"name": "X", "colour": "red"}),
            "/colour",
        ),
        (
            Method::POST,
            "/projects".into(),
            json!({"name": 5}),
            "/name",
        ),
        (
            Method::POST,
            "/projects".into(),
            json!({"name": "X", "description": ["a"]}),
            "/description",
        ),
        (
            Method::POST,
            "/projects".into(),
            json!({"name": "X", "generation_mode": "auto"}),
            "/generation_mode",
        ),
        (
            Method::POST,
            "/projects".into(),
            json!({"name": "X", "features": {}}),
            "/features",
        ),
        (
            Method::POST,
            "/projects".into(),
            json!({"name": "X", "features": [customers(), {"name": "L", "feature_type": "auth", "colour": 1}]}),
            "/features/1/colour",
        ),
        (
            Method::POST,
            "/projects".into(),
            json!({"name": "X", "features": [{"name": "L", "feature_type": "login"}]}),
            "/features/0/feature_type",
        ),
        (
            Method::POST,
            "/projects".into(),
            json!({"name": "X", "features": [{"name": "L", "feature_type": "auth", "is_enabled": "yes"}]}),
            "/features/0/is_enabled",
        ),
        (
            Method::PUT,
            shop.path(),
            json!({"name": "X", "colour": "red"}),
            "/colour",
        ),
        (Method::PUT, shop.path(), json!({"name": 5}), "/name"),
        (
            Method::PUT,
            shop.path(),
            json!({"description": 5}),
            "/description",
        ),
        (
            Method::PUT,
            shop.path(),
            json!({"generation_mode": "auto"}),
            "/generation_mode",
        ),
        (
            Method::POST,
            features.clone(),
            json!({"name": "L", "feature_type": "auth", "colour": 1}),
            "/colour",
        ),
        (
            Method::POST,
            features.clone(),
            json!({"name": "L", "feature_type": "login"}),
            "/feature_type",
        ),
        (
            Method::POST,
            features.clone(),
            json!({"name": "L", "feature_type": "auth", "is_enabled": "yes"}),
            "/is_enabled",
        ),
        (Method::POST, features.clone(), json!({"name": "L"}), ""),
        (
            Method::PUT,
            login.clone(),
            json!({"name": "L", "colour": 1}),
            "/colour",
        ),
        (
            Method::PUT,
            login.clone(),
            json!({"is_enabled": "yes"}),
            "/is_enabled",
        ),
        (Method::PUT, login.clone(), json!({"name": ["L"]}), "/name"),
        (
            Method::PUT,
            login.clone(),
            json!({"generation_mode": "auto"}),
            "/generation_mode",
        ),
    ];
    for (method, path, body, pointer) in cases {
        let answer = app
            .send(method.clone(), &path, token, Some(body.clone()), &[])
            .await;
        assert_eq!(
            answer.status, 422,
            "{method} {path} {body}: {}",
            answer.body
        );
        let found = pointers(&answer);
        assert!(
            found.iter().any(|p| p == pointer),
            "{method} {path} {body}: {pointer} not among {found:?}"
        );
    }
    // A body that is JSON but not an object.
    for body in [json!([]), json!("name"), json!(null)] {
        app.post("/projects", token, body).await.expect(422);
    }
    assert_eq!(app.event_count().await, before);
}

/// docs/api.md: a wrong type is a 422. serde_json reports a non-string where a unit enum is expected
/// as a syntax error, which the body extractor turns into a 400.
#[tokio::test]
async fn a_wrong_json_type_for_an_enum_member_is_422_with_its_pointer() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let other = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let features = format!("{}/features", shop.path());
    let before = app.event_count().await;
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/projects".into(),
            json!({"name": "X", "generation_mode": 3}),
            "/generation_mode",
        ),
        (
            Method::POST,
            "/projects".into(),
            json!({"name": "X", "features": [{"name": "L", "feature_type": true}]}),
            "/features/0/feature_type",
        ),
        (
            Method::PUT,
            shop.path(),
            json!({"generation_mode": ["manual"]}),
            "/generation_mode",
        ),
        (
            Method::POST,
            features.clone(),
            json!({"name": "L", "feature_type": 1}),
            "/feature_type",
        ),
        (
            Method::POST,
            features,
            json!({"name": "L", "feature_type": "auth", "generation_mode": 3}),
            "/generation_mode",
        ),
        (
            Method::PUT,
            shop.feature_path(&shop.login),
            json!({"generation_mode": false}),
            "/generation_mode",
        ),
        (
            Method::PUT,
            format!("{}/members/{}", shop.path(), other.id),
            json!({"role": 1}),
            "/role",
        ),
    ];
    for (method, path, body, pointer) in cases {
        let answer = app
            .send(method.clone(), &path, token, Some(body.clone()), &[])
            .await;
        assert_eq!(
            answer.status, 422,
            "{method} {path} {body}: {}",
            answer.body
        );
        assert_eq!(pointers(&answer), [pointer], "{method} {path} {body}");
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn mass_assignment_in_project_and_feature_bodies_is_422_pointing_at_the_field() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let before = app.event_count().await;

    for (member, value) in [
        ("id", json!(random_id())),
        ("owner_id", json!(owner.id)),
        ("status", json!("archived")),
        ("version", json!(7)),
        ("members", json!([])),
        ("created_at", json!("2020-01-01T00:00:00Z")),
    ] {
        let mut body = json!({"name": "Shop"});
        body[member] = value;
        let pointer = format!("/{member}");
        assert_invalid_at(app.post("/projects", token, body.clone()).await, &pointer);
        assert_invalid_at(app.put(&shop.path(), token, body).await, &pointer);
    }
    for (member, value) in [
        ("id", json!(random_id())),
        ("project_id", json!(shop.id)),
        ("created_at", json!("2020-01-01T00:00:00Z")),
    ] {
        let mut feature = json!({"name": "Jobs", "feature_type": "background_jobs"});
        feature[member] = value;
        let pointer = format!("/{member}");
        assert_invalid_at(
            app.post(&format!("{}/features", shop.path()), token, feature.clone())
                .await,
            &pointer,
        );
        assert_invalid_at(
            app.put(&shop.feature_path(&shop.login), token, feature.clone())
                .await,
            &pointer,
        );
        assert_invalid_at(
            app.post(
                "/projects",
                token,
                json!({"name": "Wizard", "features": [feature]}),
            )
            .await,
            &format!("/features/0{pointer}"),
        );
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn an_empty_put_a_null_name_and_a_feature_type_change_are_422() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let login = shop.feature_path(&shop.login);
    let before = app.event_count().await;

    for path in [shop.path(), login.clone()] {
        let empty = app.put(&path, token, json!({})).await.expect(422);
        assert_eq!(
            empty.body["type"],
            "https://backforge.dev/problems/validation-failed"
        );
        assert_invalid_at(app.put(&path, token, json!({"name": null})).await, "/name");
    }
    assert_invalid_at(
        app.put(&shop.path(), token, json!({"generation_mode": null}))
            .await,
        "/generation_mode",
    );
    for (body, pointer) in [
        (json!({"feature_type": "auth"}), "/feature_type"),
        (
            json!({"feature_type": "crud", "name": "L"}),
            "/feature_type",
        ),
        (json!({"feature_type": null}), "/feature_type"),
        (
            json!({"feature_type": null, "name": "Sign-in"}),
            "/feature_type",
        ),
        (json!({"is_enabled": null}), "/is_enabled"),
        (json!({"configuration": null}), "/configuration"),
        (json!({"schema_definition": null}), "/schema_definition"),
    ] {
        let path = if pointer == "/schema_definition" {
            shop.feature_path(&shop.customers)
        } else {
            login.clone()
        };
        assert_invalid_at(app.put(&path, token, body).await, pointer);
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn names_and_descriptions_outside_their_limits_are_422() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let before = app.event_count().await;
    let long_name = "n".repeat(101);
    let long_description = "d".repeat(2001);

    for name in ["", "   ", long_name.as_str(), "tab\there"] {
        assert_invalid_at(
            app.post("/projects", token, json!({"name": name})).await,
            "/name",
        );
        assert_invalid_at(
            app.put(&shop.path(), token, json!({"name": name})).await,
            "/name",
        );
        assert_invalid_at(
            app.post(
                &format!("{}/features", shop.path()),
                token,
                json!({"name": name, "feature_type": "auth"}),
            )
            .await,
            "/name",
        );
        assert_invalid_at(
            app.put(
                &shop.feature_path(&shop.login),
                token,
                json!({"name": name}),
            )
            .await,
            "/name",
        );
        assert_invalid_at(
            app.post(
                "/projects",
                token,
                json!({"name": "W", "features": [{"name": name, "feature_type": "auth"}]}),
            )
            .await,
            "/features/0/name",
        );
    }
    assert_invalid_at(
        app.post(
            "/projects",
            token,
            json!({"name": "X", "description": long_description}),
        )
        .await,
        "/description",
    );
    assert_invalid_at(
        app.put(
            &shop.path(),
            token,
            json!({"description": long_description}),
        )
        .await,
        "/description",
    );
    // Both problems of one request are reported together.
    let both = app
        .post(
            "/projects",
            token,
            json!({"name": "", "description": long_description}),
        )
        .await
        .expect(422);
    assert_eq!(pointers(&both), ["/name", "/description"]);
    assert_eq!(app.event_count().await, before);

    // The limits themselves are allowed.
    let at_limit = "n".repeat(100);
    app.post(
        "/projects",
        token,
        json!({"name": at_limit, "description": "d".repeat(2000)}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn a_project_holds_at_most_the_configured_number_of_features() {
    let app = TestApp::spawn_with(&[("BACKFORGE_FEATURES_PER_PROJECT", "2")]).await;
    let owner = app.register("Olive").await;
    let token = Some(owner.access_token.as_str());
    let feature = |name: &str| json!({"name": name, "feature_type": "auth"});
    let before = app.event_count().await;
    assert_invalid_at(
        app.post(
            "/projects",
            token,
            json!({"name": "W", "features": [feature("A"), feature("B"), feature("C")]}),
        )
        .await,
        "/features",
    );
    assert_eq!(app.event_count().await, before);

    let created = app
        .post(
            "/projects",
            token,
            json!({"name": "W", "features": [feature("A"), feature("B")]}),
        )
        .await
        .expect(201);
    assert_write_headers(&created, 3);
    let id = created.body["id"].as_str().expect("id");
    let before = app.event_count().await;
    let full = app
        .post(&format!("/projects/{id}/features"), token, feature("C"))
        .await
        .expect(409);
    assert_eq!(full.body["type"], "https://backforge.dev/problems/conflict");
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn feature_configuration_must_be_absent_or_empty() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let id = create_project(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let features = format!("/projects/{id}/features");
    let before = app.event_count().await;

    assert_invalid_at(
        app.post(
            &features,
            token,
            json!({"name": "Files", "feature_type": "file_storage", "configuration": {"bucket": "b"}}),
        )
        .await,
        "/configuration/bucket",
    );
    assert_invalid_at(
        app.post(
            &features,
            token,
            json!({"name": "Files", "feature_type": "file_storage", "configuration": "bucket"}),
        )
        .await,
        "/configuration",
    );
    assert_invalid_at(
        app.post(
            "/projects",
            token,
            json!({"name": "W", "features": [
                {"name": "Files", "feature_type": "file_storage"},
                {"name": "Jobs", "feature_type": "background_jobs", "configuration": {"a/b": 1}}]}),
        )
        .await,
        "/features/1/configuration/a~1b",
    );
    assert_eq!(app.event_count().await, before);

    let files = add_feature(
        &app,
        &owner,
        &id,
        json!({"name": "Files", "feature_type": "file_storage", "configuration": {}}),
    )
    .await;
    let before = app.event_count().await;
    assert_invalid_at(
        app.put(
            &format!("{features}/{files}"),
            token,
            json!({"configuration": {"bucket": "b"}}),
        )
        .await,
        "/configuration/bucket",
    );
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn a_crud_feature_needs_a_schema_and_other_types_refuse_one() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let features = format!("{}/features", shop.path());
    let schema = json!({"entity": "item", "fields": [{"name": "label", "type": "string"}]});
    let before = app.event_count().await;

    for body in [
        json!({"name": "Items", "feature_type": "crud"}),
        json!({"name": "Items", "feature_type": "crud", "schema_definition": null}),
    ] {
        assert_invalid_at(
            app.post(&features, token, body.clone()).await,
            "/schema_definition",
        );
        assert_invalid_at(
            app.post("/projects", token, json!({"name": "W", "features": [body]}))
                .await,
            "/features/0/schema_definition",
        );
    }
    assert_invalid_at(
        app.post(
            &features,
            token,
            json!({"name": "Stats", "feature_type": "analytics", "schema_definition": schema}),
        )
        .await,
        "/schema_definition",
    );
    assert_invalid_at(
        app.put(
            &shop.feature_path(&shop.login),
            token,
            json!({"schema_definition": schema}),
        )
        .await,
        "/schema_definition",
    );
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn schema_errors_point_at_the_exact_member_of_the_schema() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let features = format!("{}/features", shop.path());
    let before = app.event_count().await;

    let item = |fields: Value| {
        json!({"name": "Items", "feature_type": "crud",
            "schema_definition": {"entity": "item", "fields": fields}})
    };
    let ok = json!({"name": "label", "type": "string"});
    let cases: Vec<(Value, &str)> = vec![
        (
            item(json!([ok, {"name": "Bad Name", "type": "string"}])),
            "/fields/1/name",
        ),
        (
            item(json!([ok, {"name": "metadata", "type": "string"}])),
            "/fields/1/name",
        ),
        (
            item(json!([ok, {"name": "id", "type": "uuid"}])),
            "/fields/1/name",
        ),
        (
            item(json!([ok, {"name": "label", "type": "text"}])),
            "/fields/1/name",
        ),
        (
            item(json!([{"name": "x", "type": "money"}])),
            "/fields/0/type",
        ),
        (item(json!([{"name": "x"}])), "/fields/0/type"),
        (
            item(json!([{"name": "x", "type": "string", "precision": 3}])),
            "/fields/0/precision",
        ),
        (
            item(json!([{"name": "x", "type": "integer", "min": 5, "max": 1}])),
            "/fields/0/min",
        ),
        (
            item(json!([{"name": "s", "type": "enum", "values": ["a", "b"], "default": "c"}])),
            "/fields/0/default",
        ),
        (
            item(json!([{"name": "c", "type": "reference", "references": "supplier"}])),
            "/fields/0/references",
        ),
        (
            item(json!([{"name": "c", "type": "reference", "references": "Login"}])),
            "/fields/0/references",
        ),
        (
            item(json!([{"name": "x", "type": "string", "pattern": "\\bword"}])),
            "/fields/0/pattern",
        ),
        (item(json!([])), "/fields"),
        (
            json!({"name": "Items", "feature_type": "crud",
            "schema_definition": {"entity": "Item", "fields": [ok]}}),
            "/entity",
        ),
        (
            json!({"name": "Items", "feature_type": "crud",
            "schema_definition": {"entity": "item", "fields": [ok], "indexes": []}}),
            "/indexes",
        ),
        (
            json!({"name": "Items", "feature_type": "crud",
            "schema_definition": {"entity": "item", "fields": [ok, {"name": "b", "type": "text"}],
                "unique": [["label", "missing"]]}}),
            "/unique/0/1",
        ),
    ];
    for (body, inner) in cases {
        let pointer = format!("/schema_definition{inner}");
        let answer = app.post(&features, token, body.clone()).await;
        assert_eq!(answer.status, 422, "{body}: {}", answer.body);
        assert!(
            pointers(&answer).contains(&pointer),
            "{body}: {pointer} not among {:?}",
            pointers(&answer)
        );
        // The same schema in the wizard points into the feature's place in the list.
        let wizard = app
            .post(
                "/projects",
                token,
                json!({"name": "W", "features": [customers(), body.clone()]}),
            )
            .await;
        let wizard_pointer = format!("/features/1{pointer}");
        assert_eq!(wizard.status, 422, "{body}: {}", wizard.body);
        assert!(
            pointers(&wizard).contains(&wizard_pointer),
            "{body}: {wizard_pointer} not among {:?}",
            pointers(&wizard)
        );
        // And in an update of an existing crud feature, into its schema_definition.
        let update = app
            .put(
                &shop.feature_path(&shop.orders),
                token,
                json!({"schema_definition": body["schema_definition"]}),
            )
            .await;
        assert_eq!(update.status, 422, "{body}: {}", update.body);
        assert!(
            pointers(&update).contains(&pointer),
            "{body}: {pointer} not among {:?}",
            pointers(&update)
        );
    }
    assert_eq!(app.event_count().await, before);
}

// ---------------------------------------------------------------------------------------------
// If-Match
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_write_with_the_current_tag_or_star_in_if_match_succeeds() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let other = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let mut version = 4;
    for (i, write) in id_bearing_writes(&shop.id, &shop.login, &other.id)
        .iter()
        .enumerate()
    {
        let tag = if i % 2 == 0 {
            format!("\"{version}\"")
        } else {
            "*".to_owned()
        };
        let answer = write.send(&app, token, &[("If-Match", &tag)]).await;
        assert!(
            answer.status.is_success(),
            "{} with If-Match {tag}: {} {}",
            write.name(),
            answer.status,
            answer.body
        );
        version += 1;
        assert_write_headers(&answer, version);
    }
}

#[tokio::test]
async fn a_stale_weak_or_foreign_if_match_is_412_on_every_route_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let other = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let before = app.event_count().await;
    for write in id_bearing_writes(&shop.id, &shop.login, &other.id) {
        for tag in ["\"3\"", "\"5\"", "\"0\"", "W/\"4\"", "\"abc\""] {
            let answer = write.send(&app, token, &[("If-Match", tag)]).await;
            assert_eq!(
                answer.status,
                412,
                "{} with If-Match {tag}: {}",
                write.name(),
                answer.body
            );
            assert_eq!(
                answer.body["type"],
                "https://backforge.dev/problems/precondition-failed"
            );
        }
    }
    assert_eq!(app.event_count().await, before);

    // After a write, the tag the client held is stale.
    let path = shop.path();
    let first = app
        .send(
            Method::PUT,
            &path,
            token,
            Some(json!({"name": "One"})),
            &[("If-Match", "\"4\"")],
        )
        .await
        .expect(200);
    assert_write_headers(&first, 5);
    app.send(
        Method::PUT,
        &path,
        token,
        Some(json!({"name": "Two"})),
        &[("If-Match", "\"4\"")],
    )
    .await
    .expect(412);
    assert_eq!(app.event_count().await, before + 1);
}

#[tokio::test]
async fn a_malformed_if_match_is_400_on_every_route() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let other = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let before = app.event_count().await;
    for write in id_bearing_writes(&shop.id, &shop.login, &other.id) {
        for tag in ["4", "\"4", "\"4\", \"5\"", "W/4", "**", ""] {
            let answer = write.send(&app, token, &[("If-Match", tag)]).await;
            assert_eq!(
                answer.status,
                400,
                "{} with If-Match {tag:?}: {}",
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
}

/// Removes `feature` from `shop` straight through the store at `expected`, as another process
/// would: behind the back of the command side this test talks to.
async fn remove_behind_its_back(app: &TestApp, shop: &Shop, feature: &str, expected: u64) {
    use domain::project::ProjectEvent;
    use event_store::{EventStore, ExpectedVersion, NewEvent, StreamAppend};

    let project: domain::ids::ProjectId = shop.id.parse().expect("project id");
    let removed = ProjectEvent::FeatureRemoved {
        project_id: project,
        feature_id: feature.parse().expect("feature id"),
        removed_at: time::OffsetDateTime::now_utc(),
    };
    app.store
        .append(vec![StreamAppend::new(
            project.stream(),
            ExpectedVersion::Exact(expected),
            vec![NewEvent::from_domain(
                &removed,
                uuid::Uuid::now_v7(),
                Default::default(),
            )],
        )])
        .await
        .expect("append by the other writer");
}

#[tokio::test]
async fn a_command_decides_on_events_another_writer_appended_after_its_last_fold() {
    // Given a shop whose state the command side has folded (and kept) at version 4
    let app = TestApp::spawn().await;
    let owner = app.register("owner").await;
    let shop = Shop::create(&app, &owner).await;
    // When another process removes the `auth` feature straight through the store
    remove_behind_its_back(&app, &shop, &shop.login, 4).await;
    // Then the next commands see it: the feature is gone and its name is free again
    app.put(
        &shop.feature_path(&shop.login),
        Some(&owner.access_token),
        json!({"name": "Sign-in"}),
    )
    .await
    .expect(404);
    let again = app
        .post(
            &format!("{}/features", shop.path()),
            Some(&owner.access_token),
            json!({"name": "Login", "feature_type": "auth"}),
        )
        .await
        .expect(201);
    assert_eq!(again.body["version"], 6);

    // And If-Match is judged against the stream, not against what this process last folded:
    // another removal lands (version 7) behind the command side's back
    remove_behind_its_back(&app, &shop, &shop.orders, 6).await;
    let rename = |tag: &'static str| {
        let app = &app;
        let owner = &owner;
        let path = shop.path();
        async move {
            app.send(
                Method::PUT,
                &path,
                Some(&owner.access_token),
                Some(json!({"name": "Renamed"})),
                &[("If-Match", tag)],
            )
            .await
        }
    };
    // the version this process last saw is stale: 412
    rename("\"6\"").await.expect(412);
    // the stream's real version is accepted
    let renamed = rename("\"7\"").await.expect(200);
    assert_eq!(renamed.body["version"], 8);
}
