//! The live record aggregate: one record of a project's `crud` entity (`record-<id>`), created, patched and deleted under the entity's current schema.
//!
//! A record belongs to its entity's feature id, so renaming the entity keeps it. Its values are
//! stored normalised ([`EntitySchema::check_record`]) and never rewritten when the schema changes:
//! readers show them through the current schema ([`EntitySchema::present_record`]). Uniqueness,
//! references and schema changes need every record of the entity and are decided by the command
//! side's tables; this aggregate gives them each write's unique keys and references.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::crud_schema::{EntitySchema, FieldKind, RecordValues, RecordWrite};
use crate::envelope::{DecodeError, DomainEvent, decode_tagged, decode_tagged_json, encode_tagged};
use crate::error::{FieldError, join};
use crate::ids::{FeatureId, ProjectId, RecordId, UserId};
use crate::limits::Limits;
use crate::project::{Project, ProjectStatus};

/// The entity a record write is about, resolved from the project by its plural.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEntity {
    pub project_id: ProjectId,
    pub feature_id: FeatureId,
    /// The entity as the project's current version defines it.
    pub schema: EntitySchema,
}

impl Project {
    /// The enabled `crud` entity served at `/data/{plural}`: `NoSuchEntity` when there is none,
    /// `ProjectArchived` when the project takes no writes.
    pub fn live_entity(&self, plural: &str) -> Result<LiveEntity, RecordError> {
        let (feature, schema) = self
            .entities()
            .find(|(feature, schema)| feature.is_enabled && schema.plural == plural)
            .ok_or_else(|| RecordError::NoSuchEntity(plural.to_owned()))?;
        Ok(LiveEntity {
            project_id: self.id,
            feature_id: feature.id,
            schema: schema.clone(),
        })
    }

