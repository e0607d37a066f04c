//! Test support: throw-away databases and the PostgreSQL conformance harness.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use domain::Upcasters;
use tokio::sync::oneshot;

use crate::conformance::{Harness, HeldAppend};
use crate::postgres::PgEventStore;
use crate::setup;
use crate::types::{AppendOutcome, StoreError, StreamAppend};

/// Every test database starts with this prefix, so CI can drop leftovers of crashed runs.
pub const TEST_DB_PREFIX: &str = "bft_";

/// The server tests create their databases on (`BACKFORGE_TEST_DATABASE_URL`, default: local).
pub fn admin_url() -> String {
    std::env::var("BACKFORGE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of its own for one test; dropped (with FORCE) when the value is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    admin: String,
}

impl TestDatabase {
    pub async fn create() -> anyhow::Result<Self> {
        let admin = admin_url();
        let name = format!("{TEST_DB_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let mut config = tokio_postgres::Config::from_str(&admin)?;
        config.dbname(&name);
        let url = url_with_db(&admin, &name);
        setup::ensure_database(&url).await?;
        drop(config);
        Ok(Self { name, url, admin })
    }
}

/// `url` with its database name replaced.
pub fn url_with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            setup::quote_ident(&self.name)
        );
        // Drop runs outside any async context we could borrow; a short-lived thread does the I/O.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&admin, tokio_postgres::NoTls).await
                {
                    let driver = tokio::spawn(conn);
                    let _ = client.batch_execute(&sql).await;
                    drop(client);
                    let _ = driver.await;
                }
            });
        })
        .join();
    }
}

/// A migrated store on a fresh database.
pub struct PgTestStore {
    pub db: TestDatabase,
    pub store: Arc<PgEventStore>,
}

impl PgTestStore {
    pub async fn create(upcasters: Upcasters) -> anyhow::Result<Self> {
        let db = TestDatabase::create().await?;
        setup::migrate(&db.url).await?;
        let pool = setup::pool(&db.url, 40)?;
        let store = Arc::new(PgEventStore::new(pool, Arc::new(upcasters)));
        Ok(Self { db, store })
    }
}

/// The conformance harness for PostgreSQL. Keeps every database it made alive until dropped.
#[derive(Default)]
pub struct PgHarness {
    dbs: std::sync::Mutex<Vec<TestDatabase>>,
    group_commit: bool,
}

impl PgHarness {
    /// Stores whose appends go through the group-commit writer.
    pub fn group_commit() -> Self {
        Self {
            group_commit: true,
            ..Self::default()
        }
    }
}

#[async_trait]
impl Harness for PgHarness {
    type Store = PgEventStore;

    async fn store(&self, upcasters: Upcasters) -> Arc<PgEventStore> {
        let made = PgTestStore::create(upcasters).await.expect("test database");
        if let Ok(mut dbs) = self.dbs.lock() {
            dbs.push(made.db);
        }
        if self.group_commit {
            return Arc::new((*made.store).clone().with_group_commit());
        }
        made.store
    }

    async fn hold_append(
        &self,
        store: &PgEventStore,
        append: StreamAppend,
    ) -> Result<Box<dyn HeldAppend>, StoreError> {
        hold_append(store.pool().clone(), store.clone(), append).await
    }
}

struct PgHeld {
    finish: Option<oneshot::Sender<bool>>,
    done: Option<tokio::task::JoinHandle<Result<(), StoreError>>>,
}

async fn hold_append(
    pool: Pool,
    store: PgEventStore,
    append: StreamAppend,
) -> Result<Box<dyn HeldAppend>, StoreError> {
    let (started_tx, started_rx) = oneshot::channel::<Result<AppendOutcome, StoreError>>();
    let (finish_tx, finish_rx) = oneshot::channel::<bool>();
    let done = tokio::spawn(async move {
        let mut client = pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.into()))?;
        let tx = client
            .transaction()
            .await
            .map_err(crate::postgres::map_pg)?;
        let appended = store.append_in_tx(&tx, std::slice::from_ref(&append)).await;
        let failed = appended.is_err();
        let _ = started_tx.send(appended);
        if failed {
            return Ok(());
        }
        if finish_rx.await.unwrap_or(false) {
            tx.commit().await.map_err(crate::postgres::map_pg)?;
            store.committed();
        } else {
            tx.rollback().await.map_err(crate::postgres::map_pg)?;
        }
        Ok(())
    });
    match started_rx.await {
        Ok(Ok(_)) => Ok(Box::new(PgHeld {
            finish: Some(finish_tx),
            done: Some(done),
        })),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(StoreError::Backend(anyhow::anyhow!(
            "held append task died"
        ))),
    }
}

#[async_trait]
impl HeldAppend for PgHeld {
    async fn commit(mut self: Box<Self>) {
        self.finish(true).await;
    }
    async fn rollback(mut self: Box<Self>) {
        self.finish(false).await;
    }
}

impl PgHeld {
    async fn finish(&mut self, commit: bool) {
        if let Some(tx) = self.finish.take() {
            let _ = tx.send(commit);
        }
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

/// Pool type re-exported for harness users.
pub type PgPool = Pool;
