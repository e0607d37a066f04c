//! Applies a batch of feed events to the read-model tables of one schema, and advances that
//! schema's checkpoint in the same transaction (compare-and-set, so two writers can never both
//! apply a batch).

use std::collections::{HashMap, HashSet};

use deadpool_postgres::{GenericClient, Transaction};
use domain::AnyEvent;
use domain::generation::Generation;
use domain::ids::FeatureId;
use domain::project::{Feature, FeaturesTouched, Project};
use domain::user::UserEvent;
use event_store::{Position, RecordedEvent, StateCache};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, ToSql, Type};
use uuid::Uuid;

use read_model::rows::JsonText;
use read_model::tables::{GENERATIONS, PROJECT_FEATURES, PROJECT_MEMBERS, PROJECTS, USERS};
use read_model::{FeatureLists, checkpoint};

use crate::ai_requests::{self, AiRequestRow};
use crate::parked::Parked;
use crate::records::RecordWrite;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("event {event_id} ({event_type}) cannot be decoded")]
    Poison {
        event_id: Uuid,
        event_type: String,
        #[source]
        source: domain::DecodeError,
    },
    #[error("read-model write failed")]
    Database(#[from] tokio_postgres::Error),
    #[error("project document failed to serialise")]
    Serialise(#[from] serde_json::Error),
}

/// What happened to a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Rows and checkpoint written; the new checkpoint.
    To(Position),
    /// The checkpoint moved under us (another instance, or a replay swapped the tables): the
    /// caller rolls back and re-reads.
    Lost,
}

/// Project rows as this writer last committed them, so a batch reads from PostgreSQL only the
/// projects it has not seen. Valid only while one writer owns the schema: the caller takes it out
/// before a batch and keeps it only once the batch has committed (a rolled-back batch or a lost
/// checkpoint drops it, and the next batch reads the rows again).
pub struct ProjectStates {
    rows: HashMap<Uuid, ProjectRow>,
    capacity: usize,
}

impl ProjectStates {
    pub fn new(capacity: usize) -> Self {
        Self {
            rows: HashMap::new(),
            capacity,
        }
    }

    /// Brings the feature lists `lists` holds, and readers still read, for the projects of
    /// `events` (a batch just committed) to the versions written, rendered from the rows as
    /// written; lists nobody read since the last batch, or whose row is no longer held here, are
    /// dropped instead.
    pub fn carry_lists(&self, events: &[RecordedEvent], lists: &FeatureLists) {
        for (id, _) in projects_of(events) {
            let Some(held) = lists.wanted(id) else {
                continue;
            };
            let Some(row) = self.rows.get(&id) else {
                lists.forget(id);
                continue;
            };
            let features = &row.state.features;
            let text = match row.appended_after {
                Some((version, count))
                    if held.version == as_i64(version) && held.count == Some(count) =>
                {
                    let text = held
                        .features
                        .extended(features.get(count..).unwrap_or_default());
                    // Debug builds (every e2e run) check the extension against a full render.
                    debug_assert_eq!(
                        text.as_ref().map(JsonText::as_bytes).ok(),
                        JsonText::array(features)
                            .as_ref()
                            .map(JsonText::as_bytes)
                            .ok(),
                        "an extended feature list differs from the list rendered whole"
                    );
                    text
                }
                _ => JsonText::array(features),
            };
            match text {
                Ok(text) => lists.advance(id, as_i64(row.version), features.len(), &text),
                Err(_) => lists.forget(id),
            }
        }
    }

    /// Takes, for each project of `events` (a batch just committed), the command side's state
    /// when it caches one at the version this writer folded to (`serve`, where both run in one
    /// process): the same events folded, so the same state, and with it each unchanged feature is
    /// held once in the process instead of once per side (`domain::Shared`). M1 in
    /// docs/benchmarks.md.
    pub fn share_with(&mut self, events: &[RecordedEvent], command_states: &StateCache<Project>) {
        for (id, stream) in projects_of(events) {
            let Some(row) = self.rows.get_mut(&id) else {
                continue;
            };
            if let Some(state) = command_states.at_version(stream, row.version) {
                // Debug builds (every e2e run) check that both sides folded the same state.
                debug_assert_eq!(
                    state, row.state,
                    "the command side's state differs from the projector's at one version"
                );
                row.state = state;
            }
        }
    }

