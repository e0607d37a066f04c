//! The PostgreSQL event store: one `events` table, single-statement appends, a commit-ordered feed.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool, Transaction};
use domain::{Decider, DomainEvent, EventMetadata, Upcasters};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::watch;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::aggregate::Loaded;
use crate::guard::{self, Checked};
use crate::notify::Signals;
use crate::store::EventStore;
use crate::types::{
    AppendOutcome, ExpectedVersion, Position, ReadUntil, RecordedEvent, StoreError, StreamAppend,
    StreamAppended,
};
use crate::writer::{Side, Writer};

/// Appends one stream's events in one statement: the version check and the insert are atomic, and
/// the unique (stream_id, stream_version) key turns a concurrent writer into a conflict, never a gap.
const APPEND_SQL: &str = "
WITH cur AS (SELECT coalesce(max(stream_version), 0) AS v FROM events WHERE stream_id = $1)
INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata,
                    project_id)
SELECT $1, cur.v + t.ord, t.event_id, t.event_type, t.schema_version, t.data, t.metadata,
       t.project_id
FROM cur, unnest($2::uuid[], $3::text[], $4::int4[], $5::json[], $6::json[], $8::uuid[])
     WITH ORDINALITY AS t(event_id, event_type, schema_version, data, metadata, project_id, ord)
WHERE $7::int8 IS NULL OR cur.v = $7::int8
RETURNING position, transaction_id::text::int8, stream_version";

const COLUMNS: &str = "position, transaction_id::text::int8 AS tx, stream_id, stream_version, event_id, \
                       event_type, schema_version, data, metadata, recorded_at";

/// Commit order: only transactions older than every still-running one are visible, so an event
/// whose transaction commits late can never land behind a reader's checkpoint.
fn feed_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM events
         WHERE (transaction_id, position) > ($1::text::xid8, $2::int8)
           AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY transaction_id, position
         LIMIT $3"
    )
}

const HEAD_SQL: &str = "SELECT transaction_id::text::int8, position FROM events
     WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY transaction_id DESC, position DESC LIMIT 1";

/// How often an `Any` append retries after losing a race for the next version.
const ANY_RETRIES: usize = 8;

/// The PostgreSQL implementation of [`EventStore`].
#[derive(Clone)]
pub struct PgEventStore {
    pool: Pool,
    upcasters: Arc<Upcasters>,
    signals: Signals,
    max_event_bytes: usize,
    /// The group-commit writer, when this store batches its appends.
    writer: Option<Writer>,
    /// The runtime `new` ran in: the one that drives the pool's connections (`setup::pool`).
    runtime: tokio::runtime::Handle,
}

