//! Loading an aggregate for a command: the event store's fold, up to the stream's end.

use domain::{Decider, DomainEvent};
use event_store::{PgEventStore, ReadUntil};
use runtime::ApiError;

pub use event_store::Loaded;

pub async fn load<A>(store: &PgEventStore, stream: &str) -> Result<Loaded<A>, ApiError>
where
    A: Decider,
    A::Event: DomainEvent,
{
    Ok(event_store::load(store, stream, ReadUntil::End).await?)
}
