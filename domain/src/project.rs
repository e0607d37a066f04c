//! The project aggregate: a project, its features (crud entities with validated schemas) and its members.
//!
//! Features live in the project's stream, so every rule that spans features (unique names, unique
//! entities and plurals, references between entities) is decided against one consistent state.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::envelope::{DecodeError, DomainEvent, decode_tagged, decode_tagged_json, encode_tagged};
use crate::error::{ErrorClass, FieldError, Pointer, join};
use crate::ids::{FeatureId, ProjectId, UserId};
use crate::limits::Limits;
use crate::schema::EntitySchema;
use crate::user::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    Active,
    /// Terminal: `DELETE /projects/{id}` archives, and nothing changes afterwards.
    Archived,
}

/// How a project (or one feature) is to be generated. Only `manual` can be generated until the AI
/// layer exists; the others are accepted and stored, and refused at generation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenerationMode {
    #[default]
    Manual,
    AiAssisted,
    Mixed,
}

impl GenerationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GenerationMode::Manual => "manual",
            GenerationMode::AiAssisted => "ai_assisted",
            GenerationMode::Mixed => "mixed",
        }
    }

    /// Whether generating in this mode needs the AI layer.
    pub fn needs_ai(self) -> bool {
        !matches!(self, GenerationMode::Manual)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureType {
    Crud,
    Auth,
    FileStorage,
    BackgroundJobs,
    Analytics,
    CustomFunction,
}

impl FeatureType {
    pub const ALL: [FeatureType; 6] = [
        FeatureType::Crud,
        FeatureType::Auth,
        FeatureType::FileStorage,
        FeatureType::BackgroundJobs,
        FeatureType::Analytics,
        FeatureType::CustomFunction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FeatureType::Crud => "crud",
            FeatureType::Auth => "auth",
            FeatureType::FileStorage => "file_storage",
            FeatureType::BackgroundJobs => "background_jobs",
            FeatureType::Analytics => "analytics",
            FeatureType::CustomFunction => "custom_function",
        }
    }
}

impl fmt::Display for FeatureType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A project role given by the owner. Only read-only viewers exist so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectRole {
    #[default]
    Viewer,
}

/// What a user may do with a project, from [`Project::access_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Not visible: the API answers 404, as for a project that does not exist.
    None,
    /// May read current state; a write is answered 403.
    Viewer,
    Owner,
    /// A global admin, who may do everything.
    Admin,
}

impl Access {
    pub fn can_read(self) -> bool {
        !matches!(self, Access::None)
    }

    /// Writing includes managing members; viewers may not.
    pub fn can_write(self) -> bool {
        matches!(self, Access::Owner | Access::Admin)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: UserId,
    pub role: ProjectRole,
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
}

/// A feature as stored and served by `GET /projects/{id}/features/{feature_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub id: FeatureId,
    pub name: String,
    pub feature_type: FeatureType,
    /// `None` follows the project's mode.
    pub generation_mode: Option<GenerationMode>,
    /// Always `{}` until `docs/api.md` defines a type's configuration.
    pub configuration: Map<String, Value>,
    /// `Some` exactly for `crud` features.
    pub schema_definition: Option<EntitySchema>,
    pub is_enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Feature {
    /// The entity of a `crud` feature.
    pub fn entity(&self) -> Option<&EntitySchema> {
        self.schema_definition.as_ref()
    }

    /// The mode this feature is generated in, given its project's mode.
    pub fn effective_generation_mode(&self, project_mode: GenerationMode) -> GenerationMode {
        self.generation_mode.unwrap_or(project_mode)
    }
}

/// A project as its events describe it. Serialises with the field names of `GET /projects/{id}`
/// (the API adds `version`). `Project::default()` is the state before `ProjectCreated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub description: Option<String>,
    pub owner_id: UserId,
    pub status: ProjectStatus,
    pub generation_mode: GenerationMode,
    /// In creation order.
    pub features: Vec<Feature>,
    pub members: Vec<Member>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    // A serialised project exists; only `default()` builds the state before creation.
    #[serde(skip, default = "created")]
    created: bool,
}

fn created() -> bool {
    true
}

impl Default for Project {
    fn default() -> Self {
        Self {
            id: ProjectId::from_uuid(uuid::Uuid::nil()),
            name: String::new(),
            description: None,
            owner_id: UserId::from_uuid(uuid::Uuid::nil()),
            status: ProjectStatus::Active,
            generation_mode: GenerationMode::Manual,
            features: Vec::new(),
            members: Vec::new(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            created: false,
        }
    }
}

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

/// Facts about a project. Each carries the project id and a timestamp, so projections need
/// nothing but the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProjectEvent {
    #[serde(rename = "ProjectCreated")]
    ProjectCreated {
        project_id: ProjectId,
        owner_id: UserId,
        name: String,
        description: Option<String>,
        generation_mode: GenerationMode,
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
    },
    /// Only the changed members are present. `description`: absent = unchanged, `null` = cleared.
    #[serde(rename = "ProjectUpdated")]
    ProjectUpdated {
        project_id: ProjectId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "double_option"
        )]
        description: Option<Option<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        generation_mode: Option<GenerationMode>,
        #[serde(with = "time::serde::rfc3339")]
        updated_at: OffsetDateTime,
    },
    #[serde(rename = "ProjectArchived")]
    ProjectArchived {
        project_id: ProjectId,
        #[serde(with = "time::serde::rfc3339")]
        archived_at: OffsetDateTime,
    },
    /// Adds the member, or changes the role of an existing one.
    #[serde(rename = "ProjectMemberAdded")]
    ProjectMemberAdded {
        project_id: ProjectId,
        user_id: UserId,
        role: ProjectRole,
        #[serde(with = "time::serde::rfc3339")]
        added_at: OffsetDateTime,
    },
    #[serde(rename = "ProjectMemberRemoved")]
    ProjectMemberRemoved {
        project_id: ProjectId,
        user_id: UserId,
        #[serde(with = "time::serde::rfc3339")]
        removed_at: OffsetDateTime,
    },
    /// The whole normalised feature.
    #[serde(rename = "FeatureAdded")]
    FeatureAdded {
        project_id: ProjectId,
        feature_id: FeatureId,
        name: String,
        feature_type: FeatureType,
        generation_mode: Option<GenerationMode>,
        configuration: Map<String, Value>,
        schema_definition: Option<EntitySchema>,
        is_enabled: bool,
        #[serde(with = "time::serde::rfc3339")]
        added_at: OffsetDateTime,
    },
    /// Only the changed members are present. `generation_mode`: absent = unchanged, `null` =
    /// cleared (the feature follows the project again).
    #[serde(rename = "FeatureUpdated")]
    FeatureUpdated {
        project_id: ProjectId,
        feature_id: FeatureId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "double_option"
        )]
        generation_mode: Option<Option<GenerationMode>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        configuration: Option<Map<String, Value>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema_definition: Option<EntitySchema>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_enabled: Option<bool>,
        #[serde(with = "time::serde::rfc3339")]
        updated_at: OffsetDateTime,
    },
    #[serde(rename = "FeatureRemoved")]
    FeatureRemoved {
        project_id: ProjectId,
        feature_id: FeatureId,
        #[serde(with = "time::serde::rfc3339")]
        removed_at: OffsetDateTime,
    },
}

/// `Option<Option<T>>` as a JSON member: absent = `None`, `null` = `Some(None)`. Needs
/// `#[serde(default, skip_serializing_if = "Option::is_none")]` beside it.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

/// Which of a project's features an event changes, for read models that keep a row per feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeaturesTouched {
    None,
    /// Added or changed in place; the others keep their place in the list.
    One(FeatureId),
    /// The list as a whole: created anew, or shortened so later features move up.
    All,
}

impl ProjectEvent {
    /// What [`Project::evolve`] changes of the feature list when it folds this event.
    pub fn features_touched(&self) -> FeaturesTouched {
        match self {
            ProjectEvent::ProjectCreated { .. } | ProjectEvent::FeatureRemoved { .. } => {
                FeaturesTouched::All
            }
            ProjectEvent::FeatureAdded { feature_id, .. }
            | ProjectEvent::FeatureUpdated { feature_id, .. } => FeaturesTouched::One(*feature_id),
            ProjectEvent::ProjectUpdated { .. }
            | ProjectEvent::ProjectArchived { .. }
            | ProjectEvent::ProjectMemberAdded { .. }
            | ProjectEvent::ProjectMemberRemoved { .. } => FeaturesTouched::None,
        }
    }

    pub const TYPES: &'static [&'static str] = &[
        "ProjectCreated",
        "ProjectUpdated",
        "ProjectArchived",
        "ProjectMemberAdded",
        "ProjectMemberRemoved",
        "FeatureAdded",
        "FeatureUpdated",
        "FeatureRemoved",
    ];

    fn feature_added(project_id: ProjectId, feature: Feature, at: OffsetDateTime) -> Self {
        ProjectEvent::FeatureAdded {
            project_id,
            feature_id: feature.id,
            name: feature.name,
            feature_type: feature.feature_type,
            generation_mode: feature.generation_mode,
            configuration: feature.configuration,
            schema_definition: feature.schema_definition,
            is_enabled: feature.is_enabled,
            added_at: at,
        }
    }
}

