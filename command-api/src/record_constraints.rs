//! The command side of live records: the `entity_schema`, `live_records`, `record_unique` and `record_refs` rows a record write commits with its events, and what they refuse (a duplicate, a missing or wrongly typed reference, a still-referenced record, a schema that moved).

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use domain::FieldError;
use domain::crud_schema::EntitySchema;
use domain::ids::RecordId;
use domain::project::Project;
use domain::record::{LiveEntity, Record};
use event_store::StoreError;
use event_store::application::{Landed, SideWrites};
use event_store::postgres::map_pg;
use runtime::{ApiError, ProblemType};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

/// A refusal decided inside the append's transaction: it travels out as the write's answer.
fn refuse(error: ApiError) -> StoreError {
    StoreError::Backend(anyhow::Error::new(error))
}

/// Runs `sql` as a statement prepared once per connection (a record write runs the same few
/// statements every time: preparing each anew would double its round trips).
async fn execute(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, StoreError> {
    let statement = tx.prepare_cached(sql).await.map_err(map_pg)?;
    tx.execute(&statement, params).await.map_err(map_pg)
}

/// [`execute`] for a statement answering at most one row.
async fn query_opt(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<tokio_postgres::Row>, StoreError> {
    let statement = tx.prepare_cached(sql).await.map_err(map_pg)?;
    tx.query_opt(&statement, params).await.map_err(map_pg)
}

/// The hash `entity_schema` keeps of the schema a record was checked against.
pub fn schema_hash(schema: &EntitySchema) -> Vec<u8> {
    let text = serde_json::to_vec(schema).unwrap_or_default();
    Sha256::digest(&text).to_vec()
}

/// A reference a record's values hold: `field` names a record of the entity of `feature_id`.
#[derive(Debug, Clone)]
struct Reference {
    field: String,
    entity: String,
    feature_id: Uuid,
    parent: Uuid,
}

#[derive(Debug, Clone)]
enum Change {
    /// Created or updated: the record's values after the write.
    Put {
        data: Value,
        unique: Vec<(String, Vec<u8>)>,
        references: Vec<Reference>,
        /// The write creates the record: it has no constraint rows yet.
        created: bool,
    },
    Delete,
}

/// The constraint rows of one record write.
#[derive(Debug, Clone)]
pub struct RecordConstraints {
    project_id: Uuid,
    feature_id: Uuid,
    record_id: Uuid,
    entity: String,
    schema_hash: Vec<u8>,
    change: Change,
}

impl RecordConstraints {
    /// The rows of a record of `entity` whose values after the write are `record`'s (`created`:
    /// the write creates it). A reference to an entity the project does not serve is refused here
    /// (422 at the field).
    pub fn put(
        project: &Project,
        entity: &LiveEntity,
        record_id: RecordId,
        record: &Record,
        created: bool,
    ) -> Result<Self, ApiError> {
        let schema = &entity.schema;
        // The write was decided under this schema, so its values satisfy it.
        let values = schema
            .current_record(&record.values)
            .unwrap_or_else(|_| schema.present_record(&record.values));
        let unique = Record::unique_keys(schema, &values)
            .into_iter()
            .map(|(key, hash)| (key, hash.to_vec()))
            .collect();
        let mut references = Vec::new();
        let mut problems = Vec::new();
        for (field, target, parent) in Record::references(schema, &values) {
            match project
                .entities()
                .find(|(f, s)| f.is_enabled && s.entity == target)
            {
                Some((feature, _)) => references.push(Reference {
                    field: field.to_owned(),
                    entity: target.to_owned(),
                    feature_id: feature.id.as_uuid(),
                    parent: parent.as_uuid(),
                }),
                None => problems.push(FieldError::new(
                    format!("/{field}"),
                    format!("`{target}` is not an entity this project serves"),
                )),
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::invalid(
                "the record refers to no record",
                problems,
            ));
        }
        Ok(Self {
            project_id: entity.project_id.as_uuid(),
            feature_id: entity.feature_id.as_uuid(),
            record_id: record_id.as_uuid(),
            entity: schema.entity.clone(),
            schema_hash: schema_hash(schema),
            change: Change::Put {
                data: Value::Object(record.values.clone()),
                unique,
                references,
                created,
            },
        })
    }

    pub fn delete(entity: &LiveEntity, record_id: RecordId) -> Self {
        Self {
            project_id: entity.project_id.as_uuid(),
            feature_id: entity.feature_id.as_uuid(),
            record_id: record_id.as_uuid(),
            entity: entity.schema.entity.clone(),
            schema_hash: schema_hash(&entity.schema),
            change: Change::Delete,
        }
    }

    /// Stores the record's values in `live_records` under the entity's schema row, taken `FOR
    /// SHARE` in the same statement (the row is created on the entity's first write): the values
    /// are stored only if the record was decided against that schema; a schema changed since is a
    /// lost race, decided again on the new one, with nothing stored.
    async fn store_record(&self, tx: &Transaction<'_>, data: &Value) -> Result<(), StoreError> {
        const STORE: &str = "WITH held AS (
                SELECT schema_hash FROM entity_schema
                WHERE project_id = $2 AND feature_id = $3 FOR SHARE
            ), stored AS (
                INSERT INTO live_records (record_id, project_id, feature_id, data)
                SELECT $1, $2, $3, $4 FROM held WHERE schema_hash = $5
                ON CONFLICT (record_id) DO UPDATE SET data = EXCLUDED.data
                RETURNING 1
            )
            SELECT (SELECT schema_hash FROM held), (SELECT count(*) FROM stored)";
        let data = tokio_postgres::types::Json(data);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
            &self.record_id,
            &self.project_id,
            &self.feature_id,
            &data,
            &self.schema_hash,
        ];
        let mut current: Option<Vec<u8>> = None;
        for first_write in [false, true] {
            if first_write {
                execute(
                    tx,
                    "INSERT INTO entity_schema (project_id, feature_id, schema_hash) VALUES ($1, $2, $3)
                     ON CONFLICT (project_id, feature_id) DO NOTHING",
                    &[&self.project_id, &self.feature_id, &self.schema_hash],
                )
                .await?;
            }
            let row = query_opt(tx, STORE, &params).await?;
            current = row.as_ref().and_then(|row| row.get(0));
            // The row exists from the entity's first write on: one statement on the common path.
            if current.is_some() {
                break;
            }
        }
        // Moved (or removed with its entity) since the write was decided: decided again.
        if current.as_deref() != Some(self.schema_hash.as_slice()) {
            return Err(StoreError::WrongExpectedVersion {
                stream_id: format!("entity-schema-{}", self.feature_id),
                expected: event_store::ExpectedVersion::Any,
                current: 0,
            });
        }
        Ok(())
    }

    async fn put_rows(
        &self,
        tx: &Transaction<'_>,
        data: &Value,
        unique: &[(String, Vec<u8>)],
        references: &[Reference],
        created: bool,
    ) -> Result<(), StoreError> {
        self.store_record(tx, data).await?;
        // The record's keys as its values now hold them: a value it no longer holds is freed. A
        // record being created (a fresh id) holds none yet.
        if !created {
            execute(
                tx,
                "DELETE FROM record_unique WHERE record_id = $1",
                &[&self.record_id],
            )
            .await?;
        }
        for (key, hash) in unique {
            let taken = execute(
                tx,
                "INSERT INTO record_unique (project_id, feature_id, constraint_key, value_hash, record_id)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&self.project_id, &self.feature_id, key, hash, &self.record_id],
            )
            .await?
                == 0;
            if taken {
                let fields = key.replace(',', ", ");
                return Err(refuse(ApiError::conflict(
                    ProblemType::UniqueViolation,
                    format!(
                        "another `{}` record holds the same value of ({fields}): the constraint `unique ({fields})` allows one",
                        self.entity
                    ),
                )));
            }
        }
        if !created {
            execute(
                tx,
                "DELETE FROM record_refs WHERE child_id = $1",
                &[&self.record_id],
            )
            .await?;
        }
        for reference in references {
            // Locks the parent against a concurrent delete until this write commits.
            let parent = query_opt(
                tx,
                "SELECT feature_id FROM live_records WHERE record_id = $1 AND project_id = $2 FOR KEY SHARE",
                &[&reference.parent, &self.project_id],
            )
            .await?;
            if parent.map(|row| row.get::<_, Uuid>(0)) != Some(reference.feature_id) {
                return Err(refuse(ApiError::invalid_field(
                    &format!("/{}", domain::error::escape_token(&reference.field)),
                    format!("no `{}` record {}", reference.entity, reference.parent),
                )));
            }
            execute(
                tx,
                "INSERT INTO record_refs (child_id, field, parent_id) VALUES ($1, $2, $3)",
                &[&self.record_id, &reference.field, &reference.parent],
            )
            .await?;
        }
        Ok(())
    }

    async fn delete_rows(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let referenced = query_opt(
            tx,
            "SELECT count(*) FROM record_refs WHERE parent_id = $1 AND child_id <> $1",
            &[&self.record_id],
        )
        .await?
        .map_or(0, |row| row.get::<_, i64>(0));
        let still_referenced = |count: i64| {
            refuse(ApiError::conflict(
                ProblemType::StillReferenced,
                format!(
                    "this `{}` record is referenced by {count} record(s); delete or change them first",
                    self.entity
                ),
            ))
        };
        if referenced > 0 {
            return Err(still_referenced(referenced));
        }
        // A child inserted meanwhile holds a lock on this row: the delete waits for it, then
        // fails on the foreign key.
        let delete = tx
            .prepare_cached("DELETE FROM live_records WHERE record_id = $1")
            .await
            .map_err(map_pg)?;
        match tx.execute(&delete, &[&self.record_id]).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                Err(still_referenced(1))
            }
            Err(e) => Err(map_pg(e)),
        }
    }
}

