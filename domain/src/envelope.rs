//! Envelope types shared by every stored event: request metadata and the encoding contract of events.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who and what caused an event. Lives in the envelope, never in the event body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The user whose request produced the event; `None` for system actions (worker, admin CLI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Uuid>,
    /// Shared by every event caused by one original request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The event (or request) that directly caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// W3C `traceparent` of the request, so a trace can be followed through the projector and worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The project the event belongs to (its own events, and those of its generations and every
    /// later project-owned aggregate), so integrators can follow one project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
    /// Where the content came from when it is not the actor's own writing: [`SOURCE_AI`] for the
    /// events of an applied AI proposal (whose causation is the AI request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The `source` of the events an applied AI proposal appends to its project.
pub const SOURCE_AI: &str = "ai";

/// Why a stored payload could not be turned back into a domain event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    #[error("event `{event_type}` has a malformed payload: {source}")]
    Malformed {
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
}

/// How a domain event enum is stored: a stable type name, a schema version and a JSON body.
///
/// Stored type names never follow a Rust rename; the `type` strings are part of the stored data.
pub trait DomainEvent: Sized {
    /// The stable stored name, e.g. `ProjectCreated`.
    fn event_type(&self) -> &'static str;
    /// The schema version this build writes for this event's type.
    fn schema_version(&self) -> u32;
    /// The body as stored (without the type name).
    fn to_data(&self) -> serde_json::Value;
    /// Decodes a body already upcast to the latest schema version.
    fn from_data(event_type: &str, data: serde_json::Value) -> Result<Self, DecodeError>;
    /// Decodes a body given as JSON text, straight into the event without building a
    /// `serde_json::Value` first; the same answer as [`DomainEvent::from_data`] on the parsed text.
    fn from_json(event_type: &str, json: &str) -> Result<Self, DecodeError>;
}

/// The body of an event enum serialised by serde's external tagging (`{"<type>": {...}}`): the
/// inner object, stored without its type name.
///
/// # Panics
///
/// If the event cannot be serialised, which only a timestamp outside RFC 3339's years 0000–9999
/// can cause; commands are stamped by the clock, so that is a bug, not input.
pub(crate) fn encode_tagged<E: Serialize>(event: &E, event_type: &str) -> serde_json::Value {
    match serde_json::to_value(event) {
        Ok(serde_json::Value::Object(mut tagged)) => match tagged.remove(event_type) {
            Some(body) => body,
            None => panic!("event enum does not serialise under its type name `{event_type}`"),
        },
        Ok(other) => panic!("event `{event_type}` serialised to a non-object: {other}"),
        Err(error) => panic!("event `{event_type}` cannot be serialised: {error}"),
    }
}

/// The inverse of [`encode_tagged`], for the types in `known`.
pub(crate) fn decode_tagged<E: serde::de::DeserializeOwned>(
    known: &[&str],
    event_type: &str,
    data: serde_json::Value,
) -> Result<E, DecodeError> {
    if !known.contains(&event_type) {
        return Err(DecodeError::UnknownType(event_type.to_owned()));
    }
    let mut tagged = serde_json::Map::new();
    tagged.insert(event_type.to_owned(), data);
    serde_json::from_value(serde_json::Value::Object(tagged)).map_err(|source| {
        DecodeError::Malformed {
            event_type: event_type.to_owned(),
            source,
        }
    })
}

/// The inverse of [`encode_tagged`] on JSON text, for the types in `known`: the body is wrapped
/// under its type name as text and parsed once, straight into `E`.
pub(crate) fn decode_tagged_json<E: serde::de::DeserializeOwned>(
    known: &[&str],
    event_type: &str,
    json: &str,
) -> Result<E, DecodeError> {
    if !known.contains(&event_type) {
        return Err(DecodeError::UnknownType(event_type.to_owned()));
    }
    // `event_type` is one of `known`, plain identifiers: nothing in it needs escaping.
    let mut tagged = String::with_capacity(json.len() + event_type.len() + 5);
    tagged.push_str("{\"");
    tagged.push_str(event_type);
    tagged.push_str("\":");
    tagged.push_str(json);
    tagged.push('}');
    serde_json::from_str(&tagged).map_err(|source| DecodeError::Malformed {
        event_type: event_type.to_owned(),
        source,
    })
}