impl DomainEvent for ProjectEvent {
    fn event_type(&self) -> &'static str {
        match self {
            ProjectEvent::ProjectCreated { .. } => "ProjectCreated",
            ProjectEvent::ProjectUpdated { .. } => "ProjectUpdated",
            ProjectEvent::ProjectArchived { .. } => "ProjectArchived",
            ProjectEvent::ProjectMemberAdded { .. } => "ProjectMemberAdded",
            ProjectEvent::ProjectMemberRemoved { .. } => "ProjectMemberRemoved",
            ProjectEvent::FeatureAdded { .. } => "FeatureAdded",
            ProjectEvent::FeatureUpdated { .. } => "FeatureUpdated",
            ProjectEvent::FeatureRemoved { .. } => "FeatureRemoved",
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

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProjectError {
    #[error("no such project")]
    NotFound,
    #[error("the project exists already")]
    AlreadyExists,
    /// Writes to an archived project answer 404 like its current-state reads (`docs/api.md`,
    /// reasons in `docs/ARCHITECTURE.md`); the HTTP layer picks the answer per route.
    #[error("the project is archived")]
    Archived,
    #[error("the project has no feature {0}")]
    FeatureNotFound(FeatureId),
    /// A fresh feature id collided: a caller bug or a replayed request, not a client mistake.
    #[error("the project has a feature {0} already")]
    FeatureAlreadyExists(FeatureId),
    #[error("user {0} is not a member of the project")]
    MemberNotFound(UserId),
    #[error("the owner of a project cannot be added as a member")]
    OwnerCannotBeMember,
    #[error("the project has the maximum of {limit} features")]
    FeatureLimitReached { limit: usize },
    #[error("the project has a feature named `{name}` already")]
    FeatureNameTaken { name: String },
    #[error("the project has an entity named `{entity}` already")]
    EntityNameTaken { entity: String },
    #[error("the project has an entity with the plural `{plural}` already")]
    PluralTaken { plural: String },
    /// The change would leave these entities referencing something gone, renamed or disabled.
    #[error("the entity is referenced by {}", .by.join(", "))]
    FeatureReferenced { by: Vec<String> },
    /// Every problem of the request, found at once.
    #[error("invalid request: {}", join(.0))]
    Validation(Vec<FieldError>),
    /// The project's state after the change would be larger than the configured limit.
    #[error("the project would be {bytes} bytes, over the limit of {limit}")]
    TooLarge { bytes: usize, limit: usize },
}

impl ProjectError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ProjectError::NotFound
            | ProjectError::FeatureNotFound(_)
            | ProjectError::MemberNotFound(_) => ErrorClass::NotFound,
            ProjectError::AlreadyExists
            | ProjectError::Archived
            | ProjectError::FeatureAlreadyExists(_)
            | ProjectError::FeatureLimitReached { .. }
            | ProjectError::FeatureNameTaken { .. }
            | ProjectError::EntityNameTaken { .. }
            | ProjectError::PluralTaken { .. }
            | ProjectError::FeatureReferenced { .. } => ErrorClass::Conflict,
            ProjectError::OwnerCannotBeMember
            | ProjectError::Validation(_)
            | ProjectError::TooLarge { .. } => ErrorClass::Invalid,
        }
    }
}

fn nothing_to_update() -> ProjectError {
    ProjectError::Validation(vec![FieldError::new(
        "",
        "nothing to update: give at least one field",
    )])
}

/// Reference targets after a change: entity name → whether its feature is enabled.
type Targets<'a> = HashMap<&'a str, bool>;

/// One feature of a request, checked on its own. `None` parts had problems, already recorded.
struct Draft {
    id: FeatureId,
    name: Option<String>,
    feature_type: FeatureType,
    generation_mode: Option<GenerationMode>,
    configuration: Map<String, Value>,
    schema: Option<EntitySchema>,
    /// The entity name a crud schema with problems still declares, so features referencing it
    /// are not also told that it does not exist.
    claimed_entity: Option<String>,
    is_enabled: bool,
    at: Pointer,
}

