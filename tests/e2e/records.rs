//! Live records through the platform's consumers: record events appended by the application step
//! every writer uses are projected into `rm.records` (created, patched, deleted) and published as
//! CloudEvents on their project's subjects, so one project's record changes can be followed.

use std::time::Duration;

use domain::EventMetadata;
use domain::ids::{ProjectId, RecordId, UserId};
use domain::project::Project;
use domain::record::{
    CreateRecord, DeleteRecord, Record, RecordCommand, RecordError, UpdateRecord,
};
use event_store::application::{Failure, Pin, Source, Step};
use event_store::{PgEventStore, ReadUntil};
use messaging::Names;
use serde_json::{Value, json};
use tests::TestDatabase;
use tests::nats::{read_stream, shared_url};
use tests::process::{Backforge, eventually, nats_prefix};
use time::OffsetDateTime;
use uuid::Uuid;

async fn project_state(store: &PgEventStore, id: ProjectId) -> Project {
    event_store::load::<Project, _>(store, &id.stream(), ReadUntil::End)
        .await
        .expect("the project loads")
        .state
}

/// Decides `command` on the record's stream and appends it, as the command API will.
async fn write(
    store: &PgEventStore,
    id: RecordId,
    command: RecordCommand,
) -> Result<u64, Failure<RecordError, std::convert::Infallible>> {
    let limits = domain::Limits::default();
    let step = Step::<Record> {
        stream: id.stream(),
        source: Source::Fold,
        pin: Pin::Latest,
        limits: &limits,
        metadata: EventMetadata::default(),
    };
    step.apply(store, || None, |_| Ok(command.clone()))
        .await
        .map(|applied| applied.version)
}