    /// Keeps the rows a batch wrote (as now stored), dropping arbitrary others beyond capacity.
    fn keep(&mut self, rows: HashMap<Uuid, ProjectRow>) {
        for (id, mut row) in rows {
            // Every feature that moved or changed sits after the start's list: a held list of
            // the start's version is this one's head.
            let (_, count) = row.batch_start;
            row.appended_after = (row.dirty
                && !row.features_all
                && row.state.features.get(..count).is_some_and(|head| {
                    head.iter().all(|f| !row.features_changed.contains(&f.id))
                }))
            .then_some(row.batch_start);
            row.stored |= row.dirty;
            row.dirty = false;
            row.members_before.clone_from(&row.state.members);
            row.features_all = false;
            row.features_changed.clear();
            self.rows.insert(id, row);
        }
        let excess = self.rows.len().saturating_sub(self.capacity);
        if excess > 0 {
            let victims: Vec<Uuid> = self.rows.keys().take(excess).copied().collect();
            for id in victims {
                self.rows.remove(&id);
            }
        }
    }
}

/// Each project `events` write to, once, with its stream id.
fn projects_of(events: &[RecordedEvent]) -> impl Iterator<Item = (Uuid, &str)> {
    let mut seen = HashSet::new();
    events.iter().filter_map(move |e| {
        project_id(&e.stream_id)
            .filter(|id| seen.insert(*id))
            .map(|id| (id, e.stream_id.as_str()))
    })
}

struct ProjectRow {
    state: Project,
    version: u64,
    last: Position,
    dirty: bool,
    /// Whether the read model has a row for it (loaded from there, or written by an earlier
    /// batch of this writer): one that has none can be loaded with COPY instead of an upsert.
    stored: bool,
    /// The members as stored, so unchanged member rows are not rewritten.
    members_before: Vec<domain::project::Member>,
    /// The feature rows this batch must write: `all` rewrites the project's rows.
    features_all: bool,
    features_changed: Vec<FeatureId>,
    /// The version and feature count the current batch started from.
    batch_start: (u64, usize),
    /// Set when a batch is kept: whether it only added features after its start's list.
    appended_after: Option<(u64, usize)>,
}

impl ProjectRow {
    fn new() -> Self {
        Self {
            state: Project::default(),
            version: 0,
            last: Position::START,
            dirty: false,
            stored: false,
            members_before: Vec::new(),
            features_all: false,
            features_changed: Vec::new(),
            batch_start: (0, 0),
            appended_after: None,
        }
    }

    fn touched(&mut self, touched: FeaturesTouched) {
        match touched {
            FeaturesTouched::None => {}
            FeaturesTouched::All => self.features_all = true,
            FeaturesTouched::One(id) => {
                if !self.features_changed.contains(&id) {
                    self.features_changed.push(id);
                }
            }
        }
    }
}

struct GenerationRow {
    state: Generation,
    version: u64,
    dirty: bool,
}

async fn load_generations<C: GenericClient>(
    client: &C,
    schema: &str,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, GenerationRow>, ApplyError> {
    let mut out = HashMap::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(out);
    }
    let rows = client
        .query(
            &format!("SELECT id, version, document FROM {schema}.{GENERATIONS} WHERE id = ANY($1)"),
            &[&ids],
        )
        .await?;
    for row in rows {
        let version: i64 = row.try_get(1)?;
        let Json(state): Json<Generation> = row.try_get(2)?;
        out.insert(
            row.try_get(0)?,
            GenerationRow {
                state,
                version: version.max(0) as u64,
                dirty: false,
            },
        );
    }
    Ok(out)
}

async fn write_generation(
    tx: &Transaction<'_>,
    schema: &str,
    id: Uuid,
    row: &GenerationRow,
) -> Result<(), ApplyError> {
    let g = &row.state;
    let document = Json(g);
    let upsert = tx
        .prepare_cached(&format!(
            "INSERT INTO {schema}.{GENERATIONS} (id, project_id, status, sha256, version, requested_at, started_at, completed_at, document)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, sha256 = EXCLUDED.sha256,
                 version = EXCLUDED.version, started_at = EXCLUDED.started_at,
                 completed_at = EXCLUDED.completed_at, document = EXCLUDED.document"
        ))
        .await?;
    tx.execute(
        &upsert,
        &[
            &id,
            &g.project_id.as_uuid(),
            &g.status.as_str(),
            &g.sha256,
            &as_i64(row.version),
            &g.requested_at,
            &g.started_at,
            &g.completed_at,
            &document,
        ],
    )
    .await?;
    Ok(())
}

/// Run first in a transaction that writes read-model rows: their commit need not wait for the
/// disk. The rows are a fold of events already durable; a crash can lose only whole batches (rows
/// and checkpoint together, one transaction each), which are applied again from the events, and a
/// later synchronous commit (a replay's swap) flushes every batch before it.
pub(crate) const DERIVED_COMMIT: &str = "SET LOCAL synchronous_commit = off";

