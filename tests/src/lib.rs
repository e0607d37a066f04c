//! Helpers for the end-to-end suite: spawning services on fresh databases and typed clients.

pub use event_store::testkit::{PgHarness, PgTestStore, TestDatabase};