impl PgEventStore {
    /// Wraps a pool whose database has been migrated. Must be called inside a tokio runtime: it starts
    /// the coalescing notifier that tells other processes about commits.
    pub fn new(pool: Pool, upcasters: Arc<Upcasters>) -> Self {
        let signals = Signals::start(pool.clone());
        Self {
            pool,
            upcasters,
            signals,
            max_event_bytes: guard::DEFAULT_MAX_EVENT_BYTES,
            writer: None,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Commits appends through one writer task that batches concurrent commands into one
    /// transaction (`crate::writer`; `BACKFORGE_GROUP_COMMIT`). Must be called inside a tokio
    /// runtime.
    pub fn with_group_commit(mut self) -> Self {
        self.writer = Some(Writer::start(self.pool.clone(), self.signals.clone()));
        self
    }

    /// [`crate::load`] on the runtime that drives this store's connections (`setup::pool`), for
    /// folds of long streams (time travel). tokio-postgres hands a query's rows over from the
    /// connection's driver task one socket read (about 8 KB) at a time through a one-slot
    /// channel, so a reader on another thread (an actix worker) and the driver wake each other
    /// across threads every few rows; on the driver's runtime the hand-over mostly stays on one
    /// thread. Folding 1,000 events this way took about a fifth less of `serve`'s CPU (W5,
    /// docs/benchmarks.md).
    pub async fn load_beside_drivers<A>(
        &self,
        stream_id: &str,
        until: ReadUntil,
    ) -> Result<Loaded<A>, StoreError>
    where
        A: Decider + Send + 'static,
        A::Event: DomainEvent,
    {
        /// Stops the fold when its request is dropped (the client went away), as the fold did
        /// when it ran inside the request's own future.
        struct AbortOnDrop(tokio::task::AbortHandle);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let store = self.clone();
        let stream = stream_id.to_owned();
        let fold = self
            .runtime
            .spawn(async move { crate::load(&store, &stream, until).await });
        let _abort = AbortOnDrop(fold.abort_handle());
        fold.await.map_err(|e| {
            if e.is_panic() {
                StoreError::Backend(anyhow::anyhow!("a fold panicked: {e}"))
            } else {
                StoreError::Unavailable(anyhow::anyhow!("the runtime is shutting down"))
            }
        })?
    }

    /// Whether appends go through the group-commit writer.
    pub fn group_commit(&self) -> bool {
        self.writer.is_some()
    }

    /// Commits `appends` (possibly none) and `side` in one transaction — in the writer's batch when
    /// group commit is on — and reports where the events landed. The command path's commit.
    pub async fn commit_with_side(
        &self,
        appends: Vec<StreamAppend>,
        side: Side,
    ) -> Result<AppendOutcome, StoreError> {
        let checked = if appends.is_empty() {
            Vec::new()
        } else {
            guard::check(&appends, self.max_event_bytes)?
        };
        let outcome = match &self.writer {
            Some(writer) => writer.submit(appends, checked, Some(side)).await?.0?,
            None => {
                let mut client = self.client().await?;
                let tx = client.transaction().await.map_err(map_pg)?;
                let outcome = if appends.is_empty() {
                    AppendOutcome::nothing()
                } else {
                    append_checked_in_tx(&tx, &appends, &checked).await?
                };
                side.writes
                    .write(
                        &tx,
                        &crate::application::Landed::of(&outcome, &side.report, side.current),
                    )
                    .await?;
                tx.commit().await.map_err(map_pg)?;
                if !outcome.streams.is_empty() {
                    self.committed();
                }
                outcome
            }
        };
        Ok(outcome)
    }

    /// Sets the largest event the store accepts, as the size of its CloudEvent
    /// (`BACKFORGE_MAX_EVENT_BYTES`); larger events are refused with [`crate::AppendRefusal`].
    pub fn with_max_event_bytes(mut self, max_event_bytes: usize) -> Self {
        self.max_event_bytes = max_event_bytes;
        self
    }

    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn upcasters(&self) -> &Upcasters {
        &self.upcasters
    }

    /// Starts listening for commits made by other processes on this database, so `feed_signal`
    /// ticks for them too. Without it readers still catch up by polling.
    pub fn listen_for_commits(&self, database_url: &str) {
        self.signals.listen(database_url.to_owned());
    }

    /// Appends inside a transaction the caller owns, for writes that must commit together with the
    /// events (credentials, refresh tokens, idempotency records). After a successful commit the
    /// caller must call [`PgEventStore::committed`] so readers wake up at once.
    pub async fn append_in_tx(
        &self,
        tx: &Transaction<'_>,
        appends: &[StreamAppend],
    ) -> Result<AppendOutcome, StoreError> {
        let checked = guard::check(appends, self.max_event_bytes)?;
        append_checked_in_tx(tx, appends, &checked).await
    }

    /// Tells readers in this process (and, through NOTIFY, in others) that events were committed.
    pub fn committed(&self) {
        self.signals.committed();
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.into()))
    }

