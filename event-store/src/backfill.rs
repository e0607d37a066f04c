//! The batched back-fill of `events.project_id` for rows written before the column existed: run at
//! start-up after the migrations, idempotent, a no-op once done.
//!
//! Each batch is one short transaction over a range of positions (the fill and its progress
//! together), so a crash resumes where it stopped and no transaction holds the cluster-wide xmin
//! horizon back for long (docs/ARCHITECTURE.md, "Commit order").

use domain::ids::{GENERATION_STREAM_PREFIX, PROJECT_STREAM_PREFIX};

use crate::postgres::map_pg;
use crate::types::StoreError;

/// Positions per batch (at most that many rows per transaction).
pub const BATCH: i64 = 10_000;

const NAME: &str = "events.project_id";

/// The hyphenated lower-case uuid that `domain::ids` writes after a stream prefix.
const UUID_RE: &str = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

/// Fills one batch: project-owned rows (the streams `domain::stream_owner` names) take the id in
/// their metadata, else the one their stream names (`project-<uuid>`), else — a generation's
/// later events — the `project_id` of the generation's first event, `GenerationRequested`.
const FILL_SQL: &str = "
UPDATE events e SET project_id = coalesce(
    CASE WHEN (e.metadata ->> 'project_id') ~ $5 THEN (e.metadata ->> 'project_id')::uuid END,
    CASE WHEN e.stream_id ~ $3 THEN substr(e.stream_id, $6)::uuid END,
    (SELECT CASE WHEN (r.data ->> 'project_id') ~ $5 THEN (r.data ->> 'project_id')::uuid END
       FROM events r WHERE r.stream_id = e.stream_id AND r.stream_version = 1))
WHERE e.position > $1 AND e.position <= $2 AND e.project_id IS NULL
  AND (e.stream_id ~ $3 OR e.stream_id ~ $4)";

/// Runs the back-fill to its end in batches of `batch` positions; returns the rows it filled.
pub async fn project_ids(
    client: &mut tokio_postgres::Client,
    batch: i64,
) -> Result<u64, StoreError> {
    let project_re = format!("^{PROJECT_STREAM_PREFIX}{UUID_RE}$");
    let generation_re = format!("^{GENERATION_STREAM_PREFIX}{UUID_RE}$");
    let uuid_re = format!("^{UUID_RE}$");
    let id_from = i32::try_from(PROJECT_STREAM_PREFIX.len() + 1).unwrap_or(i32::MAX);
    let mut filled = 0;
    loop {
        let row = client
            .query_opt(
                "SELECT done_through, target FROM event_backfills WHERE name = $1",
                &[&NAME],
            )
            .await
            .map_err(map_pg)?;
        let Some(row) = row else {
            return Ok(filled);
        };
        let (done, target): (i64, i64) = (row.get(0), row.get(1));
        if done >= target {
            if filled > 0 {
                tracing::info!(filled, "events.project_id back-filled");
            }
            return Ok(filled);
        }
        let upto = target.min(done.saturating_add(batch.max(1)));
        let tx = client.transaction().await.map_err(map_pg)?;
        filled += tx
            .execute(
                FILL_SQL,
                &[
                    &done,
                    &upto,
                    &project_re,
                    &generation_re,
                    &uuid_re,
                    &id_from,
                ],
            )
            .await
            .map_err(map_pg)?;
        tx.execute(
            "UPDATE event_backfills SET done_through = greatest(done_through, $2) WHERE name = $1",
            &[&NAME, &upto],
        )
        .await
        .map_err(map_pg)?;
        tx.commit().await.map_err(map_pg)?;
        tracing::debug!(through = upto, target, "events.project_id back-fill batch");
    }
}
