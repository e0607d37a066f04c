//! E-mail reservations: the `email-<sha256>` stream that keeps addresses unique under concurrent registration.
//!
//! Registration appends `EmailReserved` to the reservation stream with expected version `NoStream`
//! in the same transaction as `UserRegistered`; a second registration of the address then fails on
//! the version check, however the two requests interleave. The stream name holds a hash, not the
//! address, so stream names leak no e-mail addresses; hashing lives with the caller, since the
//! domain does no cryptography.

use serde::{Deserialize, Serialize};

use crate::envelope::{DecodeError, DomainEvent, decode_tagged, decode_tagged_json, encode_tagged};
use crate::ids::{EMAIL_STREAM_PREFIX, UserId};

/// The reservation stream of an address: `email-` and the lowercase hex SHA-256 of the output of
/// [`crate::user::normalize_email`].
pub fn reservation_stream(sha256_hex: &str) -> String {
    format!("{EMAIL_STREAM_PREFIX}{sha256_hex}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmailReservationEvent {
    /// The address whose hash names the stream belongs to `user_id`.
    #[serde(rename = "EmailReserved")]
    EmailReserved { user_id: UserId },
}

impl EmailReservationEvent {
    pub const TYPES: &'static [&'static str] = &["EmailReserved"];
}

impl DomainEvent for EmailReservationEvent {
    fn event_type(&self) -> &'static str {
        match self {
            EmailReservationEvent::EmailReserved { .. } => "EmailReserved",
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

    #[test]
    fn the_reservation_stream_is_named_by_the_hash() {
        let hex = "a".repeat(64);
        assert_eq!(reservation_stream(&hex), format!("email-{hex}"));
    }

    #[test]
    fn an_email_reservation_stores_only_the_user_id() {
        let user_id: UserId = "0192f0c1-7a2b-7c3d-8e4f-5a6b7c8d9e0f".parse().unwrap();
        let event = EmailReservationEvent::EmailReserved { user_id };
        assert_eq!(event.event_type(), "EmailReserved");
        assert_eq!(event.to_data(), json!({"user_id": user_id.to_string()}));
        let back = EmailReservationEvent::from_data("EmailReserved", event.to_data()).unwrap();
        assert_eq!(back, event);
    }
}