    /// [`Project::live_entity`] for a write: refused while the project is archived.
    pub fn writable_entity(&self, plural: &str) -> Result<LiveEntity, RecordError> {
        if self.status == ProjectStatus::Archived {
            return Err(RecordError::ProjectArchived);
        }
        self.live_entity(plural)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateRecord {
    pub record_id: RecordId,
    pub entity: LiveEntity,
    pub body: Value,
    pub by: UserId,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdateRecord {
    pub entity: LiveEntity,
    /// A partial body: the fields it names change, the others stay.
    pub body: Value,
    pub by: UserId,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeleteRecord {
    pub entity: LiveEntity,
    pub by: UserId,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RecordCommand {
    Create(CreateRecord),
    Update(UpdateRecord),
    Delete(DeleteRecord),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RecordEvent {
    #[serde(rename = "RecordCreated")]
    RecordCreated {
        record_id: RecordId,
        project_id: ProjectId,
        feature_id: FeatureId,
        /// The entity's name when the record was written (the feature id is the stable key).
        entity: String,
        /// Every field of the schema at the time, normalised.
        values: RecordValues,
        created_by: UserId,
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
    },
    #[serde(rename = "RecordUpdated")]
    RecordUpdated {
        record_id: RecordId,
        project_id: ProjectId,
        feature_id: FeatureId,
        entity: String,
        /// The fields the patch named, normalised.
        changes: RecordValues,
        updated_by: UserId,
        #[serde(with = "time::serde::rfc3339")]
        updated_at: OffsetDateTime,
    },
    #[serde(rename = "RecordDeleted")]
    RecordDeleted {
        record_id: RecordId,
        project_id: ProjectId,
        feature_id: FeatureId,
        entity: String,
        deleted_by: UserId,
        #[serde(with = "time::serde::rfc3339")]
        deleted_at: OffsetDateTime,
    },
}

impl RecordEvent {
    pub const TYPES: &'static [&'static str] = &["RecordCreated", "RecordUpdated", "RecordDeleted"];

    pub fn project_id(&self) -> ProjectId {
        match self {
            RecordEvent::RecordCreated { project_id, .. }
            | RecordEvent::RecordUpdated { project_id, .. }
            | RecordEvent::RecordDeleted { project_id, .. } => *project_id,
        }
    }
}

impl DomainEvent for RecordEvent {
    fn event_type(&self) -> &'static str {
        match self {
            RecordEvent::RecordCreated { .. } => "RecordCreated",
            RecordEvent::RecordUpdated { .. } => "RecordUpdated",
            RecordEvent::RecordDeleted { .. } => "RecordDeleted",
        }
    }

    fn schema_version(&self) -> u32 {
        1
    }

    fn to_data(&self) -> Value {
        encode_tagged(self, self.event_type())
    }

    fn from_data(event_type: &str, data: Value) -> Result<Self, DecodeError> {
        decode_tagged(Self::TYPES, event_type, data)
    }

    fn from_json(event_type: &str, json: &str) -> Result<Self, DecodeError> {
        decode_tagged_json(Self::TYPES, event_type, json)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the project has no enabled crud entity served at `{0}`")]
    NoSuchEntity(String),
    #[error("the project is archived")]
    ProjectArchived,
    #[error("no such record")]
    NotFound,
    #[error("the record exists already")]
    AlreadyExists,
    #[error("invalid record: {}", join(.0))]
    Validation(Vec<FieldError>),
}

/// One record's state: its values as stored, under the schema of each write.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    pub id: Option<RecordId>,
    pub project_id: Option<ProjectId>,
    pub feature_id: Option<FeatureId>,
    pub values: RecordValues,
    pub created_by: Option<UserId>,
    pub created_at: Option<OffsetDateTime>,
    pub updated_at: Option<OffsetDateTime>,
    pub deleted: bool,
}

impl Record {
    /// Whether the record was created and not deleted.
    pub fn is_live(&self) -> bool {
        self.id.is_some() && !self.deleted
    }

    /// Whether this record is a live record of `entity` (the same project and feature).
    fn belongs_to(&self, entity: &LiveEntity) -> bool {
        self.is_live()
            && self.project_id == Some(entity.project_id)
            && self.feature_id == Some(entity.feature_id)
    }

    /// The unique keys the record's values hold under `schema`: (constraint key, value hash),
    /// none for a constraint with a null member.
    pub fn unique_keys(schema: &EntitySchema, values: &RecordValues) -> Vec<(String, [u8; 32])> {
        schema
            .unique_constraints()
            .into_iter()
            .filter_map(|c| c.value_hash(values).map(|hash| (c.key(), hash)))
            .collect()
    }

    /// The records `values` refer to under `schema`: (field, referenced entity, record id).
    pub fn references<'a>(
        schema: &'a EntitySchema,
        values: &RecordValues,
    ) -> Vec<(&'a str, &'a str, RecordId)> {
        schema
            .fields
            .iter()
            .filter_map(|f| match &f.kind {
                FieldKind::Reference { references } => values
                    .get(&f.name)
                    .and_then(Value::as_str)
                    .and_then(|id| id.parse().ok())
                    .map(|id| (f.name.as_str(), references.as_str(), id)),
                _ => None,
            })
            .collect()
    }

    fn check_size(values: &RecordValues, limits: &Limits) -> Result<(), RecordError> {
        let bytes = crate::serialized_len(values);
        if bytes > limits.record_max_bytes {
            return Err(RecordError::Validation(vec![FieldError::new(
                "",
                format!(
                    "the record would take {bytes} bytes; a record takes at most {}",
                    limits.record_max_bytes
                ),
            )]));
        }
        Ok(())
    }

    pub fn decide(
        &self,
        command: &RecordCommand,
        limits: &Limits,
    ) -> Result<Vec<RecordEvent>, RecordError> {
        match command {
            RecordCommand::Create(c) => {
                if self.id.is_some() {
                    return Err(RecordError::AlreadyExists);
                }
                let values = c
                    .entity
                    .schema
                    .check_record(&c.body, RecordWrite::Create)
                    .map_err(RecordError::Validation)?;
                Self::check_size(&values, limits)?;
                Ok(vec![RecordEvent::RecordCreated {
                    record_id: c.record_id,
                    project_id: c.entity.project_id,
                    feature_id: c.entity.feature_id,
                    entity: c.entity.schema.entity.clone(),
                    values,
                    created_by: c.by,
                    created_at: c.at,
                }])
            }
            RecordCommand::Update(c) => {
                let id = self.id.filter(|_| self.belongs_to(&c.entity));
                let Some(record_id) = id else {
                    return Err(RecordError::NotFound);
                };
                let changes = c
                    .entity
                    .schema
                    .check_record(&c.body, RecordWrite::Patch)
                    .map_err(RecordError::Validation)?;
                let mut after = self.values.clone();
                after.extend(changes.clone());
                Self::check_size(&after, limits)?;
                Ok(vec![RecordEvent::RecordUpdated {
                    record_id,
                    project_id: c.entity.project_id,
                    feature_id: c.entity.feature_id,
                    entity: c.entity.schema.entity.clone(),
                    changes,
                    updated_by: c.by,
                    updated_at: c.at,
                }])
            }
            RecordCommand::Delete(c) => {
                let id = self.id.filter(|_| self.belongs_to(&c.entity));
                let Some(record_id) = id else {
                    return Err(RecordError::NotFound);
                };
                Ok(vec![RecordEvent::RecordDeleted {
                    record_id,
                    project_id: c.entity.project_id,
                    feature_id: c.entity.feature_id,
                    entity: c.entity.schema.entity.clone(),
                    deleted_by: c.by,
                    deleted_at: c.at,
                }])
            }
        }
    }

    pub fn evolve(&mut self, event: &RecordEvent) {
        match event {
            RecordEvent::RecordCreated {
                record_id,
                project_id,
                feature_id,
                values,
                created_by,
                created_at,
                ..
            } => {
                *self = Record {
                    id: Some(*record_id),
                    project_id: Some(*project_id),
                    feature_id: Some(*feature_id),
                    values: values.clone(),
                    created_by: Some(*created_by),
                    created_at: Some(*created_at),
                    updated_at: Some(*created_at),
                    deleted: false,
                };
            }
            RecordEvent::RecordUpdated {
                changes,
                updated_at,
                ..
            } => {
                self.values
                    .extend(changes.iter().map(|(k, v)| (k.clone(), v.clone())));
                self.updated_at = Some(*updated_at);
            }
            RecordEvent::RecordDeleted { deleted_at, .. } => {
                self.deleted = true;
                self.updated_at = Some(*deleted_at);
            }
        }
    }
}

impl crate::Decider for Record {
    type Command = RecordCommand;
    type Event = RecordEvent;
    type Error = RecordError;

    fn decide(
        &self,
        command: &RecordCommand,
        limits: &Limits,
    ) -> Result<Vec<RecordEvent>, RecordError> {
        Record::decide(self, command, limits)
    }

    fn evolve(&mut self, event: &RecordEvent) {
        Record::evolve(self, event);
    }
}

impl crate::ProjectOwned for Record {
    fn project_id(&self) -> Option<ProjectId> {
        self.project_id
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Decider;
    use crate::error::Pointer;
    use crate::testing::{feature_id, project_id, t0, user_id};

    fn entity() -> LiveEntity {
        let raw = json!({
            "entity": "order",
            "fields": [
                {"name": "number", "type": "string", "required": true, "unique": true},
                {"name": "total", "type": "decimal", "precision": 10, "scale": 2},
                {"name": "customer", "type": "reference", "references": "order"}
            ]
        });
        let schema = match EntitySchema::parse(&raw, &Pointer::root(), &Limits::default()) {
            Ok(schema) => schema,
            Err(errors) => panic!("the test's schema is invalid: {errors:?}"),
        };
        LiveEntity {
            project_id: project_id(1),
            feature_id: feature_id(1),
            schema,
        }
    }

    fn record_id(n: u128) -> RecordId {
        RecordId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn create(body: Value) -> RecordCommand {
        RecordCommand::Create(CreateRecord {
            record_id: record_id(7),
            entity: entity(),
            body,
            by: user_id(1),
            at: t0(),
        })
    }

    fn created() -> Record {
        let events = Record::default()
            .decide(
                &create(json!({"number": "A-1", "total": 5})),
                &Limits::default(),
            )
            .unwrap_or_default();
        Record::fold(&events)
    }

    #[test]
    fn given_nothing_when_a_valid_record_is_created_then_its_normalised_values_are_recorded() {
        let events = Record::default().decide(
            &create(json!({"number": "A-1", "total": 5})),
            &Limits::default(),
        );
        let Ok([RecordEvent::RecordCreated { values, entity, .. }]) = events.as_deref() else {
            panic!("expected one RecordCreated, got {events:?}");
        };
        assert_eq!(entity, "order");
        assert_eq!(
            Value::Object(values.clone()),
            json!({"number": "A-1", "total": "5.00", "customer": null})
        );
    }

    #[test]
    fn given_nothing_when_an_invalid_record_is_created_then_it_is_refused_with_pointers() {
        let refused = Record::default().decide(&create(json!({"total": "x"})), &Limits::default());
        let Err(RecordError::Validation(errors)) = refused else {
            panic!("expected a validation error, got {refused:?}");
        };
        let mut pointers: Vec<_> = errors.into_iter().map(|e| e.field).collect();
        pointers.sort();
        assert_eq!(pointers, ["/number", "/total"]);
    }

    #[test]
    fn given_a_record_when_it_is_patched_then_only_the_named_fields_change() {
        let mut record = created();
        let command = RecordCommand::Update(UpdateRecord {
            entity: entity(),
            body: json!({"total": "7.5"}),
            by: user_id(1),
            at: t0(),
        });
        let events = record
            .decide(&command, &Limits::default())
            .unwrap_or_default();
        for e in &events {
            record.evolve(e);
        }
        assert_eq!(
            Value::Object(record.values.clone()),
            json!({"number": "A-1", "total": "7.50", "customer": null})
        );
    }

    #[test]
    fn given_a_deleted_record_when_it_is_patched_or_deleted_then_it_is_not_found() {
        let mut record = created();
        let delete = RecordCommand::Delete(DeleteRecord {
            entity: entity(),
            by: user_id(1),
            at: t0(),
        });
        for e in record
            .decide(&delete, &Limits::default())
            .unwrap_or_default()
        {
            record.evolve(&e);
        }
        assert!(!record.is_live());
        assert_eq!(
            record.decide(&delete, &Limits::default()),
            Err(RecordError::NotFound)
        );
    }

    #[test]
    fn given_a_record_of_another_entity_when_it_is_patched_then_it_is_not_found() {
        let record = created();
        let mut other = entity();
        other.feature_id = feature_id(2);
        let command = RecordCommand::Update(UpdateRecord {
            entity: other,
            body: json!({"total": 1}),
            by: user_id(1),
            at: t0(),
        });
        assert_eq!(
            record.decide(&command, &Limits::default()),
            Err(RecordError::NotFound)
        );
    }

    #[test]
    fn given_a_record_over_the_size_limit_then_it_is_refused_as_a_whole() {
        let limits = Limits {
            record_max_bytes: 20,
            ..Limits::default()
        };
        let refused =
            Record::default().decide(&create(json!({"number": "a long enough number"})), &limits);
        assert!(
            matches!(refused, Err(RecordError::Validation(ref e)) if e[0].field.is_empty()),
            "{refused:?}"
        );
    }

    #[test]
    fn given_values_then_unique_keys_skip_nulls_and_references_are_parsed() {
        let e = entity();
        let parent = "123e4567-e89b-12d3-a456-426614174000";
        let values = e
            .schema
            .check_record(
                &json!({"number": "A-1", "customer": parent}),
                RecordWrite::Create,
            )
            .unwrap_or_default();
        let keys: Vec<String> = Record::unique_keys(&e.schema, &values)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["number"]);
        let refs = Record::references(&e.schema, &values);
        assert_eq!(refs.len(), 1);
        assert_eq!((refs[0].0, refs[0].1), ("customer", "order"));
        assert_eq!(refs[0].2.to_string(), parent);
    }

    #[test]
    fn record_events_round_trip_through_their_stored_form() {
        let events = Record::default()
            .decide(&create(json!({"number": "A-1"})), &Limits::default())
            .unwrap_or_default();
        for event in events {
            let back = RecordEvent::from_data(event.event_type(), event.to_data());
            assert_eq!(back.ok(), Some(event));
        }
    }
}
