//! The AI requests' read-model rows: each request folded with the domain's own `evolve` into one
//! jsonb `document`, plus the columns lists and the sweeper filter on, and one `ai_usage` row per
//! recorded attempt (its cost with its time, model, project and user).

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};
use domain::ai::request::{AiRequest, AiRequestEvent, Attempt};
use read_model::checkpoint;
use read_model::tables::{AI_REQUESTS, AI_USAGE};
use time::OffsetDateTime;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::apply::ApplyError;

pub(crate) struct AiRequestRow {
    pub(crate) state: AiRequest,
    pub(crate) version: u64,
    pub(crate) dirty: bool,
    /// Attempts recorded by this batch's events, with their time: written to `ai_usage`.
    pub(crate) attempts: Vec<(Attempt, OffsetDateTime)>,
}

impl AiRequestRow {
    pub(crate) fn new() -> Self {
        Self {
            state: AiRequest::default(),
            version: 0,
            dirty: false,
            attempts: Vec::new(),
        }
    }

    /// Folds `event` (a new stream version) and keeps an attempt it records.
    pub(crate) fn apply(&mut self, event: &AiRequestEvent, version: u64) {
        if let AiRequestEvent::AiAttemptRecorded {
            attempt,
            recorded_at,
            ..
        } = event
        {
            self.attempts.push((attempt.clone(), *recorded_at));
        }
        self.state.evolve(event);
        self.version = version;
        self.dirty = true;
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
                attempts: Vec::new(),
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
    if !row.attempts.is_empty() {
        // Idempotent per attempt: a batch folded again writes the same rows.
        let usage = tx
            .prepare_cached(&format!(
                "INSERT INTO {schema}.{AI_USAGE} (request_id, n, user_id, project_id, model,
                     input_tokens, output_tokens, cost_usd, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::numeric, $9)
                 ON CONFLICT (request_id, n) DO NOTHING"
            ))
            .await?;
        for (attempt, recorded_at) in &row.attempts {
            let n = i32::try_from(attempt.n).unwrap_or(i32::MAX);
            let tokens = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
            tx.execute(
                &usage,
                &[
                    &id,
                    &n,
                    &a.requested_by.as_uuid(),
                    &a.project_id.as_uuid(),
                    &a.model,
                    &tokens(attempt.usage.input_tokens),
                    &tokens(attempt.usage.output_tokens),
                    &attempt.cost_usd.to_string(),
                    recorded_at,
                ],
            )
            .await?;
        }
    }
    Ok(())
}
