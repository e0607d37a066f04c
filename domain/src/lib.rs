//! Backforge's pure domain: deciders, their commands and events, and the rules of `docs/api.md`.
//!
//! Nothing here does I/O, reads a clock or makes random ids: callers pass `now` and fresh ids in the
//! commands, so every rule is a plain function that tests can call.

pub mod ai;
pub mod crud_schema;
pub mod email;
pub mod envelope;
pub mod error;
pub mod generation;
pub mod ids;
pub mod limits;
pub mod operations;
pub mod ownership;
pub mod project;
pub mod record;
pub mod reserved;
pub mod shared;
pub mod testing;
pub mod text;
pub mod upcast;
pub mod user;

pub use envelope::{DecodeError, DomainEvent, EventMetadata};
pub use error::{FieldError, Pointer};
pub use limits::Limits;
pub use ownership::{ProjectOwned, StreamOwner, stream_owner};
pub use shared::Shared;
pub use text::serialized_len;
pub use upcast::{UpcastError, Upcasters};

/// An aggregate as two pure functions: `decide` holds every rule, `evolve` only changes state.
///
/// `Default` is the state before the aggregate's first event. Limits are configuration, not
/// state, so they come beside the command rather than inside the aggregate.
pub trait Decider: Default {
    type Command;
    type Event;
    type Error;

    /// The events `command` causes, or why it is refused. Taking the command by reference lets a
    /// caller that lost an optimistic-concurrency race reload and decide the same command again.
    fn decide(
        &self,
        command: &Self::Command,
        limits: &Limits,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    /// [`Decider::decide`] without the rules on the state after the events
    /// ([`Decider::check_after`]): for a caller that folds the events into its own state anyway
    /// and then checks that state, so those rules need no copy of the state. `decide` is exactly
    /// this, then `check_after` on the state after the events.
    fn decide_before(
        &self,
        command: &Self::Command,
        limits: &Limits,
    ) -> Result<Vec<Self::Event>, Self::Error> {
        self.decide(command, limits)
    }

    /// The rules on the state after `events` (`self`), which [`Decider::decide`] enforces too.
    fn check_after(&self, _events: &[Self::Event], _limits: &Limits) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Applies one event. Infallible: stored events are facts, already decided.
    fn evolve(&mut self, event: &Self::Event);

    /// The state after `events`, from the state before the first event.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        let mut state = Self::default();
        for event in events {
            state.evolve(event);
        }
        state
    }
}

/// Any stored Backforge event, for readers that follow every stream (projector, replay, history,
/// NATS publishing).
#[derive(Debug, Clone, PartialEq)]
pub enum AnyEvent {
    User(user::UserEvent),
    Email(email::EmailReservationEvent),
    Project(project::ProjectEvent),
    Generation(generation::GenerationEvent),
    /// An AI request's stream (`ai-request-<id>`).
    AiRequest(ai::request::AiRequestEvent),
    /// An AI model of the catalog (`aimodel-<name>`).
    AiModel(ai::models::AiModelEvent),
    /// A prompt template of the catalog (`prompt-<name>`).
    Prompt(ai::templates::PromptEvent),
    /// The installation's own audit trail (`operations` stream), e.g. parked events.
    Operations(operations::OperationsEvent),
    /// A live record of a project's `crud` entity (`record-<id>`).
    Record(record::RecordEvent),
}

