//! PostgreSQL set-up shared by every crate that owns tables: database creation, pools, and
//! migrations run under one advisory lock.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

/// One lock for every migration set, so processes starting at once migrate one after another.
const MIGRATION_LOCK: i64 = 0x4241_434b_464f_5247; // "BACKFORG"

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Creates the database named in `url` if it does not exist (racing creators are fine).
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let config = tokio_postgres::Config::from_str(url)
        .context("DATABASE_URL is not a valid PostgreSQL URL")?;
    let name = config.get_dbname().unwrap_or("postgres").to_owned();
    if name == "postgres" {
        return Ok(());
    }
    let mut admin = config.clone();
    admin.dbname("postgres");
    let (client, connection) = admin
        .connect(NoTls)
        .await
        .context("cannot reach PostgreSQL")?;
    let driver = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let sql = format!("CREATE DATABASE {}", quote_ident(&name));
        if let Err(e) = client.batch_execute(&sql).await {
            if e.code() != Some(&SqlState::DUPLICATE_DATABASE)
                && e.code() != Some(&SqlState::UNIQUE_VIOLATION)
            {
                return Err(e).context("cannot create the database");
            }
        }
    }
    drop(client);
    driver.abort();
    Ok(())
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Connects a pool's connections and drives each on one runtime: the one the pool was made in
/// (the process's multi-threaded runtime). deadpool's own connector spawns the driver on
/// whichever runtime first asks for a connection; in a server that is one of actix's
/// single-threaded workers, where the driver then runs only while that worker is free, so every
/// query on the connection waits behind the worker's requests, and a worker that stops takes the
/// connection with it.
struct DriversOn {
    runtime: tokio::runtime::Handle,
}

impl deadpool_postgres::Connect for DriversOn {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> futures::future::BoxFuture<
        '_,
        Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        let config = pg_config.clone();
        Box::pin(async move {
            let (client, connection) = config.connect(NoTls).await?;
            let driver = self.runtime.spawn(async move {
                if let Err(error) = connection.await {
                    tracing::warn!(%error, "database connection closed");
                }
            });
            Ok((client, driver))
        })
    }
}

/// A pool of `max_size` connections to `url`; connections are checked lazily and driven on the
/// runtime this is called in ([`DriversOn`]).
pub fn pool(url: &str, max_size: usize) -> anyhow::Result<Pool> {
    let config = tokio_postgres::Config::from_str(url)
        .context("DATABASE_URL is not a valid PostgreSQL URL")?;
    let runtime = tokio::runtime::Handle::try_current()
        .context("a pool is made inside the runtime that drives its connections")?;
    let manager = Manager::from_connect(
        config,
        DriversOn { runtime },
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()
        .context("cannot build the connection pool")
}

/// Runs `runner` on a dedicated connection while holding the migration advisory lock. Each set of
/// migrations keeps its own history table, so crates own their schemas independently.
pub async fn migrate_with(
    url: &str,
    mut runner: refinery::Runner,
    history_table: &str,
) -> anyhow::Result<()> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("cannot reach PostgreSQL to migrate")?;
    let driver = tokio::spawn(connection);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context("cannot take the migration lock")?;
    runner.set_migration_table_name(history_table);
    let result = runner
        .set_grouped(false)
        .run_async(&mut client)
        .await
        .with_context(|| format!("migrations of {history_table} failed"));
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    drop(client);
    driver.abort();
    result?;
    unlocked.context("cannot release the migration lock")?;
    Ok(())
}

/// Creates the `events` table and its indexes, then runs the batched back-fills the migrations
/// left to do (outside the migration lock: they are idempotent, and a no-op once done).
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    migrate_with(
        url,
        embedded::migrations::runner(),
        "event_store_migrations",
    )
    .await?;
    let (mut client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("cannot reach PostgreSQL to back-fill")?;
    let driver = tokio::spawn(connection);
    let result = crate::backfill::project_ids(&mut client, crate::backfill::BATCH).await;
    drop(client);
    driver.abort();
    result.context("the back-fill of events.project_id failed")?;
    Ok(())
}
