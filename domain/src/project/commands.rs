//! What a caller may ask of a project; ids and `at` are resolved by the caller.

use serde_json::Value;
use time::OffsetDateTime;

use super::{FeatureType, GenerationMode, ProjectRole};
use crate::ids::{FeatureId, ProjectId, UserId};

/// A feature as a request describes it, before validation. The id is fresh, chosen by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFeature {
    pub id: FeatureId,
    pub name: String,
    pub feature_type: FeatureType,
    pub generation_mode: Option<GenerationMode>,
    /// Must be absent or `{}`.
    pub configuration: Option<Value>,
    /// Raw JSON, parsed by [`EntitySchema::parse`]; required for `crud`, refused otherwise.
    pub schema_definition: Option<Value>,
    pub is_enabled: bool,
}

impl NewFeature {
    /// A feature with the API's defaults: enabled, following the project's mode, no configuration.
    pub fn new(id: FeatureId, name: impl Into<String>, feature_type: FeatureType) -> Self {
        Self {
            id,
            name: name.into(),
            feature_type,
            generation_mode: None,
            configuration: None,
            schema_definition: None,
            is_enabled: true,
        }
    }

    pub fn with_schema(mut self, schema_definition: Value) -> Self {
        self.schema_definition = Some(schema_definition);
        self
    }
}

/// A partial update of a feature: `None` leaves a field unchanged.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeatureChanges {
    pub name: Option<String>,
    /// Always refused when present: a feature's type never changes. Carried so the rule has one
    /// home even though the HTTP layer refuses the member too.
    pub feature_type: Option<FeatureType>,
    /// `Some(None)` clears the feature's own mode, so it follows the project again.
    pub generation_mode: Option<Option<GenerationMode>>,
    pub configuration: Option<Value>,
    /// A whole new schema; `null` is refused for `crud` features (the schema is required).
    pub schema_definition: Option<Value>,
    pub is_enabled: Option<bool>,
}

impl FeatureChanges {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.feature_type.is_none()
            && self.generation_mode.is_none()
            && self.configuration.is_none()
            && self.schema_definition.is_none()
            && self.is_enabled.is_none()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProjectCommand {
    /// The creation wizard: the project and its features are one decision and one append.
    CreateProject {
        project_id: ProjectId,
        owner_id: UserId,
        name: String,
        description: Option<String>,
        /// `None` means `manual`.
        generation_mode: Option<GenerationMode>,
        features: Vec<NewFeature>,
        at: OffsetDateTime,
    },
    /// A partial update; `description: Some(None)` clears the description.
    UpdateProject {
        name: Option<String>,
        description: Option<Option<String>>,
        generation_mode: Option<GenerationMode>,
        at: OffsetDateTime,
    },
    ArchiveProject {
        at: OffsetDateTime,
    },
    AddMember {
        user_id: UserId,
        role: ProjectRole,
        at: OffsetDateTime,
    },
    RemoveMember {
        user_id: UserId,
        at: OffsetDateTime,
    },
    AddFeature {
        feature: NewFeature,
        at: OffsetDateTime,
    },
    UpdateFeature {
        feature_id: FeatureId,
        changes: FeatureChanges,
        at: OffsetDateTime,
    },
    RemoveFeature {
        feature_id: FeatureId,
        at: OffsetDateTime,
    },
}
