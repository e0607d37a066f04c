//! Backforge's event store: the `EventStore` trait, its PostgreSQL implementation, set-up and the
//! conformance suite any backend must pass.

pub mod aggregate;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod notify;
pub mod postgres;
pub mod setup;
pub mod store;
#[cfg(feature = "conformance")]
pub mod testkit;
pub mod types;

pub use aggregate::{Loaded, StateCache, load};
pub use postgres::PgEventStore;
pub use store::EventStore;
pub use types::{
    AppendOutcome, ExpectedVersion, MalformedToken, NewEvent, Position, ReadUntil, RecordedEvent,
    StoreError, StreamAppend, StreamAppended,
};