async fn row(pool: &deadpool_postgres::Pool, id: RecordId) -> Option<(i64, Value)> {
    let client = pool.get().await.ok()?;
    let row = client
        .query_opt(
            "SELECT version, data FROM rm.records WHERE id = $1",
            &[&id.as_uuid()],
        )
        .await
        .ok()??;
    Some((row.get(0), row.get(1)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_events_are_projected_and_published_on_their_projects_subjects() {
    let db = TestDatabase::create().await.expect("test database");
    let app = Backforge::start("serve", &db.url, &[]).await;
    let (owner, _) = app.register("Rita").await;
    let created = app
        .post(
            "/projects",
            Some(&owner.access_token),
            json!({"name": "Shop", "features": [{
                "name": "Orders", "feature_type": "crud",
                "schema_definition": {"entity": "order", "fields": [
                    {"name": "number", "type": "string", "required": true},
                    {"name": "total", "type": "decimal", "precision": 10, "scale": 2},
                    {"name": "status", "type": "enum", "values": ["new", "paid"], "default": "new"}
                ]}
            }]}),
        )
        .await
        .expect(201);
    let project_id: ProjectId = created.body["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a project id");
    let user: UserId = owner.id.parse().expect("a user id");
    let pool = event_store::setup::pool(&db.url, 2).expect("pool");
    let store = PgEventStore::new(
        pool.clone(),
        std::sync::Arc::new(domain::Upcasters::backforge()),
    );
    let entity = project_state(&store, project_id)
        .await
        .writable_entity("orders")
        .expect("orders are served live");

    // Given a record created, then patched
    let id = RecordId::from_uuid(Uuid::now_v7());
    let at = OffsetDateTime::now_utc();
    write(
        &store,
        id,
        RecordCommand::Create(CreateRecord {
            record_id: id,
            entity: entity.clone(),
            body: json!({"number": "A-1", "total": 12.3}),
            by: user,
            at,
        }),
    )
    .await
    .expect("created");
    let version = write(
        &store,
        id,
        RecordCommand::Update(UpdateRecord {
            entity: entity.clone(),
            body: json!({"status": "paid"}),
            by: user,
            at,
        }),
    )
    .await
    .expect("patched");
    assert_eq!(version, 2);

    // Then the read model holds the merged, normalised values at the record's version
    let (version, data) = eventually(
        "the record is projected",
        Duration::from_secs(15),
        || async { row(&pool, id).await.filter(|(v, _)| *v == 2) },
    )
    .await;
    assert_eq!(version, 2);
    assert_eq!(
        data,
        json!({"number": "A-1", "total": "12.30", "status": "paid"})
    );

    // And a patch of a record that is not there is refused, nothing appended
    let missing = RecordId::from_uuid(Uuid::now_v7());
    let refused = write(
        &store,
        missing,
        RecordCommand::Update(UpdateRecord {
            entity: entity.clone(),
            body: json!({"status": "paid"}),
            by: user,
            at,
        }),
    )
    .await;
    assert!(
        matches!(refused, Err(Failure::Domain(RecordError::NotFound))),
        "{refused:?}"
    );

    // When it is deleted, its row goes
    write(
        &store,
        id,
        RecordCommand::Delete(DeleteRecord {
            entity,
            by: user,
            at,
        }),
    )
    .await
    .expect("deleted");
    eventually(
        "the deleted record's row goes",
        Duration::from_secs(15),
        || async { row(&pool, id).await.is_none().then_some(()) },
    )
    .await;

    // And its three events are published as CloudEvents under the project's subjects
    let names = Names::new(&nats_prefix(&db.url));
    let subject_start = format!("{}.events.{project_id}.record.{id}.", names.prefix());
    let published = eventually(
        "the record's events are published",
        Duration::from_secs(15),
        || async {
            let messages = read_stream(&shared_url(), &names.events_stream())
                .await
                .ok()?;
            let mine: Vec<(String, Value)> = messages
                .into_iter()
                .filter(|(subject, _, _)| subject.starts_with(&subject_start))
                .map(|(subject, _, payload)| {
                    (
                        subject,
                        serde_json::from_slice(&payload).unwrap_or(Value::Null),
                    )
                })
                .collect();
            (mine.len() == 3).then_some(mine)
        },
    )
    .await;
    let types: Vec<&str> = published
        .iter()
        .map(|(subject, _)| subject.rsplit('.').next().unwrap_or_default())
        .collect();
    assert_eq!(types, ["RecordCreated", "RecordUpdated", "RecordDeleted"]);
    let first = &published[0].1;
    assert_eq!(
        first["type"],
        format!("{}.record.RecordCreated", names.prefix())
    );
    assert_eq!(first["data"]["entity"], "order");
    assert_eq!(first["data"]["values"]["total"], "12.30");
}

/// `serve`, an owner, and a project with customers (unique e-mail) and orders referencing them
/// (a composite unique on customer and number).
struct Shop {
    app: Backforge,
    owner: tests::TestUser,
    project: String,
    _db: TestDatabase,
}

async fn shop() -> Shop {
    let db = TestDatabase::create().await.expect("test database");
    let app = Backforge::start("serve", &db.url, &[]).await;
    let (owner, _) = app.register("Sam").await;
    let created = app
        .post(
            "/projects",
            Some(&owner.access_token),
            json!({"name": "Shop", "features": [
                {"name": "Customers", "feature_type": "crud", "schema_definition": {
                    "entity": "customer", "fields": [
                        {"name": "email", "type": "string", "required": true, "unique": true},
                        {"name": "nickname", "type": "string", "unique": true}
                    ]}},
                {"name": "Orders", "feature_type": "crud", "schema_definition": {
                    "entity": "order", "fields": [
                        {"name": "customer", "type": "reference", "references": "customer", "required": true},
                        {"name": "number", "type": "string", "required": true},
                        {"name": "total", "type": "decimal", "precision": 10, "scale": 2, "unique": true}
                    ], "unique": [["customer", "number"]]}}
            ]}),
        )
        .await
        .expect(201);
    let project = created.body["id"].as_str().expect("id").to_owned();
    Shop {
        app,
        owner,
        project,
        _db: db,
    }
}

impl Shop {
    fn token(&self) -> Option<&str> {
        Some(self.owner.access_token.as_str())
    }

    fn path(&self, plural: &str) -> String {
        format!("/projects/{}/data/{plural}", self.project)
    }

    async fn create(&self, plural: &str, body: Value) -> tests::Answer {
        self.app.post(&self.path(plural), self.token(), body).await
    }

    /// `path` read once the read side has seen the write that answered `after`.
    async fn read_after(&self, path: &str, after: &tests::Answer) -> tests::Answer {
        self.app
            .get_at(path, self.token(), &tests::process::position_of(after))
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_writes_answer_every_refusal_with_its_status_and_free_unique_values_for_reuse() {
    let s = shop().await;
    let app = &s.app;

    // Created: the answer holds the id, the normalised values, the timestamps and the version
    let ada = s
        .create("customers", json!({"email": "ada@example.com"}))
        .await
        .expect(201);
    assert_eq!(ada.body["email"], "ada@example.com");
    assert_eq!(ada.body["nickname"], Value::Null);
    assert_eq!(ada.body["version"], 1);
    let ada_id = ada.body["id"].as_str().expect("id").to_owned();

    // A duplicate unique value → 409 naming the constraint, nothing of the other record
    let duplicate = s
        .create("customers", json!({"email": "ada@example.com"}))
        .await
        .expect(409);
    assert!(
        duplicate.body["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/unique-violation"),
        "{}",
        duplicate.body
    );
    assert!(
        duplicate.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("(email)"),
        "{}",
        duplicate.body
    );
    assert!(
        !duplicate.body.to_string().contains(&ada_id),
        "{}",
        duplicate.body
    );
    // NULLs never collide
    s.create("customers", json!({"email": "bob@example.com"}))
        .await
        .expect(201);
    // Invalid → 422 with pointers; unknown entity → 404
    let invalid = s
        .create("customers", json!({"email": 5, "age": 3}))
        .await
        .expect(422);
    let mut fields: Vec<&str> = invalid.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["/age", "/email"]);
    s.create("invoices", json!({})).await.expect(404);
    // A NUL is refused before anything is stored (no consumer could process it)
    s.create("customers", json!({"email": "nul\u{0}@example.com"}))
        .await
        .expect(422);

    // A reference must name a live record of the referenced entity
    let missing = s
        .create("orders", json!({"customer": Uuid::now_v7(), "number": "1"}))
        .await
        .expect(422);
    assert_eq!(
        missing.body["errors"][0]["field"], "/customer",
        "{}",
        missing.body
    );
    let order = s
        .create(
            "orders",
            json!({"customer": ada_id, "number": "1", "total": "12.3"}),
        )
        .await
        .expect(201);
    let order_id = order.body["id"].as_str().expect("id").to_owned();
    assert_eq!(order.body["total"], "12.30");
    // "12.3" and "12.30" collide on a scale-2 field
    s.create(
        "orders",
        json!({"customer": ada_id, "number": "2", "total": "12.30"}),
    )
    .await
    .expect(409);
    // The composite (customer, number) holds
    let composite = s
        .create("orders", json!({"customer": ada_id, "number": "1"}))
        .await
        .expect(409);
    assert!(
        composite.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("(customer, number)"),
        "{}",
        composite.body
    );

    // Deleting a referenced record → 409; once its child is gone it can be deleted
    let ada_path = format!("{}/{ada_id}", s.path("customers"));
    app.delete(&ada_path, s.token()).await.expect(409);
    // A unique value freed by an update can be taken again
    let order_path = format!("{}/{order_id}", s.path("orders"));
    let patched = app
        .put(&order_path, s.token(), json!({"total": "13"}))
        .await
        .expect(200);
    assert_eq!(patched.body["total"], "13.00");
    assert_eq!(patched.body["version"], 2);
    s.create(
        "orders",
        json!({"customer": ada_id, "number": "3", "total": "12.30"}),
    )
    .await
    .expect(201);
    // … and one freed by a delete
    app.delete(&order_path, s.token()).await.expect(204);
    s.create(
        "orders",
        json!({"customer": ada_id, "number": "1", "total": "13.00"}),
    )
    .await
    .expect(201);
    app.put(&order_path, s.token(), json!({"total": "1"}))
        .await
        .expect(404);

    // An empty patch → 422 at ""; a viewer → 403; a stranger → 404
    let bob = s
        .create("customers", json!({"email": "carol@example.com"}))
        .await
        .expect(201);
    let bob_path = format!(
        "{}/{}",
        s.path("customers"),
        bob.body["id"].as_str().expect("id")
    );
    let empty = app.put(&bob_path, s.token(), json!({})).await.expect(422);
    assert_eq!(empty.body["errors"][0]["field"], "");
    let (viewer, _) = app.register("Vera").await;
    app.put(
        &format!("/projects/{}/members/{}", s.project, viewer.id),
        s.token(),
        json!({"role": "viewer"}),
    )
    .await
    .expect(200);
    app.post(
        &s.path("customers"),
        Some(&viewer.access_token),
        json!({"email": "v@example.com"}),
    )
    .await
    .expect(403);
    let (stranger, _) = app.register("Sid").await;
    app.post(
        &s.path("customers"),
        Some(&stranger.access_token),
        json!({"email": "s@example.com"}),
    )
    .await
    .expect(404);
    app.delete(&bob_path, Some(&stranger.access_token))
        .await
        .expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_writers_of_one_unique_value_get_exactly_one_201() {
    let s = shop().await;
    let tasks = (0..16).map(|_| s.create("customers", json!({"email": "race@example.com"})));
    let answers = futures::future::join_all(tasks).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        15,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_created_while_its_parent_is_deleted_never_outlives_it() {
    let s = shop().await;
    let app = &s.app;
    for round in 0..200 {
        let parent = s
            .create(
                "customers",
                json!({"email": format!("p{round}@example.com")}),
            )
            .await
            .expect(201);
        let parent_id = parent.body["id"].as_str().expect("id").to_owned();
        let parent_path = format!("{}/{parent_id}", s.path("customers"));
        let (child, deleted) = tokio::join!(
            s.create(
                "orders",
                json!({"customer": parent_id, "number": format!("{round}")})
            ),
            app.delete(&parent_path, s.token()),
        );
        match (child.status.as_u16(), deleted.status.as_u16()) {
            // The child won: the parent is referenced and stays
            (201, 409) => {}
            // The delete won: the child was refused
            (422, 204) => {}
            other => panic!(
                "round {round}: child {} / delete {}: {other:?}",
                child.body, deleted.body
            ),
        }
    }
}

/// A project with one `member` entity (added on its own, for its feature id) and its schema.
async fn members(s: &Shop) -> (String, Value) {
    let schema = json!({"entity": "member", "fields": [
        {"name": "email", "type": "string", "required": true, "unique": true},
        {"name": "team", "type": "string"}
    ]});
    let added = s
        .app
        .post(
            &format!("/projects/{}/features", s.project),
            s.token(),
            json!({"name": "Members", "feature_type": "crud", "schema_definition": schema}),
        )
        .await
        .expect(201);
    (added.body["id"].as_str().expect("id").to_owned(), schema)
}

/// A schema change of the entity at `feature_path` refused with `count` offending records.
async fn refused_change(s: &Shop, feature_path: &str, schema: &Value, count: usize) {
    let refused = s
        .app
        .put(
            feature_path,
            s.token(),
            json!({"schema_definition": schema}),
        )
        .await
        .expect(409);
    let detail = refused.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with(&format!("{count} record(s)")),
        "{}",
        refused.body
    );
}

fn with_field(schema: &Value, field: Value) -> Value {
    let mut schema = schema.clone();
    schema["fields"].as_array_mut().expect("fields").push(field);
    schema
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_change_that_existing_records_cannot_satisfy_is_409_with_their_count() {
    let s = shop().await;
    let app = &s.app;
    let (feature, schema) = members(&s).await;
    let feature_path = format!("/projects/{}/features/{feature}", s.project);
    let mut first = String::new();
    for (email, team) in [("a@x.io", "red"), ("b@x.io", "red"), ("c@x.io", "blue")] {
        let created = s
            .create("members", json!({"email": email, "team": team}))
            .await
            .expect(201);
        if first.is_empty() {
            first = created.body["id"].as_str().expect("id").to_owned();
        }
    }
    let first_path = format!("{}/{first}", s.path("members"));

    // A new required field without a default: every record breaks it
    let required = with_field(
        &schema,
        json!({"name": "age", "type": "integer", "required": true}),
    );
    refused_change(&s, &feature_path, &required, 3).await;
    // A new unique constraint two records break
    let mut unique_team = schema.clone();
    unique_team["fields"][1]["unique"] = json!(true);
    refused_change(&s, &feature_path, &unique_team, 1).await;
    // A tighter length one record breaks
    let mut short = schema.clone();
    short["fields"][1]["max_length"] = json!(3);
    refused_change(&s, &feature_path, &short, 1).await;
    // Removing the entity while it has records
    app.delete(&feature_path, s.token()).await.expect(409);

    // A new optional field and a new defaulted required one are fine, and the defaults apply
    let wider = with_field(
        &with_field(&schema, json!({"name": "nick", "type": "string"})),
        json!({"name": "level", "type": "integer", "required": true, "default": 1}),
    );
    app.put(
        &feature_path,
        s.token(),
        json!({"schema_definition": wider.clone()}),
    )
    .await
    .expect(200);
    // Records written under the old schema are patched under the new one: the new required field
    // with a default reads as its default
    let created = s
        .create("members", json!({"email": "d@x.io", "team": "red"}))
        .await
        .expect(201);
    assert_eq!(created.body["level"], 1);
    assert_eq!(created.body["nick"], Value::Null);
    // And a unique constraint that holds is added, and enforced from then on
    let mut unique_email_team = wider.clone();
    unique_email_team["unique"] = json!([["team", "nick"]]);
    app.put(
        &feature_path,
        s.token(),
        json!({"schema_definition": unique_email_team}),
    )
    .await
    .expect(200);
    let last_write = s
        .create(
            "members",
            json!({"email": "e@x.io", "team": "red", "nick": "n"}),
        )
        .await
        .expect(201);
    s.create(
        "members",
        json!({"email": "f@x.io", "team": "red", "nick": "n"}),
    )
    .await
    .expect(409);

    // A record written before the new fields reads them as null and as their default, once the
    // read side has seen the schema change (a read without a position is eventually consistent)
    let old = s.read_after(&first_path, &last_write).await.expect(200);
    assert_eq!(old.body["nick"], Value::Null, "{}", old.body);
    assert_eq!(old.body["level"], 1, "{}", old.body);
    assert_eq!(old.body["team"], "red");
    // And a removed field is hidden (the record is not rewritten: its history keeps the value)
    let without_team = json!({"entity": "member", "fields": [
        {"name": "email", "type": "string", "required": true, "unique": true},
        {"name": "nick", "type": "string"},
        {"name": "level", "type": "integer", "required": true, "default": 1}
    ]});
    let removed = app
        .put(
            &feature_path,
            s.token(),
            json!({"schema_definition": without_team}),
        )
        .await
        .expect(200);
    let old = s.read_after(&first_path, &removed).await.expect(200);
    assert!(old.body.get("team").is_none(), "{}", old.body);
    let history = s
        .read_after(&format!("{first_path}/history"), &removed)
        .await
        .expect(200);
    assert_eq!(history.body["items"][0]["data"]["values"]["team"], "red");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_constraint_added_while_sixteen_writers_race_is_refused_or_holds_for_every_record()
{
    let s = shop().await;
    let (feature, schema) = members(&s).await;
    let feature_path = format!("/projects/{}/features/{feature}", s.project);
    let mut unique_team = schema.clone();
    unique_team["fields"][1]["unique"] = json!(true);
    let writers = (0..16).map(|i| {
        s.create(
            "members",
            json!({"email": format!("{i}@x.io"), "team": "same"}),
        )
    });
    let (answers, change) = tokio::join!(
        futures::future::join_all(writers),
        s.app.put(
            &feature_path,
            s.token(),
            json!({"schema_definition": unique_team})
        ),
    );
    let created = answers.iter().filter(|a| a.status.as_u16() == 201).count();
    for answer in &answers {
        assert!(
            [201, 409].contains(&answer.status.as_u16()),
            "{}",
            answer.body
        );
    }
    match change.status.as_u16() {
        // The constraint came first or after at most one record: it holds for every record
        200 => assert_eq!(
            created, 1,
            "{} records hold team `same` under a unique team",
            created
        ),
        // Refused with the count of the records it would break
        409 => {
            assert!(created >= 2, "refused although {created} record(s) exist");
            let detail = change.body["detail"].as_str().unwrap_or_default();
            assert!(detail.contains("record(s)"), "{detail}");
        }
        other => panic!("the schema change answered {other}: {}", change.body),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_listed_filtered_sorted_paged_read_back_in_time_and_their_history_is_kept() {
    let db = TestDatabase::create().await.expect("test database");
    let app = Backforge::start("serve", &db.url, &[]).await;
    let (owner, _) = app.register("Lia").await;
    let token = Some(owner.access_token.as_str());
    let sales = json!({"name": "Sales", "features": [{"name": "Orders", "feature_type": "crud",
    "schema_definition": {"entity": "order", "fields": [
        {"name": "status", "type": "enum", "values": ["new", "paid"], "required": true},
        {"name": "total", "type": "decimal", "precision": 10, "scale": 2},
        {"name": "note", "type": "string"},
        {"name": "placed_at", "type": "datetime"},
        {"name": "meta", "type": "json"}
    ]}}]});
    let created = app
        .post("/projects", token, sales.clone())
        .await
        .expect(201);
    let project = created.body["id"].as_str().expect("id").to_owned();
    let path = format!("/projects/{project}/data/orders");
    let mut last = String::new();
    let mut ids = Vec::new();
    for i in 0..12 {
        let body = json!({
            "status": if i % 2 == 0 { "paid" } else { "new" },
            "total": format!("{}.5", i * 20),
            "note": if i % 3 == 0 { Value::Null } else { json!(format!("note {i}")) },
            "placed_at": format!("2026-01-{:02}T10:00:00+01:00", i + 1),
        });
        let answer = app.post(&path, token, body).await.expect(201);
        last = tests::process::position_of(&answer);
        ids.push(answer.body["id"].as_str().expect("id").to_owned());
    }
    let (path_ref, last_ref) = (&path, &last);
    let app_ref = &app;
    let get = |query: String| async move {
        app_ref
            .get_at(&format!("{path_ref}?{query}"), token, last_ref)
            .await
    };

    // The benchmark's list: paid, total ≥ 100, newest first
    let page = get("status=paid&total__gte=100&sort=-placed_at&limit=50".into())
        .await
        .expect(200);
    let totals: Vec<&str> = page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["total"].as_str())
        .collect();
    assert_eq!(totals, ["200.50", "160.50", "120.50"]);
    assert_eq!(page.body["items"][0]["placed_at"], "2026-01-11T09:00:00Z");
    // Every page of a list, five at a time, following `next_cursor`: the ids in the order seen
    let walk = |sort: &'static str| async move {
        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let query = match &cursor {
                Some(c) => format!("{sort}limit=5&cursor={c}"),
                None => format!("{sort}limit=5"),
            };
            let page = get(query).await.expect(200);
            for item in page.body["items"].as_array().expect("items") {
                seen.push(item["id"].as_str().expect("id").to_owned());
            }
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        seen
    };
    // Cursor pages walk the whole list once, in order
    let seen = walk("sort=note,-total&").await;
    assert_eq!(seen.len(), 12, "{seen:?}");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 12);
    // Pages in creation order and newest first (the keyset bound on the entity's index) each
    // walk every record once, in order
    for (sort, newest_first) in [("", false), ("sort=-created_at&", true)] {
        let mut expected = ids.clone();
        if newest_first {
            expected.reverse();
        }
        assert_eq!(walk(sort).await, expected, "{sort}");
    }
    // Nulls first when ascending: the four records without a note lead
    let first = get("sort=note&limit=4".into()).await.expect(200);
    assert!(
        first.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|r| r["note"].is_null())
    );
    // Other operators
    let some = get("note__contains=note 1&status__ne=paid".into())
        .await
        .expect(200);
    assert_eq!(
        some.body["items"].as_array().map(Vec::len),
        Some(2),
        "{}",
        some.body
    );
    let none = get("note__is_null=true&status__in=new,paid".into())
        .await
        .expect(200);
    assert_eq!(none.body["items"].as_array().map(Vec::len), Some(4));
    // Bad queries: 422 at the parameter
    for (query, field) in [
        ("total__gte=abc", "total__gte"),
        ("nope=1", "nope"),
        ("status__like=x", "status__like"),
        ("sort=meta", "sort"),
        ("cursor__ne=1", "cursor__ne"),
    ] {
        let refused = get(query.into()).await.expect(422);
        assert_eq!(
            refused.body["errors"][0]["field"], field,
            "{query}: {}",
            refused.body
        );
    }
    get("limit=0".into()).await.expect(422);
    get("cursor=garbage".into()).await.expect(400);
    // A cursor crafted with a sort key that is not a value of its field's type is ours in shape
    // only: 400, never a database error
    use base64::Engine;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"keys": ["not a number"], "id": Uuid::now_v7()}).to_string());
    get(format!("sort=total&cursor={forged}")).await.expect(400);
    // A NUL in a filter's value (PostgreSQL text cannot hold one) is refused at the parameter
    for query in ["note=a%00b", "note__contains=%00", "note__in=x,%00"] {
        let refused = get(query.into()).await.expect(422);
        let parameter = query.split('=').next().unwrap_or_default();
        assert_eq!(
            refused.body["errors"][0]["field"], parameter,
            "{}",
            refused.body
        );
    }

    // One record, then a change: time travel and history
    let one = format!("/projects/{project}/data/orders/{}", ids[1]);
    let changed = app
        .put(&one, token, json!({"status": "paid", "note": null}))
        .await
        .expect(200);
    let at = tests::process::position_of(&changed);
    let now = app.get_at(&one, token, &at).await.expect(200);
    assert_eq!(now.body["status"], "paid");
    assert_eq!(now.body["version"], 2);
    let before = app
        .get_at(&format!("{one}?as_of_version=1"), token, &at)
        .await
        .expect(200);
    assert_eq!(before.body["status"], "new");
    assert_eq!(before.body["note"], "note 1");
    app.get_at(&format!("{one}?as_of_version=3"), token, &at)
        .await
        .expect(404);
    let deleted = app.delete(&one, token).await.expect(204);
    let at = tests::process::position_of(&deleted);
    app.get_at(&one, token, &at).await.expect(404);
    let history = app
        .get_at(&format!("{one}/history"), token, &at)
        .await
        .expect(200);
    let types: Vec<&str> = history.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(types, ["RecordCreated", "RecordUpdated", "RecordDeleted"]);
    // A record is found only through its own project: the same owner's other project with the
    // same entity answers 404 for it on every route, and changes nothing
    let twin = app.post("/projects", token, sales).await.expect(201);
    let twin_at = tests::process::position_of(&twin);
    let alien = format!(
        "/projects/{}/data/orders/{}",
        twin.body["id"].as_str().expect("id"),
        ids[2]
    );
    for suffix in ["", "?as_of_version=1", "/history"] {
        app.get_at(&format!("{alien}{suffix}"), token, &twin_at)
            .await
            .expect(404);
    }
    app.put(&alien, token, json!({"status": "new"}))
        .await
        .expect(404);
    app.delete(&alien, token).await.expect(404);
    let own = format!("{path}/{}", ids[2]);
    let kept = app.get_at(&own, token, &twin_at).await.expect(200);
    assert_eq!(
        (&kept.body["status"], &kept.body["version"]),
        (&json!("paid"), &json!(1))
    );
    // A stranger sees none of it
    let (stranger, _) = app.register("Stan").await;
    app.get(&path, Some(&stranger.access_token))
        .await
        .expect(404);
    app.get(&format!("/projects/{project}/data/unknowns"), token)
        .await
        .expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_gives_every_body_of_the_shared_case_table_the_domains_verdict() {
    use crate::generated_app::record_cases::{pointers, table};
    let (entities, cases) = table();
    let db = TestDatabase::create().await.expect("test database");
    let app = Backforge::start("serve", &db.url, &[]).await;
    let (owner, _) = app.register("Cay").await;
    let token = Some(owner.access_token.as_str());
    let features: Vec<Value> = entities
        .iter()
        .map(|(schema, _)| {
            json!({"name": format!("{} records", schema["entity"].as_str().unwrap_or_default()),
                   "feature_type": "crud", "schema_definition": schema})
        })
        .collect();
    let project = app
        .post(
            "/projects",
            token,
            json!({"name": "Cases", "features": features}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = |entity: &str| format!("/projects/{project}/data/{entity}s");
    let mut wrong = Vec::new();
    for case in &cases {
        let answer = if case.patch {
            let base = &entities
                .iter()
                .find(|(s, _)| s["entity"] == case.entity.as_str())
                .expect("the case's entity")
                .1;
            let created = app
                .post(&path(&case.entity), token, base.clone())
                .await
                .expect(201);
            let id = created.body["id"].as_str().expect("id").to_owned();
            app.send_unchecked(
                reqwest::Method::PUT,
                &format!("{}/{id}", path(&case.entity)),
                token,
                Some(case.body.clone()),
                &[],
            )
            .await
        } else {
            app.send_unchecked(
                reqwest::Method::POST,
                &path(&case.entity),
                token,
                Some(case.body.clone()),
                &[],
            )
            .await
        };
        let verdict = match answer.status.as_u16() {
            200 | 201 => None,
            422 => Some(pointers(&answer.body)),
            other => {
                wrong.push(format!("{}: answered {other}: {}", case.what, answer.body));
                continue;
            }
        };
        if verdict != case.errors {
            wrong.push(format!(
                "{}: want {:?}, got {verdict:?} ({})",
                case.what, case.errors, answer.body
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases disagree:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

/// The four command-side tables of live records, each as sorted text rows.
async fn constraint_rows(url: &str) -> Vec<Vec<String>> {
    let pool = event_store::setup::pool(url, 1).expect("pool");
    let client = pool.get().await.expect("client");
    let mut tables = Vec::new();
    for query in [
        "SELECT project_id::text || feature_id::text || encode(schema_hash, 'hex') FROM entity_schema",
        "SELECT record_id::text || project_id::text || feature_id::text || data::text FROM live_records",
        "SELECT feature_id::text || constraint_key || encode(value_hash, 'hex') || record_id::text FROM record_unique",
        "SELECT child_id::text || field || parent_id::text FROM record_refs",
    ] {
        let mut rows: Vec<String> = client
            .query(query, &[])
            .await
            .expect("read a constraint table")
            .iter()
            .map(|r| r.get(0))
            .collect();
        rows.sort();
        tables.push(rows);
    }
    tables
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_constraints_restores_the_command_side_tables_from_the_events() {
    let s = shop().await;
    let ada = s
        .create(
            "customers",
            json!({"email": "ada@example.com", "nickname": "ada"}),
        )
        .await
        .expect(201);
    let ada_id = ada.body["id"].as_str().expect("id").to_owned();
    let bob = s
        .create("customers", json!({"email": "bob@example.com"}))
        .await
        .expect(201);
    let bob_path = format!(
        "{}/{}",
        s.path("customers"),
        bob.body["id"].as_str().expect("id")
    );
    s.app
        .put(&bob_path, s.token(), json!({"email": "robert@example.com"}))
        .await
        .expect(200);
    s.create(
        "orders",
        json!({"customer": ada_id, "number": "1", "total": "5"}),
    )
    .await
    .expect(201);
    let gone = s
        .create("customers", json!({"email": "gone@example.com"}))
        .await
        .expect(201);
    let gone_path = format!(
        "{}/{}",
        s.path("customers"),
        gone.body["id"].as_str().expect("id")
    );
    s.app.delete(&gone_path, s.token()).await.expect(204);
    let before = constraint_rows(&s._db.url).await;
    assert_eq!(before[1].len(), 3, "three live records");

    // Given the tables lost
    let pool = event_store::setup::pool(&s._db.url, 1).expect("pool");
    pool.get()
        .await
        .expect("client")
        .batch_execute("TRUNCATE record_refs, record_unique, live_records, entity_schema")
        .await
        .expect("truncate");

    // When they are rebuilt from the events, they are what the writes left
    let rebuilt = tests::process::run(
        &["rebuild-constraints"],
        &s._db.url,
        &[],
        Duration::from_secs(60),
    )
    .await
    .expect_success();
    assert!(
        rebuilt.output.contains("rebuilt 3 live records"),
        "{}",
        rebuilt.output
    );
    assert_eq!(constraint_rows(&s._db.url).await, before);
    // And they hold again: a taken value, a referenced parent; a freed value can be taken
    s.create("customers", json!({"email": "ada@example.com"}))
        .await
        .expect(409);
    s.app
        .delete(&format!("{}/{ada_id}", s.path("customers")), s.token())
        .await
        .expect(409);
    s.create("customers", json!({"email": "bob@example.com"}))
        .await
        .expect(201);
    s.create("customers", json!({"email": "gone@example.com"}))
        .await
        .expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_the_largest_accepted_size_is_stored_projected_and_kept_in_history() {
    let db = TestDatabase::create().await.expect("test database");
    let app = Backforge::start("serve", &db.url, &[]).await;
    let (owner, _) = app.register("Max").await;
    let token = Some(owner.access_token.as_str());
    let created = app
        .post(
            "/projects",
            token,
            json!({"name": "Notes", "features": [{"name": "Notes", "feature_type": "crud",
            "schema_definition": {"entity": "note", "fields": [
                {"name": "body", "type": "text", "max_length": 1_000_000}
            ]}}]}),
        )
        .await
        .expect(201);
    let path = format!(
        "/projects/{}/data/notes",
        created.body["id"].as_str().expect("id")
    );
    // The stored values `{"body":"…"}` take 11 bytes around the text: at the limit exactly, and
    // one byte over
    let limit = domain::Limits::default().record_max_bytes;
    let text = "x".repeat(limit - 11);
    app.post(&path, token, json!({"body": format!("{text}y")}))
        .await
        .expect(422);
    let stored = app
        .post(&path, token, json!({"body": text}))
        .await
        .expect(201);
    let at = tests::process::position_of(&stored);
    let one = format!("{path}/{}", stored.body["id"].as_str().expect("id"));
    let read = app.get_at(&one, token, &at).await.expect(200);
    assert_eq!(read.body["body"].as_str().map(str::len), Some(limit - 11));
    let listed = app.get_at(&path, token, &at).await.expect(200);
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));
    let history = app
        .get_at(&format!("{one}/history"), token, &at)
        .await
        .expect(200);
    assert_eq!(history.body["items"].as_array().map(Vec::len), Some(1));
}
