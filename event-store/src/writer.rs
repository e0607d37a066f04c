//! Group commit: one writer task per store takes the appends of concurrent commands and writes them
//! as one multi-row statement in one transaction, each stream's expected version checked inside
//! it, and answers each command with its own outcome.
//!
//! The writer never waits to fill a batch: it takes what is queued when it has room for another
//! batch (up to [`IN_FLIGHT`] are written at once). No two commands on one stream are in one batch
//! or in two batches in flight (the later one waits for a later batch, so a stream's commands keep
//! their order). A command whose events do not all land (its expected version is not
//! the stream's, or another process took a version first) gets a conflict and leaves nothing
//! behind; a command with side writes runs them in its own savepoint, so a failed side write fails
//! only that command. When the batch transaction itself fails, every command in it gets that
//! failure and none is answered as a success. A batch statement refused by PostgreSQL for one
//! command's data (a duplicate event id) is run again one command at a time, so the refusal reaches
//! only its own command. A batch of one is written exactly as without the writer: one autocommit
//! statement when it has no side writes.

use std::collections::{HashMap, HashSet, VecDeque};

use deadpool_postgres::{Client, Pool, Transaction};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::application::{Landed, SideWrites};
use crate::guard::Checked;
use crate::notify::Signals;
use crate::postgres::{append_alone, append_checked_in_tx, current_versions, map_pg};
use crate::types::{AppendOutcome, Position, StoreError, StreamAppend, StreamAppended};

/// The most commands one batch takes.
const MAX_JOBS: usize = 256;
/// The most events one batch takes (a single command may bring more; it then goes alone).
const MAX_EVENTS: usize = 2_000;
/// Commands queued for the writer before submitters wait for room.
const QUEUE: usize = 4_096;
/// Batches written at once, on connections of their own: while one waits for its commit to reach
/// the disk the next is already written, and PostgreSQL flushes their commits together.
pub const IN_FLIGHT: usize = 2;

/// Writes that commit with a command's events, and what they need to know about where the events
/// landed.
pub struct Side {
    pub writes: Box<dyn SideWrites>,
    /// The stream whose version [`Landed`] reports.
    pub report: String,
    /// That stream's loaded version and position, reported when nothing is appended.
    pub current: (u64, Position),
}

/// One command's commit, queued for the writer.
pub(crate) struct Job {
    pub appends: Vec<StreamAppend>,
    pub checked: Vec<Vec<Checked>>,
    pub side: Option<Side>,
    pub answer: oneshot::Sender<Returned>,
}

/// A command's outcome, with its appends handed back for the caller's retries.
pub(crate) type Returned = (
    Result<AppendOutcome, StoreError>,
    Vec<StreamAppend>,
    Vec<Vec<Checked>>,
);

impl Job {
    fn events(&self) -> usize {
        self.appends.iter().map(|a| a.events.len()).sum()
    }

    fn answer(self, result: Result<AppendOutcome, StoreError>) {
        // The submitter may have gone (its request was cancelled); the outcome stands.
        let _ = self.answer.send((result, self.appends, self.checked));
    }
}

/// The submitting side of the writer task.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task on `pool`; it ends when every `Writer` clone is dropped.
    pub(crate) fn start(pool: Pool, signals: Signals) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, signals, jobs));
        Self { queue }
    }

    /// Queues a commit and waits for its own outcome. A writer that is gone (it cannot be, short
    /// of a bug) is a store that is unavailable, never a silent success.
    pub(crate) async fn submit(
        &self,
        appends: Vec<StreamAppend>,
        checked: Vec<Vec<Checked>>,
        side: Option<Side>,
    ) -> Result<Returned, StoreError> {
        let (answer, outcome) = oneshot::channel();
        let job = Job {
            appends,
            checked,
            side,
            answer,
        };
        if self.queue.send(job).await.is_err() {
            return Err(gone());
        }
        outcome.await.map_err(|_| gone())
    }
}

fn gone() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("the event store's writer has stopped"))
}

