//! Backforge's event store: the `EventStore` trait, its PostgreSQL implementation, set-up, the
//! conformance suite any backend must pass, and the one application step every writer uses.

pub mod aggregate;
pub mod application;
pub mod backfill;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod guard;
pub mod notify;
pub mod postgres;
pub mod setup;
pub mod store;
#[cfg(feature = "conformance")]
pub mod testkit;
pub mod types;
pub mod writer;

pub use aggregate::{Loaded, StateCache, StreamTurn, load};
pub use guard::{CLOUD_EVENT_ENVELOPE_BYTES, DEFAULT_MAX_EVENT_BYTES, cloud_event_bound};
pub use postgres::PgEventStore;
pub use store::EventStore;
pub use types::{
    AppendOutcome, AppendRefusal, ExpectedVersion, MalformedToken, NewEvent, Position, ReadUntil,
    RecordedEvent, StoreError, StreamAppend, StreamAppended,
};
