//! What a caller may ask of a project; ids and `at` are resolved by the caller.

use serde_json::Value;
use time::OffsetDateTime;

use super::functions::{FunctionChanges, NewFunction};
use super::{FeatureType, GenerationMode, ProjectRole};
use crate::ids::{FeatureId, FunctionId, ProjectId, UserId};

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
    /// Always refused when present, whatever it holds (even `null` or a name that is no type): a
    /// feature's type never changes. Raw, so this rule lives here alone and callers only pass the
    /// member through.
    pub feature_type: Option<Value>,
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

/// The creation wizard: the project and its features are one decision and one append.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateProject {
    pub project_id: ProjectId,
    pub owner_id: UserId,
    pub name: String,
    pub description: Option<String>,
    /// `None` means `manual`.
    pub generation_mode: Option<GenerationMode>,
    pub features: Vec<NewFeature>,
    pub at: OffsetDateTime,
}

/// A partial update; `description: Some(None)` clears the description.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateProject {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub generation_mode: Option<GenerationMode>,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveProject {
    pub at: OffsetDateTime,
}

/// Adds a member, or changes the role of an existing one.
#[derive(Debug, Clone, PartialEq)]
pub struct AddMember {
    pub user_id: UserId,
    pub role: ProjectRole,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemoveMember {
    pub user_id: UserId,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AddFeature {
    pub feature: NewFeature,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdateFeature {
    pub feature_id: FeatureId,
    pub changes: FeatureChanges,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemoveFeature {
    pub feature_id: FeatureId,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateFunction {
    pub function: NewFunction,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdateFunction {
    pub function_id: FunctionId,
    pub changes: FunctionChanges,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeleteFunction {
    pub function_id: FunctionId,
    pub at: OffsetDateTime,
}

/// Every command a project decides; each is its own struct, so a rule takes one argument.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectCommand {
    CreateProject(CreateProject),
    UpdateProject(UpdateProject),
    ArchiveProject(ArchiveProject),
    AddMember(AddMember),
    RemoveMember(RemoveMember),
    AddFeature(AddFeature),
    UpdateFeature(UpdateFeature),
    RemoveFeature(RemoveFeature),
    CreateFunction(CreateFunction),
    UpdateFunction(UpdateFunction),
    DeleteFunction(DeleteFunction),
    /// An applied AI proposal's change (never from an HTTP body).
    ApplyAiContent(super::ai_content::ApplyAiContent),
}