fn as_i64(v: u64) -> i64 {
    checkpoint::stored(v)
}

/// Applies `events` (which follow `from` in feed order) inside `tx`, starting from the project rows
/// in `states` where it has them; `states` then holds the rows as this batch wrote them, so the
/// caller must drop it unless `tx` commits. Events in `parked` are skipped (the checkpoint still
/// moves past them): a later version of their stream applies on the state without them.
pub async fn apply_batch(
    tx: &Transaction<'_>,
    schema: &str,
    from: Position,
    events: &[RecordedEvent],
    instance: Option<Uuid>,
    states: &mut ProjectStates,
    parked: &Parked,
) -> Result<Applied, ApplyError> {
    if events.is_empty() {
        return Ok(Applied::To(from));
    }
    let mut batch = Batch::new(from, events, states, parked)?;
    batch.load(tx, schema).await?;
    batch
        .fold(states, WriteMode::Upsert)?
        .write(tx, schema, instance)
        .await
}

/// A batch on its way to being folded: its decoded events, the project rows it starts from that
/// this writer held, and the ids of the rows it must read from the read model first.
pub struct Batch<'a> {
    from: Position,
    to: Position,
    decoded: Vec<(&'a RecordedEvent, AnyEvent)>,
    projects: HashMap<Uuid, ProjectRow>,
    generations: HashMap<Uuid, GenerationRow>,
    ai_requests: HashMap<Uuid, AiRequestRow>,
    load_projects: Vec<Uuid>,
    load_generations: Vec<Uuid>,
    load_ai_requests: Vec<Uuid>,
}

impl<'a> Batch<'a> {
    /// Decodes `events` (skipping parked ones) and takes the rows they start from out of
    /// `states`; the rows `states` does not hold are left to [`Batch::load`].
    pub fn new(
        from: Position,
        events: &'a [RecordedEvent],
        states: &mut ProjectStates,
        parked: &Parked,
    ) -> Result<Self, ApplyError> {
        let to = events.last().map_or(from, |e| e.position);
        let mut decoded = Vec::with_capacity(events.len());
        for e in events {
            if parked.contains(e.event_id) {
                tracing::info!(event_id = %e.event_id, event_type = %e.event_type, stream = %e.stream_id,
                    "skipping a parked event");
                continue;
            }
            let event = e
                .decode::<AnyEvent>()
                .map_err(|source| ApplyError::Poison {
                    event_id: e.event_id,
                    event_type: e.event_type.clone(),
                    source,
                })?;
            decoded.push((e, event));
        }
        // The first version of each project in the batch (feed order keeps a stream's order).
        let mut first: HashMap<Uuid, u64> = HashMap::new();
        let mut load_generations = Vec::new();
        let mut load_ai_requests = Vec::new();
        for (r, e) in &decoded {
            match e {
                AnyEvent::Project(_) => {
                    if let Some(id) = project_id(&r.stream_id) {
                        first.entry(id).or_insert(r.stream_version);
                    }
                }
                AnyEvent::Generation(_) => {
                    if let Some(g) = domain::ids::GenerationId::from_stream(&r.stream_id) {
                        load_generations.push(g.as_uuid());
                    }
                }
                AnyEvent::AiRequest(_) => {
                    if let Some(a) = domain::ids::AiRequestId::from_stream(&r.stream_id) {
                        load_ai_requests.push(a.as_uuid());
                    }
                }
                _ => {}
            }
        }
        load_generations.sort_unstable();
        load_generations.dedup();
        load_ai_requests.sort_unstable();
        load_ai_requests.dedup();
        let mut projects = HashMap::with_capacity(first.len());
        let mut load_projects = Vec::new();
        for (id, version) in first {
            match states.rows.remove(&id) {
                Some(row) => {
                    projects.insert(id, row);
                }
                // A project whose first event here is its first ever has no stored row to start from.
                None if version > 1 => load_projects.push(id),
                None => {}
            }
        }
        Ok(Self {
            from,
            to,
            decoded,
            projects,
            generations: HashMap::new(),
            ai_requests: HashMap::new(),
            load_projects,
            load_generations,
            load_ai_requests,
        })
    }

    /// Whether the batch needs rows read from the read model (which a writer pipelining its
    /// batches must let the previous batch commit first).
    pub fn needs_rows(&self) -> bool {
        !self.load_projects.is_empty()
            || !self.load_generations.is_empty()
            || !self.load_ai_requests.is_empty()
    }

