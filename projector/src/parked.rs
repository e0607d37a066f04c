//! Parked events: the events an operator told a feed consumer to skip (`backforge consumers
//! park`), for the case no rule foresaw. A park is a row of the command-side table
//! `parked_events` (created by the command side's migrations) written in the same transaction as
//! an `EventParked` in the `operations` stream, so every park is audited like any other change.
//!
//! The projection, replay and both relays load the parked set before they process a batch and
//! skip exactly those events; a later event of the same stream applies on the state without it.

use std::collections::HashSet;

use deadpool_postgres::GenericClient;
use domain::EventMetadata;
use domain::operations::{OPERATIONS_STREAM, OperationsEvent};
use event_store::{EventStore, ExpectedVersion, NewEvent, PgEventStore, StreamAppend};
use read_model::tables::PROJECTION;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::relay::RelayKind;

/// The command-side table of parks; its DDL is `command-api/migrations/V2__parked_events.sql`.
pub const TABLE: &str = "parked_events";
/// Parks an event for every consumer.
pub const ALL: &str = "all";
/// The longest reason an operator may give.
const REASON_MAX_CHARS: usize = 1000;

/// Every feed consumer an event can be parked for, by its stable (stored) name.
pub fn consumers() -> [&'static str; 3] {
    [PROJECTION, RelayKind::Events.name(), RelayKind::Jobs.name()]
}

/// The consumer name as stored, or why it is not one (`all` included).
pub fn consumer_name(name: &str) -> anyhow::Result<&'static str> {
    if name == ALL {
        return Ok(ALL);
    }
    consumers().into_iter().find(|c| *c == name).ok_or_else(|| {
        anyhow::anyhow!(
            "`{name}` is not a consumer; choose one of {} or `{ALL}`",
            consumers().join(", ")
        )
    })
}

/// The events one consumer must skip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parked(HashSet<Uuid>);

impl Parked {
    pub fn contains(&self, event_id: Uuid) -> bool {
        self.0.contains(&event_id)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The events parked for `consumer` (or for all).
pub async fn load<C: GenericClient>(
    client: &C,
    consumer: &str,
) -> Result<Parked, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT event_id FROM {TABLE} WHERE consumer = $1 OR consumer = '{ALL}'"
        ))
        .await?;
    let rows = client.query(&stmt, &[&consumer]).await?;
    let mut ids = HashSet::with_capacity(rows.len());
    for row in rows {
        ids.insert(row.try_get(0)?);
    }
    Ok(Parked(ids))
}

/// One park, as `backforge consumers list` shows it.
#[derive(Debug, Clone)]
pub struct ParkedEvent {
    pub consumer: String,
    pub event_id: Uuid,
    pub reason: String,
    pub parked_by: String,
    pub parked_at: OffsetDateTime,
    /// Where the event lives, when the store still has it.
    pub stream_id: Option<String>,
    pub stream_version: Option<i64>,
    pub event_type: Option<String>,
}

/// What a park or unpark did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    Done,
    /// It was so already: nothing was written.
    Already,
}

/// Waits `pause` before a stalled consumer retries, or less when the event it fails on
/// (`failing`) gets parked meanwhile: a park appends to the store, so the feed signal wakes this
/// to look, and the consumer moves on at once instead of after its backoff.
pub async fn wait_to_retry(
    store: &PgEventStore,
    pool: &deadpool_postgres::Pool,
    consumer: &str,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
    pause: std::time::Duration,
    failing: Option<Uuid>,
) {
    let until = tokio::time::Instant::now() + pause;
    let mut signal = store.feed_signal();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return,
            _ = shutdown.changed() => return,
            _ = signal.changed(), if failing.is_some() => {
                let Some(id) = failing else { return };
                let parked = match pool.get().await {
                    Ok(client) => load(&client, consumer).await.ok(),
                    Err(_) => None,
                };
                if parked.is_some_and(|p| p.contains(id)) {
                    return;
                }
            }
        }
    }
}

fn metadata(action: &str) -> EventMetadata {
    EventMetadata {
        correlation_id: Some(Uuid::now_v7()),
        request_id: Some(format!("backforge consumers {action}")),
        ..EventMetadata::default()
    }
}

