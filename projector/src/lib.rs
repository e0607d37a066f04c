//! The projector: read models built from the global feed (rows and checkpoint in one transaction),
//! leadership so one instance applies at a time, replay into fresh tables, the NATS relays, parked
//! events, and the supervision and health of every feed consumer.

pub mod apply;
pub mod nats;
pub mod parked;
pub mod relay;
pub mod replay;
pub mod runner;
pub mod schema;
pub mod supervise;

pub use runner::Projector;
