//! A project's state as its events describe it, its enums, and who may do what with it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::crud_schema::EntitySchema;
use crate::ids::{FeatureId, ProjectId, UserId};
use crate::user::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    Active,
    /// Terminal: `DELETE /projects/{id}` archives, and nothing changes afterwards.
    Archived,
}

impl ProjectStatus {
    /// The stored and served spelling (the serde name): read models and the API use only this.
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectStatus::Active => "active",
            ProjectStatus::Archived => "archived",
        }
    }
}

/// How a project (or one feature or function) is to be generated: `ai_assisted` content generates
/// once an AI request's proposal was applied to it (`generation::generation_problems`).
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

impl ProjectRole {
    /// The stored and served spelling (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Viewer => "viewer",
        }
    }
}

/// What a project's visibility depends on, for a reader that has the project's row but not its
/// folded state (the read side): the one rule, which [`Project::access_for`] asks too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessFacts {
    pub owner_id: UserId,
    pub status: ProjectStatus,
    /// Whether the user asking is one of the project's members.
    pub is_member: bool,
}

impl AccessFacts {
    /// What `user`, whose global role is `global_role`, may do with an existing project. Viewers
    /// lose access when a project is archived; its owner and admins keep reading its history.
    pub fn access_for(self, user: UserId, global_role: Role) -> Access {
        if global_role == Role::Admin {
            Access::Admin
        } else if user == self.owner_id {
            Access::Owner
        } else if self.status == ProjectStatus::Active && self.is_member {
            Access::Viewer
        } else {
            Access::None
        }
    }
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
    /// `{}` for types without one; `auth` and `file_storage` see [`super::configuration`].
    pub configuration: Map<String, Value>,
    /// `Some` exactly for `crud` features.
    pub schema_definition: Option<EntitySchema>,
    pub is_enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The AI request whose applied proposal last set this feature's content, kept when its owner
    /// edits it afterwards (`generation_problems` reads it); absent while there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai_request_id: Option<crate::ids::AiRequestId>,
}

impl Feature {
    /// The configuration of an `auth` feature, defaults filled in (it was checked when stored).
    pub fn auth_config(&self) -> super::configuration::AuthConfig {
        super::configuration::parse_auth(
            &self.configuration,
            &crate::error::Pointer::root(),
            &mut Vec::new(),
        )
    }

    /// The configuration of a `file_storage` feature, defaults filled in.
    pub fn file_storage_config(&self) -> super::configuration::FileStorageConfig {
        super::configuration::parse_file_storage(
            &self.configuration,
            &crate::error::Pointer::root(),
            &mut Vec::new(),
        )
    }

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
    /// In creation order; clones of the state share each feature until one of them changes it.
    pub features: Vec<crate::Shared<Feature>>,
    pub members: Vec<Member>,
    /// In creation order. Absent from the serialised state while empty, so documents stored
    /// before functions existed read the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<super::Function>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    // A serialised project exists; only `default()` builds the state before creation.
    #[serde(skip, default = "created")]
    pub(super) created: bool,
    /// What [`Project::serialized_bytes`] adds up; never serialised.
    #[serde(skip)]
    pub(super) sizes: super::size::SizeMemo,
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
            functions: Vec::new(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            created: false,
            sizes: super::size::SizeMemo::fresh(),
        }
    }
}

impl Project {
    /// Whether a `ProjectCreated` has been folded in.
    pub fn exists(&self) -> bool {
        self.created
    }

    pub fn feature(&self, id: FeatureId) -> Option<&Feature> {
        self.features.iter().find(|f| f.id == id).map(|f| &**f)
    }

    /// The crud features and their entities, in creation order.
    pub fn entities(&self) -> impl Iterator<Item = (&Feature, &EntitySchema)> {
        self.features
            .iter()
            .filter_map(|f| f.entity().map(|schema| (&**f, schema)))
    }

    pub fn is_member(&self, user: UserId) -> bool {
        self.members.iter().any(|m| m.user_id == user)
    }

    /// What `user`, whose global role is `global_role`, may do with this project (nothing
    /// before it exists; otherwise as [`AccessFacts::access_for`] decides).
    pub fn access_for(&self, user: UserId, global_role: Role) -> Access {
        if !self.created {
            return Access::None;
        }
        AccessFacts {
            owner_id: self.owner_id,
            status: self.status,
            is_member: self.is_member(user),
        }
        .access_for(user, global_role)
    }
}