/// Parks `event_id` for `consumer` (or `all`): the row and its `EventParked` commit together.
pub async fn park(
    store: &PgEventStore,
    consumer: &str,
    event_id: Uuid,
    reason: &str,
    operator: &str,
) -> anyhow::Result<Changed> {
    let consumer = consumer_name(consumer)?;
    let reason = reason.trim();
    anyhow::ensure!(!reason.is_empty(), "a park needs a reason (--reason)");
    anyhow::ensure!(
        reason.chars().count() <= REASON_MAX_CHARS && !reason.contains('\0'),
        "the reason must be at most {REASON_MAX_CHARS} characters, without NUL"
    );
    let mut client = store.pool().get().await?;
    let tx = client.transaction().await?;
    let exists = tx
        .query_opt("SELECT 1 FROM events WHERE event_id = $1", &[&event_id])
        .await?
        .is_some();
    anyhow::ensure!(exists, "the store has no event with id {event_id}");
    let now = OffsetDateTime::now_utc();
    let inserted = tx
        .execute(
            &format!(
                "INSERT INTO {TABLE} (consumer, event_id, reason, parked_by, parked_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (consumer, event_id) DO NOTHING"
            ),
            &[&consumer, &event_id, &reason, &operator, &now],
        )
        .await?;
    if inserted == 0 {
        return Ok(Changed::Already);
    }
    let event = OperationsEvent::EventParked {
        consumer: consumer.to_owned(),
        event_id,
        reason: reason.to_owned(),
        parked_by: operator.to_owned(),
        parked_at: now,
    };
    store
        .append_in_tx(
            &tx,
            &[StreamAppend::new(
                OPERATIONS_STREAM,
                ExpectedVersion::Any,
                vec![NewEvent::from_domain(
                    &event,
                    Uuid::now_v7(),
                    metadata("park"),
                )],
            )],
        )
        .await?;
    tx.commit().await?;
    // Wakes stalled consumers in this and other processes: they re-read the parked set.
    store.committed();
    Ok(Changed::Done)
}

/// Lifts the park of `event_id` for `consumer` (or `all`): the delete and its `EventUnparked`
/// commit together.
pub async fn unpark(
    store: &PgEventStore,
    consumer: &str,
    event_id: Uuid,
    operator: &str,
) -> anyhow::Result<Changed> {
    let consumer = consumer_name(consumer)?;
    let mut client = store.pool().get().await?;
    let tx = client.transaction().await?;
    let deleted = tx
        .execute(
            &format!("DELETE FROM {TABLE} WHERE consumer = $1 AND event_id = $2"),
            &[&consumer, &event_id],
        )
        .await?;
    if deleted == 0 {
        return Ok(Changed::Already);
    }
    let event = OperationsEvent::EventUnparked {
        consumer: consumer.to_owned(),
        event_id,
        unparked_by: operator.to_owned(),
        unparked_at: OffsetDateTime::now_utc(),
    };
    store
        .append_in_tx(
            &tx,
            &[StreamAppend::new(
                OPERATIONS_STREAM,
                ExpectedVersion::Any,
                vec![NewEvent::from_domain(
                    &event,
                    Uuid::now_v7(),
                    metadata("unpark"),
                )],
            )],
        )
        .await?;
    tx.commit().await?;
    store.committed();
    Ok(Changed::Done)
}

/// Every park, oldest first, with where its event lives.
pub async fn list<C: GenericClient>(client: &C) -> anyhow::Result<Vec<ParkedEvent>> {
    let rows = client
        .query(
            &format!(
                "SELECT p.consumer, p.event_id, p.reason, p.parked_by, p.parked_at,
                        e.stream_id, e.stream_version, e.event_type
                 FROM {TABLE} p LEFT JOIN events e ON e.event_id = p.event_id
                 ORDER BY p.parked_at, p.consumer"
            ),
            &[],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(ParkedEvent {
            consumer: row.try_get(0)?,
            event_id: row.try_get(1)?,
            reason: row.try_get(2)?,
            parked_by: row.try_get(3)?,
            parked_at: row.try_get(4)?,
            stream_id: row.try_get(5)?,
            stream_version: row.try_get(6)?,
            event_type: row.try_get(7)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_consumers_and_all_can_be_parked_for() {
        assert_eq!(consumer_name("read_models").unwrap(), "read_models");
        assert_eq!(consumer_name("nats_events").unwrap(), "nats_events");
        assert_eq!(consumer_name("nats_jobs").unwrap(), "nats_jobs");
        assert_eq!(consumer_name("all").unwrap(), "all");
        let error = consumer_name("projector").unwrap_err().to_string();
        assert!(
            error.contains("read_models, nats_events, nats_jobs"),
            "{error}"
        );
    }
}