    /// Reads the rows the batch needs and this writer did not hold.
    pub async fn load<C: GenericClient>(
        &mut self,
        client: &C,
        schema: &str,
    ) -> Result<(), ApplyError> {
        let ids = std::mem::take(&mut self.load_projects);
        load_projects(client, schema, &ids, &mut self.projects).await?;
        let ids = std::mem::take(&mut self.load_generations);
        self.generations = load_generations(client, schema, &ids).await?;
        let ids = std::mem::take(&mut self.load_ai_requests);
        self.ai_requests = ai_requests::load(client, schema, &ids).await?;
        Ok(())
    }

    /// Folds the events into the rows and builds the writes; `states` then holds the project rows
    /// as the writes will store them.
    pub fn fold(self, states: &mut ProjectStates, mode: WriteMode) -> Result<Folded, ApplyError> {
        let Batch {
            from,
            to,
            decoded,
            mut projects,
            mut generations,
            mut ai_requests,
            ..
        } = self;
        let mut users = Vec::new();
        let mut catalog = Vec::new();
        let mut records = Vec::new();
        for (recorded, event) in decoded {
            match event {
                AnyEvent::User(e) => {
                    if let Some(user_id) =
                        domain::ids::UserId::from_stream(&recorded.stream_id).map(|u| u.as_uuid())
                    {
                        users.push((user_id, as_i64(recorded.stream_version), e));
                    }
                }
                AnyEvent::Project(e) => {
                    let id = project_id(&recorded.stream_id);
                    let Some(id) = id else { continue };
                    let row = projects.entry(id).or_insert_with(ProjectRow::new);
                    // Idempotent: a version already folded in is never folded twice.
                    if recorded.stream_version <= row.version {
                        continue;
                    }
                    if !row.dirty {
                        row.batch_start = (row.version, row.state.features.len());
                    }
                    row.touched(e.features_touched());
                    row.state.evolve(&e);
                    row.version = recorded.stream_version;
                    row.last = recorded.position;
                    row.dirty = true;
                }
                AnyEvent::Generation(e) => {
                    let Some(id) = domain::ids::GenerationId::from_stream(&recorded.stream_id)
                        .map(|g| g.as_uuid())
                    else {
                        continue;
                    };
                    let row = generations.entry(id).or_insert_with(|| GenerationRow {
                        state: Generation::default(),
                        version: 0,
                        dirty: false,
                    });
                    if recorded.stream_version <= row.version {
                        continue;
                    }
                    row.state.evolve(&e);
                    row.version = recorded.stream_version;
                    row.dirty = true;
                }
                AnyEvent::AiRequest(e) => {
                    let Some(id) = domain::ids::AiRequestId::from_stream(&recorded.stream_id)
                        .map(|a| a.as_uuid())
                    else {
                        continue;
                    };
                    let row = ai_requests.entry(id).or_insert_with(AiRequestRow::new);
                    if recorded.stream_version <= row.version {
                        continue;
                    }
                    row.apply(&e, recorded.stream_version);
                }
                AnyEvent::AiModel(_) | AnyEvent::Prompt(_) => {
                    catalog.push((as_i64(recorded.stream_version), event));
                }
                AnyEvent::Record(event) => records.push(RecordWrite {
                    version: as_i64(recorded.stream_version),
                    event,
                }),
                // E-mail reservations are internal to registration and have no read model; the
                // operations stream is the operators' audit trail, read from the store itself.
                AnyEvent::Email(_) | AnyEvent::Operations(_) => {}
            }
        }
        let mut project_writes = ProjectWrites::default();
        let mut fresh = ProjectWrites::default();
        for (id, row) in projects.iter_mut().filter(|(_, r)| r.dirty) {
            if mode == WriteMode::Copy && !row.stored {
                fresh.add(*id, row, true)?;
            } else {
                project_writes.add(*id, row, false)?;
            }
        }
        states.keep(projects);
        Ok(Folded {
            from,
            to,
            users,
            catalog,
            projects: project_writes,
            fresh,
            generations: generations.into_iter().filter(|(_, r)| r.dirty).collect(),
            ai_requests: ai_requests.into_iter().filter(|(_, r)| r.dirty).collect(),
            records,
        })
    }
}

/// How a batch writes the project rows it creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Every row by upsert: the live projection, where a row may exist that this writer has not
    /// seen.
    Upsert,
    /// Rows of projects the writer knows have none yet by binary COPY: only for a writer that
    /// owns the tables from empty (a replay into fresh tables).
    Copy,
}