#[async_trait]
impl SideWrites for RecordConstraints {
    fn is_empty(&self) -> bool {
        false
    }

    async fn write(&self, tx: &Transaction<'_>, _landed: &Landed) -> Result<(), StoreError> {
        match &self.change {
            Change::Put {
                data,
                unique,
                references,
                created,
            } => self.put_rows(tx, data, unique, references, *created).await,
            Change::Delete => self.delete_rows(tx).await,
        }
    }
}

/// One entity whose schema a project write changes: its records are checked against the new
/// schema (`None`: the entity is removed) in the write's transaction.
#[derive(Debug, Clone)]
struct EntityChange {
    feature_id: Uuid,
    name: String,
    schema: Option<EntitySchema>,
    /// The feature ids of the entities the new schema's references name (a disabled or missing
    /// target: none, and a record referring through it breaks the schema).
    targets: Vec<(String, Option<Uuid>)>,
}

/// The record checks of a project write that changes or removes `crud` entities: each changed
/// entity's `entity_schema` row is taken `FOR UPDATE`, every live record of it is checked against
/// the new schema (types, required fields, ranges, unique constraints, references), and the
/// write is refused with the count of the records it would break (409), or the entity's
/// `record_unique` and `record_refs` rows are rebuilt for the new schema. Records are never
/// rewritten.
#[derive(Debug, Clone)]
pub struct SchemaChange {
    project_id: Uuid,
    changes: Vec<EntityChange>,
}