    fn decode_row(&self, row: &Row) -> Result<RecordedEvent, StoreError> {
        let event_id: Uuid = row.try_get("event_id").map_err(backend)?;
        let event_type: String = row.try_get("event_type").map_err(backend)?;
        let stored_version: i32 = row.try_get("schema_version").map_err(backend)?;
        let Json(data): Json<Box<RawValue>> = row.try_get("data").map_err(backend)?;
        let Json(metadata): Json<EventMetadata> = row
            .try_get("metadata")
            .map_err(|_| StoreError::BadMetadata { event_id })?;
        // A stored version below 1 is corrupt data, never "version 1".
        let stored_version = u32::try_from(stored_version)
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| {
                StoreError::Backend(anyhow::anyhow!(
                    "event {event_id} has the invalid schema version {stored_version}"
                ))
            })?;
        let (data, schema_version) = if stored_version == self.upcasters.latest_version(&event_type)
        {
            // Nothing to upcast (the common case): the text goes on as it was read.
            (data, stored_version)
        } else {
            let value: Value =
                serde_json::from_str(data.get()).map_err(|e| StoreError::Backend(e.into()))?;
            let (value, version) = self.upcasters.upcast(&event_type, stored_version, value)?;
            let data = serde_json::value::to_raw_value(&value)
                .map_err(|e| StoreError::Backend(e.into()))?;
            (data, version)
        };
        Ok(RecordedEvent {
            position: Position {
                tx: to_u64(row.try_get("tx").map_err(backend)?),
                seq: to_u64(row.try_get("position").map_err(backend)?),
            },
            stream_id: row.try_get("stream_id").map_err(backend)?,
            stream_version: to_u64(row.try_get("stream_version").map_err(backend)?),
            event_id,
            event_type,
            schema_version,
            data,
            metadata,
            recorded_at: row.try_get("recorded_at").map_err(backend)?,
        })
    }

    /// A retry of an append whose answer was lost: every event id is stored, in the same streams at
    /// consecutive versions. Returns the original outcome, or `None` when it is not such a retry.
    async fn previous_outcome(
        &self,
        appends: &[StreamAppend],
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT stream_id, stream_version, transaction_id::text::int8, position, event_type
                 FROM events WHERE event_id = ANY($1)",
            )
            .await
            .map_err(map_pg)?;
        let mut streams = Vec::with_capacity(appends.len());
        let mut position = Position::START;
        for append in appends {
            let ids: Vec<Uuid> = append.events.iter().map(|e| e.event_id).collect();
            let rows = client.query(&stmt, &[&ids]).await.map_err(map_pg)?;
            if rows.len() != ids.len() {
                return Ok(None);
            }
            let mut found = Vec::with_capacity(rows.len());
            for row in &rows {
                let stream: String = row.try_get(0).map_err(backend)?;
                let version: i64 = row.try_get(1).map_err(backend)?;
                let tx: i64 = row.try_get(2).map_err(backend)?;
                let seq: i64 = row.try_get(3).map_err(backend)?;
                let event_type: String = row.try_get(4).map_err(backend)?;
                found.push((
                    version,
                    stream,
                    event_type,
                    Position {
                        tx: to_u64(tx),
                        seq: to_u64(seq),
                    },
                ));
            }
            found.sort_by_key(|f| f.0);
            let first = found[0].0;
            let same = found
                .iter()
                .zip(&append.events)
                .enumerate()
                .all(|(i, (f, e))| {
                    f.1 == append.stream_id && f.0 == first + i as i64 && f.2 == e.event_type
                });
            if !same {
                return Ok(None);
            }
            position = found.iter().map(|f| f.3).fold(position, Position::max);
            streams.push(StreamAppended {
                stream_id: append.stream_id.clone(),
                first_version: to_u64(first),
                last_version: to_u64(first) + append.events.len() as u64 - 1,
            });
        }
        Ok(Some(AppendOutcome { streams, position }))
    }
}

/// Appends the streams of one command inside `tx`, each in a savepoint so that a conflict can still
/// read the stream's current version.
pub(crate) async fn append_checked_in_tx(
    tx: &Transaction<'_>,
    appends: &[StreamAppend],
    checked: &[Vec<Checked>],
) -> Result<AppendOutcome, StoreError> {
    let mut streams = Vec::with_capacity(appends.len());
    let mut position = Position::START;
    for (append, checked) in appends.iter().zip(checked) {
        // A unique violation aborts the whole transaction; the savepoint lets us roll back
        // just this statement and still read the stream's current version for the conflict.
        tx.batch_execute("SAVEPOINT bf_append")
            .await
            .map_err(map_pg)?;
        let (appended, last) = append_stream(tx, append, checked, true).await??;
        tx.batch_execute("RELEASE SAVEPOINT bf_append")
            .await
            .map_err(map_pg)?;
        streams.push(appended);
        position = position.max(last);
    }
    Ok(AppendOutcome { streams, position })
}

/// One command's appends on their own: one autocommit statement for one stream (the hot path, one
/// round trip), a transaction for several.
pub(crate) async fn append_alone(
    client: &mut deadpool_postgres::Client,
    appends: &[StreamAppend],
    checked: &[Vec<Checked>],
) -> Result<AppendOutcome, StoreError> {
    if let ([single], [checked]) = (appends, checked) {
        let (appended, position) = append_stream(&*client, single, checked, false).await??;
        return Ok(AppendOutcome {
            streams: vec![appended],
            position,
        });
    }
    let tx = client.transaction().await.map_err(map_pg)?;
    let outcome = append_checked_in_tx(&tx, appends, checked).await?;
    tx.commit().await.map_err(map_pg)?;
    Ok(outcome)
}