/// A folded batch: every write it makes, owned, so it can be written on another task while the
/// next batch folds.
pub struct Folded {
    from: Position,
    to: Position,
    users: Vec<(Uuid, i64, UserEvent)>,
    /// The AI catalog's events with their stream versions, in feed order.
    catalog: Vec<(i64, AnyEvent)>,
    /// Rows that may exist: upserted.
    projects: ProjectWrites,
    /// Rows of projects the read model has no row for (only with [`WriteMode::Copy`]): loaded
    /// with binary COPY, which takes no conflict check.
    fresh: ProjectWrites,
    generations: Vec<(Uuid, GenerationRow)>,
    ai_requests: Vec<(Uuid, AiRequestRow)>,
    /// Record events in feed order, applied in SQL (no row is read first).
    records: Vec<RecordWrite>,
}

impl Folded {
    /// The checkpoint this batch moves to.
    pub fn to(&self) -> Position {
        self.to
    }

    /// Writes the rows and moves the checkpoint from the batch's start to its end, in `tx`.
    pub async fn write(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        instance: Option<Uuid>,
    ) -> Result<Applied, ApplyError> {
        // Five independent chains of statements, sent together on the one connection
        // (tokio-postgres pipelines them): a batch costs about one round trip, not one per table.
        // Each chain keeps its own order (a delete before the insert it makes room for).
        let users = async {
            for (user_id, version, event) in &self.users {
                apply_user(tx, schema, *user_id, *version, event).await?;
            }
            // The AI catalog shares the users' chain: a few small rows, in feed order.
            for (version, event) in &self.catalog {
                crate::ai_catalog::apply(tx, schema, *version, event).await?;
            }
            Ok::<_, ApplyError>(())
        };
        let projects = async {
            self.fresh.copy(tx, schema).await?;
            self.projects.write(tx, schema).await
        };
        let generations = async {
            for (id, row) in &self.generations {
                write_generation(tx, schema, *id, row).await?;
            }
            // AI requests share the generations' chain: both are small, independent rows.
            for (id, row) in &self.ai_requests {
                ai_requests::write(tx, schema, *id, row).await?;
            }
            Ok::<_, ApplyError>(())
        };
        let records = crate::records::write(tx, schema, &self.records);
        let advance = async {
            checkpoint::advance(tx, schema, self.from, self.to, instance)
                .await
                .map_err(ApplyError::from)
        };
        let ((), (), (), (), moved) =
            tokio::try_join!(users, projects, generations, records, advance)?;
        Ok(if moved {
            Applied::To(self.to)
        } else {
            Applied::Lost
        })
    }
}

fn project_id(stream: &str) -> Option<Uuid> {
    domain::ids::ProjectId::from_stream(stream).map(|id| id.as_uuid())
}

/// Reads the stored rows of `ids` (with their features) into `out`.
async fn load_projects<C: GenericClient>(
    client: &C,
    schema: &str,
    ids: &[Uuid],
    out: &mut HashMap<Uuid, ProjectRow>,
) -> Result<(), ApplyError> {
    if ids.is_empty() {
        return Ok(());
    }
    let select = client
        .prepare_cached(&format!(
            "SELECT id, version, last_tx, last_seq, document FROM {schema}.{PROJECTS} WHERE id = ANY($1)"
        ))
        .await?;
    let rows = client.query(&select, &[&ids]).await?;
    for row in rows {
        let id: Uuid = row.try_get(0)?;
        let version: i64 = row.try_get(1)?;
        let last = read_model::position(&row, 2)?;
        // Straight from the stored text into the state, without a JSON tree in between.
        let Json(state): Json<Project> = row.try_get(4)?;
        let state_members = state.members.clone();
        out.insert(
            id,
            ProjectRow {
                state,
                version: version.max(0) as u64,
                last,
                dirty: false,
                stored: true,
                members_before: state_members,
                features_all: false,
                features_changed: Vec::new(),
                batch_start: (0, 0),
                appended_after: None,
            },
        );
    }
    let features = client
        .prepare_cached(&format!(
            "SELECT project_id, document FROM {schema}.{PROJECT_FEATURES}
             WHERE project_id = ANY($1) ORDER BY project_id, ordinal"
        ))
        .await?;
    for row in client.query(&features, &[&ids]).await? {
        let project: Uuid = row.try_get(0)?;
        let Json(feature): Json<Feature> = row.try_get(1)?;
        if let Some(p) = out.get_mut(&project) {
            p.state.features.push(feature.into());
        }
    }
    // Kept for as long as the project stays warm: no spare capacity from the pushes above.
    for id in ids {
        if let Some(p) = out.get_mut(id) {
            p.state.features.shrink_to_fit();
        }
    }
    Ok(())
}

