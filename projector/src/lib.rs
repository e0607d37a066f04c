//! The projector: read models built from the global feed (rows and checkpoint in one transaction),
//! leadership so one instance applies at a time, and replay into fresh tables.

pub mod apply;
pub mod nats;
pub mod relay;
pub mod replay;
pub mod runner;
pub mod schema;

pub use runner::Projector;
