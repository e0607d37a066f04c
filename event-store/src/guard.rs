//! The append guard: every event is serialised once, refused if a consumer could not process it
//! (U+0000 anywhere, or a CloudEvent over the size limit) or if it belongs to a project and does
//! not say which, and handed to the store as JSON text.

use std::borrow::Cow;

use domain::text::holds_nul_escape;
use domain::{EventMetadata, StreamOwner};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::types::{AppendRefusal, NewEvent, StoreError, StreamAppend};

/// The default of `BACKFORGE_MAX_EVENT_BYTES`.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 512 * 1024;

/// What a CloudEvent adds to an event's data and metadata besides its stream id and type: the
/// fixed member names, ids, timestamps, position tokens, the installation prefix (up to 64
/// bytes, three times), and the NATS headers. Relays refuse to start unless the server's
/// `max_payload` leaves 16 KiB above the limit, which covers this bound with room to spare.
pub const CLOUD_EVENT_ENVELOPE_BYTES: usize = 1024;

/// An upper bound of the size of the CloudEvent (with its headers) of an event whose data and
/// metadata serialise to `data_bytes` and `metadata_bytes`. The relay's tests hold it to this.
pub fn cloud_event_bound(
    stream_id: &str,
    event_type: &str,
    data_bytes: usize,
    metadata_bytes: usize,
) -> usize {
    data_bytes
        + metadata_bytes
        + CLOUD_EVENT_ENVELOPE_BYTES
        + 3 * stream_id.len()
        + 2 * event_type.len()
}

/// One event, checked and serialised.
pub(crate) struct Checked {
    pub data: Box<RawValue>,
    pub metadata: Box<RawValue>,
    /// The project the event belongs to, as written into its metadata (and the indexed column).
    pub project_id: Option<Uuid>,
}

/// The event's metadata with its project id: a project's own stream names it (and an event may
/// not name another), any other project-owned stream must carry it (the application step writes
/// it from the aggregate's state).
fn owned_metadata<'a>(
    stream_id: &str,
    event: &'a NewEvent,
) -> Result<Cow<'a, EventMetadata>, StoreError> {
    match (domain::stream_owner(stream_id), event.metadata.project_id) {
        (StreamOwner::None, _) => Ok(Cow::Borrowed(&event.metadata)),
        (StreamOwner::Project(own), Some(found)) if found != own.as_uuid() => {
            Err(StoreError::WrongProjectId {
                stream_id: stream_id.to_owned(),
                event_type: event.event_type.clone(),
                found,
            })
        }
        (StreamOwner::Project(own), None) => Ok(Cow::Owned(EventMetadata {
            project_id: Some(own.as_uuid()),
            ..event.metadata.clone()
        })),
        (StreamOwner::SomeProject, None) => Err(StoreError::MissingProjectId {
            stream_id: stream_id.to_owned(),
            event_type: event.event_type.clone(),
        }),
        (StreamOwner::Project(_) | StreamOwner::SomeProject, Some(_)) => {
            Ok(Cow::Borrowed(&event.metadata))
        }
    }
}