/// The project, feature and member rows of a batch as column arrays: a batch costs a few
/// statements, not a few per project. Documents are serialised here, while folding, so the write
/// only copies text.
#[derive(Default)]
struct ProjectWrites {
    ids: Vec<Uuid>,
    owners: Vec<Uuid>,
    statuses: Vec<&'static str>,
    versions: Vec<i64>,
    txs: Vec<i64>,
    seqs: Vec<i64>,
    created: Vec<OffsetDateTime>,
    updated: Vec<OffsetDateTime>,
    documents: Vec<Json<Box<RawValue>>>,
    members_changed: Vec<Uuid>,
    m_projects: Vec<Uuid>,
    m_users: Vec<Uuid>,
    m_roles: Vec<&'static str>,
    m_added: Vec<OffsetDateTime>,
    reset_features: Vec<Uuid>,
    f_projects: Vec<Uuid>,
    f_ids: Vec<Uuid>,
    f_ordinals: Vec<i32>,
    f_documents: Vec<Json<Box<RawValue>>>,
}

impl ProjectWrites {
    /// Adds one changed project: its row, the feature rows that changed and, when its members
    /// changed, all its member rows.
    /// A `fresh` project (one COPY loads) has no stored rows: all its features and members are
    /// new.
    fn add(&mut self, id: Uuid, row: &mut ProjectRow, fresh: bool) -> Result<(), ApplyError> {
        let w = self;
        // The project document without its features, which have rows of their own.
        let features = std::mem::take(&mut row.state.features);
        let document = serde_json::value::to_raw_value(&row.state);
        row.state.features = features;
        w.documents.push(Json(document?));
        let row: &ProjectRow = row;
        let id = &id;
        let p = &row.state;
        if row.features_all && !fresh {
            w.reset_features.push(*id);
        }
        for (ordinal, feature) in p.features.iter().enumerate() {
            if fresh || row.features_all || row.features_changed.contains(&feature.id) {
                w.f_projects.push(*id);
                w.f_ids.push(feature.id.as_uuid());
                w.f_ordinals
                    .push(i32::try_from(ordinal).unwrap_or(i32::MAX));
                w.f_documents
                    .push(Json(serde_json::value::to_raw_value(feature)?));
            }
        }
        w.ids.push(*id);
        w.owners.push(p.owner_id.as_uuid());
        w.statuses.push(p.status.as_str());
        w.versions.push(as_i64(row.version));
        w.txs.push(as_i64(row.last.tx));
        w.seqs.push(as_i64(row.last.seq));
        w.created.push(p.created_at);
        w.updated.push(p.updated_at);
        if p.members != row.members_before {
            w.members_changed.push(*id);
            for m in &p.members {
                w.m_projects.push(*id);
                w.m_users.push(m.user_id.as_uuid());
                w.m_roles.push(m.role.as_str());
                w.m_added.push(m.added_at);
            }
        }
        Ok(())
    }

    /// Loads rows that do not exist yet with binary COPY (no conflict check, no executor per row).
    async fn copy(&self, tx: &Transaction<'_>, schema: &str) -> Result<(), ApplyError> {
        copy_in(
            tx,
            &format!("{schema}.{PROJECTS} (id, owner_id, status, version, last_tx, last_seq, created_at, updated_at, document)"),
            &[
                Type::UUID,
                Type::UUID,
                Type::TEXT,
                Type::INT8,
                Type::INT8,
                Type::INT8,
                Type::TIMESTAMPTZ,
                Type::TIMESTAMPTZ,
                Type::JSONB,
            ],
            (0..self.ids.len()).map(|i| {
                vec![
                    &self.ids[i] as &(dyn ToSql + Sync),
                    &self.owners[i],
                    &self.statuses[i],
                    &self.versions[i],
                    &self.txs[i],
                    &self.seqs[i],
                    &self.created[i],
                    &self.updated[i],
                    &self.documents[i],
                ]
            }),
        )
        .await?;
        copy_in(
            tx,
            &format!("{schema}.{PROJECT_FEATURES} (project_id, id, ordinal, document)"),
            &[Type::UUID, Type::UUID, Type::INT4, Type::JSON],
            (0..self.f_projects.len()).map(|i| {
                vec![
                    &self.f_projects[i] as &(dyn ToSql + Sync),
                    &self.f_ids[i],
                    &self.f_ordinals[i],
                    &self.f_documents[i],
                ]
            }),
        )
        .await?;
        copy_in(
            tx,
            &format!("{schema}.{PROJECT_MEMBERS} (project_id, user_id, role, added_at)"),
            &[Type::UUID, Type::UUID, Type::TEXT, Type::TIMESTAMPTZ],
            (0..self.m_projects.len()).map(|i| {
                vec![
                    &self.m_projects[i] as &(dyn ToSql + Sync),
                    &self.m_users[i],
                    &self.m_roles[i],
                    &self.m_added[i],
                ]
            }),
        )
        .await
    }