impl AnyEvent {
    /// Every stored event type name, across all aggregates.
    pub fn types() -> impl Iterator<Item = &'static str> {
        user::UserEvent::TYPES
            .iter()
            .chain(email::EmailReservationEvent::TYPES)
            .chain(project::ProjectEvent::TYPES)
            .chain(generation::GenerationEvent::TYPES)
            .chain(ai::request::AiRequestEvent::TYPES)
            .chain(ai::models::AiModelEvent::TYPES)
            .chain(ai::templates::PromptEvent::TYPES)
            .chain(operations::OperationsEvent::TYPES)
            .chain(record::RecordEvent::TYPES)
            .copied()
    }

    /// The aggregate name used in NATS subjects and CloudEvents types (`user`, `project` ...).
    pub fn aggregate(&self) -> &'static str {
        match self {
            AnyEvent::User(_) => ids::UserId::AGGREGATE,
            AnyEvent::Email(_) => "email",
            AnyEvent::Project(_) => ids::ProjectId::AGGREGATE,
            AnyEvent::Generation(_) => ids::GenerationId::AGGREGATE,
            AnyEvent::AiRequest(_) => ids::AiRequestId::AGGREGATE,
            AnyEvent::AiModel(_) => ai::models::ModelName::AGGREGATE,
            AnyEvent::Prompt(_) => ai::templates::PromptName::AGGREGATE,
            AnyEvent::Operations(_) => "operations",
            AnyEvent::Record(_) => ids::RecordId::AGGREGATE,
        }
    }

    /// Upcasts a stored payload to the latest version and decodes it.
    pub fn decode(
        upcasters: &Upcasters,
        event_type: &str,
        schema_version: u32,
        data: serde_json::Value,
    ) -> Result<Self, AnyDecodeError> {
        let (data, _) = upcasters.upcast(event_type, schema_version, data)?;
        Ok(Self::from_data(event_type, data)?)
    }
}

/// Why a stored event could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AnyDecodeError {
    #[error(transparent)]
    Upcast(#[from] UpcastError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl DomainEvent for AnyEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AnyEvent::User(e) => e.event_type(),
            AnyEvent::Email(e) => e.event_type(),
            AnyEvent::Project(e) => e.event_type(),
            AnyEvent::Generation(e) => e.event_type(),
            AnyEvent::AiRequest(e) => e.event_type(),
            AnyEvent::AiModel(e) => e.event_type(),
            AnyEvent::Prompt(e) => e.event_type(),
            AnyEvent::Operations(e) => e.event_type(),
            AnyEvent::Record(e) => e.event_type(),
        }
    }

    fn schema_version(&self) -> u32 {
        match self {
            AnyEvent::User(e) => e.schema_version(),
            AnyEvent::Email(e) => e.schema_version(),
            AnyEvent::Project(e) => e.schema_version(),
            AnyEvent::Generation(e) => e.schema_version(),
            AnyEvent::AiRequest(e) => e.schema_version(),
            AnyEvent::AiModel(e) => e.schema_version(),
            AnyEvent::Prompt(e) => e.schema_version(),
            AnyEvent::Operations(e) => e.schema_version(),
            AnyEvent::Record(e) => e.schema_version(),
        }
    }

    fn to_data(&self) -> serde_json::Value {
        match self {
            AnyEvent::User(e) => e.to_data(),
            AnyEvent::Email(e) => e.to_data(),
            AnyEvent::Project(e) => e.to_data(),
            AnyEvent::Generation(e) => e.to_data(),
            AnyEvent::AiRequest(e) => e.to_data(),
            AnyEvent::AiModel(e) => e.to_data(),
            AnyEvent::Prompt(e) => e.to_data(),
            AnyEvent::Operations(e) => e.to_data(),
            AnyEvent::Record(e) => e.to_data(),
        }
    }

    fn from_data(event_type: &str, data: serde_json::Value) -> Result<Self, DecodeError> {
        // One dispatch on the type name, in `from_json`; a value only reaches here on the rare
        // paths that change a body first (upcasting), so printing it again costs little.
        Self::from_json(event_type, &data.to_string())
    }

    fn from_json(event_type: &str, json: &str) -> Result<Self, DecodeError> {
        if user::UserEvent::TYPES.contains(&event_type) {
            user::UserEvent::from_json(event_type, json).map(AnyEvent::User)
        } else if email::EmailReservationEvent::TYPES.contains(&event_type) {
            email::EmailReservationEvent::from_json(event_type, json).map(AnyEvent::Email)
        } else if project::ProjectEvent::TYPES.contains(&event_type) {
            project::ProjectEvent::from_json(event_type, json).map(AnyEvent::Project)
        } else if generation::GenerationEvent::TYPES.contains(&event_type) {
            generation::GenerationEvent::from_json(event_type, json).map(AnyEvent::Generation)
        } else if ai::request::AiRequestEvent::TYPES.contains(&event_type) {
            ai::request::AiRequestEvent::from_json(event_type, json).map(AnyEvent::AiRequest)
        } else if ai::models::AiModelEvent::TYPES.contains(&event_type) {
            ai::models::AiModelEvent::from_json(event_type, json).map(AnyEvent::AiModel)
        } else if ai::templates::PromptEvent::TYPES.contains(&event_type) {
            ai::templates::PromptEvent::from_json(event_type, json).map(AnyEvent::Prompt)
        } else if operations::OperationsEvent::TYPES.contains(&event_type) {
            operations::OperationsEvent::from_json(event_type, json).map(AnyEvent::Operations)
        } else if record::RecordEvent::TYPES.contains(&event_type) {
            record::RecordEvent::from_json(event_type, json).map(AnyEvent::Record)
        } else {
            Err(DecodeError::UnknownType(event_type.to_owned()))
        }
    }
}