async fn run(pool: Pool, signals: Signals, mut jobs: mpsc::Receiver<Job>) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    // Streams of the batches being written: a command on one of them waits for the next batch.
    let mut busy: HashSet<String> = HashSet::new();
    let mut running: JoinSet<(bool, Vec<String>)> = JoinSet::new();
    let mut open = true;
    loop {
        if running.len() < IN_FLIGHT {
            if let Some(batch) = compose(&mut waiting, &mut jobs, &busy) {
                busy.extend(batch.streams.iter().cloned());
                let streams: Vec<String> = batch.streams.into_iter().collect();
                let pool = pool.clone();
                // Each batch runs in a task of its own, so a panic inside it (a caller's side
                // write) fails only that batch's commands (their answers are dropped: 503),
                // loudly, and the writer goes on; otherwise every later write of the process would
                // answer 503.
                running.spawn(async move {
                    match tokio::spawn(write(pool, batch.jobs)).await {
                        Ok(appended) => (appended, streams),
                        Err(error) => {
                            tracing::error!(%error, "a group-commit batch panicked; its commands answer 503");
                            // It may have committed before it panicked: let readers look.
                            (true, streams)
                        }
                    }
                });
                continue;
            }
        }
        if !open && running.is_empty() && waiting.is_empty() {
            return;
        }
        tokio::select! {
            Some(done) = running.join_next(), if !running.is_empty() => {
                // The outer task never panics; a join error is a runtime shutting down.
                let Ok((appended, streams)) = done else { continue };
                for stream in &streams {
                    busy.remove(stream);
                }
                if appended {
                    signals.committed();
                }
            }
            job = jobs.recv(), if open && running.len() < IN_FLIGHT => match job {
                Some(job) => waiting.push_back(job),
                None => open = false,
            },
        }
    }
}

/// The next batch: the commands that waited, in their order, then what is queued, without waiting
/// for more. A command on a stream of a batch in flight, or on a stream of an earlier command that
/// still waits, waits too (a stream's commands keep their order); `None` when every command waits.
fn compose(
    waiting: &mut VecDeque<Job>,
    jobs: &mut mpsc::Receiver<Job>,
    busy: &HashSet<String>,
) -> Option<Batch> {
    let mut batch: Option<Batch> = None;
    let mut held: HashSet<String> = HashSet::new();
    let mut still_waiting = VecDeque::new();
    let mut consider = |job: Job, batch: &mut Option<Batch>, still: &mut VecDeque<Job>| {
        let blocked = job
            .appends
            .iter()
            .any(|a| busy.contains(&a.stream_id) || held.contains(&a.stream_id));
        let refused = if blocked {
            Err(job)
        } else {
            match batch {
                Some(batch) => batch.take(job),
                None => {
                    *batch = Some(Batch::new(job));
                    Ok(())
                }
            }
        };
        if let Err(job) = refused {
            held.extend(job.appends.iter().map(|a| a.stream_id.clone()));
            still.push_back(job);
        }
    };
    while let Some(job) = waiting.pop_front() {
        consider(job, &mut batch, &mut still_waiting);
    }
    while !batch.as_ref().is_some_and(Batch::full) {
        let Ok(job) = jobs.try_recv() else { break };
        consider(job, &mut batch, &mut still_waiting);
    }
    *waiting = still_waiting;
    batch
}

/// The commands of one batch, on pairwise different streams.
struct Batch {
    jobs: Vec<Job>,
    streams: HashSet<String>,
    events: usize,
}

impl Batch {
    fn new(first: Job) -> Self {
        let mut batch = Self {
            jobs: Vec::new(),
            streams: HashSet::new(),
            events: 0,
        };
        batch.add(first);
        batch
    }

    fn full(&self) -> bool {
        self.jobs.len() >= MAX_JOBS || self.events >= MAX_EVENTS
    }

    /// Takes `job` unless it shares a stream with the batch or would overfill it.
    fn take(&mut self, job: Job) -> Result<(), Job> {
        let shares = job
            .appends
            .iter()
            .any(|a| self.streams.contains(&a.stream_id));
        if shares || self.full() || self.events + job.events() > MAX_EVENTS {
            return Err(job);
        }
        self.add(job);
        Ok(())
    }

    fn add(&mut self, job: Job) {
        self.events += job.events();
        self.streams
            .extend(job.appends.iter().map(|a| a.stream_id.clone()));
        self.jobs.push(job);
    }
}

/// Writes one batch and answers every command in it; whether any events were committed.
async fn write(pool: Pool, mut jobs: Vec<Job>) -> bool {
    let mut client = match pool.get().await {
        Ok(client) => client,
        Err(e) => {
            let reason = e.to_string();
            for job in jobs {
                job.answer(Err(StoreError::Unavailable(anyhow::anyhow!(
                    "no database connection: {reason}"
                ))));
            }
            return false;
        }
    };
    if jobs.len() == 1 {
        let Some(job) = jobs.pop() else { return false };
        return alone(&mut client, job).await;
    }
    match together(&mut client, &jobs).await {
        Together::Committed(results) => {
            let appended = results
                .iter()
                .any(|r| r.as_ref().is_ok_and(|o| !o.streams.is_empty()));
            for (job, result) in jobs.into_iter().zip(results) {
                job.answer(result);
            }
            appended
        }
        Together::OneByOne => {
            let mut appended = false;
            for job in jobs {
                appended |= alone(&mut client, job).await;
            }
            appended
        }
        Together::Failed(error) => {
            let reason = format!("{error:#}");
            for job in jobs {
                job.answer(Err(StoreError::Unavailable(anyhow::anyhow!(
                    "the batch this write was committed in failed: {reason}"
                ))));
            }
            false
        }
    }
}

