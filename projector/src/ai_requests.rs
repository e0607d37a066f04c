//! The AI requests' read-model rows: each request folded with the domain's own `evolve` into one
//! jsonb `document`, plus the columns lists and the sweeper filter on.

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};
use domain::ai::request::AiRequest;
use read_model::checkpoint;
use read_model::tables::AI_REQUESTS;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::apply::ApplyError;

pub(crate) struct AiRequestRow {
    pub(crate) state: AiRequest,
    pub(crate) version: u64,
    pub(crate) dirty: bool,
}

impl AiRequestRow {
    pub(crate) fn new() -> Self {
        Self {
            state: AiRequest::default(),
            version: 0,
            dirty: false,
        }
    }
}

pub(crate) async fn load<C: GenericClient>(
    client: &C,
    schema: &str,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, AiRequestRow>, ApplyError> {
    let mut out = HashMap::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(out);
    }
    let rows = client
        .query(
            &format!("SELECT id, version, document FROM {schema}.{AI_REQUESTS} WHERE id = ANY($1)"),
            &[&ids],
        )
        .await?;
    for row in rows {
        let version: i64 = row.try_get(1)?;
        let Json(state): Json<AiRequest> = row.try_get(2)?;
        out.insert(
            row.try_get(0)?,
            AiRequestRow {
                state,
                version: version.max(0) as u64,
                dirty: false,
            },
        );
    }
    Ok(out)
}

pub(crate) async fn write(
    tx: &Transaction<'_>,
    schema: &str,
    id: Uuid,
    row: &AiRequestRow,
) -> Result<(), ApplyError> {
    let a = &row.state;
    let upsert = tx
        .prepare_cached(&format!(
            "INSERT INTO {schema}.{AI_REQUESTS} (id, project_id, status, version, requested_at, started_at, completed_at, document)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, version = EXCLUDED.version,
                 started_at = EXCLUDED.started_at, completed_at = EXCLUDED.completed_at,
                 document = EXCLUDED.document"
        ))
        .await?;
    tx.execute(
        &upsert,
        &[
            &id,
            &a.project_id.as_uuid(),
            &a.status.as_str(),
            &checkpoint::stored(row.version),
            &a.requested_at,
            &a.started_at,
            &a.completed_at,
            &Json(a),
        ],
    )
    .await?;
    Ok(())
}
