//! The projector: read models built from the global feed (rows and checkpoint in one transaction),
//! leadership so one instance applies at a time, replay into fresh tables, the NATS relays and
//! parked events.

mod ai_catalog;
mod ai_requests;
pub mod apply;
pub mod parked;
mod records;
pub mod relay;
pub mod replay;
pub mod runner;
/// Consumer health and supervision live in `runtime`, shared with the worker; this path stays for
/// the projector's own modules and its callers.
pub use runtime::supervise;

pub use runner::Projector;