    async fn write(&self, tx: &Transaction<'_>, schema: &str) -> Result<(), ApplyError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let upsert = tx
            .prepare_cached(&format!(
                "INSERT INTO {schema}.{PROJECTS} (id, owner_id, status, version, last_tx, last_seq, created_at, updated_at, document)
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::int8[], $6::int8[],
                                      $7::timestamptz[], $8::timestamptz[], $9::jsonb[])
                 ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id, status = EXCLUDED.status,
                     version = EXCLUDED.version, last_tx = EXCLUDED.last_tx, last_seq = EXCLUDED.last_seq,
                     created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, document = EXCLUDED.document"
            ))
            .await?;
        tx.execute(
            &upsert,
            &[
                &self.ids,
                &self.owners,
                &self.statuses,
                &self.versions,
                &self.txs,
                &self.seqs,
                &self.created,
                &self.updated,
                &self.documents,
            ],
        )
        .await?;
        if !self.reset_features.is_empty() {
            let delete = tx
                .prepare_cached(&format!(
                    "DELETE FROM {schema}.{PROJECT_FEATURES} WHERE project_id = ANY($1)"
                ))
                .await?;
            tx.execute(&delete, &[&self.reset_features]).await?;
        }
        if !self.f_projects.is_empty() {
            let upsert = tx
                .prepare_cached(&format!(
                    "INSERT INTO {schema}.{PROJECT_FEATURES} (project_id, id, ordinal, document)
                     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int4[], $4::json[])
                     ON CONFLICT (project_id, id) DO UPDATE
                     SET ordinal = EXCLUDED.ordinal, document = EXCLUDED.document"
                ))
                .await?;
            tx.execute(
                &upsert,
                &[
                    &self.f_projects,
                    &self.f_ids,
                    &self.f_ordinals,
                    &self.f_documents,
                ],
            )
            .await?;
        }
        if !self.members_changed.is_empty() {
            let delete = tx
                .prepare_cached(&format!(
                    "DELETE FROM {schema}.{PROJECT_MEMBERS} WHERE project_id = ANY($1)"
                ))
                .await?;
            tx.execute(&delete, &[&self.members_changed]).await?;
            if !self.m_projects.is_empty() {
                let insert = tx
                    .prepare_cached(&format!(
                        "INSERT INTO {schema}.{PROJECT_MEMBERS} (project_id, user_id, role, added_at)
                         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[])"
                    ))
                    .await?;
                tx.execute(
                    &insert,
                    &[
                        &self.m_projects,
                        &self.m_users,
                        &self.m_roles,
                        &self.m_added,
                    ],
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// Loads `rows` into `table` (a table name with its column list) with one binary COPY; nothing
/// when there are none.
async fn copy_in<'a>(
    tx: &Transaction<'_>,
    table: &str,
    types: &[Type],
    rows: impl ExactSizeIterator<Item = Vec<&'a (dyn ToSql + Sync)>>,
) -> Result<(), ApplyError> {
    if rows.len() == 0 {
        return Ok(());
    }
    let sink = tx
        .copy_in(&format!("COPY {table} FROM STDIN (FORMAT binary)"))
        .await?;
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, types));
    for row in rows {
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;
    Ok(())
}

