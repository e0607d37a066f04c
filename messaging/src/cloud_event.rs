//! The CloudEvents 1.0 document (JSON format) each published event becomes, with Backforge's
//! extensions, and which events are published at all.

use domain::{AnyEvent, EventMetadata};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::names::Names;

/// The CloudEvents version of every document.
pub const SPEC_VERSION: &str = "1.0";
/// The content type of every document's `data`.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// One published event. Serialises to the members in this order; `projectid` is omitted for an
/// event that belongs to no project (CloudEvents treats an absent and a null extension alike).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// Always [`SPEC_VERSION`].
    pub specversion: String,
    /// The event id; also the message's `Nats-Msg-Id`.
    pub id: Uuid,
    /// `<prefix>.<aggregate>.<EventType>`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `/<prefix>/<aggregate>/<id>`.
    pub source: String,
    /// The aggregate id.
    pub subject: String,
    /// When the event was recorded (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// Always [`DATA_CONTENT_TYPE`].
    pub datacontenttype: String,
    /// The event body at its latest schema version (a user's e-mail address removed).
    pub data: Value,
    /// The consistency token of the event's feed position (`Backforge-Min-Position`).
    pub position: String,
    /// The aggregate's version after this event (the first event is 1).
    pub streamversion: u64,
    pub correlationid: Option<Uuid>,
    pub causationid: Option<Uuid>,
    /// The project the event belongs to (`metadata.project_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projectid: Option<Uuid>,
}

/// One stored event as its CloudEvent needs it: the event store's record in plain values.
#[derive(Debug, Clone, Copy)]
pub struct StoredEvent<'a> {
    pub event_id: Uuid,
    pub stream_id: &'a str,
    pub stream_version: u64,
    pub event_type: &'a str,
    /// The consistency token of the event's feed position.
    pub position: &'a str,
    pub metadata: &'a EventMetadata,
    pub recorded_at: OffsetDateTime,
    /// The body at its latest schema version, as JSON text.
    pub data: &'a str,
}

impl CloudEvent {
    /// The subject and document of `stored` (decoded as `event`), or `None` for events that are
    /// not published (the e-mail reservations name a hash of an address, and the operations
    /// stream is the installation's own audit trail). An event that should be published but
    /// cannot be put in this form is an error, never "nothing to publish": the relay stalls on
    /// it instead of skipping it.
    pub fn of(
        names: &Names,
        stored: &StoredEvent<'_>,
        event: &AnyEvent,
    ) -> anyhow::Result<Option<(String, CloudEvent)>> {
        let aggregate = match event {
            AnyEvent::Email(_) | AnyEvent::Operations(_) => return Ok(None),
            other => other.aggregate(),
        };
        // An AI request's stream prefix (`ai-request-`) holds a `-` itself.
        let id = match event {
            AnyEvent::AiRequest(_) => {
                domain::ids::AiRequestId::from_stream(stored.stream_id).map(|id| id.to_string())
            }
            _ => stored
                .stream_id
                .split_once('-')
                .map(|(_, id)| id.to_owned()),
        }
        .ok_or_else(|| {
            anyhow::anyhow!(
                "event {} is in stream `{}`, which names no aggregate id",
                stored.event_id,
                stored.stream_id
            )
        })?;
        let mut data: Value = serde_json::from_str(stored.data).map_err(|e| {
            anyhow::anyhow!("the body of event {} is not JSON: {e}", stored.event_id)
        })?;
        if let (AnyEvent::User(_), Some(obj)) = (event, data.as_object_mut()) {
            // User events never carry e-mail addresses to integrations.
            obj.remove("email");
        }
        let project = stored.metadata.project_id;
        let subject = names.event_subject(project, aggregate, &id, stored.event_type);
        let document = CloudEvent {
            specversion: SPEC_VERSION.to_owned(),
            id: stored.event_id,
            event_type: names.event_type(aggregate, stored.event_type),
            source: names.event_source(aggregate, &id),
            subject: id,
            time: stored.recorded_at,
            datacontenttype: DATA_CONTENT_TYPE.to_owned(),
            data,
            position: stored.position.to_owned(),
            streamversion: stored.stream_version,
            correlationid: stored.metadata.correlation_id,
            causationid: stored.metadata.causation_id,
            projectid: project,
        };
        Ok(Some((subject, document)))
    }

    /// The message body (fails only for a time RFC 3339 cannot write, such as year 10000).
    pub fn to_body(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

#[cfg(test)]
mod tests {
    use domain::DomainEvent;
    use domain::user::UserEvent;
    use time::macros::datetime;

    use super::*;

    const EVENT: Uuid = Uuid::from_u128(0x01a2_1455_07e1_7397_ac62_1f5d_f445_d5b4);
    const PROJECT: Uuid = Uuid::from_u128(0x01a2_1455_07e1_7397_ac62_1f5c_9f51_7c5f);
    const CAUSE: Uuid = Uuid::from_u128(7);

    fn stored<'a>(
        stream_id: &'a str,
        event_type: &'a str,
        metadata: &'a EventMetadata,
        data: &'a str,
    ) -> StoredEvent<'a> {
        StoredEvent {
            event_id: EVENT,
            stream_id,
            stream_version: 2,
            event_type,
            position: "28d7ab.4",
            metadata,
            recorded_at: datetime!(2026-11-25 20:10:46.638933 UTC),
            data,
        }
    }