impl SchemaChange {
    /// The checks `events` need, the project being `after` once they apply; `None` when they
    /// change no entity's schema.
    pub fn of(events: &[domain::project::ProjectEvent], after: &Project) -> Option<Self> {
        use domain::project::ProjectEvent;
        let mut changed: Vec<domain::ids::FeatureId> = Vec::new();
        for event in events {
            match event {
                ProjectEvent::FeatureUpdated {
                    feature_id,
                    schema_definition: Some(_),
                    ..
                }
                | ProjectEvent::FeatureRemoved { feature_id, .. }
                    if !changed.contains(feature_id) =>
                {
                    changed.push(*feature_id);
                }
                _ => {}
            }
        }
        if changed.is_empty() {
            return None;
        }
        let changes = changed
            .into_iter()
            .map(|id| {
                let schema = after.feature(id).and_then(|f| f.entity()).cloned();
                let targets = schema
                    .iter()
                    .flat_map(|s| s.references())
                    .map(|(_, _, target)| {
                        let feature = after
                            .entities()
                            .find(|(f, s)| f.is_enabled && s.entity == target)
                            .map(|(f, _)| f.id.as_uuid());
                        (target.to_owned(), feature)
                    })
                    .collect();
                EntityChange {
                    feature_id: id.as_uuid(),
                    name: schema
                        .as_ref()
                        .map_or_else(|| id.to_string(), |s| s.entity.clone()),
                    schema,
                    targets,
                }
            })
            .collect();
        Some(Self {
            project_id: after.id.as_uuid(),
            changes,
        })
    }

