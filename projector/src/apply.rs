//! Applies a batch of feed events to the read-model tables of one schema, and advances that
//! schema's checkpoint in the same transaction (compare-and-set, so two writers can never both
//! apply a batch).

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use domain::generation::{Generation, GenerationStatus};
use domain::project::{Project, ProjectStatus};
use domain::user::UserEvent;
use domain::{AnyEvent, DomainEvent};
use event_store::{Position, RecordedEvent};
use uuid::Uuid;

use crate::schema::PROJECTION;

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

struct ProjectRow {
    state: Project,
    version: u64,
    last: Position,
    dirty: bool,
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
            &format!("SELECT id, version, document FROM {schema}.generations WHERE id = ANY($1)"),
            &[&ids],
        )
        .await?;
    for row in rows {
        let version: i64 = row.get(1);
        let document: serde_json::Value = row.get(2);
        out.insert(
            row.get(0),
            GenerationRow {
                state: serde_json::from_value(document)?,
                version: version.max(0) as u64,
                dirty: false,
            },
        );
    }
    Ok(out)
}

pub fn status_str(status: GenerationStatus) -> &'static str {
    match status {
        GenerationStatus::Requested => "requested",
        GenerationStatus::Running => "running",
        GenerationStatus::Succeeded => "succeeded",
        GenerationStatus::Failed => "failed",
    }
}

