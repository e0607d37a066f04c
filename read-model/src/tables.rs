//! The read-model tables: their names, DDL and shape version, created in a named schema so a
//! replay can build a fresh copy beside the live one and swap it in.

use domain::ai::request::AiRequestStatus;
use domain::generation::GenerationStatus;

/// The schema the query side reads.
pub const LIVE: &str = "rm";
/// Where a replay builds the next copy.
pub const NEXT: &str = "rm_next";
/// Where the previous live copy goes for the length of a swap.
const OLD: &str = "rm_old";

/// The name of the read-model projection's checkpoint row (and of that feed consumer).
pub const PROJECTION: &str = "read_models";

/// Read models are disposable: when their shape changes, bump this. A live schema of another
/// shape is dropped at start-up and the projector rebuilds it from the start of the feed.
/// (2: features moved from the project document into `project_features`; 3: `ai_requests` and the AI catalog's tables; 4: `ai_usage`; 5: `records`.)
pub const SHAPE_VERSION: i32 = 5;

pub const USERS: &str = "users";
pub const PROJECTS: &str = "projects";
pub const PROJECT_MEMBERS: &str = "project_members";
pub const PROJECT_FEATURES: &str = "project_features";
pub const GENERATIONS: &str = "generations";
pub const AI_REQUESTS: &str = "ai_requests";
/// One row per recorded AI attempt: its cost, time, model, project and user (the usage reports).
pub const AI_USAGE: &str = "ai_usage";
pub const AI_MODELS: &str = "ai_models";
pub const AI_PROMPT_VERSIONS: &str = "ai_prompt_versions";
/// The live records of every project's `crud` entities, one jsonb document each.
pub const RECORDS: &str = "records";
pub const CHECKPOINTS: &str = "checkpoints";
/// Every table of a read-model schema (what a copy of the read models must hold).
pub const TABLES: [&str; 11] = [
    USERS,
    PROJECTS,
    PROJECT_MEMBERS,
    PROJECT_FEATURES,
    GENERATIONS,
    AI_REQUESTS,
    AI_USAGE,
    AI_MODELS,
    AI_PROMPT_VERSIONS,
    RECORDS,
    CHECKPOINTS,
];

/// Checkpoints of the feed relays to NATS. Outside the read-model schema on purpose: a replay
/// swaps the read models and must not make the relays publish everything again.
pub const RELAY_CHECKPOINTS: &str = "relay_checkpoints";

/// The advisory lock `ensure` holds while it creates or drops tables.
const ENSURE_LOCK: i64 = 0x5250_524f;

