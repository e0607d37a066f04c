//! The NATS contract of Backforge as types: the names every stream, subject and consumer derives
//! from `BACKFORGE_NATS_PREFIX`, connecting and stream set-up, the CloudEvent each published event
//! becomes, and every job body. The relays that publish and the worker that consumes agree through
//! these types, so a rename that compiles cannot break on the wire; no other crate spells a subject.

pub mod cloud_event;
pub mod jobs;
pub mod names;
pub mod streams;

pub use cloud_event::{CloudEvent, StoredEvent};
pub use jobs::{AiJob, GenerationJob, Job, JobKind};
pub use names::{NO_PROJECT, Names};
pub use streams::{DUPLICATE_WINDOW, EVENTS_MAX_AGE, connect, ensure_streams};
