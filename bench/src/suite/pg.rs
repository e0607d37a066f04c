//! The raw-PostgreSQL side: event templates captured from real commands, untimed seeding by batch
//! appends, and the baseline workers.

use std::sync::Arc;

use deadpool_postgres::Pool;
use domain::EventMetadata;
use event_store::{EventStore, ExpectedVersion, NewEvent, ReadUntil, StreamAppend};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::baseline;
use crate::workload::Worker;

/// Markers the template project's strings carry, replaced per copy.
pub const TEMPLATE_FEATURE_NAME: &str = "Tmpl Feature";
pub const TEMPLATE_ENTITY: &str = "tmpl_entity";

/// One stored event of the template project, its body kept as text for substitution.
#[derive(Clone)]
pub struct TemplateEvent {
    pub event_type: String,
    pub schema_version: u32,
    pub data: String,
    pub metadata: EventMetadata,
}

/// `ProjectCreated`, `FeatureAdded` and `FeatureUpdated` as the command API wrote them.
#[derive(Clone)]
pub struct Templates {
    pub created: TemplateEvent,
    pub added: TemplateEvent,
    pub updated: TemplateEvent,
    project_id: String,
    feature_id: String,
}

impl Templates {
    /// Reads the first three events of `project`'s stream (created, feature added, updated).
    pub async fn capture(
        store: &dyn EventStore,
        project: Uuid,
        feature: Uuid,
    ) -> anyhow::Result<Self> {
        let stream = domain::ids::ProjectId::from_uuid(project).stream();
        let events = store.read_stream(&stream, 0, ReadUntil::End, 10).await?;
        let find = |t: &str| -> anyhow::Result<TemplateEvent> {
            let e = events
                .iter()
                .find(|e| e.event_type == t)
                .ok_or_else(|| anyhow::anyhow!("the template project has no {t}"))?;
            Ok(TemplateEvent {
                event_type: e.event_type.clone(),
                schema_version: e.schema_version,
                data: serde_json::to_string(&e.data)?,
                metadata: e.metadata.clone(),
            })
        };
        Ok(Self {
            created: find("ProjectCreated")?,
            added: find("FeatureAdded")?,
            updated: find("FeatureUpdated")?,
            project_id: project.to_string(),
            feature_id: feature.to_string(),
        })
    }

    /// A copy of `event` for `project` and `feature` (`k` makes the feature's names unique).
    pub fn instance(
        &self,
        event: &TemplateEvent,
        project: Uuid,
        feature: Uuid,
        k: usize,
    ) -> NewEvent {
        let data = event
            .data
            .replace(&self.project_id, &project.to_string())
            .replace(&self.feature_id, &feature.to_string())
            .replace(TEMPLATE_FEATURE_NAME, &format!("Feature {k}"))
            .replace(TEMPLATE_ENTITY, &format!("entity_{k}"));
        NewEvent {
            event_id: Uuid::new_v4(),
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            data: serde_json::from_str(&data).unwrap_or(Value::Null),
            // The copy belongs to its own project, as every project-owned event must say.
            metadata: domain::EventMetadata {
                project_id: Some(project),
                ..event.metadata.clone()
            },
        }
    }

    /// One project's events: created, `features` features added, each updated `updates` times
    /// (1 + features × (1 + updates) events).
    pub fn project(&self, project: Uuid, features: usize, updates: usize) -> StreamAppend {
        let mut events = vec![self.instance(&self.created, project, Uuid::nil(), 0)];
        let ids: Vec<Uuid> = (0..features).map(|_| Uuid::new_v4()).collect();
        for (k, id) in ids.iter().enumerate() {
            events.push(self.instance(&self.added, project, *id, k));
        }
        for _ in 0..updates {
            for (k, id) in ids.iter().enumerate() {
                events.push(self.instance(&self.updated, project, *id, k));
            }
        }
        StreamAppend::new(
            domain::ids::ProjectId::from_uuid(project).stream(),
            ExpectedVersion::NoStream,
            events,
        )
    }
}