pub fn ddl(schema: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.{USERS} (
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
         CREATE TABLE IF NOT EXISTS {schema}.{PROJECTS} (
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
         CREATE TABLE IF NOT EXISTS {schema}.{PROJECT_MEMBERS} (
             project_id uuid NOT NULL,
             user_id uuid NOT NULL,
             role text NOT NULL,
             added_at timestamptz NOT NULL,
             PRIMARY KEY (project_id, user_id)
         );
         -- A project's features; `ordinal` is the place in the project's list (creation order).
         -- `json`, not `jsonb`: it is only ever read whole, and a read concatenates the texts of a
         -- project's features (3x the rate of building a jsonb array with jsonb_agg, measured).
         CREATE TABLE IF NOT EXISTS {schema}.{PROJECT_FEATURES} (
             project_id uuid NOT NULL,
             id uuid NOT NULL,
             ordinal integer NOT NULL,
             document json NOT NULL,
             PRIMARY KEY (project_id, id)
         );
         -- The whole generation as the domain folds it, plus the columns lists and the sweeper use.
         CREATE TABLE IF NOT EXISTS {schema}.{GENERATIONS} (
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
         -- The whole AI request as the domain folds it, plus the columns lists and the sweeper use.
         CREATE TABLE IF NOT EXISTS {schema}.{AI_REQUESTS} (
             id uuid PRIMARY KEY,
             project_id uuid NOT NULL,
             status text NOT NULL,
             version bigint NOT NULL,
             requested_at timestamptz NOT NULL,
             started_at timestamptz,
             completed_at timestamptz,
             document jsonb NOT NULL
         );
         -- Live records, deleted ones removed (their history is in the event store): the values
         -- as stored (normalised; read through the entity's current schema), the stream version.
         CREATE TABLE IF NOT EXISTS {schema}.{RECORDS} (
             id uuid PRIMARY KEY,
             project_id uuid NOT NULL,
             feature_id uuid NOT NULL,
             version bigint NOT NULL,
             created_by uuid NOT NULL,
             created_at timestamptz NOT NULL,
             updated_at timestamptz NOT NULL,
             data jsonb NOT NULL
         );
         -- The AI catalog: a model's whole configuration as its events carry it (`json`, the text
         -- as written: prices are decimal strings) and every version of every prompt template.
         CREATE TABLE IF NOT EXISTS {schema}.{AI_MODELS} (
             name text PRIMARY KEY,
             config json NOT NULL,
             is_default boolean NOT NULL,
             retired boolean NOT NULL,
             version bigint NOT NULL,
             created_at timestamptz NOT NULL,
             updated_at timestamptz NOT NULL
         );
         -- Attempts as `AiAttemptRecorded` records them (cost exact, `numeric`), with the
         -- request's model, project and user: what `/ai/usage` adds up.
         CREATE TABLE IF NOT EXISTS {schema}.{AI_USAGE} (
             request_id uuid NOT NULL,
             n integer NOT NULL,
             user_id uuid NOT NULL,
             project_id uuid NOT NULL,
             model text NOT NULL,
             input_tokens bigint NOT NULL,
             output_tokens bigint NOT NULL,
             cost_usd numeric(30, 6) NOT NULL,
             recorded_at timestamptz NOT NULL,
             PRIMARY KEY (request_id, n)
         );
         CREATE TABLE IF NOT EXISTS {schema}.{AI_PROMPT_VERSIONS} (
             name text NOT NULL,
             version integer NOT NULL,
             purpose text NOT NULL,
             system text NOT NULL,
             template text NOT NULL,
             created_at timestamptz NOT NULL,
             PRIMARY KEY (name, version)
         );
         CREATE TABLE IF NOT EXISTS {schema}.{CHECKPOINTS} (
             name text PRIMARY KEY,
             tx bigint NOT NULL,
             seq bigint NOT NULL,
             shape_version integer NOT NULL,
             -- The projector instance that wrote it last: shows who held leadership.
             instance uuid,
             updated_at timestamptz NOT NULL DEFAULT now()
         );
         INSERT INTO {schema}.{CHECKPOINTS} (name, tx, seq, shape_version)
         VALUES ('{PROJECTION}', 0, 0, {SHAPE_VERSION}) ON CONFLICT (name) DO NOTHING;"
    )
}

/// The secondary indexes of the read-model tables. Separate from [`ddl`] so a replay can build
/// them once, after loading, instead of maintaining them row by row (the primary keys stay: the
/// upserts need them).
pub fn indexes(schema: &str) -> String {
    // Spelled as the sweeper's queries spell them, or the planner cannot use the partial index.
    let (requested, running) = (
        GenerationStatus::Requested.as_str(),
        GenerationStatus::Running.as_str(),
    );
    let (ai_requested, ai_running) = (
        AiRequestStatus::Requested.as_str(),
        AiRequestStatus::Running.as_str(),
    );
    format!(
        "CREATE INDEX IF NOT EXISTS projects_owner_idx ON {schema}.{PROJECTS} (owner_id, status, created_at DESC, id DESC);
         CREATE INDEX IF NOT EXISTS project_members_user_idx ON {schema}.{PROJECT_MEMBERS} (user_id);
         CREATE INDEX IF NOT EXISTS project_features_order_idx ON {schema}.{PROJECT_FEATURES} (project_id, ordinal);
         CREATE INDEX IF NOT EXISTS generations_project_idx ON {schema}.{GENERATIONS} (project_id, requested_at DESC, id DESC);
         CREATE INDEX IF NOT EXISTS generations_open_idx ON {schema}.{GENERATIONS} (status, requested_at)
             WHERE status IN ('{requested}', '{running}');
         CREATE INDEX IF NOT EXISTS ai_requests_project_idx ON {schema}.{AI_REQUESTS} (project_id, requested_at DESC, id DESC);
         CREATE INDEX IF NOT EXISTS ai_requests_open_idx ON {schema}.{AI_REQUESTS} (status, requested_at)
             WHERE status IN ('{ai_requested}', '{ai_running}');
         CREATE INDEX IF NOT EXISTS ai_usage_user_idx ON {schema}.{AI_USAGE} (user_id, recorded_at);
         CREATE INDEX IF NOT EXISTS ai_usage_time_idx ON {schema}.{AI_USAGE} (recorded_at);
         CREATE INDEX IF NOT EXISTS records_entity_idx ON {schema}.{RECORDS} (project_id, feature_id, created_at, id);"
    )
}

fn relay_ddl() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {RELAY_CHECKPOINTS} (
             name text PRIMARY KEY,
             tx bigint NOT NULL DEFAULT 0,
             seq bigint NOT NULL DEFAULT 0,
             updated_at timestamptz NOT NULL DEFAULT now()
         );"
    )
}

/// Creates the live read-model tables (and the relays' checkpoint table) if missing, under the
/// migration lock.
pub async fn ensure(database_url: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&ENSURE_LOCK])
        .await?;
    let result = async {
        // A live schema of another shape cannot be patched: drop it, and the projector rebuilds
        // it from the start of the feed (reads answer from the new tables as they fill).
        // Asked in two steps so that a first start (no table yet) is not confused with an error.
        let exists: bool = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("{LIVE}.{CHECKPOINTS}")],
            )
            .await?
            .try_get(0)?;
        let stale: Option<i32> = if exists {
            client
                .query_opt(
                    &format!(
                        "SELECT shape_version FROM {LIVE}.{CHECKPOINTS} WHERE name = $1 AND shape_version <> $2"
                    ),
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
            .batch_execute(&format!(
                "{}\n{}\n{}",
                ddl(LIVE),
                indexes(LIVE),
                relay_ddl()
            ))
            .await
    }
    .await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&ENSURE_LOCK])
        .await?;
    drop(client);
    driver.abort();
    result?;
    Ok(())
}

/// Drops and recreates the empty next copy, for a replay to fill.
pub fn recreate_next() -> String {
    format!("DROP SCHEMA IF EXISTS {NEXT} CASCADE; {}", ddl(NEXT))
}

/// Puts the next copy in place of the live one, in one transaction. PostgreSQL has no
/// `ALTER SCHEMA IF EXISTS`: the live schema is renamed only when it is there (swallowing an
/// error instead would leave the transaction aborted and the swap undone).
pub fn swap() -> String {
    format!(
        "DROP SCHEMA IF EXISTS {OLD} CASCADE;
         DO $$ BEGIN
             IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '{LIVE}') THEN
                 ALTER SCHEMA {LIVE} RENAME TO {OLD};
             END IF;
         END $$;
         ALTER SCHEMA {NEXT} RENAME TO {LIVE};
         DROP SCHEMA IF EXISTS {OLD} CASCADE;"
    )
}
