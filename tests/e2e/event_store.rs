//! The event-store conformance suite against PostgreSQL, plus the naive-reader twin of the
//! commit-order test that shows why the transaction-id scheme exists.

use std::sync::Arc;

use event_store::conformance::{self as suite, Reader, serially};
use event_store::{EventStore, PgEventStore, Position, RecordedEvent, StoreError};
use tests::PgHarness;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_win_each_version_exactly_once() {
    suite::concurrent_appends_win_each_version_exactly_once(&PgHarness::default()).await;
}

#[tokio::test]
async fn expected_versions_are_enforced_atomically() {
    suite::expected_versions_are_enforced_atomically(&PgHarness::default()).await;
}

#[tokio::test]
async fn retried_appends_are_idempotent() {
    suite::retried_appends_are_idempotent(&PgHarness::default()).await;
}

#[tokio::test]
async fn streams_read_forward_up_to_a_version_or_time() {
    suite::streams_read_forward_up_to_a_version_or_time(&PgHarness::default()).await;
}

#[tokio::test]
async fn old_schema_versions_are_upcast_on_every_read() {
    suite::old_schema_versions_are_upcast_on_every_read(&PgHarness::default()).await;
}

#[tokio::test]
async fn appends_tick_the_feed_signal() {
    suite::appends_tick_the_feed_signal(&PgHarness::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_skips_nothing_when_transactions_commit_out_of_order() {
    serially(
        suite::the_feed_skips_nothing_when_transactions_commit_out_of_order(&PgHarness::default()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkpointing_reader_sees_every_commit_under_racing_writers() {
    serially(
        suite::a_checkpointing_reader_sees_every_commit_under_racing_writers(&PgHarness::default()),
    )
    .await;
}

/// The reader Marten, Axon's JDBC store, Emmett and disintegrate shipped: `position > $1`.
fn naive_reader(store: Arc<PgEventStore>) -> Reader {
    Arc::new(move |after: Position, limit: usize| {
        let store = store.clone();
        Box::pin(async move {
            let client = store
                .pool()
                .get()
                .await
                .map_err(|e| StoreError::Unavailable(e.into()))?;
            let rows = client
                .query(
                    "SELECT event_id, position, transaction_id::text::int8 FROM events
                     WHERE position > $1 ORDER BY position LIMIT $2",
                    &[&(after.seq as i64), &(limit as i64)],
                )
                .await
                .map_err(|e| StoreError::Backend(e.into()))?;
            let mut out: Vec<RecordedEvent> = Vec::new();
            for row in rows {
                let id: uuid::Uuid = row.get(0);
                // Reuse the store's decoding by reading the full event through its own stream.
                let full = full_event(&store, id).await?;
                out.push(RecordedEvent {
                    position: Position {
                        tx: 0,
                        seq: full.position.seq,
                    },
                    ..full
                });
            }
            Ok(out)
        })
    })
}

async fn full_event(store: &PgEventStore, id: uuid::Uuid) -> Result<RecordedEvent, StoreError> {
    let client = store
        .pool()
        .get()
        .await
        .map_err(|e| StoreError::Unavailable(e.into()))?;
    let row = client
        .query_one(
            "SELECT stream_id, stream_version FROM events WHERE event_id = $1",
            &[&id],
        )
        .await
        .map_err(|e| StoreError::Backend(e.into()))?;
    let stream: String = row.get(0);
    let version: i64 = row.get(1);
    let events = store
        .read_stream(
            &stream,
            version as u64 - 1,
            event_store::ReadUntil::Version(version as u64),
            1,
        )
        .await?;
    events.into_iter().next().ok_or(StoreError::InvalidAppend)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_naive_position_reader_skips_the_late_committing_event() {
    serially(async {
        let harness = PgHarness::default();
        let store = harness.store(domain::Upcasters::new()).await;
        let outcome =
            suite::commit_order_scenario(&harness, store.clone(), naive_reader(store)).await;
        assert_eq!(
            outcome,
            Err("the reader skipped the late-committing event".to_owned()),
            "the naive reader must fail the very scenario the real feed passes"
        );
    })
    .await;
}

use event_store::conformance::Harness as _;