/// Baseline W1 (a): one autocommit INSERT of the same event row (the command's `FeatureAdded`).
pub struct RawInsert {
    pub pool: Pool,
    pub stream_id: String,
    pub version: i64,
    pub event: NewEvent,
    pub metadata: Value,
}

impl Worker for RawInsert {
    async fn step(&mut self) -> anyhow::Result<()> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(baseline::INSERT_SQL).await?;
        let version = self.version + 1;
        client
            .execute(
                &stmt,
                &[
                    &self.stream_id,
                    &version,
                    &Uuid::new_v4(),
                    &self.event.event_type,
                    &(self.event.schema_version as i32),
                    &self.event.data,
                    &self.metadata,
                ],
            )
            .await?;
        self.version = version;
        Ok(())
    }
}

/// Baseline W1 (b): `PgEventStore::append` of the same event, no HTTP and no decision.
pub struct StoreAppend {
    pub store: Arc<dyn EventStore>,
    pub stream_id: String,
    pub version: u64,
    pub event: NewEvent,
}

impl Worker for StoreAppend {
    async fn step(&mut self) -> anyhow::Result<()> {
        let expected = match self.version {
            0 => ExpectedVersion::NoStream,
            n => ExpectedVersion::Exact(n),
        };
        let mut event = self.event.clone();
        event.event_id = Uuid::new_v4();
        let append = StreamAppend::new(self.stream_id.clone(), expected, vec![event]);
        let outcome = self.store.append(vec![append]).await?;
        self.version = outcome
            .version_of(&self.stream_id)
            .ok_or_else(|| anyhow::anyhow!("the outcome does not name the stream"))?;
        Ok(())
    }
}

/// A baseline read: one prepared statement, parameters chosen per call, every row decoded.
pub struct Query {
    pub pool: Pool,
    pub sql: &'static str,
    pub params: Arc<Vec<QueryParams>>,
    pub n: u64,
    /// Rows each call must return (0: at least one).
    pub rows: usize,
}

/// Parameters of one baseline query: an id, a text, a number.
#[derive(Clone)]
pub enum QueryParams {
    /// `$1` a uuid, `$2` a uuid (W3: the project and the caller).
    TwoUuids(Uuid, Uuid),
    /// `$1` a stream id, `$2` a version (W5).
    StreamVersion(String, i64),
}

impl Worker for Query {
    async fn step(&mut self) -> anyhow::Result<()> {
        self.n = self.n.wrapping_add(1);
        let i = (self.n.wrapping_mul(2_654_435_761) % self.params.len() as u64) as usize;
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(self.sql).await?;
        let rows = match &self.params[i] {
            QueryParams::TwoUuids(a, b) => client.query(&stmt, &[a, b]).await?,
            QueryParams::StreamVersion(s, v) => client.query(&stmt, &[s, v]).await?,
        };
        // Decode every column, as a client that uses the rows must.
        let mut bytes = 0usize;
        for row in &rows {
            for (c, column) in row.columns().iter().enumerate() {
                bytes += match column.type_().name() {
                    "jsonb" => row.get::<_, Value>(c).to_string().len(),
                    // `json` arrives as its text; taking it as text is the cheapest honest read.
                    "json" => row.get::<_, Json<Box<RawValue>>>(c).0.get().len(),
                    "uuid" => row.get::<_, Uuid>(c).as_bytes().len(),
                    "text" => row.get::<_, String>(c).len(),
                    "int8" => 8,
                    "int4" => 4,
                    "bool" => 1,
                    _ => 0,
                };
            }
        }
        std::hint::black_box(bytes);
        anyhow::ensure!(
            if self.rows == 0 {
                !rows.is_empty()
            } else {
                rows.len() == self.rows
            },
            "the baseline query returned {} rows",
            rows.len()
        );
        Ok(())
    }
}