    async fn check(&self, tx: &Transaction<'_>, change: &EntityChange) -> Result<(), StoreError> {
        let hash = change.schema.as_ref().map(schema_hash).unwrap_or_default();
        tx.execute(
            "INSERT INTO entity_schema (project_id, feature_id, schema_hash) VALUES ($1, $2, $3)
             ON CONFLICT (project_id, feature_id) DO NOTHING",
            &[&self.project_id, &change.feature_id, &hash],
        )
        .await
        .map_err(map_pg)?;
        tx.execute(
            "SELECT 1 FROM entity_schema WHERE project_id = $1 AND feature_id = $2 FOR UPDATE",
            &[&self.project_id, &change.feature_id],
        )
        .await
        .map_err(map_pg)?;
        let rows = tx
            .query(
                "SELECT record_id, data FROM live_records WHERE project_id = $1 AND feature_id = $2",
                &[&self.project_id, &change.feature_id],
            )
            .await
            .map_err(map_pg)?;
        let Some(schema) = &change.schema else {
            if !rows.is_empty() {
                return Err(refuse(ApiError::conflict(
                    ProblemType::Conflict,
                    format!(
                        "entity `{}` still has {} record(s); delete them before removing it",
                        change.name,
                        rows.len()
                    ),
                )));
            }
            return Ok(());
        };
        let mut offending = 0usize;
        let mut example: Option<String> = None;
        let mut keys: Vec<(Uuid, String, Vec<u8>)> = Vec::new();
        let mut seen: std::collections::HashSet<(String, Vec<u8>)> = Default::default();
        let mut refs: Vec<(Uuid, String, Uuid, Option<Uuid>)> = Vec::new();
        for row in &rows {
            let record_id: Uuid = row.get(0);
            let tokio_postgres::types::Json(stored): tokio_postgres::types::Json<
                domain::crud_schema::RecordValues,
            > = row.get(1);
            let values = match schema.current_record(&stored) {
                Ok(values) => values,
                Err(problems) => {
                    offending += 1;
                    if let Some(first) = problems.first() {
                        example
                            .get_or_insert_with(|| format!("`{}` {}", first.field, first.message));
                    }
                    continue;
                }
            };
            let mut duplicate = false;
            for (key, hash) in Record::unique_keys(schema, &values) {
                if !seen.insert((key.clone(), hash.to_vec())) {
                    duplicate = true;
                    example.get_or_insert_with(|| {
                        format!(
                            "two records hold the same value of ({})",
                            key.replace(',', ", ")
                        )
                    });
                }
                keys.push((record_id, key, hash.to_vec()));
            }
            if duplicate {
                offending += 1;
            }
            for (field, target, parent) in Record::references(schema, &values) {
                let feature = change
                    .targets
                    .iter()
                    .find(|(name, _)| name == target)
                    .and_then(|(_, f)| *f);
                refs.push((record_id, field.to_owned(), parent.as_uuid(), feature));
            }
        }
        // References must still name live records of their (possibly new) target entity.
        for (_, field, parent, feature) in &refs {
            let found = match feature {
                None => false,
                Some(feature) => tx
                    .query_opt(
                        "SELECT 1 FROM live_records WHERE record_id = $1 AND feature_id = $2 FOR KEY SHARE",
                        &[parent, feature],
                    )
                    .await
                    .map_err(map_pg)?
                    .is_some(),
            };
            if !found {
                offending += 1;
                example
                    .get_or_insert_with(|| format!("`/{field}` refers to no record of its entity"));
            }
        }
        if offending > 0 {
            return Err(refuse(ApiError::conflict(
                ProblemType::Conflict,
                format!(
                    "{offending} record(s) of `{}` do not satisfy the new schema ({}); change or delete them first",
                    change.name,
                    example.unwrap_or_default()
                ),
            )));
        }
        tx.execute(
            "DELETE FROM record_unique WHERE project_id = $1 AND feature_id = $2",
            &[&self.project_id, &change.feature_id],
        )
        .await
        .map_err(map_pg)?;
        if !keys.is_empty() {
            let (ids, names, hashes): (Vec<Uuid>, Vec<String>, Vec<Vec<u8>>) = keys
                .into_iter()
                .fold(Default::default(), |mut acc, (id, key, hash)| {
                    acc.0.push(id);
                    acc.1.push(key);
                    acc.2.push(hash);
                    acc
                });
            tx.execute(
                "INSERT INTO record_unique (project_id, feature_id, constraint_key, value_hash, record_id)
                 SELECT $1, $2, k, h, r FROM unnest($3::text[], $4::bytea[], $5::uuid[]) AS u(k, h, r)",
                &[&self.project_id, &change.feature_id, &names, &hashes, &ids],
            )
            .await
            .map_err(map_pg)?;
        }
        tx.execute(
            "DELETE FROM record_refs WHERE child_id IN
                 (SELECT record_id FROM live_records WHERE project_id = $1 AND feature_id = $2)",
            &[&self.project_id, &change.feature_id],
        )
        .await
        .map_err(map_pg)?;
        for (child, field, parent, _) in &refs {
            tx.execute(
                "INSERT INTO record_refs (child_id, field, parent_id) VALUES ($1, $2, $3)",
                &[child, field, parent],
            )
            .await
            .map_err(map_pg)?;
        }
        tx.execute(
            "UPDATE entity_schema SET schema_hash = $3 WHERE project_id = $1 AND feature_id = $2",
            &[&self.project_id, &change.feature_id, &hash],
        )
        .await
        .map_err(map_pg)?;
        Ok(())
    }
}