/// A command written on its own, exactly as without the writer.
async fn alone(client: &mut Client, job: Job) -> bool {
    let result = match &job.side {
        None => append_alone(client, &job.appends, &job.checked).await,
        Some(side) => alone_with_side(client, &job, side).await,
    };
    let appended = result.as_ref().is_ok_and(|o| !o.streams.is_empty());
    job.answer(result);
    appended
}

async fn alone_with_side(
    client: &mut Client,
    job: &Job,
    side: &Side,
) -> Result<AppendOutcome, StoreError> {
    let tx = client.transaction().await.map_err(map_pg)?;
    let outcome = if job.appends.is_empty() {
        AppendOutcome::nothing()
    } else {
        append_checked_in_tx(&tx, &job.appends, &job.checked).await?
    };
    side.writes
        .write(&tx, &Landed::of(&outcome, &side.report, side.current))
        .await?;
    tx.commit().await.map_err(map_pg)?;
    Ok(outcome)
}

enum Together {
    /// The transaction committed; each command's own result.
    Committed(Vec<Result<AppendOutcome, StoreError>>),
    /// PostgreSQL refused the batch statement for some command's data: write them one by one.
    OneByOne,
    /// The transaction failed: nothing was committed.
    Failed(StoreError),
}

const BATCH_SQL: &str = "
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::uuid[], $5::text[], $6::int4[],
                         $7::json[], $8::json[], $9::uuid[])
        WITH ORDINALITY AS t(stream_id, expected, ord, event_id, event_type, schema_version, data,
                             metadata, project_id, n)
),
cur AS (
    SELECT s.stream_id,
           coalesce((SELECT max(e.stream_version) FROM events e WHERE e.stream_id = s.stream_id), 0)
               AS v
    FROM (SELECT DISTINCT stream_id FROM input) s
)
INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata,
                    project_id)
SELECT i.stream_id, cur.v + i.ord, i.event_id, i.event_type, i.schema_version, i.data, i.metadata,
       i.project_id
FROM input i JOIN cur ON cur.stream_id = i.stream_id
WHERE i.expected IS NULL OR cur.v = i.expected
ORDER BY i.n
ON CONFLICT (stream_id, stream_version) DO NOTHING
RETURNING event_id, stream_version, position, transaction_id::text::int8";

/// Where one event landed.
struct Row {
    version: u64,
    position: Position,
}

async fn together(client: &mut Client, jobs: &[Job]) -> Together {
    let tx = match client.transaction().await {
        Ok(tx) => tx,
        Err(e) => return Together::Failed(map_pg(e)),
    };
    let landed = match insert(&tx, jobs).await {
        Ok(rows) => rows,
        Err(e) if e.as_db_error().is_some() => return Together::OneByOne,
        Err(e) => return Together::Failed(map_pg(e)),
    };
    match settle(&tx, jobs, &landed).await {
        Ok(results) => match tx.commit().await {
            Ok(()) => Together::Committed(results),
            Err(e) => Together::Failed(map_pg(e)),
        },
        Err(e) => Together::Failed(e),
    }
}

/// The batch statement; returns where each inserted event landed, by event id.
async fn insert(
    tx: &Transaction<'_>,
    jobs: &[Job],
) -> Result<HashMap<Uuid, Row>, tokio_postgres::Error> {
    let events: usize = jobs.iter().map(Job::events).sum();
    let mut streams = Vec::with_capacity(events);
    let mut expected = Vec::with_capacity(events);
    let mut ords = Vec::with_capacity(events);
    let mut ids = Vec::with_capacity(events);
    let mut types = Vec::with_capacity(events);
    let mut versions = Vec::with_capacity(events);
    let mut data = Vec::with_capacity(events);
    let mut metadata = Vec::with_capacity(events);
    let mut projects = Vec::with_capacity(events);
    for job in jobs {
        for (append, checked) in job.appends.iter().zip(&job.checked) {
            let required = append.expected.required().map(to_i64);
            for (i, (event, checked)) in append.events.iter().zip(checked).enumerate() {
                streams.push(append.stream_id.as_str());
                expected.push(required);
                ords.push(to_i64(i as u64 + 1));
                ids.push(event.event_id);
                types.push(event.event_type.as_str());
                versions.push(i32::try_from(event.schema_version).unwrap_or(i32::MAX));
                data.push(Json(checked.data.as_ref()));
                metadata.push(Json(checked.metadata.as_ref()));
                projects.push(checked.project_id);
            }
        }
    }
    let stmt = tx.prepare_cached(BATCH_SQL).await?;
    let rows = tx
        .query(
            &stmt,
            &[
                &streams, &expected, &ords, &ids, &types, &versions, &data, &metadata, &projects,
            ],
        )
        .await?;
    let mut landed = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get(0)?;
        let version: i64 = row.try_get(1)?;
        let seq: i64 = row.try_get(2)?;
        let txid: i64 = row.try_get(3)?;
        landed.insert(
            id,
            Row {
                version: to_u64(version),
                position: Position {
                    tx: to_u64(txid),
                    seq: to_u64(seq),
                },
            },
        );
    }
    Ok(landed)
}

