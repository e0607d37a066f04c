//! `backforge replay`: rebuild the read models from the whole feed into fresh tables, then swap
//! them in. Commits batch by batch, so it never holds the cluster-wide xmin horizon back.

use std::time::Instant;

use deadpool_postgres::Pool;
use event_store::{EventStore, PgEventStore, Position};
use read_model::tables::{self, NEXT, PROJECTION};
use tokio::task::JoinHandle;

use crate::apply::{Applied, ApplyError, Batch, DERIVED_COMMIT, Folded, ProjectStates, WriteMode};
use crate::parked;

/// Events per replay transaction.
const REPLAY_BATCH: usize = 5000;
/// Project rows a replay keeps folded between batches (a few KB each).
const REPLAY_STATES: usize = 20_000;

#[derive(Debug, Clone, Copy)]
pub struct ReplayReport {
    pub events: u64,
    pub seconds: f64,
    pub checkpoint: Position,
}

impl ReplayReport {
    pub fn events_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.events as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Replays every event of `store` into fresh read-model tables in `target` (the store's own
/// database, or another one) and swaps them in. `progress` gets (done, total estimate, events/s).
pub async fn replay(
    store: &PgEventStore,
    target: &Pool,
    mut progress: impl FnMut(u64, u64, f64),
) -> anyhow::Result<ReplayReport> {
    let client = target.get().await?;
    client.batch_execute(&tables::recreate_next()).await?;
    let total: i64 = store
        .pool()
        .get()
        .await?
        .query_one("SELECT count(*) FROM events", &[])
        .await?
        .try_get(0)?;
    drop(client);
    // The events an operator parked for the read models: a replay skips exactly those, so it
    // builds what the live projection holds (the feed minus parked events).
    let parked = parked::load(&store.pool().get().await?, PROJECTION).await?;
    if !parked.is_empty() {
        tracing::info!(parked = parked.len(), "replay skips the parked events");
    }
    let started = Instant::now();
    let mut checkpoint = Position::START;
    let mut done = 0u64;
    let mut states = ProjectStates::new(REPLAY_STATES);
    // At most one batch is being written while the next one folds; writes commit in feed order.
    let mut writing: Option<Writing> = None;
    let mut events = store.read_feed(checkpoint, REPLAY_BATCH).await?;
    while !events.is_empty() {
        // Read the next page (on its own connection and task) while this one is folded: the
        // feed query and its decoding overlap the fold and the writes instead of waiting for them.
        let next = match events.last() {
            Some(last) if events.len() == REPLAY_BATCH => {
                let store = store.clone();
                let after = last.position;
                Some(tokio::spawn(async move {
                    store.read_feed(after, REPLAY_BATCH).await
                }))
            }
            _ => None,
        };
        let mut batch = Batch::new(checkpoint, &events, &mut states, &parked).map_err(stopped)?;
        if batch.needs_rows() {
            // Rows this replay does not hold are read back from the copy it builds, so the batch
            // before must have committed them.
            done += finish(&mut writing).await?;
            let client = target.get().await?;
            batch.load(&client, NEXT).await.map_err(stopped)?;
        }
        let folded = batch.fold(&mut states, WriteMode::Copy).map_err(stopped)?;
        checkpoint = folded.to();
        done += finish(&mut writing).await?;
        let (target, events_in) = (target.clone(), events.len() as u64);
        writing = Some(Writing {
            events: events_in,
            task: tokio::spawn(async move { write(&target, &folded).await }),
        });
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        progress(done, (total.max(0) as u64).max(done), rate);
        events = match next {
            Some(next) => next.await??,
            None => Vec::new(),
        };
    }
    done += finish(&mut writing).await?;
    // Secondary indexes are built once over the loaded rows (the timed total includes this).
    target
        .get()
        .await?
        .batch_execute(&tables::indexes(NEXT))
        .await?;
    swap(target).await?;
    Ok(ReplayReport {
        events: done,
        seconds: started.elapsed().as_secs_f64(),
        checkpoint,
    })
}

/// A batch being written on its own task, and how many events it holds.
struct Writing {
    events: u64,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Waits for the batch being written, if any; the events it committed.
async fn finish(writing: &mut Option<Writing>) -> anyhow::Result<u64> {
    match writing.take() {
        Some(w) => {
            w.task.await??;
            Ok(w.events)
        }
        None => Ok(0),
    }
}

/// Writes one folded batch and its checkpoint in a transaction of its own.
async fn write(target: &Pool, folded: &Folded) -> anyhow::Result<()> {
    let mut client = target.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(DERIVED_COMMIT).await?;
    match folded.write(&tx, NEXT, None).await.map_err(stopped)? {
        Applied::To(_) => {
            tx.commit().await?;
            Ok(())
        }
        Applied::Lost => anyhow::bail!("another replay is writing {NEXT}; run one at a time"),
    }
}

/// A batch replay cannot apply, with the way out when an event can never be read.
fn stopped(error: ApplyError) -> anyhow::Error {
    let hint = match &error {
        ApplyError::Poison { event_id, .. } => format!(
            "; if no fix can make it readable, park it: \
             backforge consumers park {PROJECTION} {event_id} --reason …"
        ),
        _ => String::new(),
    };
    anyhow::Error::new(error).context(format!("replay stopped{hint}"))
}

/// Puts the replayed copy in place of the live read models atomically. A live projector's next compare-and-set on the
/// checkpoint fails, and it continues from the replayed checkpoint.
async fn swap(target: &Pool) -> anyhow::Result<()> {
    let mut client = target.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(&tables::swap()).await?;
    tx.commit().await?;
    Ok(())
}
