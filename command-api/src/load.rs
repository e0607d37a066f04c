//! Loading an aggregate: fold its stream from the event store, remembering version and position.

use domain::{Decider, DomainEvent};
use event_store::{EventStore, PgEventStore, Position, ReadUntil};
use runtime::ApiError;

/// Events read per page while folding a stream.
const PAGE: usize = 1000;

/// An aggregate's state with the version and feed position of its last event.
pub struct Loaded<A> {
    pub state: A,
    pub version: u64,
    pub position: Position,
}

pub async fn load<A>(store: &PgEventStore, stream: &str) -> Result<Loaded<A>, ApiError>
where
    A: Decider,
    A::Event: DomainEvent,
{
    let mut state = A::default();
    let mut version = 0;
    let mut position = Position::START;
    loop {
        let page = store
            .read_stream(stream, version, ReadUntil::End, PAGE)
            .await?;
        let done = page.len() < PAGE;
        for recorded in &page {
            let event: A::Event = recorded.decode().map_err(ApiError::internal)?;
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
