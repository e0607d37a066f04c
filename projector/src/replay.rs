//! `backforge replay`: rebuild the read models from the whole feed into fresh tables, then swap
//! them in. Commits batch by batch, so it never holds the cluster-wide xmin horizon back.

use std::time::Instant;

use deadpool_postgres::Pool;
use event_store::{EventStore, PgEventStore, Position};
use read_model::tables::{self, NEXT, PROJECTION};

use crate::apply::{Applied, ProjectStates, apply_batch};
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
    let mut events = store.read_feed(checkpoint, REPLAY_BATCH).await?;
    while !events.is_empty() {
        // Read the next page (on its own connection and task) while this one is applied: the
        // feed query and its decoding overlap the writes instead of waiting for them.
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
        let mut client = target.get().await?;
        let tx = client.transaction().await?;
        let applied = apply_batch(&tx, NEXT, checkpoint, &events, None, &mut states, &parked)
            .await
            .map_err(|error| {
                let hint = match &error {
                    crate::apply::ApplyError::Poison { event_id, .. } => format!(
                        "; if no fix can make it readable, park it: \
                         backforge consumers park {PROJECTION} {event_id} --reason …"
                    ),
                    _ => String::new(),
                };
                anyhow::Error::new(error).context(format!("replay stopped{hint}"))
            })?;
        match applied {
            Applied::To(to) => {
                tx.commit().await?;
                checkpoint = to;
            }
            Applied::Lost => anyhow::bail!("another replay is writing {NEXT}; run one at a time"),
        }
        done += events.len() as u64;
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        progress(done, (total.max(0) as u64).max(done), rate);
        events = match next {
            Some(next) => next.await??,
            None => Vec::new(),
        };
    }
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

/// Puts the replayed copy in place of the live read models atomically. A live projector's next compare-and-set on the
/// checkpoint fails, and it continues from the replayed checkpoint.
async fn swap(target: &Pool) -> anyhow::Result<()> {
    let mut client = target.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(&tables::swap()).await?;
    tx.commit().await?;
    Ok(())
}
