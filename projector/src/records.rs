//! The live records' read-model rows: each record event applied in SQL to its one `records` row (created, patched with jsonb `||`, deleted), guarded by the stream version so a replayed event changes nothing.

use deadpool_postgres::Transaction;
use domain::ids::RecordId;
use domain::record::RecordEvent;
use read_model::tables::RECORDS;
use tokio_postgres::types::Json;

use crate::apply::ApplyError;

/// One record event of a batch, with its stream and version.
pub(crate) struct RecordWrite {
    pub(crate) version: i64,
    pub(crate) event: RecordEvent,
}

impl RecordWrite {
    fn record_id(&self) -> RecordId {
        match &self.event {
            RecordEvent::RecordCreated { record_id, .. }
            | RecordEvent::RecordUpdated { record_id, .. }
            | RecordEvent::RecordDeleted { record_id, .. } => *record_id,
        }
    }
}

/// Applies `writes` in feed order (one chain: a record's events keep their order).
pub(crate) async fn write(
    tx: &Transaction<'_>,
    schema: &str,
    writes: &[RecordWrite],
) -> Result<(), ApplyError> {
    for w in writes {
        let id = w.record_id().as_uuid();
        match &w.event {
            RecordEvent::RecordCreated {
                project_id,
                feature_id,
                values,
                created_by,
                created_at,
                ..
            } => {
                let insert = tx
                    .prepare_cached(&format!(
                        "INSERT INTO {schema}.{RECORDS}
                             (id, project_id, feature_id, version, created_by, created_at, updated_at, data)
                         VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
                         ON CONFLICT (id) DO NOTHING"
                    ))
                    .await?;
                tx.execute(
                    &insert,
                    &[
                        &id,
                        &project_id.as_uuid(),
                        &feature_id.as_uuid(),
                        &w.version,
                        &created_by.as_uuid(),
                        created_at,
                        &Json(values),
                    ],
                )
                .await?;
            }
            RecordEvent::RecordUpdated {
                changes,
                updated_at,
                ..
            } => {
                let update = tx
                    .prepare_cached(&format!(
                        "UPDATE {schema}.{RECORDS} SET data = data || $3, version = $2, updated_at = $4
                         WHERE id = $1 AND version < $2"
                    ))
                    .await?;
                tx.execute(&update, &[&id, &w.version, &Json(changes), updated_at])
                    .await?;
            }
            RecordEvent::RecordDeleted { .. } => {
                let delete = tx
                    .prepare_cached(&format!("DELETE FROM {schema}.{RECORDS} WHERE id = $1"))
                    .await?;
                tx.execute(&delete, &[&id]).await?;
            }
        }
    }
    Ok(())
}
