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
