//! Applies a batch of feed events to the read-model tables of one schema, and advances that
//! schema's checkpoint in the same transaction (compare-and-set, so two writers can never both
//! apply a batch).

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use domain::AnyEvent;
use domain::generation::Generation;
use domain::ids::FeatureId;
use domain::project::{Feature, FeaturesTouched, Project};
use domain::user::UserEvent;
use event_store::{Position, RecordedEvent};
use tokio_postgres::types::Json;
use uuid::Uuid;

use read_model::checkpoint;
use read_model::tables::{GENERATIONS, PROJECT_FEATURES, PROJECT_MEMBERS, PROJECTS, USERS};

use crate::parked::Parked;

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

    /// Keeps the rows a batch wrote (as now stored), dropping arbitrary others beyond capacity.
    fn keep(&mut self, rows: HashMap<Uuid, ProjectRow>) {
        for (id, mut row) in rows {
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

struct ProjectRow {
    state: Project,
    version: u64,
    last: Position,
    dirty: bool,
    /// The members as stored, so unchanged member rows are not rewritten.
    members_before: Vec<domain::project::Member>,
    /// The feature rows this batch must write: `all` rewrites the project's rows.
    features_all: bool,
    features_changed: Vec<FeatureId>,
}

impl ProjectRow {
    fn new() -> Self {
        Self {
            state: Project::default(),
            version: 0,
            last: Position::START,
            dirty: false,
            members_before: Vec::new(),
            features_all: false,
            features_changed: Vec::new(),
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

async fn load_generations(
    tx: &Transaction<'_>,
    schema: &str,
    decoded: &[(&RecordedEvent, AnyEvent)],
) -> Result<HashMap<Uuid, GenerationRow>, ApplyError> {
    let mut ids: Vec<Uuid> = decoded
        .iter()
        .filter(|(_, e)| matches!(e, AnyEvent::Generation(_)))
        .filter_map(|(r, _)| {
            domain::ids::GenerationId::from_stream(&r.stream_id).map(|g| g.as_uuid())
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = HashMap::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(out);
    }
    let rows = tx
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
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(Applied::To(from));
    };
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
    let mut projects = load_projects(tx, schema, &decoded, states).await?;
    let mut generations = load_generations(tx, schema, &decoded).await?;
    for (recorded, event) in decoded {
        match event {
            AnyEvent::User(e) => apply_user(tx, schema, recorded, &e).await?,
            AnyEvent::Project(e) => {
                let id = project_id(&recorded.stream_id);
                let Some(id) = id else { continue };
                let row = projects.entry(id).or_insert_with(ProjectRow::new);
                // Idempotent: a version already folded in is never folded twice.
                if recorded.stream_version <= row.version {
                    continue;
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
            // E-mail reservations are internal to registration and have no read model; the
            // operations stream is the operators' audit trail, read from the store itself.
            AnyEvent::Email(_) | AnyEvent::Operations(_) => {}
        }
    }
    write_projects(tx, schema, projects.iter_mut().filter(|(_, r)| r.dirty)).await?;
    states.keep(projects);
    for (id, row) in generations.iter().filter(|(_, r)| r.dirty) {
        write_generation(tx, schema, *id, row).await?;
    }
    let moved = checkpoint::advance(tx, schema, from, last, instance).await?;
    Ok(if moved {
        Applied::To(last)
    } else {
        Applied::Lost
    })
}

fn project_id(stream: &str) -> Option<Uuid> {
    domain::ids::ProjectId::from_stream(stream).map(|id| id.as_uuid())
}

async fn load_projects(
    tx: &Transaction<'_>,
    schema: &str,
    decoded: &[(&RecordedEvent, AnyEvent)],
    states: &mut ProjectStates,
) -> Result<HashMap<Uuid, ProjectRow>, ApplyError> {
    // The first version of each project in the batch (feed order keeps a stream's order).
    let mut first: HashMap<Uuid, u64> = HashMap::new();
    for (r, e) in decoded {
        if let (AnyEvent::Project(_), Some(id)) = (e, project_id(&r.stream_id)) {
            first.entry(id).or_insert(r.stream_version);
        }
    }
    let mut ids: Vec<Uuid> = first.keys().copied().collect();
    let mut out = HashMap::with_capacity(ids.len());
    ids.retain(|id| match states.rows.remove(id) {
        Some(row) => {
            out.insert(*id, row);
            false
        }
        // A project whose first event here is its first ever has no stored row to start from.
        None => first.get(id).is_some_and(|v| *v > 1),
    });
    if ids.is_empty() {
        return Ok(out);
    }
    let select = tx
        .prepare_cached(&format!(
            "SELECT id, version, last_tx, last_seq, document FROM {schema}.{PROJECTS} WHERE id = ANY($1)"
        ))
        .await?;
    let rows = tx.query(&select, &[&ids]).await?;
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
                members_before: state_members,
                features_all: false,
                features_changed: Vec::new(),
            },
        );
    }
    let features = tx
        .prepare_cached(&format!(
            "SELECT project_id, document FROM {schema}.{PROJECT_FEATURES}
             WHERE project_id = ANY($1) ORDER BY project_id, ordinal"
        ))
        .await?;
    for row in tx.query(&features, &[&ids]).await? {
        let project: Uuid = row.try_get(0)?;
        let Json(feature): Json<Feature> = row.try_get(1)?;
        if let Some(p) = out.get_mut(&project) {
            p.state.features.push(feature);
        }
    }
    Ok(out)
}

/// Upserts every changed project of a batch in one statement, and rewrites the member rows of
/// those whose members changed: a batch costs a few round trips, not a few per project.
async fn write_projects<'a>(
    tx: &Transaction<'_>,
    schema: &str,
    rows: impl Iterator<Item = (&'a Uuid, &'a mut ProjectRow)>,
) -> Result<(), ApplyError> {
    let mut ids = Vec::new();
    let mut owners = Vec::new();
    let mut statuses = Vec::new();
    let mut versions = Vec::new();
    let mut txs = Vec::new();
    let mut seqs = Vec::new();
    let mut created = Vec::new();
    let mut updated = Vec::new();
    let mut documents = Vec::new();
    let mut members_changed = Vec::new();
    let (mut m_projects, mut m_users, mut m_roles, mut m_added) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut reset_features = Vec::new();
    let (mut f_projects, mut f_ids, mut f_ordinals, mut f_documents) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, row) in rows {
        // The project document without its features, which have rows of their own.
        let features = std::mem::take(&mut row.state.features);
        let document = serde_json::value::to_raw_value(&row.state);
        row.state.features = features;
        documents.push(Json(document?));
        let row: &'a ProjectRow = row;
        let p = &row.state;
        if row.features_all {
            reset_features.push(*id);
        }
        for (ordinal, feature) in p.features.iter().enumerate() {
            if row.features_all || row.features_changed.contains(&feature.id) {
                f_projects.push(*id);
                f_ids.push(feature.id.as_uuid());
                f_ordinals.push(i32::try_from(ordinal).unwrap_or(i32::MAX));
                f_documents.push(Json(feature));
            }
        }
        ids.push(*id);
        owners.push(p.owner_id.as_uuid());
        statuses.push(p.status.as_str());
        versions.push(as_i64(row.version));
        txs.push(as_i64(row.last.tx));
        seqs.push(as_i64(row.last.seq));
        created.push(p.created_at);
        updated.push(p.updated_at);
        if p.members != row.members_before {
            members_changed.push(*id);
            for m in &p.members {
                m_projects.push(*id);
                m_users.push(m.user_id.as_uuid());
                m_roles.push(m.role.as_str());
                m_added.push(m.added_at);
            }
        }
    }
    if ids.is_empty() {
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
            &ids, &owners, &statuses, &versions, &txs, &seqs, &created, &updated, &documents,
        ],
    )
    .await?;
    if !reset_features.is_empty() {
        let delete = tx
            .prepare_cached(&format!(
                "DELETE FROM {schema}.{PROJECT_FEATURES} WHERE project_id = ANY($1)"
            ))
            .await?;
        tx.execute(&delete, &[&reset_features]).await?;
    }
    if !f_projects.is_empty() {
        let upsert = tx
            .prepare_cached(&format!(
                "INSERT INTO {schema}.{PROJECT_FEATURES} (project_id, id, ordinal, document)
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int4[], $4::json[])
                 ON CONFLICT (project_id, id) DO UPDATE
                 SET ordinal = EXCLUDED.ordinal, document = EXCLUDED.document"
            ))
            .await?;
        tx.execute(&upsert, &[&f_projects, &f_ids, &f_ordinals, &f_documents])
            .await?;
    }
    if !members_changed.is_empty() {
        let delete = tx
            .prepare_cached(&format!(
                "DELETE FROM {schema}.{PROJECT_MEMBERS} WHERE project_id = ANY($1)"
            ))
            .await?;
        tx.execute(&delete, &[&members_changed]).await?;
        if !m_projects.is_empty() {
            let insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO {schema}.{PROJECT_MEMBERS} (project_id, user_id, role, added_at)
                     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[])"
                ))
                .await?;
            tx.execute(&insert, &[&m_projects, &m_users, &m_roles, &m_added])
                .await?;
        }
    }
    Ok(())
}

async fn apply_user(
    tx: &Transaction<'_>,
    schema: &str,
    recorded: &RecordedEvent,
    event: &UserEvent,
) -> Result<(), ApplyError> {
    let version = as_i64(recorded.stream_version);
    let Some(user_id) = domain::ids::UserId::from_stream(&recorded.stream_id).map(|u| u.as_uuid())
    else {
        return Ok(());
    };
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
    }
    Ok(())
}
