//! The event-store conformance suite against PostgreSQL — once with each command committing on its
//! own and once through the group-commit writer — plus the naive-reader twin of the commit-order
//! test that shows why the transaction-id scheme exists.

use std::sync::Arc;

use event_store::conformance::Harness as _;
use event_store::conformance::{self as suite, Reader, serially};
use event_store::{EventStore, PgEventStore, Position, RecordedEvent, StoreError};
use tests::PgHarness;

/// One conformance test against both writers: `$alone` without group commit, `$batched` with it.
macro_rules! against_both_writers {
    ($(#[$attr:meta])* $alone:ident, $batched:ident, |$harness:ident| $body:expr) => {
        $(#[$attr])*
        async fn $alone() {
            let $harness = PgHarness::default();
            $body
        }

        $(#[$attr])*
        async fn $batched() {
            let $harness = PgHarness::group_commit();
            $body
        }
    };
}

against_both_writers!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    concurrent_appends_win_each_version_exactly_once,
    concurrent_appends_win_each_version_exactly_once_with_group_commit,
    |h| suite::concurrent_appends_win_each_version_exactly_once(&h).await
);

against_both_writers!(
    #[tokio::test]
    expected_versions_are_enforced_atomically,
    expected_versions_are_enforced_atomically_with_group_commit,
    |h| suite::expected_versions_are_enforced_atomically(&h).await
);

against_both_writers!(
    #[tokio::test]
    retried_appends_are_idempotent,
    retried_appends_are_idempotent_with_group_commit,
    |h| suite::retried_appends_are_idempotent(&h).await
);

against_both_writers!(
    #[tokio::test]
    streams_read_forward_up_to_a_version_or_time,
    streams_read_forward_up_to_a_version_or_time_with_group_commit,
    |h| suite::streams_read_forward_up_to_a_version_or_time(&h).await
);

against_both_writers!(
    #[tokio::test]
    old_schema_versions_are_upcast_on_every_read,
    old_schema_versions_are_upcast_on_every_read_with_group_commit,
    |h| suite::old_schema_versions_are_upcast_on_every_read(&h).await
);

against_both_writers!(
    #[tokio::test]
    appends_tick_the_feed_signal,
    appends_tick_the_feed_signal_with_group_commit,
    |h| suite::appends_tick_the_feed_signal(&h).await
);

against_both_writers!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    the_feed_skips_nothing_when_transactions_commit_out_of_order,
    the_feed_skips_nothing_when_transactions_commit_out_of_order_with_group_commit,
    |h| serially(suite::the_feed_skips_nothing_when_transactions_commit_out_of_order(&h)).await
);

against_both_writers!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    a_checkpointing_reader_sees_every_commit_under_racing_writers,
    a_checkpointing_reader_sees_every_commit_under_racing_writers_with_group_commit,
    |h| serially(suite::a_checkpointing_reader_sees_every_commit_under_racing_writers(&h)).await
);

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

against_both_writers!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_naive_position_reader_skips_the_late_committing_event,
    a_naive_position_reader_skips_the_late_committing_event_with_group_commit,
    |harness| serially(async {
        let store = harness.store(domain::Upcasters::new()).await;
        let outcome =
            suite::commit_order_scenario(&harness, store.clone(), naive_reader(store)).await;
        assert_eq!(
            outcome,
            Err("the reader skipped the late-committing event".to_owned()),
            "the naive reader must fail the very scenario the real feed passes"
        );
    })
    .await
);