#[async_trait]
impl SideWrites for SchemaChange {
    fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    async fn write(&self, tx: &Transaction<'_>, _landed: &Landed) -> Result<(), StoreError> {
        for change in &self.changes {
            self.check(tx, change).await?;
        }
        Ok(())
    }
}

/// What [`rebuild`] wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    pub records: usize,
    pub unique_keys: usize,
    pub references: usize,
}

/// How many feed events one read takes.
const REBUILD_PAGE: usize = 1_000;

/// Rebuilds the live records' command-side tables from the events (`backforge
/// rebuild-constraints`): every live record with its stored values, its unique keys and its
/// references under its entity's current schema, and each entity's schema hash. Runs in one
/// transaction holding the four tables exclusively, so record writes wait for it and then apply
/// on top of what it rebuilt.
pub async fn rebuild(
    pool: &deadpool_postgres::Pool,
    store: &event_store::PgEventStore,
) -> anyhow::Result<Rebuilt> {
    use domain::AnyEvent;
    use event_store::EventStore;
    use std::collections::HashMap;

    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(
        "LOCK TABLE entity_schema, live_records, record_unique, record_refs IN ACCESS EXCLUSIVE MODE;
         TRUNCATE record_refs, record_unique, live_records, entity_schema",
    )
    .await?;
    let upcasters = domain::Upcasters::backforge();
    let mut records: HashMap<RecordId, Record> = HashMap::new();
    let mut after = event_store::Position::START;
    loop {
        let page = store.read_feed(after, REBUILD_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for recorded in &page {
            let Some(id) = RecordId::from_stream(&recorded.stream_id) else {
                continue;
            };
            let event = AnyEvent::decode(
                &upcasters,
                &recorded.event_type,
                recorded.schema_version,
                serde_json::from_str(recorded.data.get())?,
            )?;
            if let AnyEvent::Record(event) = event {
                records.entry(id).or_default().evolve(&event);
            }
        }
    }
    let mut projects: HashMap<domain::ids::ProjectId, Project> = HashMap::new();
    let mut rebuilt = Rebuilt::default();
    let live: Vec<(RecordId, Record)> = records.into_iter().filter(|(_, r)| r.is_live()).collect();
    let mut references = Vec::new();
    for (id, record) in &live {
        let (Some(project_id), Some(feature_id)) = (record.project_id, record.feature_id) else {
            continue;
        };
        if let std::collections::hash_map::Entry::Vacant(entry) = projects.entry(project_id) {
            let loaded = event_store::load::<Project, _>(
                store,
                &project_id.stream(),
                event_store::ReadUntil::End,
            )
            .await?;
            entry.insert(loaded.state);
        }
        let schema = projects
            .get(&project_id)
            .and_then(|p| p.feature(feature_id))
            .and_then(|f| f.entity().cloned());
        tx.execute(
            "INSERT INTO live_records (record_id, project_id, feature_id, data) VALUES ($1, $2, $3, $4)",
            &[
                &id.as_uuid(),
                &project_id.as_uuid(),
                &feature_id.as_uuid(),
                &tokio_postgres::types::Json(&record.values),
            ],
        )
        .await?;
        rebuilt.records += 1;
        // A record of an entity that is gone keeps its row (it stays deletable) and nothing else.
        let Some(schema) = schema else { continue };
        tx.execute(
            "INSERT INTO entity_schema (project_id, feature_id, schema_hash) VALUES ($1, $2, $3)
             ON CONFLICT (project_id, feature_id) DO NOTHING",
            &[
                &project_id.as_uuid(),
                &feature_id.as_uuid(),
                &schema_hash(&schema),
            ],
        )
        .await?;
        let values = schema
            .current_record(&record.values)
            .unwrap_or_else(|_| schema.present_record(&record.values));
        for (key, hash) in Record::unique_keys(&schema, &values) {
            let inserted = tx
                .execute(
                    "INSERT INTO record_unique (project_id, feature_id, constraint_key, value_hash, record_id)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[&project_id.as_uuid(), &feature_id.as_uuid(), &key, &hash.to_vec(), &id.as_uuid()],
                )
                .await?;
            rebuilt.unique_keys += inserted as usize;
        }
        for (field, _, parent) in Record::references(&schema, &values) {
            references.push((id.as_uuid(), field.to_owned(), parent.as_uuid()));
        }
    }
    // Every record is in `live_records` now, so a reference to a live parent can be inserted; one
    // to a record that is gone is not kept.
    for (child, field, parent) in references {
        let inserted = tx
            .execute(
                "INSERT INTO record_refs (child_id, field, parent_id)
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM live_records WHERE record_id = $3)",
                &[&child, &field, &parent],
            )
            .await?;
        rebuilt.references += inserted as usize;
    }
    tx.commit().await?;
    Ok(rebuilt)
}
