//! Given/when/then tests of the project decider, and the helpers they share.

use super::*;
use crate::crud_schema::EntitySchema;
use crate::envelope::DomainEvent;
use crate::error::{FieldError, Pointer};
use crate::ids::{ProjectId, UserId};
use crate::limits::Limits;
use crate::testing::{feature_id, given, given_nothing, project_id, t, t0, user_id};
use crate::user::Role;
use serde_json::json;
use serde_json::{Map, Value};

const API_EXAMPLE: &str = r#"{"entity": "order", "plural": "orders", "fields": [
  {"name": "title", "type": "string", "required": true, "max_length": 120},
  {"name": "total", "type": "decimal", "precision": 12, "scale": 2, "min": 0},
  {"name": "status", "type": "enum", "values": ["new", "paid"], "default": "new"},
  {"name": "code", "type": "string", "unique": true, "pattern": "^[A-Z]{3}-[0-9]{4}$"},
  {"name": "customer_id", "type": "reference", "references": "customer", "required": true}
], "unique": [["customer_id", "title"]]}"#;

fn order_raw() -> Value {
    serde_json::from_str(API_EXAMPLE).unwrap()
}

fn customer_raw() -> Value {
    json!({"entity": "customer", "fields": [{"name": "email", "type": "string", "required": true}]})
}

fn raw_entity(entity: &str, references: Option<&str>) -> Value {
    let mut fields = vec![json!({"name": "label", "type": "string"})];
    if let Some(target) = references {
        fields.push(
            json!({"name": format!("{target}_id"), "type": "reference", "references": target}),
        );
    }
    json!({"entity": entity, "fields": fields})
}

fn schema(raw: Value) -> EntitySchema {
    EntitySchema::parse(&raw, &Pointer::root(), &Limits::default()).unwrap()
}

fn owner() -> UserId {
    user_id(1)
}

fn viewer() -> UserId {
    user_id(2)
}

fn pid() -> ProjectId {
    project_id(10)
}

fn created() -> ProjectEvent {
    ProjectEvent::ProjectCreated {
        project_id: pid(),
        owner_id: owner(),
        name: "Shop".into(),
        description: None,
        generation_mode: GenerationMode::Manual,
        created_at: t0(),
    }
}

fn added(id: u128, name: &str, feature_type: FeatureType, raw: Option<Value>) -> ProjectEvent {
    ProjectEvent::FeatureAdded {
        project_id: pid(),
        feature_id: feature_id(id),
        name: name.into(),
        feature_type,
        generation_mode: None,
        configuration: Map::new(),
        schema_definition: raw.map(schema),
        is_enabled: true,
        added_at: t(1),
        ai_request_id: None,
    }
}

fn crud_added(id: u128, name: &str, raw: Value) -> ProjectEvent {
    added(id, name, FeatureType::Crud, Some(raw))
}

fn disabled(id: u128) -> ProjectEvent {
    ProjectEvent::FeatureUpdated {
        project_id: pid(),
        feature_id: feature_id(id),
        name: None,
        generation_mode: None,
        configuration: None,
        schema_definition: None,
        is_enabled: Some(false),
        updated_at: t(2),
        ai_request_id: None,
    }
}

fn archived() -> ProjectEvent {
    ProjectEvent::ProjectArchived {
        project_id: pid(),
        archived_at: t(9),
    }
}

/// A shop with `customer` (feature 1) and `order` referencing it (feature 2).
fn shop() -> Vec<ProjectEvent> {
    vec![
        created(),
        crud_added(1, "Customers", customer_raw()),
        crud_added(2, "Orders", order_raw()),
    ]
}

fn create(features: Vec<NewFeature>) -> ProjectCommand {
    ProjectCommand::CreateProject(CreateProject {
        project_id: pid(),
        owner_id: owner(),
        name: "  Shop ".into(),
        description: None,
        generation_mode: None,
        features,
        at: t0(),
    })
}

fn crud(id: u128, name: &str, raw: Value) -> NewFeature {
    NewFeature::new(feature_id(id), name, FeatureType::Crud).with_schema(raw)
}

fn add(feature: NewFeature) -> ProjectCommand {
    ProjectCommand::AddFeature(AddFeature { feature, at: t(1) })
}

fn update(id: u128, changes: FeatureChanges) -> ProjectCommand {
    ProjectCommand::UpdateFeature(UpdateFeature {
        feature_id: feature_id(id),
        changes,
        at: t(3),
    })
}

/// The members a `FeatureUpdated` carries, for building expected events.
#[derive(Default)]
struct Changed {
    name: Option<String>,
    generation_mode: Option<Option<GenerationMode>>,
    configuration: Option<Map<String, Value>>,
    schema_definition: Option<EntitySchema>,
    is_enabled: Option<bool>,
}

fn feature_updated(id: u128, changed: Changed) -> ProjectEvent {
    ProjectEvent::FeatureUpdated {
        project_id: pid(),
        feature_id: feature_id(id),
        name: changed.name,
        generation_mode: changed.generation_mode,
        configuration: changed.configuration,
        schema_definition: changed.schema_definition,
        is_enabled: changed.is_enabled,
        updated_at: t(3),
        ai_request_id: None,
    }
}

fn added_at_t0(mut event: ProjectEvent) -> ProjectEvent {
    if let ProjectEvent::FeatureAdded { added_at, .. } = &mut event {
        *added_at = t0();
    }
    event
}

fn disabled_added(mut event: ProjectEvent) -> ProjectEvent {
    if let ProjectEvent::FeatureAdded { is_enabled, .. } = &mut event {
        *is_enabled = false;
    }
    event
}

fn with_mode(mut event: ProjectEvent, mode: GenerationMode) -> ProjectEvent {
    if let ProjectEvent::FeatureAdded {
        generation_mode, ..
    } = &mut event
    {
        *generation_mode = Some(mode);
    }
    event
}

/// The problems of a refused command, as (pointer, message) pairs.
#[track_caller]
fn invalid(outcome: Result<Vec<ProjectEvent>, ProjectError>) -> Vec<(String, String)> {
    match outcome {
        Err(ProjectError::Validation(errors)) => {
            errors.into_iter().map(|e| (e.field, e.message)).collect()
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[track_caller]
fn invalid_at(outcome: Result<Vec<ProjectEvent>, ProjectError>) -> Vec<String> {
    invalid(outcome)
        .into_iter()
        .map(|(field, _)| field)
        .collect()
}

mod ai_content;
mod creation;
mod features;
mod functions;
mod lifecycle;
mod size;
