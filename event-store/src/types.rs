//! The value types of the event store: positions, expected versions, appended and recorded events.

use std::fmt;
use std::str::FromStr;

use domain::{DecodeError, DomainEvent, EventMetadata, UpcastError};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use uuid::Uuid;

/// A place in the global feed, ordered as the feed is: by writing transaction, then by position.
///
/// The opaque consistency token of the API is this pair (`Position::to_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// The writing transaction id (`xid8`, epoch-extended, so it never wraps).
    pub tx: u64,
    /// The event's `position` column, unique across the store.
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed position token")]
pub struct MalformedToken;

impl Position {
    pub const START: Position = Position { tx: 0, seq: 0 };

    /// The opaque string form used in `Backforge-Position` headers and bodies.
    pub fn to_token(&self) -> String {
        format!("{:x}.{:x}", self.tx, self.seq)
    }

    pub fn parse_token(token: &str) -> Result<Self, MalformedToken> {
        let (tx, seq) = token.split_once('.').ok_or(MalformedToken)?;
        let hex = |s: &str| {
            if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(MalformedToken);
            }
            u64::from_str_radix(s, 16).map_err(|_| MalformedToken)
        };
        Ok(Position {
            tx: hex(tx)?,
            seq: hex(seq)?,
        })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_token())
    }
}

impl FromStr for Position {
    type Err = MalformedToken;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_token(s)
    }
}

/// What the writer believes the stream's version is; checked atomically with the append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the current version is.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must be this version (the first event is version 1).
    Exact(u64),
}

impl ExpectedVersion {
    /// The version the stream must be at, or `None` for `Any`.
    pub fn required(self) -> Option<u64> {
        match self {
            ExpectedVersion::Any => None,
            ExpectedVersion::NoStream => Some(0),
            ExpectedVersion::Exact(n) => Some(n),
        }
    }
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub data: Value,
    pub metadata: EventMetadata,
}

impl NewEvent {
    pub fn from_domain<E: DomainEvent>(event: &E, event_id: Uuid, metadata: EventMetadata) -> Self {
        NewEvent {
            event_id,
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            data: event.to_data(),
            metadata,
        }
    }
}

/// The events of one stream within an append.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub stream_id: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

impl StreamAppend {
    pub fn new(
        stream_id: impl Into<String>,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Self {
        Self {
            stream_id: stream_id.into(),
            expected,
            events,
        }
    }
}

/// Where one stream's events of an append landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAppended {
    pub stream_id: String,
    pub first_version: u64,
    /// The stream's version after the append.
    pub last_version: u64,
}

/// The result of an atomic append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    pub streams: Vec<StreamAppended>,
    /// The feed position of the last appended event: once a projection reaches it, it has seen them all.
    pub position: Position,
}

impl AppendOutcome {
    /// The outcome of a commit that appended nothing (a command whose only writes are side writes).
    pub fn nothing() -> Self {
        Self {
            streams: Vec::new(),
            position: Position::START,
        }
    }

    /// The version of `stream_id` after the append, if it was part of it.
    pub fn version_of(&self, stream_id: &str) -> Option<u64> {
        self.streams
            .iter()
            .find(|s| s.stream_id == stream_id)
            .map(|s| s.last_version)
    }
}

/// A stored event, upcast to the latest schema version of its type.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    pub position: Position,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    /// The schema version of `data` after upcasting (the latest known).
    pub schema_version: u32,
    /// The body as JSON text, exactly as it was appended (stored as `json`): decoded straight into a
    /// domain event, or written into a response as it is, never parsed into a tree on the way.
    pub data: Box<RawValue>,
    pub metadata: EventMetadata,
    pub recorded_at: OffsetDateTime,
}

impl RecordedEvent {
    pub fn decode<E: DomainEvent>(&self) -> Result<E, DecodeError> {
        E::from_json(&self.event_type, self.data.get())
    }

    /// The body as a JSON value, for the few readers that change it.
    pub fn data_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.data.get())
    }
}

impl PartialEq for RecordedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.position == other.position
            && self.stream_id == other.stream_id
            && self.stream_version == other.stream_version
            && self.event_id == other.event_id
            && self.event_type == other.event_type
            && self.schema_version == other.schema_version
            && self.data.get() == other.data.get()
            && self.metadata == other.metadata
            && self.recorded_at == other.recorded_at
    }
}

/// How far to read a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadUntil {
    End,
    /// Up to and including this stream version.
    Version(u64),
    /// Events recorded at or before this instant.
    Time(OffsetDateTime),
}

/// Why an append was refused before it reached the database. Whatever is appended must be
/// processable by every consumer — `jsonb` read models refuse U+0000, and NATS refuses a message
/// over its `max_payload` — so the one append path every writer uses checks both.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendRefusal {
    /// `pointer` locates the string in the event's data (or `/metadata/...` in its metadata).
    #[error("event `{event_type}` holds the character U+0000 at `{pointer}`")]
    Nul { event_type: String, pointer: String },
    /// `bytes` is the size the event's CloudEvent would have, as bounded by
    /// [`cloud_event_bound`](crate::cloud_event_bound).
    #[error(
        "event `{event_type}` would be {bytes} bytes as a CloudEvent, over the limit of {limit}"
    )]
    TooLarge {
        event_type: String,
        bytes: usize,
        limit: usize,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Refused(#[from] AppendRefusal),
    #[error("stream `{stream_id}` is at version {current}, expected {expected:?}")]
    WrongExpectedVersion {
        stream_id: String,
        expected: ExpectedVersion,
        current: u64,
    },
    #[error("event id {event_id} is already stored with different content")]
    DuplicateEventId { event_id: Uuid },
    #[error("an append must contain at least one event and name each stream once")]
    InvalidAppend,
    /// A project-owned event (`domain::stream_owner`) without its project's id: a writer's bug,
    /// never client input, so it is never stored.
    #[error("event `{event_type}` of stream `{stream_id}` belongs to a project but names none")]
    MissingProjectId {
        stream_id: String,
        event_type: String,
    },
    /// An event of a project's own stream that names another project.
    #[error("event `{event_type}` of stream `{stream_id}` names project {found}, not its stream's")]
    WrongProjectId {
        stream_id: String,
        event_type: String,
        found: Uuid,
    },
    #[error(transparent)]
    Upcast(#[from] UpcastError),
    #[error("event {event_id} cannot be decoded")]
    Decode {
        event_id: Uuid,
        #[source]
        source: domain::DecodeError,
    },
    #[error("stored metadata of event {event_id} is unreadable")]
    BadMetadata { event_id: Uuid },
    #[error("the event store is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("event store failure")]
    Backend(#[source] anyhow::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_order_as_the_feed() {
        let a = Position { tx: 10, seq: 99 };
        let b = Position { tx: 11, seq: 3 };
        assert!(a < b, "a later transaction sorts after, whatever its seq");
        assert_eq!(Position::parse_token(&a.to_token()), Ok(a));
        assert_eq!(Position::parse_token(&b.to_token()), Ok(b));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            ".",
            "1.",
            ".1",
            "x.1",
            "1.2.3",
            "1 .2",
            "11111111111111111.1",
            "-1.2",
        ] {
            assert_eq!(Position::parse_token(bad), Err(MalformedToken), "{bad:?}");
        }
    }
}
