//! Folding an aggregate from its stream: the one way every crate loads decision or read state
//! (command handling, time travel, the worker), so they cannot disagree.

use domain::{Decider, DomainEvent};

use crate::store::EventStore;
use crate::types::{Position, ReadUntil, StoreError};

/// Events read per page while folding.
const PAGE: usize = 1000;

/// An aggregate's state with the version and feed position of the last event folded in.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    /// 0 when the stream has no events (up to `until`).
    pub version: u64,
    pub position: Position,
}

/// Folds `stream_id` from its first event up to `until` with the aggregate's own `evolve`.
pub async fn load<A, S>(
    store: &S,
    stream_id: &str,
    until: ReadUntil,
) -> Result<Loaded<A>, StoreError>
where
    A: Decider,
    A::Event: DomainEvent,
    S: EventStore + ?Sized,
{
    let mut state = A::default();
    let mut version = 0;
    let mut position = Position::START;
    loop {
        let page = store.read_stream(stream_id, version, until, PAGE).await?;
        let done = page.len() < PAGE;
        for recorded in &page {
            let event: A::Event = recorded.decode().map_err(|source| StoreError::Decode {
                event_id: recorded.event_id,
                source,
            })?;
            state.evolve(&event);
            version = recorded.stream_version;
            position = recorded.position;
        }
        if done {
            return Ok(Loaded {
                state,
                version,
                position,
            });
        }
    }
}