impl Draft {
    fn check(
        feature: &NewFeature,
        at: Pointer,
        limits: &Limits,
        errors: &mut Vec<FieldError>,
    ) -> Self {
        Self {
            id: feature.id,
            name: check_name(&feature.name, &at.key("name"), limits, errors),
            feature_type: feature.feature_type,
            generation_mode: feature.generation_mode,
            configuration: check_configuration(
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

    fn finish(self, at: OffsetDateTime) -> Option<Feature> {
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
        })
    }
}

fn check_name(
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

/// No feature type has configuration yet, so only `{}` (or nothing) is valid.
fn check_configuration(
    raw: Option<&Value>,
    at: &Pointer,
    errors: &mut Vec<FieldError>,
) -> Map<String, Value> {
    match raw {
        None => {}
        Some(Value::Object(members)) => {
            for key in members.keys() {
                errors.push(FieldError::at(
                    &at.key(key),
                    format!("unknown configuration key `{key}`: this feature type takes none yet"),
                ));
            }
        }
        Some(_) => errors.push(FieldError::at(at, "must be an object")),
    }
    Map::new()
}

/// `Some(schema)` for a valid crud schema, `Some(None)` for a non-crud feature without one, `None`
/// when a problem was recorded.
fn check_schema(
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
fn check_references(
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

impl Project {
    /// Whether a `ProjectCreated` has been folded in.
    pub fn exists(&self) -> bool {
        self.created
    }

    pub fn feature(&self, id: FeatureId) -> Option<&Feature> {
        self.features.iter().find(|f| f.id == id)
    }

    /// The crud features and their entities, in creation order.
    pub fn entities(&self) -> impl Iterator<Item = (&Feature, &EntitySchema)> {
        self.features
            .iter()
            .filter_map(|f| f.entity().map(|schema| (f, schema)))
    }

    pub fn is_member(&self, user: UserId) -> bool {
        self.members.iter().any(|m| m.user_id == user)
    }

    /// What `user`, whose global role is `global_role`, may do with this project. Viewers lose
    /// access when a project is archived; its owner and admins keep reading its history.
    pub fn access_for(&self, user: UserId, global_role: Role) -> Access {
        if !self.created {
            Access::None
        } else if global_role == Role::Admin {
            Access::Admin
        } else if user == self.owner_id {
            Access::Owner
        } else if self.status == ProjectStatus::Active && self.is_member(user) {
            Access::Viewer
        } else {
            Access::None
        }
    }

    pub fn decide(
        &self,
        command: &ProjectCommand,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        let events = self.decide_rules(command, limits)?;
        self.check_size(&events, limits)?;
        Ok(events)
    }

    /// A project's serialised state is bounded (`project_max_bytes`), so a read, a cached fold, a
    /// read-model row and a generation job stay bounded whatever a caller sends. Only changes that
    /// can grow the state are measured; shrinking ones always pass, so an oversized project stored
    /// under a larger limit can still be cut down.
    fn check_size(&self, events: &[ProjectEvent], limits: &Limits) -> Result<(), ProjectError> {
        let grows = events.iter().any(|e| {
            !matches!(
                e,
                ProjectEvent::ProjectArchived { .. }
                    | ProjectEvent::ProjectMemberRemoved { .. }
                    | ProjectEvent::FeatureRemoved { .. }
            )
        });
        if !grows {
            return Ok(());
        }
        let mut next = self.clone();
        for event in events {
            next.evolve(event);
        }
        let bytes = crate::serialized_len(&next);
        if bytes > limits.project_max_bytes {
            return Err(ProjectError::TooLarge {
                bytes,
                limit: limits.project_max_bytes,
            });
        }
        Ok(())
    }

    fn decide_rules(
        &self,
        command: &ProjectCommand,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        use ProjectCommand::*;
        if let CreateProject {
            project_id,
            owner_id,
            name,
            description,
            generation_mode,
            features,
            at,
        } = command
        {
            return self.create(
                *project_id,
                *owner_id,
                name,
                description.as_deref(),
                *generation_mode,
                features,
                *at,
                limits,
            );
        }
        if !self.created {
            return Err(ProjectError::NotFound);
        }
        if self.status == ProjectStatus::Archived {
            return Err(ProjectError::Archived);
        }
        let project_id = self.id;
        match command {
            CreateProject { .. } => Err(ProjectError::AlreadyExists),
            UpdateProject {
                name,
                description,
                generation_mode,
                at,
            } => self.update(
                name.as_deref(),
                description.as_ref(),
                *generation_mode,
                *at,
                limits,
            ),
            ArchiveProject { at } => Ok(vec![ProjectEvent::ProjectArchived {
                project_id,
                archived_at: *at,
            }]),
            AddMember { user_id, role, at } => {
                if *user_id == self.owner_id {
                    return Err(ProjectError::OwnerCannotBeMember);
                }
                let unchanged = self
                    .members
                    .iter()
                    .any(|m| m.user_id == *user_id && m.role == *role);
                if unchanged {
                    return Ok(vec![]);
                }
                Ok(vec![ProjectEvent::ProjectMemberAdded {
                    project_id,
                    user_id: *user_id,
                    role: *role,
                    added_at: *at,
                }])
            }
            RemoveMember { user_id, at } => {
                if !self.is_member(*user_id) {
                    return Err(ProjectError::MemberNotFound(*user_id));
                }
                Ok(vec![ProjectEvent::ProjectMemberRemoved {
                    project_id,
                    user_id: *user_id,
                    removed_at: *at,
                }])
            }
            AddFeature { feature, at } => self.add_feature(feature, *at, limits),
            UpdateFeature {
                feature_id,
                changes,
                at,
            } => self.update_feature(*feature_id, changes, *at, limits),
            RemoveFeature { feature_id, at } => self.remove_feature(*feature_id, *at),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &self,
        project_id: ProjectId,
        owner_id: UserId,
        name: &str,
        description: Option<&str>,
        generation_mode: Option<GenerationMode>,
        features: &[NewFeature],
        at: OffsetDateTime,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        if self.created {
            return Err(ProjectError::AlreadyExists);
        }
        for (i, feature) in features.iter().enumerate() {
            if features[..i].iter().any(|f| f.id == feature.id) {
                return Err(ProjectError::FeatureAlreadyExists(feature.id));
            }
        }

        let root = Pointer::root();
        let mut errors = Vec::new();
        let name = check_name(name, &root.key("name"), limits, &mut errors);
        if let Some(description) = description {
            if let Err(message) = limits.check_description(description) {
                errors.push(FieldError::at(&root.key("description"), message));
            }
        }
        if features.len() > limits.features_per_project {
            errors.push(FieldError::at(
                &root.key("features"),
                format!(
                    "must hold at most {} features, not {}",
                    limits.features_per_project,
                    features.len()
                ),
            ));
        }
        let drafts: Vec<Draft> = features
            .iter()
            .enumerate()
            .map(|(i, f)| Draft::check(f, root.key("features").index(i), limits, &mut errors))
            .collect();

        // Inside one request every clash is the request's own fault, so all are 422s.
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut entities: HashMap<&str, usize> = HashMap::new();
        let mut plurals: HashMap<&str, usize> = HashMap::new();
        let mut targets: Targets<'_> = HashMap::new();
        for (i, draft) in drafts.iter().enumerate() {
            if let Some(name) = &draft.name {
                match names.entry(name.to_lowercase()) {
                    Entry::Occupied(first) => errors.push(FieldError::at(
                        &draft.at.key("name"),
                        format!(
                            "repeats the name of feature {} (names are compared ignoring case)",
                            first.get()
                        ),
                    )),
                    Entry::Vacant(slot) => {
                        slot.insert(i);
                    }
                }
            }
            let Some(schema) = &draft.schema else {
                if let Some(entity) = &draft.claimed_entity {
                    targets.entry(entity).or_insert(draft.is_enabled);
                }
                continue;
            };
            let schema_at = draft.at.key("schema_definition");
            match entities.entry(&schema.entity) {
                Entry::Occupied(first) => errors.push(FieldError::at(
                    &schema_at.key("entity"),
                    format!(
                        "feature {} defines the entity `{}` already",
                        first.get(),
                        schema.entity
                    ),
                )),
                Entry::Vacant(slot) => {
                    slot.insert(i);
                    targets.insert(&schema.entity, draft.is_enabled);
                }
            }
            match plurals.entry(&schema.plural) {
                Entry::Occupied(first) => errors.push(FieldError::at(
                    &schema_at.key("plural"),
                    format!(
                        "feature {} uses the plural `{}` already",
                        first.get(),
                        schema.plural
                    ),
                )),
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
        }
        for draft in &drafts {
            if let Some(schema) = &draft.schema {
                check_references(
                    schema,
                    draft.is_enabled,
                    &targets,
                    &draft.at.key("schema_definition"),
                    &mut errors,
                );
            }
        }

        let features: Option<Vec<Feature>> = drafts.into_iter().map(|d| d.finish(at)).collect();
        let (Some(name), Some(features), true) = (name, features, errors.is_empty()) else {
            return Err(ProjectError::Validation(errors));
        };
        let mut events = Vec::with_capacity(features.len() + 1);
        events.push(ProjectEvent::ProjectCreated {
            project_id,
            owner_id,
            name,
            description: description.map(str::to_owned),
            generation_mode: generation_mode.unwrap_or_default(),
            created_at: at,
        });
        events.extend(
            features
                .into_iter()
                .map(|feature| ProjectEvent::feature_added(project_id, feature, at)),
        );
        Ok(events)
    }

    fn update(
        &self,
        name: Option<&str>,
        description: Option<&Option<String>>,
        generation_mode: Option<GenerationMode>,
        at: OffsetDateTime,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        if name.is_none() && description.is_none() && generation_mode.is_none() {
            return Err(nothing_to_update());
        }
        let root = Pointer::root();
        let mut errors = Vec::new();
        let name = name.and_then(|n| check_name(n, &root.key("name"), limits, &mut errors));
        if let Some(Some(description)) = description {
            if let Err(message) = limits.check_description(description) {
                errors.push(FieldError::at(&root.key("description"), message));
            }
        }
        if !errors.is_empty() {
            return Err(ProjectError::Validation(errors));
        }

        let name = name.filter(|n| *n != self.name);
        let description = description.filter(|d| **d != self.description).cloned();
        let generation_mode = generation_mode.filter(|m| *m != self.generation_mode);
        if name.is_none() && description.is_none() && generation_mode.is_none() {
            return Ok(vec![]);
        }
        Ok(vec![ProjectEvent::ProjectUpdated {
            project_id: self.id,
            name,
            description,
            generation_mode,
            updated_at: at,
        }])
    }

    /// Entity names of the project with whether their feature is enabled, leaving one feature out.
    fn targets(&self, except: Option<FeatureId>) -> Targets<'_> {
        self.entities()
            .filter(|(f, _)| Some(f.id) != except)
            .map(|(f, schema)| (schema.entity.as_str(), f.is_enabled))
            .collect()
    }

    /// The entities, other than `except`'s own, that reference `entity` (only enabled ones when
    /// `enabled_only`), sorted.
    fn referencing(&self, entity: &str, except: FeatureId, enabled_only: bool) -> Vec<String> {
        let mut by: Vec<String> = self
            .entities()
            .filter(|(f, schema)| {
                f.id != except
                    && (!enabled_only || f.is_enabled)
                    && schema.references_entity(entity)
            })
            .map(|(_, schema)| schema.entity.clone())
            .collect();
        by.sort();
        by.dedup();
        by
    }

    /// The 409s of adding or changing `feature`: its name, entity or plural used by another feature.
    fn check_taken(
        &self,
        feature_id: FeatureId,
        name: Option<&str>,
        schema: Option<&EntitySchema>,
    ) -> Result<(), ProjectError> {
        let others = || self.features.iter().filter(|f| f.id != feature_id);
        if let Some(name) = name {
            let lower = name.to_lowercase();
            if others().any(|f| f.name.to_lowercase() == lower) {
                return Err(ProjectError::FeatureNameTaken {
                    name: name.to_owned(),
                });
            }
        }
        if let Some(schema) = schema {
            let other_entities = || others().filter_map(Feature::entity);
            if other_entities().any(|s| s.entity == schema.entity) {
                return Err(ProjectError::EntityNameTaken {
                    entity: schema.entity.clone(),
                });
            }
            if other_entities().any(|s| s.plural == schema.plural) {
                return Err(ProjectError::PluralTaken {
                    plural: schema.plural.clone(),
                });
            }
        }
        Ok(())
    }

    fn add_feature(
        &self,
        feature: &NewFeature,
        at: OffsetDateTime,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        if self.feature(feature.id).is_some() {
            return Err(ProjectError::FeatureAlreadyExists(feature.id));
        }
        if self.features.len() >= limits.features_per_project {
            return Err(ProjectError::FeatureLimitReached {
                limit: limits.features_per_project,
            });
        }
        let mut errors = Vec::new();
        let draft = Draft::check(feature, Pointer::root(), limits, &mut errors);
        if let Some(schema) = &draft.schema {
            let mut targets = self.targets(None);
            // A self-reference is allowed; an entity clash is reported below as a conflict.
            targets.entry(&schema.entity).or_insert(draft.is_enabled);
            check_references(
                schema,
                draft.is_enabled,
                &targets,
                &Pointer::root().key("schema_definition"),
                &mut errors,
            );
        }
        let (Some(feature), true) = (draft.finish(at), errors.is_empty()) else {
            return Err(ProjectError::Validation(errors));
        };
        self.check_taken(feature.id, Some(&feature.name), feature.entity())?;
        Ok(vec![ProjectEvent::feature_added(self.id, feature, at)])
    }

    fn update_feature(
        &self,
        feature_id: FeatureId,
        changes: &FeatureChanges,
        at: OffsetDateTime,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        let current = self
            .feature(feature_id)
            .ok_or(ProjectError::FeatureNotFound(feature_id))?;
        if changes.is_empty() {
            return Err(nothing_to_update());
        }
        let root = Pointer::root();
        let mut errors = Vec::new();
        if changes.feature_type.is_some() {
            errors.push(FieldError::at(
                &root.key("feature_type"),
                "cannot change; remove the feature and add a new one",
            ));
        }
        let name = changes
            .name
            .as_deref()
            .and_then(|n| check_name(n, &root.key("name"), limits, &mut errors));
        let configuration = changes
            .configuration
            .as_ref()
            .map(|c| check_configuration(Some(c), &root.key("configuration"), &mut errors));
        let schema_at = root.key("schema_definition");
        let new_schema = changes
            .schema_definition
            .as_ref()
            .and_then(|raw| {
                check_schema(
                    current.feature_type,
                    Some(raw),
                    &schema_at,
                    limits,
                    &mut errors,
                )
            })
            .flatten();
        let enabled = changes.is_enabled.unwrap_or(current.is_enabled);

        let mut targets = self.targets(Some(feature_id));
        if let Some(schema) = &new_schema {
            targets.entry(&schema.entity).or_insert(enabled);
            check_references(schema, enabled, &targets, &schema_at, &mut errors);
        } else if let (Some(schema), true) = (current.entity(), enabled && !current.is_enabled) {
            // Enabling an entity whose targets are disabled would break the generated app.
            targets.entry(&schema.entity).or_insert(enabled);
            for (_, field, target) in schema.references() {
                if targets.get(target) == Some(&false) {
                    errors.push(FieldError::at(
                        &root.key("is_enabled"),
                        format!(
                            "field `{}` references `{target}`, which is disabled; enable it first",
                            field.name
                        ),
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(ProjectError::Validation(errors));
        }

        let name = name.filter(|n| *n != current.name);
        let generation_mode = changes
            .generation_mode
            .filter(|m| *m != current.generation_mode);
        let configuration = configuration.filter(|c| *c != current.configuration);
        let new_schema = new_schema.filter(|s| Some(s) != current.schema_definition.as_ref());
        let is_enabled = changes.is_enabled.filter(|e| *e != current.is_enabled);
        if name.is_none()
            && generation_mode.is_none()
            && configuration.is_none()
            && new_schema.is_none()
            && is_enabled.is_none()
        {
            return Ok(vec![]);
        }

        self.check_taken(feature_id, name.as_deref(), new_schema.as_ref())?;
        if let Some(old) = current.entity() {
            let renamed = new_schema.as_ref().is_some_and(|s| s.entity != old.entity);
            if renamed {
                let by = self.referencing(&old.entity, feature_id, false);
                if !by.is_empty() {
                    return Err(ProjectError::FeatureReferenced { by });
                }
            }
            if is_enabled == Some(false) {
                let by = self.referencing(&old.entity, feature_id, true);
                if !by.is_empty() {
                    return Err(ProjectError::FeatureReferenced { by });
                }
            }
        }
        Ok(vec![ProjectEvent::FeatureUpdated {
            project_id: self.id,
            feature_id,
            name,
            generation_mode,
            configuration,
            schema_definition: new_schema,
            is_enabled,
            updated_at: at,
        }])
    }

    fn remove_feature(
        &self,
        feature_id: FeatureId,
        at: OffsetDateTime,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        let current = self
            .feature(feature_id)
            .ok_or(ProjectError::FeatureNotFound(feature_id))?;
        if let Some(schema) = current.entity() {
            let by = self.referencing(&schema.entity, feature_id, false);
            if !by.is_empty() {
                return Err(ProjectError::FeatureReferenced { by });
            }
        }
        Ok(vec![ProjectEvent::FeatureRemoved {
            project_id: self.id,
            feature_id,
            removed_at: at,
        }])
    }

    pub fn evolve(&mut self, event: &ProjectEvent) {
        match event {
            ProjectEvent::ProjectCreated {
                project_id,
                owner_id,
                name,
                description,
                generation_mode,
                created_at,
            } => {
                *self = Project {
                    id: *project_id,
                    name: name.clone(),
                    description: description.clone(),
                    owner_id: *owner_id,
                    status: ProjectStatus::Active,
                    generation_mode: *generation_mode,
                    features: Vec::new(),
                    members: Vec::new(),
                    created_at: *created_at,
                    updated_at: *created_at,
                    created: true,
                };
            }
            ProjectEvent::ProjectUpdated {
                name,
                description,
                generation_mode,
                updated_at,
                ..
            } => {
                if let Some(name) = name {
                    self.name = name.clone();
                }
                if let Some(description) = description {
                    self.description = description.clone();
                }
                if let Some(mode) = generation_mode {
                    self.generation_mode = *mode;
                }
                self.updated_at = *updated_at;
            }
            ProjectEvent::ProjectArchived { archived_at, .. } => {
                self.status = ProjectStatus::Archived;
                self.updated_at = *archived_at;
            }
            ProjectEvent::ProjectMemberAdded {
                user_id,
                role,
                added_at,
                ..
            } => {
                match self.members.iter_mut().find(|m| m.user_id == *user_id) {
                    Some(member) => member.role = *role,
                    None => self.members.push(Member {
                        user_id: *user_id,
                        role: *role,
                        added_at: *added_at,
                    }),
                }
                self.updated_at = *added_at;
            }
            ProjectEvent::ProjectMemberRemoved {
                user_id,
                removed_at,
                ..
            } => {
                self.members.retain(|m| m.user_id != *user_id);
                self.updated_at = *removed_at;
            }
            ProjectEvent::FeatureAdded {
                feature_id,
                name,
                feature_type,
                generation_mode,
                configuration,
                schema_definition,
                is_enabled,
                added_at,
                ..
            } => {
                self.features.push(Feature {
                    id: *feature_id,
                    name: name.clone(),
                    feature_type: *feature_type,
                    generation_mode: *generation_mode,
                    configuration: configuration.clone(),
                    schema_definition: schema_definition.clone(),
                    is_enabled: *is_enabled,
                    created_at: *added_at,
                    updated_at: *added_at,
                });
                self.updated_at = *added_at;
            }
            ProjectEvent::FeatureUpdated {
                feature_id,
                name,
                generation_mode,
                configuration,
                schema_definition,
                is_enabled,
                updated_at,
                ..
            } => {
                if let Some(feature) = self.features.iter_mut().find(|f| f.id == *feature_id) {
                    if let Some(name) = name {
                        feature.name = name.clone();
                    }
                    if let Some(mode) = generation_mode {
                        feature.generation_mode = *mode;
                    }
                    if let Some(configuration) = configuration {
                        feature.configuration = configuration.clone();
                    }
                    if let Some(schema) = schema_definition {
                        feature.schema_definition = Some(schema.clone());
                    }
                    if let Some(enabled) = is_enabled {
                        feature.is_enabled = *enabled;
                    }
                    feature.updated_at = *updated_at;
                }
                self.updated_at = *updated_at;
            }
            ProjectEvent::FeatureRemoved {
                feature_id,
                removed_at,
                ..
            } => {
                self.features.retain(|f| f.id != *feature_id);
                self.updated_at = *removed_at;
            }
        }
    }
}

impl crate::Decider for Project {
    type Command = ProjectCommand;
    type Event = ProjectEvent;
    type Error = ProjectError;

    fn decide(
        &self,
        command: &ProjectCommand,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        Project::decide(self, command, limits)
    }

    fn evolve(&mut self, event: &ProjectEvent) {
        Project::evolve(self, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{feature_id, given, given_nothing, project_id, t, t0, user_id};
    use serde_json::json;

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
        ProjectCommand::CreateProject {
            project_id: pid(),
            owner_id: owner(),
            name: "  Shop ".into(),
            description: None,
            generation_mode: None,
            features,
            at: t0(),
        }
    }

    fn crud(id: u128, name: &str, raw: Value) -> NewFeature {
        NewFeature::new(feature_id(id), name, FeatureType::Crud).with_schema(raw)
    }

    fn add(feature: NewFeature) -> ProjectCommand {
        ProjectCommand::AddFeature { feature, at: t(1) }
    }

    fn update(id: u128, changes: FeatureChanges) -> ProjectCommand {
        ProjectCommand::UpdateFeature {
            feature_id: feature_id(id),
            changes,
            at: t(3),
        }
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

    // --- creation ---

    #[test]
    fn creating_a_project_records_it_with_the_manual_mode_by_default() {
        let project = given_nothing::<Project>()
            .when(create(vec![]))
            .then([created()]);
        assert!(project.exists());
        assert_eq!(project.name, "Shop");
        assert_eq!(project.status, ProjectStatus::Active);
        assert_eq!(project.generation_mode, GenerationMode::Manual);
    }

    #[test]
    fn the_wizard_creates_the_project_and_its_features_in_one_decision() {
        let project = given_nothing::<Project>()
            .when(create(vec![
                crud(2, "Orders", order_raw()),
                crud(1, "Customers", customer_raw()),
                NewFeature::new(feature_id(3), "Login", FeatureType::Auth),
            ]))
            .then([
                created(),
                added_at_t0(crud_added(2, "Orders", order_raw())),
                added_at_t0(crud_added(1, "Customers", customer_raw())),
                added_at_t0(added(3, "Login", FeatureType::Auth, None)),
            ]);
        let names: Vec<_> = project.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["Orders", "Customers", "Login"]);
    }

    #[test]
    fn creating_a_project_twice_is_refused() {
        given([created()])
            .when(create(vec![]))
            .then_err(ProjectError::AlreadyExists);
    }

    #[test]
    fn a_project_name_must_have_1_to_100_characters() {
        let mut command = create(vec![]);
        if let ProjectCommand::CreateProject { name, .. } = &mut command {
            *name = "x".repeat(101);
        }
        given_nothing::<Project>()
            .when(command)
            .then_err(ProjectError::Validation(vec![FieldError::new(
                "/name",
                "must be at most 100 characters",
            )]));
    }

    #[test]
    fn a_description_may_be_empty_but_not_over_2000_characters() {
        let with_description = |d: String| ProjectCommand::CreateProject {
            project_id: pid(),
            owner_id: owner(),
            name: "Shop".into(),
            description: Some(d),
            generation_mode: Some(GenerationMode::Mixed),
            features: vec![],
            at: t0(),
        };
        let project = given_nothing::<Project>()
            .when(with_description(String::new()))
            .then([ProjectEvent::ProjectCreated {
                project_id: pid(),
                owner_id: owner(),
                name: "Shop".into(),
                description: Some(String::new()),
                generation_mode: GenerationMode::Mixed,
                created_at: t0(),
            }]);
        assert_eq!(project.description.as_deref(), Some(""));
        let outcome = given_nothing::<Project>()
            .when(with_description("x".repeat(2001)))
            .outcome();
        assert_eq!(invalid_at(outcome), ["/description"]);
    }

    #[test]
    fn a_crud_feature_without_a_schema_is_rejected() {
        let outcome = given_nothing::<Project>()
            .when(create(vec![NewFeature::new(
                feature_id(1),
                "Orders",
                FeatureType::Crud,
            )]))
            .outcome();
        assert_eq!(
            invalid(outcome),
            [(
                "/features/0/schema_definition".to_owned(),
                "is required for crud features".to_owned()
            )]
        );
        let outcome = given([created()])
            .when(add(NewFeature {
                schema_definition: Some(Value::Null),
                ..NewFeature::new(feature_id(1), "Orders", FeatureType::Crud)
            }))
            .outcome();
        assert_eq!(invalid_at(outcome), ["/schema_definition"]);
    }

    #[test]
    fn a_feature_of_another_type_must_not_have_a_schema() {
        let outcome = given_nothing::<Project>()
            .when(create(vec![
                NewFeature::new(feature_id(1), "Login", FeatureType::Auth),
                NewFeature::new(feature_id(2), "Files", FeatureType::FileStorage)
                    .with_schema(customer_raw()),
            ]))
            .outcome();
        assert_eq!(
            invalid(outcome),
            [(
                "/features/1/schema_definition".to_owned(),
                "only crud features have a schema_definition, not file_storage features".to_owned()
            )]
        );
    }

    #[test]
    fn configuration_must_be_absent_or_empty() {
        let with_configuration = |c: Value| NewFeature {
            configuration: Some(c),
            ..NewFeature::new(feature_id(1), "Login", FeatureType::Auth)
        };
        given([created()])
            .when(add(with_configuration(json!({}))))
            .then([added(1, "Login", FeatureType::Auth, None)]);
        let outcome = given_nothing::<Project>()
            .when(create(vec![with_configuration(
                json!({"provider": "x", "a/b": 1}),
            )]))
            .outcome();
        assert_eq!(
            invalid_at(outcome),
            [
                "/features/0/configuration/provider",
                "/features/0/configuration/a~1b"
            ]
        );
        let outcome = given([created()])
            .when(add(with_configuration(json!([]))))
            .outcome();
        assert_eq!(
            invalid(outcome),
            [("/configuration".to_owned(), "must be an object".to_owned())]
        );
    }

    #[test]
    fn schema_problems_in_the_wizard_point_into_the_feature() {
        let outcome = given_nothing::<Project>()
            .when(create(vec![
                crud(1, "Customers", customer_raw()),
                crud(
                    2,
                    "Orders",
                    json!({"entity": "order", "fields": [{"name": "select", "type": "text"}]}),
                ),
            ]))
            .outcome();
        assert_eq!(
            invalid_at(outcome),
            ["/features/1/schema_definition/fields/0/name"]
        );
    }

    #[test]
    fn duplicate_feature_names_in_one_request_are_rejected_ignoring_case() {
        let outcome = given_nothing::<Project>()
            .when(create(vec![
                NewFeature::new(feature_id(1), "Login", FeatureType::Auth),
                NewFeature::new(feature_id(2), " LOGIN ", FeatureType::Auth),
            ]))
            .outcome();
        assert_eq!(
            invalid(outcome),
            [(
                "/features/1/name".to_owned(),
                "repeats the name of feature 0 (names are compared ignoring case)".to_owned()
            )]
        );
    }

    #[test]
    fn duplicate_entities_and_plurals_in_one_request_are_rejected() {
        let outcome = given_nothing::<Project>()
            .when(create(vec![
                crud(1, "A", raw_entity("thing", None)),
                crud(2, "B", raw_entity("thing", None)),
                crud(3, "C", json!({"entity": "other", "plural": "things", "fields": [{"name": "a", "type": "text"}]})),
            ]))
            .outcome();
        assert_eq!(
            invalid_at(outcome),
            [
                "/features/1/schema_definition/entity",
                "/features/1/schema_definition/plural",
                "/features/2/schema_definition/plural"
            ]
        );
    }

    #[test]
    fn a_reference_to_an_entity_missing_from_the_project_is_rejected() {
        let outcome = given_nothing::<Project>()
            .when(create(vec![crud(1, "Orders", order_raw())]))
            .outcome();
        assert_eq!(
            invalid(outcome),
            [(
                "/features/0/schema_definition/fields/4/references".to_owned(),
                "`customer` is not a crud entity of this project".to_owned()
            )]
        );
        let outcome = given([created()])
            .when(add(crud(2, "Orders", order_raw())))
            .outcome();
        assert_eq!(
            invalid_at(outcome),
            ["/schema_definition/fields/4/references"]
        );
    }

    #[test]
    fn a_reference_to_a_non_crud_feature_name_is_rejected() {
        let outcome = given([created(), added(1, "auth", FeatureType::Auth, None)])
            .when(add(crud(2, "Notes", raw_entity("note", Some("auth")))))
            .outcome();
        assert_eq!(
            invalid_at(outcome),
            ["/schema_definition/fields/1/references"]
        );
    }

    #[test]
    fn a_broken_entity_does_not_also_make_its_references_fail() {
        let broken_customer = json!({"entity": "customer", "fields": []});
        let outcome = given_nothing::<Project>()
            .when(create(vec![
                crud(1, "Customers", broken_customer),
                crud(2, "Orders", order_raw()),
            ]))
            .outcome();
        assert_eq!(
            invalid_at(outcome),
            ["/features/0/schema_definition/fields"]
        );
    }

    #[test]
    fn an_enabled_entity_cannot_reference_a_disabled_one() {
        let outcome = given_nothing::<Project>()
            .when(create(vec![
                NewFeature {
                    is_enabled: false,
                    ..crud(1, "Customers", customer_raw())
                },
                crud(2, "Orders", order_raw()),
            ]))
            .outcome();
        assert_eq!(
            invalid(outcome),
            [(
                "/features/1/schema_definition/fields/4/references".to_owned(),
                "`customer` is disabled; an enabled entity cannot reference it".to_owned()
            )]
        );
        // A disabled entity may.
        given([
            created(),
            crud_added(1, "Customers", customer_raw()),
            disabled(1),
        ])
        .when(add(NewFeature {
            is_enabled: false,
            ..crud(2, "Orders", order_raw())
        }))
        .then([disabled_added(crud_added(2, "Orders", order_raw()))]);
    }

    #[test]
    fn a_change_that_would_make_the_project_larger_than_its_limit_is_refused() {
        let limits = Limits {
            project_max_bytes: 4096,
            ..Limits::default()
        };
        let outcome = given([created()])
            .with_limits(limits.clone())
            .when(add(crud(1, "Customers", customer_raw())))
            .outcome();
        assert!(outcome.is_ok(), "{outcome:?}");
        let big = given([created(), crud_added(1, "Customers", customer_raw())])
            .with_limits(Limits {
                project_max_bytes: 1200,
                ..limits
            })
            .when(add(crud(2, "Orders", order_raw())))
            .outcome();
        assert!(
            matches!(big, Err(ProjectError::TooLarge { limit: 1200, .. })),
            "{big:?}"
        );
        // Removing a feature shrinks a project, so it passes whatever its size.
        given([created(), crud_added(1, "Customers", customer_raw())])
            .with_limits(Limits {
                project_max_bytes: 10,
                ..Limits::default()
            })
            .when(ProjectCommand::RemoveFeature {
                feature_id: feature_id(1),
                at: t(5),
            })
            .outcome()
            .expect("a removal is never too large");
    }

    #[test]
    fn an_entity_may_reference_itself() {
        let raw = raw_entity("category", Some("category"));
        given([created()])
            .when(add(crud(1, "Categories", raw.clone())))
            .then([crud_added(1, "Categories", raw)]);
    }

    #[test]
    fn too_many_features_in_the_wizard_are_rejected() {
        let limits = Limits {
            features_per_project: 1,
            ..Limits::default()
        };
        let outcome = given_nothing::<Project>()
            .with_limits(limits)
            .when(create(vec![
                NewFeature::new(feature_id(1), "A", FeatureType::Auth),
                NewFeature::new(feature_id(2), "B", FeatureType::Analytics),
            ]))
            .outcome();
        assert_eq!(
            invalid(outcome),
            [(
                "/features".to_owned(),
                "must hold at most 1 features, not 2".to_owned()
            )]
        );
    }

    #[test]
    fn every_problem_of_the_wizard_is_reported_at_once() {
        let mut command = create(vec![
            NewFeature::new(feature_id(1), "", FeatureType::Auth),
            crud(2, "Orders", order_raw()),
            NewFeature::new(feature_id(3), "Jobs", FeatureType::BackgroundJobs)
                .with_schema(json!({})),
        ]);
        if let ProjectCommand::CreateProject { name, .. } = &mut command {
            *name = " ".into();
        }
        let outcome = given_nothing::<Project>().when(command).outcome();
        assert_eq!(
            invalid_at(outcome),
            [
                "/name",
                "/features/0/name",
                "/features/2/schema_definition",
                "/features/1/schema_definition/fields/4/references"
            ]
        );
    }

    #[test]
    fn repeated_feature_ids_in_the_wizard_are_a_caller_bug() {
        given_nothing::<Project>()
            .when(create(vec![
                NewFeature::new(feature_id(1), "A", FeatureType::Auth),
                NewFeature::new(feature_id(1), "B", FeatureType::Auth),
            ]))
            .then_err(ProjectError::FeatureAlreadyExists(feature_id(1)));
    }

    // --- existence and archiving ---

    fn every_later_command() -> Vec<ProjectCommand> {
        vec![
            ProjectCommand::UpdateProject {
                name: Some("New".into()),
                description: None,
                generation_mode: None,
                at: t(5),
            },
            ProjectCommand::ArchiveProject { at: t(5) },
            ProjectCommand::AddMember {
                user_id: viewer(),
                role: ProjectRole::Viewer,
                at: t(5),
            },
            ProjectCommand::RemoveMember {
                user_id: viewer(),
                at: t(5),
            },
            add(NewFeature::new(feature_id(9), "Login", FeatureType::Auth)),
            update(
                1,
                FeatureChanges {
                    name: Some("X".into()),
                    ..FeatureChanges::default()
                },
            ),
            ProjectCommand::RemoveFeature {
                feature_id: feature_id(1),
                at: t(5),
            },
        ]
    }

    #[test]
    fn commands_on_a_project_never_created_are_refused_as_not_found() {
        for command in every_later_command() {
            given_nothing::<Project>()
                .when(command)
                .then_err(ProjectError::NotFound);
        }
    }

    #[test]
    fn archiving_a_project_records_it() {
        let project = given([created()])
            .when(ProjectCommand::ArchiveProject { at: t(9) })
            .then([archived()]);
        assert_eq!(project.status, ProjectStatus::Archived);
        assert_eq!(project.updated_at, t(9));
    }

    #[test]
    fn nothing_changes_on_an_archived_project() {
        let mut history = shop();
        history.push(archived());
        for command in every_later_command() {
            given(history.clone())
                .when(command)
                .then_err(ProjectError::Archived);
        }
    }

    // --- project updates ---

    fn update_project(
        name: Option<&str>,
        description: Option<Option<&str>>,
        generation_mode: Option<GenerationMode>,
    ) -> ProjectCommand {
        ProjectCommand::UpdateProject {
            name: name.map(str::to_owned),
            description: description.map(|d| d.map(str::to_owned)),
            generation_mode,
            at: t(5),
        }
    }

    #[test]
    fn an_update_without_any_field_is_rejected() {
        given([created()])
            .when(update_project(None, None, None))
            .then_err(ProjectError::Validation(vec![FieldError::new(
                "",
                "nothing to update: give at least one field",
            )]));
    }

    #[test]
    fn an_update_records_only_the_changed_fields() {
        let project = given([created()])
            .when(update_project(
                Some(" Shop "),
                Some(Some("Sells things")),
                Some(GenerationMode::Manual),
            ))
            .then([ProjectEvent::ProjectUpdated {
                project_id: pid(),
                name: None,
                description: Some(Some("Sells things".into())),
                generation_mode: None,
                updated_at: t(5),
            }]);
        assert_eq!(project.description.as_deref(), Some("Sells things"));
        assert_eq!(project.updated_at, t(5));
    }

    #[test]
    fn an_update_that_changes_nothing_records_nothing() {
        given([created()])
            .when(update_project(
                Some("Shop"),
                Some(None),
                Some(GenerationMode::Manual),
            ))
            .then_nothing();
    }

    #[test]
    fn a_null_description_clears_it() {
        let described = ProjectEvent::ProjectUpdated {
            project_id: pid(),
            name: None,
            description: Some(Some("Old".into())),
            generation_mode: None,
            updated_at: t(4),
        };
        let cleared = ProjectEvent::ProjectUpdated {
            project_id: pid(),
            name: None,
            description: Some(None),
            generation_mode: None,
            updated_at: t(5),
        };
        let project = given([created(), described])
            .when(update_project(None, Some(None), None))
            .then([cleared.clone()]);
        assert_eq!(project.description, None);
        assert_eq!(cleared.to_data()["description"], Value::Null);
    }

    #[test]
    fn a_project_update_distinguishes_unchanged_from_cleared_in_storage() {
        let renamed = ProjectEvent::ProjectUpdated {
            project_id: pid(),
            name: Some("New".into()),
            description: None,
            generation_mode: Some(GenerationMode::AiAssisted),
            updated_at: t(5),
        };
        let data = renamed.to_data();
        assert!(data.get("description").is_none());
        assert_eq!(data["generation_mode"], "ai_assisted");
        assert_eq!(
            ProjectEvent::from_data("ProjectUpdated", data).unwrap(),
            renamed
        );

        let cleared = ProjectEvent::ProjectUpdated {
            project_id: pid(),
            name: None,
            description: Some(None),
            generation_mode: None,
            updated_at: t(5),
        };
        let data = cleared.to_data();
        assert_eq!(data.get("description"), Some(&Value::Null));
        assert!(data.get("name").is_none());
        assert_eq!(
            ProjectEvent::from_data("ProjectUpdated", data).unwrap(),
            cleared
        );
    }

    #[test]
    fn an_update_with_a_bad_name_and_description_reports_both() {
        let outcome = given([created()])
            .when(update_project(
                Some(""),
                Some(Some(&"x".repeat(2001))),
                None,
            ))
            .outcome();
        assert_eq!(invalid_at(outcome), ["/name", "/description"]);
    }

    // --- members ---

    #[test]
    fn an_event_changes_no_feature_beyond_the_ones_it_says_it_touches() {
        // Given a shop with three features
        let mut project = Project::default();
        let mut history = shop();
        history.push(crud_added(3, "Notes", raw_entity("note", None)));
        let later = vec![
            // When it is renamed, shared, a feature is disabled, one added, one removed
            ProjectEvent::ProjectUpdated {
                project_id: pid(),
                name: Some("Shop 2".into()),
                description: None,
                generation_mode: None,
                updated_at: t(3),
            },
            member_added(),
            disabled(1),
            crud_added(4, "Tags", raw_entity("tag", None)),
            ProjectEvent::FeatureRemoved {
                project_id: pid(),
                feature_id: feature_id(3),
                removed_at: t(5),
            },
            archived(),
        ];
        for event in history.iter().chain(&later) {
            let before = project.features.clone();
            project.evolve(event);
            // Then every feature it does not name keeps its content and its place
            match event.features_touched() {
                FeaturesTouched::None => assert_eq!(project.features, before, "{event:?}"),
                FeaturesTouched::One(id) => {
                    let others = |fs: &[Feature]| -> Vec<Feature> {
                        fs.iter().filter(|f| f.id != id).cloned().collect()
                    };
                    assert_eq!(others(&project.features), others(&before), "{event:?}");
                    assert!(project.features.iter().any(|f| f.id == id));
                }
                FeaturesTouched::All => {}
            }
        }
        assert_eq!(
            later[4].features_touched(),
            FeaturesTouched::All,
            "a removal moves the later features up"
        );
        assert_eq!(project.features.len(), 3);
    }

    fn member_added() -> ProjectEvent {
        ProjectEvent::ProjectMemberAdded {
            project_id: pid(),
            user_id: viewer(),
            role: ProjectRole::Viewer,
            added_at: t(2),
        }
    }

    #[test]
    fn the_owner_adds_a_viewer() {
        let project = given([created()])
            .when(ProjectCommand::AddMember {
                user_id: viewer(),
                role: ProjectRole::Viewer,
                at: t(2),
            })
            .then([member_added()]);
        assert_eq!(
            project.members,
            [Member {
                user_id: viewer(),
                role: ProjectRole::Viewer,
                added_at: t(2)
            }]
        );
    }

    #[test]
    fn adding_a_member_again_with_the_same_role_changes_nothing() {
        given([created(), member_added()])
            .when(ProjectCommand::AddMember {
                user_id: viewer(),
                role: ProjectRole::Viewer,
                at: t(3),
            })
            .then_nothing();
    }

    #[test]
    fn the_owner_cannot_be_added_as_a_member() {
        given([created()])
            .when(ProjectCommand::AddMember {
                user_id: owner(),
                role: ProjectRole::Viewer,
                at: t(2),
            })
            .then_err(ProjectError::OwnerCannotBeMember);
    }

    #[test]
    fn a_member_is_removed() {
        let project = given([created(), member_added()])
            .when(ProjectCommand::RemoveMember {
                user_id: viewer(),
                at: t(3),
            })
            .then([ProjectEvent::ProjectMemberRemoved {
                project_id: pid(),
                user_id: viewer(),
                removed_at: t(3),
            }]);
        assert!(project.members.is_empty());
    }

    #[test]
    fn removing_a_non_member_is_refused() {
        given([created()])
            .when(ProjectCommand::RemoveMember {
                user_id: viewer(),
                at: t(3),
            })
            .then_err(ProjectError::MemberNotFound(viewer()));
    }

    // --- adding features ---

    #[test]
    fn an_added_crud_feature_stores_the_normalised_schema() {
        let project = given([created(), crud_added(1, "Customers", customer_raw())])
            .when(add(crud(2, "Orders", order_raw())))
            .then([crud_added(2, "Orders", order_raw())]);
        let orders = project.feature(feature_id(2)).unwrap();
        let schema = orders.entity().unwrap();
        assert!(matches!(
            schema.field("code").unwrap().kind,
            crate::schema::FieldKind::String {
                max_length: 255,
                ..
            }
        ));
        assert_eq!((orders.created_at, orders.updated_at), (t(1), t(1)));
    }

    #[test]
    fn an_added_feature_keeps_its_own_generation_mode() {
        let feature = NewFeature {
            generation_mode: Some(GenerationMode::AiAssisted),
            ..NewFeature::new(feature_id(1), "Login", FeatureType::Auth)
        };
        let project = given([created()]).when(add(feature)).then([with_mode(
            added(1, "Login", FeatureType::Auth, None),
            GenerationMode::AiAssisted,
        )]);
        let login = project.feature(feature_id(1)).unwrap();
        assert_eq!(
            login.effective_generation_mode(project.generation_mode),
            GenerationMode::AiAssisted
        );
    }

    #[test]
    fn a_feature_name_taken_in_the_project_is_a_conflict_ignoring_case() {
        given(shop())
            .when(add(NewFeature::new(
                feature_id(3),
                "  orders",
                FeatureType::Auth,
            )))
            .then_err(ProjectError::FeatureNameTaken {
                name: "orders".into(),
            });
    }

    #[test]
    fn an_entity_name_or_plural_taken_in_the_project_is_a_conflict() {
        given(shop())
            .when(add(crud(3, "Clients", customer_raw())))
            .then_err(ProjectError::EntityNameTaken {
                entity: "customer".into(),
            });
        given(shop())
            .when(add(crud(3, "Purchases", json!({"entity": "purchase", "plural": "orders", "fields": [{"name": "a", "type": "text"}]}))))
            .then_err(ProjectError::PluralTaken {
                plural: "orders".into(),
            });
    }

    #[test]
    fn adding_a_feature_with_an_existing_id_is_refused() {
        given(shop())
            .when(add(NewFeature::new(
                feature_id(1),
                "Login",
                FeatureType::Auth,
            )))
            .then_err(ProjectError::FeatureAlreadyExists(feature_id(1)));
    }

    #[test]
    fn a_project_holds_at_most_the_feature_limit() {
        let limits = Limits {
            features_per_project: 2,
            ..Limits::default()
        };
        given(shop())
            .with_limits(limits)
            .when(add(NewFeature::new(
                feature_id(3),
                "Login",
                FeatureType::Auth,
            )))
            .then_err(ProjectError::FeatureLimitReached { limit: 2 });
    }

    // --- updating features ---

    #[test]
    fn updating_an_unknown_feature_is_refused() {
        given(shop())
            .when(update(
                9,
                FeatureChanges {
                    name: Some("X".into()),
                    ..FeatureChanges::default()
                },
            ))
            .then_err(ProjectError::FeatureNotFound(feature_id(9)));
    }

    #[test]
    fn a_feature_update_without_any_field_is_rejected() {
        given(shop())
            .when(update(1, FeatureChanges::default()))
            .then_err(ProjectError::Validation(vec![FieldError::new(
                "",
                "nothing to update: give at least one field",
            )]));
    }

    #[test]
    fn the_feature_type_cannot_change() {
        let outcome = given(shop())
            .when(update(
                1,
                FeatureChanges {
                    feature_type: Some(FeatureType::Crud),
                    ..FeatureChanges::default()
                },
            ))
            .outcome();
        assert_eq!(invalid_at(outcome), ["/feature_type"]);
    }

    #[test]
    fn a_feature_is_renamed() {
        let project = given(shop())
            .when(update(
                1,
                FeatureChanges {
                    name: Some(" Clients ".into()),
                    ..FeatureChanges::default()
                },
            ))
            .then([feature_updated(
                1,
                Changed {
                    name: Some("Clients".into()),
                    ..Changed::default()
                },
            )]);
        let feature = project.feature(feature_id(1)).unwrap();
        assert_eq!(
            (feature.name.as_str(), feature.updated_at),
            ("Clients", t(3))
        );
    }

    #[test]
    fn a_feature_may_change_the_case_of_its_own_name_but_not_take_another() {
        given(shop())
            .when(update(
                1,
                FeatureChanges {
                    name: Some("CUSTOMERS".into()),
                    ..FeatureChanges::default()
                },
            ))
            .then([feature_updated(
                1,
                Changed {
                    name: Some("CUSTOMERS".into()),
                    ..Changed::default()
                },
            )]);
        given(shop())
            .when(update(
                1,
                FeatureChanges {
                    name: Some("orders".into()),
                    ..FeatureChanges::default()
                },
            ))
            .then_err(ProjectError::FeatureNameTaken {
                name: "orders".into(),
            });
    }

    #[test]
    fn a_feature_update_that_changes_nothing_records_nothing() {
        given(shop())
            .when(update(
                2,
                FeatureChanges {
                    name: Some("Orders".into()),
                    generation_mode: Some(None),
                    configuration: Some(json!({})),
                    schema_definition: Some(order_raw()),
                    is_enabled: Some(true),
                    ..FeatureChanges::default()
                },
            ))
            .then_nothing();
    }

    #[test]
    fn a_new_schema_is_stored_normalised() {
        let raw = json!({"entity": "customer", "fields": [
            {"name": "email", "type": "string", "required": true},
            {"name": "vip", "type": "boolean", "default": false}
        ]});
        let project = given(shop())
            .when(update(
                1,
                FeatureChanges {
                    schema_definition: Some(raw.clone()),
                    ..FeatureChanges::default()
                },
            ))
            .then([feature_updated(
                1,
                Changed {
                    schema_definition: Some(schema(raw)),
                    ..Changed::default()
                },
            )]);
        assert_eq!(
            project
                .feature(feature_id(1))
                .unwrap()
                .entity()
                .unwrap()
                .fields
                .len(),
            2
        );
    }

    #[test]
    fn a_crud_schema_cannot_be_cleared_and_other_types_take_none() {
        let outcome = given(shop())
            .when(update(
                1,
                FeatureChanges {
                    schema_definition: Some(Value::Null),
                    ..FeatureChanges::default()
                },
            ))
            .outcome();
        assert_eq!(
            invalid(outcome),
            [(
                "/schema_definition".to_owned(),
                "is required for crud features".to_owned()
            )]
        );
        let outcome = given([created(), added(3, "Login", FeatureType::Auth, None)])
            .when(update(
                3,
                FeatureChanges {
                    schema_definition: Some(customer_raw()),
                    ..FeatureChanges::default()
                },
            ))
            .outcome();
        assert_eq!(invalid_at(outcome), ["/schema_definition"]);
    }

    #[test]
    fn schema_problems_of_an_update_point_into_the_schema() {
        let outcome = given(shop())
            .when(update(2, FeatureChanges {
                schema_definition: Some(json!({"entity": "order", "fields": [{"name": "buyer_id", "type": "reference", "references": "buyer"}, {"name": "n", "type": "integer", "min": 3, "max": 1}]})),
                ..FeatureChanges::default()
            }))
            .outcome();
        assert_eq!(invalid_at(outcome), ["/schema_definition/fields/1/min"]);
        let outcome = given(shop())
            .when(update(2, FeatureChanges {
                schema_definition: Some(json!({"entity": "order", "fields": [{"name": "buyer_id", "type": "reference", "references": "buyer"}]})),
                ..FeatureChanges::default()
            }))
            .outcome();
        assert_eq!(
            invalid_at(outcome),
            ["/schema_definition/fields/0/references"]
        );
    }

    #[test]
    fn a_configuration_key_in_an_update_is_rejected() {
        let outcome = given(shop())
            .when(update(
                1,
                FeatureChanges {
                    configuration: Some(json!({"color": "red"})),
                    ..FeatureChanges::default()
                },
            ))
            .outcome();
        assert_eq!(invalid_at(outcome), ["/configuration/color"]);
    }

    #[test]
    fn a_feature_mode_set_and_cleared_is_recorded_with_null_for_cleared() {
        let ai = feature_updated(
            1,
            Changed {
                generation_mode: Some(Some(GenerationMode::AiAssisted)),
                ..Changed::default()
            },
        );
        let mut history = shop();
        given(history.clone())
            .when(update(
                1,
                FeatureChanges {
                    generation_mode: Some(Some(GenerationMode::AiAssisted)),
                    ..FeatureChanges::default()
                },
            ))
            .then([ai.clone()]);
        history.push(ai);
        let cleared = feature_updated(
            1,
            Changed {
                generation_mode: Some(None),
                ..Changed::default()
            },
        );
        let project = given(history)
            .when(update(
                1,
                FeatureChanges {
                    generation_mode: Some(None),
                    ..FeatureChanges::default()
                },
            ))
            .then([cleared.clone()]);
        assert_eq!(
            project.feature(feature_id(1)).unwrap().generation_mode,
            None
        );
        let data = cleared.to_data();
        assert_eq!(data.get("generation_mode"), Some(&Value::Null));
        assert!(data.get("name").is_none());
        assert_eq!(
            ProjectEvent::from_data("FeatureUpdated", data).unwrap(),
            cleared
        );
    }

    #[test]
    fn renaming_an_entity_others_reference_is_a_conflict() {
        given(shop())
            .when(update(
                1,
                FeatureChanges {
                    schema_definition: Some(raw_entity("client", None)),
                    ..FeatureChanges::default()
                },
            ))
            .then_err(ProjectError::FeatureReferenced {
                by: vec!["order".into()],
            });
    }

    #[test]
    fn renaming_an_entity_nobody_references_is_allowed() {
        given(shop())
            .when(update(
                2,
                FeatureChanges {
                    schema_definition: Some(raw_entity("purchase", Some("customer"))),
                    ..FeatureChanges::default()
                },
            ))
            .then([feature_updated(
                2,
                Changed {
                    schema_definition: Some(schema(raw_entity("purchase", Some("customer")))),
                    ..Changed::default()
                },
            )]);
    }

    #[test]
    fn a_changed_entity_name_taken_by_another_feature_is_a_conflict() {
        given(shop())
            .when(update(
                2,
                FeatureChanges {
                    schema_definition: Some(raw_entity("customer", None)),
                    ..FeatureChanges::default()
                },
            ))
            .then_err(ProjectError::EntityNameTaken {
                entity: "customer".into(),
            });
    }

    #[test]
    fn disabling_an_entity_an_enabled_entity_references_is_a_conflict() {
        given(shop())
            .when(update(
                1,
                FeatureChanges {
                    is_enabled: Some(false),
                    ..FeatureChanges::default()
                },
            ))
            .then_err(ProjectError::FeatureReferenced {
                by: vec!["order".into()],
            });
    }

    #[test]
    fn disabling_an_entity_only_disabled_entities_reference_is_allowed() {
        let mut history = shop();
        history.push(disabled(2));
        let project = given(history)
            .when(update(
                1,
                FeatureChanges {
                    is_enabled: Some(false),
                    ..FeatureChanges::default()
                },
            ))
            .then([feature_updated(
                1,
                Changed {
                    is_enabled: Some(false),
                    ..Changed::default()
                },
            )]);
        assert!(!project.feature(feature_id(1)).unwrap().is_enabled);
    }

    #[test]
    fn enabling_an_entity_whose_target_is_disabled_is_rejected() {
        let history = vec![
            created(),
            crud_added(1, "Customers", customer_raw()),
            disabled_added(crud_added(2, "Orders", order_raw())),
            disabled(1),
        ];
        let outcome = given(history)
            .when(update(
                2,
                FeatureChanges {
                    is_enabled: Some(true),
                    ..FeatureChanges::default()
                },
            ))
            .outcome();
        assert_eq!(
            invalid(outcome),
            [(
                "/is_enabled".to_owned(),
                "field `customer_id` references `customer`, which is disabled; enable it first"
                    .to_owned()
            )]
        );
    }

    #[test]
    fn a_self_referencing_entity_may_be_disabled_and_removed() {
        let raw = raw_entity("category", Some("category"));
        given([created(), crud_added(1, "Categories", raw.clone())])
            .when(update(
                1,
                FeatureChanges {
                    is_enabled: Some(false),
                    ..FeatureChanges::default()
                },
            ))
            .then([feature_updated(
                1,
                Changed {
                    is_enabled: Some(false),
                    ..Changed::default()
                },
            )]);
        given([created(), crud_added(1, "Categories", raw)])
            .when(ProjectCommand::RemoveFeature {
                feature_id: feature_id(1),
                at: t(4),
            })
            .then([ProjectEvent::FeatureRemoved {
                project_id: pid(),
                feature_id: feature_id(1),
                removed_at: t(4),
            }]);
    }

    // --- removing features ---

    #[test]
    fn a_feature_is_removed() {
        let project = given(shop())
            .when(ProjectCommand::RemoveFeature {
                feature_id: feature_id(2),
                at: t(4),
            })
            .then([ProjectEvent::FeatureRemoved {
                project_id: pid(),
                feature_id: feature_id(2),
                removed_at: t(4),
            }]);
        assert_eq!(project.features.len(), 1);
    }

    #[test]
    fn removing_a_referenced_entity_is_a_conflict_naming_the_referencers() {
        let mut history = shop();
        history.push(crud_added(
            3,
            "Invoices",
            raw_entity("invoice", Some("customer")),
        ));
        history.push(disabled(3));
        given(history)
            .when(ProjectCommand::RemoveFeature {
                feature_id: feature_id(1),
                at: t(4),
            })
            .then_err(ProjectError::FeatureReferenced {
                by: vec!["invoice".into(), "order".into()],
            });
    }

    #[test]
    fn removing_an_unknown_feature_is_refused() {
        given(shop())
            .when(ProjectCommand::RemoveFeature {
                feature_id: feature_id(9),
                at: t(4),
            })
            .then_err(ProjectError::FeatureNotFound(feature_id(9)));
    }

    // --- access ---

    #[test]
    fn access_follows_ownership_membership_and_the_global_role() {
        let project = given([created(), member_added()]).state().clone();
        let stranger = user_id(3);
        assert_eq!(project.access_for(owner(), Role::Member), Access::Owner);
        assert_eq!(project.access_for(viewer(), Role::Member), Access::Viewer);
        assert_eq!(project.access_for(stranger, Role::Member), Access::None);
        assert_eq!(project.access_for(stranger, Role::Admin), Access::Admin);
        assert!(Access::Viewer.can_read() && !Access::Viewer.can_write());
        assert!(Access::Owner.can_write() && Access::Admin.can_write());
        assert!(!Access::None.can_read());
    }

    #[test]
    fn on_an_archived_project_only_the_owner_and_admins_keep_access() {
        let project = given([created(), member_added(), archived()])
            .state()
            .clone();
        assert_eq!(project.access_for(viewer(), Role::Member), Access::None);
        assert_eq!(project.access_for(owner(), Role::Member), Access::Owner);
        assert_eq!(project.access_for(user_id(3), Role::Admin), Access::Admin);
    }

    #[test]
    fn nobody_has_access_to_a_project_never_created() {
        assert_eq!(
            Project::default().access_for(owner(), Role::Admin),
            Access::None
        );
    }

    // --- serialisation ---

    #[test]
    fn a_project_serialises_with_the_field_names_of_the_api() {
        let project = given([
            created(),
            member_added(),
            crud_added(1, "Customers", customer_raw()),
        ])
        .state()
        .clone();
        let json = serde_json::to_value(&project).unwrap();
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "id",
                "name",
                "description",
                "owner_id",
                "status",
                "generation_mode",
                "features",
                "members",
                "created_at",
                "updated_at"
            ]
        );
        let feature_keys: Vec<_> = json["features"][0]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            feature_keys,
            [
                "id",
                "name",
                "feature_type",
                "generation_mode",
                "configuration",
                "schema_definition",
                "is_enabled",
                "created_at",
                "updated_at"
            ]
        );
        assert_eq!(json["members"][0]["role"], "viewer");
        assert_eq!(json["status"], "active");
        let back: Project = serde_json::from_value(json).unwrap();
        assert!(back.exists());
        assert_eq!(back, project);
    }

    #[test]
    fn project_errors_map_to_their_classes() {
        assert_eq!(ProjectError::NotFound.class(), ErrorClass::NotFound);
        assert_eq!(
            ProjectError::FeatureReferenced { by: vec![] }.class(),
            ErrorClass::Conflict
        );
        assert_eq!(
            ProjectError::FeatureNameTaken { name: "x".into() }.class(),
            ErrorClass::Conflict
        );
        assert_eq!(
            ProjectError::OwnerCannotBeMember.class(),
            ErrorClass::Invalid
        );
    }
}