/// Checks and serialises every event of `appends` (one list per stream, in order), or refuses the
/// whole append: it is atomic, so one unprocessable event refuses all of it.
pub(crate) fn check(
    appends: &[StreamAppend],
    max_event_bytes: usize,
) -> Result<Vec<Vec<Checked>>, StoreError> {
    let empty = appends.is_empty() || appends.iter().any(|a| a.events.is_empty());
    let mut names: Vec<&str> = appends.iter().map(|a| a.stream_id.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if empty || names.len() != appends.len() {
        return Err(StoreError::InvalidAppend);
    }
    appends
        .iter()
        .map(|append| {
            append
                .events
                .iter()
                .map(|event| check_event(&append.stream_id, event, max_event_bytes))
                .collect()
        })
        .collect()
}

fn check_event(
    stream_id: &str,
    event: &NewEvent,
    max_event_bytes: usize,
) -> Result<Checked, StoreError> {
    let backend = |e: serde_json::Error| StoreError::Backend(e.into());
    let owned = owned_metadata(stream_id, event)?;
    let data = serde_json::to_string(&event.data).map_err(backend)?;
    let metadata = serde_json::to_string(&*owned).map_err(backend)?;
    if holds_nul_escape(&data) {
        let pointer = domain::text::nul_pointer(&event.data).unwrap_or_default();
        return Err(AppendRefusal::Nul {
            event_type: event.event_type.clone(),
            pointer,
        }
        .into());
    }
    if holds_nul_escape(&metadata) {
        let pointer = serde_json::to_value(&*owned)
            .ok()
            .and_then(|m| domain::text::nul_pointer(&m))
            .unwrap_or_default();
        return Err(AppendRefusal::Nul {
            event_type: event.event_type.clone(),
            pointer: format!("/metadata{pointer}"),
        }
        .into());
    }
    let bytes = cloud_event_bound(stream_id, &event.event_type, data.len(), metadata.len());
    if bytes > max_event_bytes {
        return Err(AppendRefusal::TooLarge {
            event_type: event.event_type.clone(),
            bytes,
            limit: max_event_bytes,
        }
        .into());
    }
    Ok(Checked {
        data: RawValue::from_string(data).map_err(backend)?,
        metadata: RawValue::from_string(metadata).map_err(backend)?,
        project_id: owned.project_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ExpectedVersion;
    use serde_json::{Value, json};

    fn append(data: Value) -> StreamAppend {
        StreamAppend::new(
            "project-1",
            ExpectedVersion::Any,
            vec![NewEvent {
                event_id: Uuid::nil(),
                event_type: "ProjectUpdated".into(),
                schema_version: 1,
                data,
                metadata: EventMetadata::default(),
            }],
        )
    }

    #[test]
    fn an_event_holding_a_nul_is_refused_with_its_pointer() {
        let refused = check(&[append(json!({"description": "a\u{0}b"}))], 1 << 20);
        match refused {
            Err(StoreError::Refused(AppendRefusal::Nul { pointer, .. })) => {
                assert_eq!(pointer, "/description")
            }
            other => panic!("expected a NUL refusal, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn an_event_over_the_limit_is_refused_and_one_at_it_passes() {
        let limit = 64 * 1024;
        let fixed = cloud_event_bound("project-1", "ProjectUpdated", 0, 2) + r#"{"d":""}"#.len();
        let fits = append(json!({"d": "x".repeat(limit - fixed)}));
        assert!(check(std::slice::from_ref(&fits), limit).is_ok());
        let over = append(json!({"d": "x".repeat(limit - fixed + 1)}));
        assert!(matches!(
            check(&[over], limit),
            Err(StoreError::Refused(AppendRefusal::TooLarge { .. }))
        ));
    }

    fn owned_append(stream: String, project_id: Option<Uuid>) -> StreamAppend {
        StreamAppend::new(
            stream,
            ExpectedVersion::Any,
            vec![NewEvent {
                event_id: Uuid::nil(),
                event_type: "GenerationStarted".into(),
                schema_version: 1,
                data: json!({}),
                metadata: EventMetadata {
                    project_id,
                    ..EventMetadata::default()
                },
            }],
        )
    }

    #[test]
    fn a_project_owned_event_without_its_project_is_refused() {
        let generation = domain::ids::GenerationId::from_uuid(Uuid::now_v7()).stream();
        assert!(matches!(
            check(&[owned_append(generation.clone(), None)], 1 << 20),
            Err(StoreError::MissingProjectId { .. })
        ));
        let project = Uuid::now_v7();
        let checked = check(&[owned_append(generation, Some(project))], 1 << 20).unwrap();
        assert_eq!(checked[0][0].project_id, Some(project));
    }

    #[test]
    fn a_project_stream_names_its_project_and_an_event_may_not_name_another() {
        let project = domain::ids::ProjectId::from_uuid(Uuid::now_v7());
        let checked = check(&[owned_append(project.stream(), None)], 1 << 20).unwrap();
        assert_eq!(checked[0][0].project_id, Some(project.as_uuid()));
        assert_eq!(
            checked[0][0].metadata.get(),
            format!(r#"{{"project_id":"{project}"}}"#)
        );
        assert!(matches!(
            check(
                &[owned_append(project.stream(), Some(Uuid::now_v7()))],
                1 << 20
            ),
            Err(StoreError::WrongProjectId { .. })
        ));
        let user = domain::ids::UserId::from_uuid(Uuid::now_v7()).stream();
        let checked = check(&[owned_append(user, None)], 1 << 20).unwrap();
        assert_eq!(checked[0][0].project_id, None);
    }

    #[test]
    fn the_checked_text_is_the_serialised_event() {
        let checked = check(&[append(json!({"a": [1, "é"]}))], 1 << 20).unwrap();
        assert_eq!(checked[0][0].data.get(), r#"{"a":[1,"é"]}"#);
        assert_eq!(checked[0][0].metadata.get(), "{}");
    }
}