async fn apply_user(
    tx: &Transaction<'_>,
    schema: &str,
    user_id: Uuid,
    version: i64,
    event: &UserEvent,
) -> Result<(), ApplyError> {
    match event {
        UserEvent::UserRegistered {
            email,
            name,
            role,
            registered_at,
            ..
        } => {
            tx.execute(
                &format!(
                    "INSERT INTO {schema}.{USERS} (id, email, name, role, active, version, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, true, $5, $6, $6) ON CONFLICT (id) DO NOTHING"
                ),
                &[&user_id, email, name, &role.as_str(), &version, registered_at],
            )
            .await?;
        }
        UserEvent::UserProfileUpdated {
            name, updated_at, ..
        } => {
            tx.execute(
                &format!(
                    "UPDATE {schema}.{USERS} SET name = $2, updated_at = $3, version = $4
                     WHERE id = $1 AND version < $4"
                ),
                &[&user_id, name, updated_at, &version],
            )
            .await?;
        }
        UserEvent::PasswordChanged { changed_at, .. } => {
            tx.execute(
                &format!("UPDATE {schema}.{USERS} SET updated_at = $2, version = $3 WHERE id = $1 AND version < $3"),
                &[&user_id, changed_at, &version],
            )
            .await?;
        }
        UserEvent::UserRoleChanged {
            role, changed_at, ..
        } => {
            tx.execute(
                &format!(
                    "UPDATE {schema}.{USERS} SET role = $2, updated_at = $3, version = $4 WHERE id = $1 AND version < $4"
                ),
                &[&user_id, &role.as_str(), changed_at, &version],
            )
            .await?;
        }
        UserEvent::UserDeactivated { deactivated_at, .. } => {
            tx.execute(
                &format!(
                    "UPDATE {schema}.{USERS} SET active = false, updated_at = $2, version = $3
                     WHERE id = $1 AND version < $3"
                ),
                &[&user_id, deactivated_at, &version],
            )
            .await?;
        }
        // The budget itself is the command side's (`ai_user_budgets`); the row keeps its version.
        UserEvent::UserAiBudgetSet { set_at, .. } => {
            tx.execute(
                &format!("UPDATE {schema}.{USERS} SET updated_at = $2, version = $3 WHERE id = $1 AND version < $3"),
                &[&user_id, set_at, &version],
            )
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use domain::Shared;
    use domain::ids::ProjectId;
    use domain::project::FeatureType;
    use event_store::Loaded;

    use super::*;

    fn project(id: ProjectId) -> Project {
        let at = OffsetDateTime::UNIX_EPOCH;
        let mut project = Project::default();
        project.id = id;
        for n in 1..=3u128 {
            project.features.push(Shared::new(Feature {
                id: FeatureId::from_uuid(Uuid::from_u128(n)),
                name: format!("Feature{n}"),
                feature_type: FeatureType::Auth,
                generation_mode: None,
                configuration: serde_json::Map::new(),
                schema_definition: None,
                is_enabled: true,
                created_at: at,
                updated_at: at,
                ai_request_id: None,
            }));
        }
        project
    }

    fn event_of(stream: &str, version: u64) -> RecordedEvent {
        RecordedEvent {
            position: Position {
                tx: 1,
                seq: version,
            },
            stream_id: stream.to_owned(),
            stream_version: version,
            event_id: Uuid::new_v4(),
            event_type: "FeatureAdded".into(),
            schema_version: 1,
            data: RawValue::from_string("{}".into()).expect("json"),
            metadata: Default::default(),
            recorded_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn row(state: Project, version: u64) -> ProjectRow {
        ProjectRow {
            state,
            version,
            ..ProjectRow::new()
        }
    }

    #[test]
    fn the_projector_shares_the_command_sides_state_only_at_its_own_version() {
        // Given two projects the command side holds at version 3, folded there separately
        let (a, b) = (
            ProjectId::from_uuid(Uuid::from_u128(1)),
            ProjectId::from_uuid(Uuid::from_u128(2)),
        );
        let command_states = StateCache::<Project>::new(16, usize::MAX, Project::serialized_bytes);
        for id in [a, b] {
            command_states.remember(
                &id.stream(),
                Loaded {
                    state: project(id),
                    version: 3,
                    position: Position { tx: 1, seq: 3 },
                },
            );
        }
        // and the projector, which wrote `a` at version 3 but `b` only at version 2
        let mut states = ProjectStates::new(16);
        states.rows.insert(a.as_uuid(), row(project(a), 3));
        states.rows.insert(b.as_uuid(), row(project(b), 2));
        // When it shares after a batch of both
        states.share_with(
            &[event_of(&a.stream(), 3), event_of(&b.stream(), 2)],
            &command_states,
        );
        // Then `a`'s features are the command side's very own, and `b` kept its own
        let cached = |id: ProjectId| command_states.at_version(&id.stream(), 3).expect("cached");
        let same = |row: &ProjectRow, cached: &Project| {
            row.state
                .features
                .iter()
                .zip(&cached.features)
                .all(|(x, y)| Shared::same(x, y))
        };
        assert!(same(&states.rows[&a.as_uuid()], &cached(a)));
        assert!(!same(&states.rows[&b.as_uuid()], &cached(b)));
        assert_eq!(states.rows[&a.as_uuid()].state, cached(a));
    }
}