/// Each command's result inside the batch transaction: its outcome when all its events landed
/// (and its side writes succeeded), else a conflict or its side write's failure with everything
/// it wrote undone. An error is a failure of the transaction itself.
async fn settle(
    tx: &Transaction<'_>,
    jobs: &[Job],
    landed: &HashMap<Uuid, Row>,
) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
    let mut results = Vec::with_capacity(jobs.len());
    let mut undo: Vec<Uuid> = Vec::new();
    let mut conflicted: Vec<(usize, String, crate::types::ExpectedVersion)> = Vec::new();
    for (index, job) in jobs.iter().enumerate() {
        match outcome_of(job, landed) {
            Ok(outcome) => results.push(Ok(outcome)),
            Err(append) => {
                undo.extend(mine(job, landed));
                conflicted.push((index, append.stream_id.clone(), append.expected));
                results.push(Err(StoreError::InvalidAppend));
            }
        }
    }
    if !undo.is_empty() {
        delete(tx, &undo).await?;
    }
    if !conflicted.is_empty() {
        let names: Vec<&str> = conflicted.iter().map(|(_, s, _)| s.as_str()).collect();
        let current = current_versions(tx, &names).await?;
        for (index, stream_id, expected) in conflicted {
            let current = current.get(&stream_id).copied().unwrap_or(0);
            results[index] = Err(StoreError::WrongExpectedVersion {
                stream_id,
                expected,
                current,
            });
        }
    }
    // The savepoint of the previous command with side writes is released in the same round trip
    // that sets the next one (the commit releases the last): one round trip per command.
    let mut savepoint = "SAVEPOINT bf_job";
    for (job, result) in jobs.iter().zip(results.iter_mut()) {
        let (Some(side), Ok(outcome)) = (&job.side, &*result) else {
            continue;
        };
        // Pipelined: the savepoint's message is sent first (`biased`: polled in order, and each
        // sends on its first poll), the side write's first statement right behind it, so the
        // savepoint costs no round trip of its own. A failed savepoint fails the batch, whatever
        // the write answered.
        let landed_as = Landed::of(outcome, &side.report, side.current);
        let (set, wrote) = tokio::join!(
            biased;
            tx.batch_execute(savepoint),
            side.writes.write(tx, &landed_as),
        );
        set.map_err(map_pg)?;
        savepoint = "RELEASE SAVEPOINT bf_job; SAVEPOINT bf_job";
        match wrote {
            Ok(()) => {}
            Err(failure) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT bf_job")
                    .await
                    .map_err(map_pg)?;
                let own = mine(job, landed);
                if !own.is_empty() {
                    delete(tx, &own).await?;
                }
                *result = Err(failure);
            }
        }
    }
    Ok(results)
}

/// The command's outcome if every one of its events landed; else the first append that did not.
fn outcome_of<'j>(
    job: &'j Job,
    landed: &HashMap<Uuid, Row>,
) -> Result<AppendOutcome, &'j StreamAppend> {
    let mut outcome = AppendOutcome::nothing();
    for append in &job.appends {
        let mut first = u64::MAX;
        let mut last = 0;
        for event in &append.events {
            let row = landed.get(&event.event_id).ok_or(append)?;
            first = first.min(row.version);
            last = last.max(row.version);
            outcome.position = outcome.position.max(row.position);
        }
        outcome.streams.push(StreamAppended {
            stream_id: append.stream_id.clone(),
            first_version: first,
            last_version: last,
        });
    }
    Ok(outcome)
}

/// The ids of the command's events that the batch statement inserted.
fn mine(job: &Job, landed: &HashMap<Uuid, Row>) -> Vec<Uuid> {
    job.appends
        .iter()
        .flat_map(|a| &a.events)
        .map(|e| e.event_id)
        .filter(|id| landed.contains_key(id))
        .collect()
}

/// Takes back events this transaction inserted (nobody else can have seen them).
async fn delete(tx: &Transaction<'_>, ids: &[Uuid]) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached("DELETE FROM events WHERE event_id = ANY($1)")
        .await
        .map_err(map_pg)?;
    tx.execute(&stmt, &[&ids]).await.map_err(map_pg)?;
    Ok(())
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