#[cfg(test)]
mod golden_tests {
    //! Golden files: one stored payload per event type and version, under `src/golden/`, named
    //! `<EventType>.v<version>.json`. They must stay readable forever; never edit one, add a new
    //! version beside it.

    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use super::*;

    fn golden_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("src")
            .join("golden")
    }

    /// (event type, version, payload) of every golden file.
    fn goldens() -> Vec<(String, u32, serde_json::Value)> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(golden_dir()).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_str().unwrap().to_owned();
            let stem = file
                .strip_suffix(".json")
                .unwrap_or_else(|| panic!("{file}: not a .json file"));
            let (event_type, version) = stem
                .rsplit_once(".v")
                .unwrap_or_else(|| panic!("{file}: not named <EventType>.v<N>.json"));
            let version: u32 = version
                .parse()
                .unwrap_or_else(|_| panic!("{file}: bad version"));
            let text = std::fs::read_to_string(&path).unwrap();
            let data = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
            found.push((event_type.to_owned(), version, data));
        }
        found.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        found
    }

    #[test]
    fn every_event_type_has_a_golden_file_at_its_latest_version() {
        let upcasters = Upcasters::backforge();
        let present: BTreeSet<(String, u32)> =
            goldens().into_iter().map(|(t, v, _)| (t, v)).collect();
        for event_type in AnyEvent::types() {
            let latest = upcasters.latest_version(event_type);
            assert!(
                present.contains(&(event_type.to_owned(), latest)),
                "no golden file src/golden/{event_type}.v{latest}.json"
            );
        }
    }

    #[test]
    fn every_golden_file_names_a_known_event_type() {
        let known: BTreeSet<&str> = AnyEvent::types().collect();
        for (event_type, _, _) in goldens() {
            assert!(
                known.contains(event_type.as_str()),
                "unknown type {event_type}"
            );
        }
    }

    #[test]
    fn every_golden_payload_decodes_and_encodes_back_exactly() {
        let upcasters = Upcasters::backforge();
        for (event_type, version, data) in goldens() {
            let event = AnyEvent::decode(&upcasters, &event_type, version, data.clone())
                .unwrap_or_else(|e| panic!("{event_type}.v{version}: {e}"));
            assert_eq!(event.event_type(), event_type);
            assert_eq!(
                event.schema_version(),
                upcasters.latest_version(&event_type)
            );
            if version == upcasters.latest_version(&event_type) {
                // Compared as text: the member order of stored payloads is part of "exactly".
                assert_eq!(
                    serde_json::to_string(&event.to_data()).unwrap(),
                    serde_json::to_string(&data).unwrap(),
                    "{event_type}.v{version} does not encode back to its golden payload"
                );
            }
        }
    }

    #[test]
    fn decoding_json_text_gives_what_decoding_its_value_gives() {
        // Given every golden payload, as stored text and as a parsed value
        for (event_type, _, data) in goldens() {
            let text = serde_json::to_string(&data).unwrap();
            // When both decoders read it
            let from_text = AnyEvent::from_json(&event_type, &text);
            // (each aggregate's own decoder of values, not AnyEvent's, which goes through text)
            let t = event_type.as_str();
            let from_value = if user::UserEvent::TYPES.contains(&t) {
                user::UserEvent::from_data(t, data).map(AnyEvent::User)
            } else if email::EmailReservationEvent::TYPES.contains(&t) {
                email::EmailReservationEvent::from_data(t, data).map(AnyEvent::Email)
            } else if project::ProjectEvent::TYPES.contains(&t) {
                project::ProjectEvent::from_data(t, data).map(AnyEvent::Project)
            } else if operations::OperationsEvent::TYPES.contains(&t) {
                operations::OperationsEvent::from_data(t, data).map(AnyEvent::Operations)
            } else if ai::models::AiModelEvent::TYPES.contains(&t) {
                ai::models::AiModelEvent::from_data(t, data).map(AnyEvent::AiModel)
            } else if ai::templates::PromptEvent::TYPES.contains(&t) {
                ai::templates::PromptEvent::from_data(t, data).map(AnyEvent::Prompt)
            } else if ai::request::AiRequestEvent::TYPES.contains(&t) {
                ai::request::AiRequestEvent::from_data(t, data).map(AnyEvent::AiRequest)
            } else if record::RecordEvent::TYPES.contains(&t) {
                record::RecordEvent::from_data(t, data).map(AnyEvent::Record)
            } else {
                generation::GenerationEvent::from_data(t, data).map(AnyEvent::Generation)
            };
            // Then they agree
            assert_eq!(
                format!("{from_text:?}"),
                format!("{from_value:?}"),
                "{event_type}"
            );
            assert!(from_text.is_ok(), "{event_type}: {from_text:?}");
        }
        // And both refuse an unknown type and a malformed body the same way
        assert!(matches!(
            AnyEvent::from_json("NoSuchEvent", "{}"),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            AnyEvent::from_json("ProjectCreated", r#"{"name": 3}"#),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            AnyEvent::from_json("ProjectCreated", "{} trailing"),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn the_golden_feature_schema_is_normalised() {
        let (_, _, data) = goldens()
            .into_iter()
            .find(|(t, _, _)| t == "FeatureAdded")
            .unwrap();
        let raw = &data["schema_definition"];
        let parsed =
            crud_schema::EntitySchema::parse(raw, &Pointer::root(), &Limits::default()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), *raw);
    }

    #[test]
    fn type_names_are_unique_across_aggregates() {
        let all: Vec<&str> = AnyEvent::types().collect();
        let distinct: BTreeSet<&str> = all.iter().copied().collect();
        assert_eq!(all.len(), distinct.len());
    }

    #[test]
    fn an_unknown_type_or_a_malformed_payload_is_a_decode_error() {
        assert!(matches!(
            AnyEvent::from_data("ProjectExploded", serde_json::json!({})),
            Err(DecodeError::UnknownType(t)) if t == "ProjectExploded"
        ));
        assert!(matches!(
            AnyEvent::from_data("ProjectArchived", serde_json::json!({"project_id": 5})),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            AnyEvent::decode(
                &Upcasters::backforge(),
                "ProjectArchived",
                2,
                serde_json::json!({})
            ),
            Err(AnyDecodeError::Upcast(UpcastError::FromTheFuture { .. }))
        ));
    }

    #[test]
    fn every_event_knows_its_aggregate() {
        let upcasters = Upcasters::backforge();
        for (event_type, version, data) in goldens() {
            let event = AnyEvent::decode(&upcasters, &event_type, version, data).unwrap();
            let expected = match &event {
                AnyEvent::User(_) => "user",
                AnyEvent::Email(_) => "email",
                AnyEvent::Project(_) => "project",
                AnyEvent::Generation(_) => "generation",
                AnyEvent::AiRequest(_) => "ai_request",
                AnyEvent::AiModel(_) => "ai_model",
                AnyEvent::Prompt(_) => "prompt_template",
                AnyEvent::Operations(_) => "operations",
                AnyEvent::Record(_) => "record",
            };
            assert_eq!(event.aggregate(), expected);
        }
    }
}