    fn decode(event_type: &str, data: &str) -> AnyEvent {
        AnyEvent::from_json(event_type, data).expect("a domain event")
    }

    #[test]
    fn a_project_event_is_todays_document_plus_its_project() {
        let metadata = EventMetadata {
            correlation_id: Some(CAUSE),
            causation_id: Some(CAUSE),
            project_id: Some(PROJECT),
            ..EventMetadata::default()
        };
        let data =
            format!(r#"{{"project_id":"{PROJECT}","archived_at":"2026-11-25T20:10:46.638933Z"}}"#);
        let stream = format!("project-{PROJECT}");
        let record = stored(&stream, "ProjectArchived", &metadata, &data);
        let event = decode("ProjectArchived", &data);
        let (subject, document) = CloudEvent::of(&Names::new("backforge"), &record, &event)
            .expect("publishable")
            .expect("published");
        assert_eq!(
            subject,
            format!("backforge.events.{PROJECT}.project.{PROJECT}.ProjectArchived")
        );
        let body = String::from_utf8(document.to_body().expect("body")).expect("utf-8");
        assert_eq!(
            body,
            format!(
                concat!(
                    r#"{{"specversion":"1.0","id":"{EVENT}","type":"backforge.project.ProjectArchived","#,
                    r#""source":"/backforge/project/{PROJECT}","subject":"{PROJECT}","#,
                    r#""time":"2026-11-25T20:10:46.638933Z","datacontenttype":"application/json","#,
                    r#""data":{data},"position":"28d7ab.4","streamversion":2,"#,
                    r#""correlationid":"{CAUSE}","causationid":"{CAUSE}","projectid":"{PROJECT}"}}"#
                ),
                EVENT = EVENT,
                PROJECT = PROJECT,
                CAUSE = CAUSE,
                data = data,
            )
        );
        let read: CloudEvent = serde_json::from_str(&body).expect("reads back");
        assert_eq!(read, document);
    }

    #[test]
    fn an_event_of_no_project_has_an_underscore_and_no_extension() {
        let metadata = EventMetadata::default();
        let user = Uuid::from_u128(3);
        let data = format!(
            r#"{{"user_id":"{user}","email":"ivy@example.com","name":"Ivy","role":"member","registered_at":"2026-11-25T20:10:46Z"}}"#
        );
        let stream = format!("user-{user}");
        let record = stored(&stream, "UserRegistered", &metadata, &data);
        let event = decode("UserRegistered", &data);
        assert!(matches!(
            event,
            AnyEvent::User(UserEvent::UserRegistered { .. })
        ));
        let (subject, document) = CloudEvent::of(&Names::new("bf"), &record, &event)
            .expect("publishable")
            .expect("published");
        assert_eq!(subject, format!("bf.events._.user.{user}.UserRegistered"));
        let body: Value = serde_json::from_slice(&document.to_body().expect("body")).expect("json");
        assert!(body.get("projectid").is_none(), "no extension: {body}");
        assert_eq!(
            body["correlationid"],
            Value::Null,
            "today's members stay, as null"
        );
        assert!(
            body["data"].get("email").is_none(),
            "no e-mail address is published"
        );
        assert_eq!(body["data"]["name"], "Ivy");
    }

    #[test]
    fn an_ai_request_event_is_named_by_its_whole_id_although_its_prefix_holds_a_dash() {
        let metadata = EventMetadata {
            project_id: Some(PROJECT),
            ..EventMetadata::default()
        };
        let request = Uuid::from_u128(9);
        let data = format!(
            r#"{{"request_id":"{request}","delivery":1,"started_at":"2026-11-25T20:10:46Z"}}"#
        );
        let stream = domain::ids::AiRequestId::from_uuid(request).stream();
        let record = stored(&stream, "AiRequestStarted", &metadata, &data);
        let event = decode("AiRequestStarted", &data);
        let (subject, document) = CloudEvent::of(&Names::new("bf"), &record, &event)
            .expect("publishable")
            .expect("published");
        assert_eq!(
            subject,
            format!("bf.events.{PROJECT}.ai_request.{request}.AiRequestStarted")
        );
        assert_eq!(document.subject, request.to_string());
        assert_eq!(document.source, format!("/bf/ai_request/{request}"));
    }

    #[test]
    fn e_mail_reservations_are_not_published() {
        let metadata = EventMetadata::default();
        let data = r#"{"user_id":"00000000-0000-0000-0000-000000000003"}"#;
        let event = decode("EmailReserved", data);
        let record = stored("email-ab", "EmailReserved", &metadata, data);
        assert!(
            CloudEvent::of(&Names::new("bf"), &record, &event)
                .expect("no error")
                .is_none()
        );
    }

    #[test]
    fn a_stream_that_names_no_aggregate_id_is_an_error_not_a_skip() {
        let metadata = EventMetadata::default();
        let data = format!(r#"{{"project_id":"{PROJECT}","archived_at":"2026-11-25T20:10:46Z"}}"#);
        let record = stored("project", "ProjectArchived", &metadata, &data);
        let event = decode("ProjectArchived", &data);
        assert!(CloudEvent::of(&Names::new("bf"), &record, &event).is_err());
    }
}
