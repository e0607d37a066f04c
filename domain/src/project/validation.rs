//! The checks of one feature on its own (name, configuration, schema) and of its references.

use std::collections::HashMap;

use serde_json::{Map, Value};
use time::OffsetDateTime;

pub(super) use super::configuration::check as check_configuration;
use super::{Feature, FeatureType, GenerationMode, NewFeature, ProjectError};
use crate::crud_schema::EntitySchema;
use crate::error::{FieldError, Pointer};
use crate::ids::FeatureId;
use crate::limits::Limits;

pub(super) fn nothing_to_update() -> ProjectError {
    ProjectError::Validation(vec![FieldError::new(
        "",
        "nothing to update: give at least one field",
    )])
}

/// Reference targets after a change: entity name → whether its feature is enabled.
pub(super) type Targets<'a> = HashMap<&'a str, bool>;

/// One feature of a request, checked on its own. `None` parts had problems, already recorded.
pub(super) struct Draft {
    pub(super) id: FeatureId,
    pub(super) name: Option<String>,
    pub(super) feature_type: FeatureType,
    pub(super) generation_mode: Option<GenerationMode>,
    pub(super) configuration: Map<String, Value>,
    pub(super) schema: Option<EntitySchema>,
    /// The entity name a crud schema with problems still declares, so features referencing it
    /// are not also told that it does not exist.
    pub(super) claimed_entity: Option<String>,
    pub(super) is_enabled: bool,
    pub(super) at: Pointer,
}

impl Draft {
    pub(super) fn check(
        feature: &NewFeature,
        at: Pointer,
        limits: &Limits,
        errors: &mut Vec<FieldError>,
    ) -> Self {
        if feature.feature_type == FeatureType::CustomFunction {
            // Stored ones stay readable; new custom logic is a function of the project.
            errors.push(FieldError::at(
                &at.key("feature_type"),
                "new features of type custom_function are no longer accepted: create a function with POST /api/v1/projects/{id}/functions",
            ));
        }
        Self {
            id: feature.id,
            name: check_name(&feature.name, &at.key("name"), limits, errors),
            feature_type: feature.feature_type,
            generation_mode: feature.generation_mode,
            configuration: check_configuration(
                feature.feature_type,
                feature.configuration.as_ref(),
                &at.key("configuration"),
                errors,
            ),
            schema: check_schema(
                feature.feature_type,
                feature.schema_definition.as_ref(),
                &at.key("schema_definition"),
                limits,
                errors,
            )
            .flatten(),
            claimed_entity: feature
                .schema_definition
                .as_ref()
                .and_then(|raw| raw.get("entity"))
                .and_then(Value::as_str)
                .filter(|_| feature.feature_type == FeatureType::Crud)
                .map(str::to_owned),
            is_enabled: feature.is_enabled,
            at,
        }
    }

    pub(super) fn finish(self, at: OffsetDateTime) -> Option<Feature> {
        if self.feature_type == FeatureType::Crud && self.schema.is_none() {
            return None;
        }
        Some(Feature {
            id: self.id,
            name: self.name?,
            feature_type: self.feature_type,
            generation_mode: self.generation_mode,
            configuration: self.configuration,
            schema_definition: self.schema,
            is_enabled: self.is_enabled,
            created_at: at,
            updated_at: at,
            ai_request_id: None,
        })
    }
}

pub(super) fn check_name(
    raw: &str,
    at: &Pointer,
    limits: &Limits,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match limits.check_name(raw) {
        Ok(name) => Some(name),
        Err(message) => {
            errors.push(FieldError::at(at, message));
            None
        }
    }
}

/// `Some(schema)` for a valid crud schema, `Some(None)` for a non-crud feature without one, `None`
/// when a problem was recorded.
pub(super) fn check_schema(
    feature_type: FeatureType,
    raw: Option<&Value>,
    at: &Pointer,
    limits: &Limits,
    errors: &mut Vec<FieldError>,
) -> Option<Option<EntitySchema>> {
    match (feature_type, raw) {
        (FeatureType::Crud, None | Some(Value::Null)) => {
            errors.push(FieldError::at(at, "is required for crud features"));
            None
        }
        (FeatureType::Crud, Some(raw)) => match EntitySchema::parse(raw, at, limits) {
            Ok(schema) => Some(Some(schema)),
            Err(problems) => {
                errors.extend(problems);
                None
            }
        },
        (_, None | Some(Value::Null)) => Some(None),
        (other, Some(_)) => {
            errors.push(FieldError::at(
                at,
                format!("only crud features have a schema_definition, not {other} features"),
            ));
            None
        }
    }
}

/// Records a problem for each reference of `schema` (at `at`, its `schema_definition`) whose target
/// is not an entity of the project, or is disabled while `schema`'s own feature is enabled.
pub(super) fn check_references(
    schema: &EntitySchema,
    enabled: bool,
    targets: &Targets<'_>,
    at: &Pointer,
    errors: &mut Vec<FieldError>,
) {
    for (i, _, target) in schema.references() {
        let field_at = at.key("fields").index(i).key("references");
        match targets.get(target) {
            None => errors.push(FieldError::at(
                &field_at,
                format!("`{target}` is not a crud entity of this project"),
            )),
            Some(false) if enabled => errors.push(FieldError::at(
                &field_at,
                format!("`{target}` is disabled; an enabled entity cannot reference it"),
            )),
            Some(_) => {}
        }
    }
}
