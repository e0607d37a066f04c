//! The `operations` stream: the audit trail of what operators did to the platform itself, such as
//! parking an event a consumer cannot process.
//!
//! These are facts about the installation, not about a user's data, so they have no aggregate
//! rules beyond "say who, what and why": the operator tool validates its input and appends them
//! with expected version `Any` in the same transaction as the command-side row they describe.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::envelope::{DecodeError, DomainEvent, decode_tagged, decode_tagged_json, encode_tagged};

/// The one stream these events live in. Stored data: never renamed.
pub const OPERATIONS_STREAM: &str = "operations";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperationsEvent {
    /// `consumer` (a feed consumer's name, or `all`) skips `event_id` from now on: an operator
    /// decided that the event must not hold the consumer back. `parked_by` names the operator
    /// (`operator:<login>`); the envelope's `actor` is for platform users, which operators at a
    /// shell are not.
    #[serde(rename = "EventParked")]
    EventParked {
        consumer: String,
        event_id: Uuid,
        reason: String,
        parked_by: String,
        #[serde(with = "time::serde::rfc3339")]
        parked_at: OffsetDateTime,
    },
    /// The park of `event_id` for `consumer` is lifted: a consumer that has not yet passed the
    /// event processes it again (one that has, keeps what it did; a replay includes it).
    #[serde(rename = "EventUnparked")]
    EventUnparked {
        consumer: String,
        event_id: Uuid,
        unparked_by: String,
        #[serde(with = "time::serde::rfc3339")]
        unparked_at: OffsetDateTime,
    },
}

impl OperationsEvent {
    pub const TYPES: &'static [&'static str] = &["EventParked", "EventUnparked"];
}

impl DomainEvent for OperationsEvent {
    fn event_type(&self) -> &'static str {
        match self {
            OperationsEvent::EventParked { .. } => "EventParked",
            OperationsEvent::EventUnparked { .. } => "EventUnparked",
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn to_data(&self) -> serde_json::Value {
        encode_tagged(self, self.event_type())
    }

    fn from_data(event_type: &str, data: serde_json::Value) -> Result<Self, DecodeError> {
        decode_tagged(Self::TYPES, event_type, data)
    }

    fn from_json(event_type: &str, json: &str) -> Result<Self, DecodeError> {
        decode_tagged_json(Self::TYPES, event_type, json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn a_parked_event_stores_who_what_and_why_under_stable_names() {
        let event_id: Uuid = "0195b2a4-1b2c-7d3e-8f40-5162738495a6".parse().unwrap();
        let event = OperationsEvent::EventParked {
            consumer: "read_models".into(),
            event_id,
            reason: "cannot be decoded".into(),
            parked_by: "operator:root".into(),
            parked_at: datetime!(2025-03-21 16:15:00 UTC),
        };
        assert_eq!(event.event_type(), "EventParked");
        assert_eq!(
            event.to_data(),
            json!({"consumer": "read_models", "event_id": event_id.to_string(),
                   "reason": "cannot be decoded", "parked_by": "operator:root",
                   "parked_at": "2025-03-21T16:15:00Z"})
        );
        assert_eq!(
            OperationsEvent::from_data("EventParked", event.to_data()).unwrap(),
            event
        );
    }
}
