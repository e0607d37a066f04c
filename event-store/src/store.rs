//! The `EventStore` trait: what every backend (PostgreSQL today, KurrentDB later) must provide.

use async_trait::async_trait;
use tokio::sync::watch;

use crate::types::{AppendOutcome, Position, ReadUntil, RecordedEvent, StoreError, StreamAppend};

/// An append-only store of event streams with a global feed in commit order.
///
/// Every read returns events upcast to their latest schema version.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends the events of one or more streams atomically, checking each expected version.
    ///
    /// Appending events whose ids are all already stored, in the same streams at the same versions,
    /// is a successful no-op that returns the original outcome (a retry after a lost answer).
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<AppendOutcome, StoreError>;

    /// The current version of a stream; 0 when it has no events.
    async fn stream_version(&self, stream_id: &str) -> Result<u64, StoreError>;

    /// Events of a stream with versions greater than `after_version`, in version order, up to `until`,
    /// at most `limit` of them.
    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
        until: ReadUntil,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events after `after` in commit order. Never returns an event while an earlier
    /// one (in feed order) may still commit, so a reader that checkpoints the last position it saw
    /// skips nothing.
    async fn read_feed(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The position of the newest event a feed reader can see now (`Position::START` when empty).
    async fn feed_head(&self) -> Result<Position, StoreError>;

    /// Ticks whenever events may have been appended (by this process or, where the backend can
    /// tell, another). Readers still poll as a fallback: a tick can be missed or come early.
    fn feed_signal(&self) -> watch::Receiver<u64>;
}