async fn write_generation(
    tx: &Transaction<'_>,
    schema: &str,
    id: Uuid,
    row: &GenerationRow,
) -> Result<(), ApplyError> {
    let g = &row.state;
    let document = serde_json::to_value(g)?;
    let upsert = tx
        .prepare_cached(&format!(
            "INSERT INTO {schema}.generations (id, project_id, status, sha256, version, requested_at, started_at, completed_at, document)
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
            &status_str(g.status),
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
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Applies `events` (which follow `from` in feed order) inside `tx`.
pub async fn apply_batch(
    tx: &Transaction<'_>,
    schema: &str,
    from: Position,
    events: &[RecordedEvent],
    instance: Option<Uuid>,
) -> Result<Applied, ApplyError> {
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(Applied::To(from));
    };
    let mut decoded = Vec::with_capacity(events.len());
    for e in events {
        let event = AnyEvent::from_data(&e.event_type, e.data.clone()).map_err(|source| {
            ApplyError::Poison {
                event_id: e.event_id,
                event_type: e.event_type.clone(),
                source,
            }
        })?;
        decoded.push((e, event));
    }
    let mut projects = load_projects(tx, schema, &decoded).await?;
    let mut generations = load_generations(tx, schema, &decoded).await?;
    for (recorded, event) in decoded.iter().map(|(r, e)| (*r, e.clone())) {
        match event {
            AnyEvent::User(e) => apply_user(tx, schema, recorded, &e).await?,
            AnyEvent::Project(e) => {
                let id = project_id(&recorded.stream_id);
                let Some(id) = id else { continue };
                let row = projects.entry(id).or_insert_with(|| ProjectRow {
                    state: Project::default(),
                    version: 0,
                    last: Position::START,
                    dirty: false,
                });
                // Idempotent: a version already folded in is never folded twice.
                if recorded.stream_version <= row.version {
                    continue;
                }
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
            // E-mail reservations are internal to registration and have no read model.
            AnyEvent::Email(_) => {}
        }
    }
    for (id, row) in projects.iter().filter(|(_, r)| r.dirty) {
        write_project(tx, schema, *id, row).await?;
    }
    for (id, row) in generations.iter().filter(|(_, r)| r.dirty) {
        write_generation(tx, schema, *id, row).await?;
    }
    let moved = tx
        .execute(
            &format!(
                "UPDATE {schema}.checkpoints SET tx = $1, seq = $2, instance = $3, updated_at = now()
                 WHERE name = $4 AND tx = $5 AND seq = $6"
            ),
            &[
                &as_i64(last.tx),
                &as_i64(last.seq),
                &instance,
                &PROJECTION,
                &as_i64(from.tx),
                &as_i64(from.seq),
            ],
        )
        .await?;
    Ok(if moved == 1 {
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
) -> Result<HashMap<Uuid, ProjectRow>, ApplyError> {
    let mut ids: Vec<Uuid> = decoded
        .iter()
        .filter(|(_, e)| matches!(e, AnyEvent::Project(_)))
        .filter_map(|(r, _)| project_id(&r.stream_id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = HashMap::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(out);
    }
    let rows = tx
        .query(
            &format!("SELECT id, version, last_tx, last_seq, document FROM {schema}.projects WHERE id = ANY($1)"),
            &[&ids],
        )
        .await?;
    for row in rows {
        let id: Uuid = row.get(0);
        let version: i64 = row.get(1);
        let tx_id: i64 = row.get(2);
        let seq: i64 = row.get(3);
        let document: serde_json::Value = row.get(4);
        let state: Project = serde_json::from_value(document)?;
        out.insert(
            id,
            ProjectRow {
                state,
                version: version.max(0) as u64,
                last: Position {
                    tx: tx_id.max(0) as u64,
                    seq: seq.max(0) as u64,
                },
                dirty: false,
            },
        );
    }
    Ok(out)
}

async fn write_project(
    tx: &Transaction<'_>,
    schema: &str,
    id: Uuid,
    row: &ProjectRow,
) -> Result<(), ApplyError> {
    let p = &row.state;
    let status = match p.status {
        ProjectStatus::Active => "active",
        ProjectStatus::Archived => "archived",
    };
    let document = serde_json::to_value(p)?;
    let upsert = tx
        .prepare_cached(&format!(
            "INSERT INTO {schema}.projects (id, owner_id, status, version, last_tx, last_seq, created_at, updated_at, document)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id, status = EXCLUDED.status,
                 version = EXCLUDED.version, last_tx = EXCLUDED.last_tx, last_seq = EXCLUDED.last_seq,
                 created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, document = EXCLUDED.document"
        ))
        .await?;
    tx.execute(
        &upsert,
        &[
            &id,
            &p.owner_id.as_uuid(),
            &status,
            &as_i64(row.version),
            &as_i64(row.last.tx),
            &as_i64(row.last.seq),
            &p.created_at,
            &p.updated_at,
            &document,
        ],
    )
    .await?;
    tx.execute(
        &format!("DELETE FROM {schema}.project_members WHERE project_id = $1"),
        &[&id],
    )
    .await?;
    if !p.members.is_empty() {
        let users: Vec<Uuid> = p.members.iter().map(|m| m.user_id.as_uuid()).collect();
        let roles: Vec<&str> = p.members.iter().map(|_| "viewer").collect();
        let added: Vec<time::OffsetDateTime> = p.members.iter().map(|m| m.added_at).collect();
        tx.execute(
            &format!(
                "INSERT INTO {schema}.project_members (project_id, user_id, role, added_at)
                 SELECT $1, u, r, a FROM unnest($2::uuid[], $3::text[], $4::timestamptz[]) AS t(u, r, a)"
            ),
            &[&id, &users, &roles, &added],
        )
        .await?;
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
                    "INSERT INTO {schema}.users (id, email, name, role, active, version, created_at, updated_at)
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
                    "UPDATE {schema}.users SET name = $2, updated_at = $3, version = $4
                     WHERE id = $1 AND version < $4"
                ),
                &[&user_id, name, updated_at, &version],
            )
            .await?;
        }
        UserEvent::PasswordChanged { changed_at, .. } => {
            tx.execute(
                &format!("UPDATE {schema}.users SET updated_at = $2, version = $3 WHERE id = $1 AND version < $3"),
                &[&user_id, changed_at, &version],
            )
            .await?;
        }
        UserEvent::UserRoleChanged {
            role, changed_at, ..
        } => {
            tx.execute(
                &format!(
                    "UPDATE {schema}.users SET role = $2, updated_at = $3, version = $4 WHERE id = $1 AND version < $4"
                ),
                &[&user_id, &role.as_str(), changed_at, &version],
            )
            .await?;
        }
        UserEvent::UserDeactivated { deactivated_at, .. } => {
            tx.execute(
                &format!(
                    "UPDATE {schema}.users SET active = false, updated_at = $2, version = $3
                     WHERE id = $1 AND version < $3"
                ),
                &[&user_id, deactivated_at, &version],
            )
            .await?;
        }
    }
    Ok(())
}
