//! Workload (a), the baseline: autocommit single-row INSERTs into a copy of the `events` table.

use deadpool_postgres::Pool;
use serde_json::Value;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::payload;
use crate::workload::Worker;

/// The baseline table: `events` copied with every default, identity, constraint and index, in a
/// schema of its own so the index and constraint names do not clash.
pub const TABLE: &str = "baseline.events";

pub const INSERT_SQL: &str = "INSERT INTO baseline.events \
     (stream_id, stream_version, event_id, event_type, schema_version, data, metadata) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Creates the baseline table from the migrated `events` table (so it follows future migrations).
pub async fn create_table(client: &Client) -> anyhow::Result<()> {
    client
        .batch_execute(
            "CREATE SCHEMA baseline;
             CREATE TABLE baseline.events (LIKE public.events INCLUDING ALL);",
        )
        .await?;
    Ok(())
}

/// The index definitions of a table with its schema name removed, sorted, so both tables can be
/// shown to be indexed alike.
pub async fn index_shapes(client: &Client, schema: &str) -> anyhow::Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT regexp_replace(indexdef, '^CREATE (UNIQUE )?INDEX \\S+ ON \\S+ ', \
                                   'CREATE \\1INDEX ON events ') \
             FROM pg_indexes WHERE schemaname = $1 AND tablename = 'events' ORDER BY 1",
            &[&schema],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// One client of the baseline: its own stream, versions counting up from 1.
pub struct RawInsert {
    pool: Pool,
    stream_id: String,
    next_version: i64,
}

impl RawInsert {
    pub fn new(pool: Pool, stream_id: String) -> Self {
        Self {
            pool,
            stream_id,
            next_version: 1,
        }
    }
}

impl Worker for RawInsert {
    async fn step(&mut self) -> anyhow::Result<()> {
        let version = self.next_version;
        // A failed insert leaves a gap, which the baseline table does not mind.
        self.next_version += 1;
        let data = payload::data(u64::try_from(version).unwrap_or(0));
        let metadata: Value = serde_json::to_value(payload::metadata())?;
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(INSERT_SQL).await?;
        client
            .execute(
                &stmt,
                &[
                    &self.stream_id,
                    &version,
                    &Uuid::new_v4(),
                    &payload::EVENT_TYPE,
                    &1i32,
                    &data,
                    &metadata,
                ],
            )
            .await?;
        Ok(())
    }
}