/// The current versions of `streams` (a stream without events is absent).
pub(crate) async fn current_versions<C: GenericClient>(
    client: &C,
    streams: &[&str],
) -> Result<std::collections::HashMap<String, u64>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT stream_id, max(stream_version) FROM events WHERE stream_id = ANY($1)
             GROUP BY stream_id",
        )
        .await
        .map_err(map_pg)?;
    let rows = client.query(&stmt, &[&streams]).await.map_err(map_pg)?;
    let mut versions = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        let stream: String = row.try_get(0).map_err(backend)?;
        let version: i64 = row.try_get(1).map_err(backend)?;
        versions.insert(stream, to_u64(version));
    }
    Ok(versions)
}

/// Runs the append statement for one stream. The outer error is a failure of the statement; the
/// inner one a version conflict or a duplicate event id, which the caller may resolve.
async fn append_stream<C: GenericClient>(
    client: &C,
    append: &StreamAppend,
    checked: &[Checked],
    in_savepoint: bool,
) -> Result<Result<(StreamAppended, Position), StoreError>, StoreError> {
    let n = append.events.len();
    let mut ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut data = Vec::with_capacity(n);
    let mut metadata = Vec::with_capacity(n);
    let mut projects = Vec::with_capacity(n);
    for (e, checked) in append.events.iter().zip(checked) {
        ids.push(e.event_id);
        types.push(e.event_type.as_str());
        versions.push(i32::try_from(e.schema_version).map_err(|_| StoreError::InvalidAppend)?);
        // Serialised once, by the guard that checked it.
        data.push(Json(checked.data.as_ref()));
        metadata.push(Json(checked.metadata.as_ref()));
        projects.push(checked.project_id);
    }
    let required = append.expected.required().map(to_i64);
    let stmt = client.prepare_cached(APPEND_SQL).await.map_err(map_pg)?;
    let result = client
        .query(
            &stmt,
            &[
                &append.stream_id,
                &ids,
                &types,
                &versions,
                &data,
                &metadata,
                &required,
                &projects,
            ],
        )
        .await;
    let rows = match result {
        Ok(rows) => rows,
        Err(err) => {
            return match err
                .as_db_error()
                .map(|db| (db.code().clone(), db.constraint().map(str::to_owned)))
            {
                Some((SqlState::UNIQUE_VIOLATION, Some(c))) if c == "events_stream_version_key" => {
                    if in_savepoint {
                        client
                            .batch_execute("ROLLBACK TO SAVEPOINT bf_append")
                            .await
                            .map_err(map_pg)?;
                    }
                    Ok(Err(conflict(
                        append,
                        current_version(client, &append.stream_id).await?,
                    )))
                }
                Some((SqlState::UNIQUE_VIOLATION, Some(c))) if c == "events_event_id_key" => {
                    Ok(Err(StoreError::DuplicateEventId { event_id: ids[0] }))
                }
                _ => Err(map_pg(err)),
            };
        }
    };
    if rows.is_empty() {
        return Ok(Err(conflict(
            append,
            current_version(client, &append.stream_id).await?,
        )));
    }
    let mut position = Position::START;
    let mut first = u64::MAX;
    let mut last = 0;
    for row in &rows {
        let seq: i64 = row.try_get(0).map_err(backend)?;
        let tx: i64 = row.try_get(1).map_err(backend)?;
        let version = to_u64(row.try_get(2).map_err(backend)?);
        position = position.max(Position {
            tx: to_u64(tx),
            seq: to_u64(seq),
        });
        first = first.min(version);
        last = last.max(version);
    }
    Ok(Ok((
        StreamAppended {
            stream_id: append.stream_id.clone(),
            first_version: first,
            last_version: last,
        },
        position,
    )))
}

fn conflict(append: &StreamAppend, current: u64) -> StoreError {
    StoreError::WrongExpectedVersion {
        stream_id: append.stream_id.clone(),
        expected: append.expected,
        current,
    }
}

async fn current_version<C: GenericClient>(client: &C, stream_id: &str) -> Result<u64, StoreError> {
    let stmt = client
        .prepare_cached("SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1")
        .await
        .map_err(map_pg)?;
    let row = client
        .query_one(&stmt, &[&stream_id])
        .await
        .map_err(map_pg)?;
    Ok(to_u64(row.try_get(0).map_err(backend)?))
}

