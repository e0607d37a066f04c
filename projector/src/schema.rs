//! The read-model tables, created in a named schema so `replay` can build a fresh copy beside the
//! live one and swap it in.

use deadpool_postgres::GenericClient;

/// The schema the query side reads.
pub const LIVE: &str = "rm";
/// Where `replay` builds the next copy.
pub const NEXT: &str = "rm_next";
/// The name of the read-model projection's checkpoint row.
pub const PROJECTION: &str = "read_models";

/// Read models are disposable: when their shape changes, bump this. A live schema of another
/// shape is dropped at start-up and the projector rebuilds it from the start of the feed.
/// (2: features moved from the project document into `project_features`.)
pub const SHAPE_VERSION: i32 = 2;

pub fn ddl(schema: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.users (
             id uuid PRIMARY KEY,
             email text NOT NULL,
             name text NOT NULL,
             role text NOT NULL,
             active boolean NOT NULL,
             version bigint NOT NULL,
             created_at timestamptz NOT NULL,
             updated_at timestamptz NOT NULL
         );
         -- The project as the domain folds it (`document`, with `features` empty: they have rows of
         -- their own, so a feature change rewrites one small row, not the whole project), plus the
         -- columns lists filter on.
         CREATE TABLE IF NOT EXISTS {schema}.projects (
             id uuid PRIMARY KEY,
             owner_id uuid NOT NULL,
             status text NOT NULL,
             version bigint NOT NULL,
             last_tx bigint NOT NULL,
             last_seq bigint NOT NULL,
             created_at timestamptz NOT NULL,
             updated_at timestamptz NOT NULL,
             document jsonb NOT NULL
         );
         CREATE TABLE IF NOT EXISTS {schema}.project_members (
             project_id uuid NOT NULL,
             user_id uuid NOT NULL,
             role text NOT NULL,
             added_at timestamptz NOT NULL,
             PRIMARY KEY (project_id, user_id)
         );
         -- A project's features; `ordinal` is the place in the project's list (creation order).
         -- `json`, not `jsonb`: it is only ever read whole, and a read concatenates the texts of a
         -- project's features (3x the rate of building a jsonb array with jsonb_agg, measured).
         CREATE TABLE IF NOT EXISTS {schema}.project_features (
             project_id uuid NOT NULL,
             id uuid NOT NULL,
             ordinal integer NOT NULL,
             document json NOT NULL,
             PRIMARY KEY (project_id, id)
         );
         -- The whole generation as the domain folds it, plus the columns lists and the sweeper use.
         CREATE TABLE IF NOT EXISTS {schema}.generations (
             id uuid PRIMARY KEY,
             project_id uuid NOT NULL,
             status text NOT NULL,
             sha256 text,
             version bigint NOT NULL,
             requested_at timestamptz NOT NULL,
             started_at timestamptz,
             completed_at timestamptz,
             document jsonb NOT NULL
         );
         CREATE TABLE IF NOT EXISTS {schema}.checkpoints (
             name text PRIMARY KEY,
             tx bigint NOT NULL,
             seq bigint NOT NULL,
             shape_version integer NOT NULL,
             -- The projector instance that wrote it last: shows who held leadership.
             instance uuid,
             updated_at timestamptz NOT NULL DEFAULT now()
         );
         INSERT INTO {schema}.checkpoints (name, tx, seq, shape_version)
         VALUES ('{PROJECTION}', 0, 0, {SHAPE_VERSION}) ON CONFLICT (name) DO NOTHING;"
    )
}

/// The secondary indexes of the read-model tables. Separate from [`ddl`] so `replay` can build them
/// once, after loading, instead of maintaining them row by row (the primary keys stay: the
/// upserts need them).
pub fn indexes(schema: &str) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS projects_owner_idx ON {schema}.projects (owner_id, status, created_at DESC, id DESC);
         CREATE INDEX IF NOT EXISTS project_members_user_idx ON {schema}.project_members (user_id);
         CREATE INDEX IF NOT EXISTS project_features_order_idx ON {schema}.project_features (project_id, ordinal);
         CREATE INDEX IF NOT EXISTS generations_project_idx ON {schema}.generations (project_id, requested_at DESC, id DESC);
         CREATE INDEX IF NOT EXISTS generations_open_idx ON {schema}.generations (status, requested_at)
             WHERE status IN ('requested', 'running');"
    )
}

/// Checkpoints of the feed relays to NATS. Outside the read-model schema on purpose: a replay
/// swaps the read models and must not make the relays publish everything again.
pub const RELAY_DDL: &str = "CREATE TABLE IF NOT EXISTS relay_checkpoints (
    name text PRIMARY KEY,
    tx bigint NOT NULL DEFAULT 0,
    seq bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);";

/// Creates the live read-model tables if missing, under the migration lock.
pub async fn ensure(database_url: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&0x5250_524fi64])
        .await?;
    let result = async {
        // A live schema of another shape cannot be patched: drop it, and the projector rebuilds
        // it from the start of the feed (reads answer from the new tables as they fill).
        // Asked in two steps so that a first start (no table yet) is not confused with an error.
        let exists: bool = client
            .query_one("SELECT to_regclass('rm.checkpoints') IS NOT NULL", &[])
            .await?
            .try_get(0)?;
        let stale: Option<i32> = if exists {
            client
                .query_opt(
                    "SELECT shape_version FROM rm.checkpoints WHERE name = $1 AND shape_version <> $2",
                    &[&PROJECTION, &SHAPE_VERSION],
                )
                .await?
                .map(|row| row.try_get(0))
                .transpose()?
        } else {
            None
        };
        if let Some(old) = stale {
            tracing::warn!(
                old,
                new = SHAPE_VERSION,
                "read models have an older shape; dropping them to rebuild from the feed"
            );
            client
                .batch_execute(&format!("DROP SCHEMA {LIVE} CASCADE"))
                .await?;
        }
        client
            .batch_execute(&format!("{}\n{}\n{RELAY_DDL}", ddl(LIVE), indexes(LIVE)))
            .await
    }
    .await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&0x5250_524fi64])
        .await?;
    drop(client);
    driver.abort();
    result?;
    Ok(())
}

/// The checkpoint of the read-model projection in `schema`.
pub async fn checkpoint<C: GenericClient>(
    client: &C,
    schema: &str,
) -> Result<event_store::Position, tokio_postgres::Error> {
    let row = client
        .query_one(
            &format!("SELECT tx, seq FROM {schema}.checkpoints WHERE name = $1"),
            &[&PROJECTION],
        )
        .await?;
    let tx: i64 = row.get(0);
    let seq: i64 = row.get(1);
    Ok(event_store::Position {
        tx: tx.max(0) as u64,
        seq: seq.max(0) as u64,
    })
}