#[async_trait]
impl EventStore for PgEventStore {
    #[tracing::instrument(skip_all, fields(streams = appends.len()))]
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<AppendOutcome, StoreError> {
        let mut checked = guard::check(&appends, self.max_event_bytes)?;
        let mut appends = appends;
        let any = appends.iter().any(|a| a.expected == ExpectedVersion::Any);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match &self.writer {
                Some(writer) => {
                    let (result, back, back_checked) =
                        writer.submit(appends, checked, None).await?;
                    (appends, checked) = (back, back_checked);
                    result
                }
                None => {
                    let mut client = self.client().await?;
                    append_alone(&mut client, &appends, &checked).await
                }
            };
            match result {
                Ok(outcome) => {
                    // The writer signals its own batches.
                    if self.writer.is_none() {
                        self.committed();
                    }
                    return Ok(outcome);
                }
                Err(StoreError::DuplicateEventId { event_id }) => {
                    return match self.previous_outcome(&appends).await? {
                        Some(outcome) => Ok(outcome),
                        None => Err(StoreError::DuplicateEventId { event_id }),
                    };
                }
                Err(StoreError::WrongExpectedVersion { .. }) if any && attempt < ANY_RETRIES => {
                    continue;
                }
                // A retry whose first attempt committed fails the version check before it reaches
                // the event-id key: answer it with the original outcome.
                Err(conflict @ StoreError::WrongExpectedVersion { .. }) => {
                    return match self.previous_outcome(&appends).await? {
                        Some(outcome) => Ok(outcome),
                        None => Err(conflict),
                    };
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn stream_version(&self, stream_id: &str) -> Result<u64, StoreError> {
        let client = self.client().await?;
        current_version(&client, stream_id).await
    }

    #[tracing::instrument(skip_all, fields(stream_id))]
    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
        until: ReadUntil,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let limit = to_i64(limit as u64);
        let after = to_i64(after_version);
        let rows = match until {
            ReadUntil::End => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2
                     ORDER BY stream_version LIMIT $3"
                );
                let stmt = client.prepare_cached(&sql).await.map_err(map_pg)?;
                client.query(&stmt, &[&stream_id, &after, &limit]).await
            }
            ReadUntil::Version(v) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM events
                     WHERE stream_id = $1 AND stream_version > $2 AND stream_version <= $4
                     ORDER BY stream_version LIMIT $3"
                );
                let stmt = client.prepare_cached(&sql).await.map_err(map_pg)?;
                client
                    .query(&stmt, &[&stream_id, &after, &limit, &to_i64(v)])
                    .await
            }
            ReadUntil::Time(t) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM events
                     WHERE stream_id = $1 AND stream_version > $2 AND recorded_at <= $4
                     ORDER BY stream_version LIMIT $3"
                );
                let stmt = client.prepare_cached(&sql).await.map_err(map_pg)?;
                client.query(&stmt, &[&stream_id, &after, &limit, &t]).await
            }
        }
        .map_err(map_pg)?;
        rows.iter().map(|r| self.decode_row(r)).collect()
    }

    async fn read_feed(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&feed_sql()).await.map_err(map_pg)?;
        let rows = client
            .query(
                &stmt,
                &[
                    &after.tx.to_string(),
                    &to_i64(after.seq),
                    &to_i64(limit as u64),
                ],
            )
            .await
            .map_err(map_pg)?;
        rows.iter().map(|r| self.decode_row(r)).collect()
    }

    async fn feed_head(&self) -> Result<Position, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(HEAD_SQL).await.map_err(map_pg)?;
        let row = client.query_opt(&stmt, &[]).await.map_err(map_pg)?;
        Ok(match row {
            Some(row) => Position {
                tx: to_u64(row.try_get(0).map_err(backend)?),
                seq: to_u64(row.try_get(1).map_err(backend)?),
            },
            None => Position::START,
        })
    }

    fn feed_signal(&self) -> watch::Receiver<u64> {
        self.signals.subscribe()
    }
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(e.into())
}

/// Connection-level failures mean PostgreSQL is unreachable (→ 503); anything else is a bug (→ 500).
pub fn map_pg(e: tokio_postgres::Error) -> StoreError {
    let unreachable = e.is_closed()
        || (e.as_db_error().is_none() && e.code().is_none())
        || matches!(
            e.code(),
            Some(&SqlState::ADMIN_SHUTDOWN)
                | Some(&SqlState::CANNOT_CONNECT_NOW)
                | Some(&SqlState::TOO_MANY_CONNECTIONS)
        );
    if unreachable {
        StoreError::Unavailable(e.into())
    } else {
        StoreError::Backend(e.into())
    }
}
