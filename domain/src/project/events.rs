//! The facts a project's stream holds; their stored names and payloads never change.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::functions::{Function, FunctionExample, FunctionLanguage, HttpMethod};
use super::{Feature, FeatureType, GenerationMode, ProjectRole};
use crate::crud_schema::EntitySchema;
use crate::envelope::{DecodeError, DomainEvent, decode_tagged, decode_tagged_json, encode_tagged};
use crate::ids::{AiRequestId, FeatureId, FunctionId, ProjectId, UserId};

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
        /// The AI request whose applied proposal this is; absent for every other change (an
        /// owner's own edit included), and in events stored before AI requests existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ai_request_id: Option<AiRequestId>,
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
        /// The AI request whose applied proposal this is; absent for every other change (an
        /// owner's own edit included), and in events stored before AI requests existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ai_request_id: Option<AiRequestId>,
    },
    #[serde(rename = "FeatureRemoved")]
    FeatureRemoved {
        project_id: ProjectId,
        feature_id: FeatureId,
        #[serde(with = "time::serde::rfc3339")]
        removed_at: OffsetDateTime,
    },
    /// The whole function, defaults filled in (`endpoint_path`, `http_method`).
    #[serde(rename = "FunctionCreated")]
    FunctionCreated {
        project_id: ProjectId,
        function_id: FunctionId,
        name: String,
        description: Option<String>,
        language: FunctionLanguage,
        function_code: String,
        input_schema: Option<Value>,
        output_schema: Option<Value>,
        examples: Vec<FunctionExample>,
        generation_mode: Option<GenerationMode>,
        endpoint_path: String,
        http_method: HttpMethod,
        is_active: bool,
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
    },
    /// Only the changed members are present; `description`, the schemas and `generation_mode`:
    /// absent = unchanged, `null` = cleared.
    #[serde(rename = "FunctionUpdated")]
    FunctionUpdated {
        project_id: ProjectId,
        function_id: FunctionId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "double_option"
        )]
        description: Option<Option<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<FunctionLanguage>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        function_code: Option<String>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "double_option"
        )]
        input_schema: Option<Option<Value>>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "double_option"
        )]
        output_schema: Option<Option<Value>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        examples: Option<Vec<FunctionExample>>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "double_option"
        )]
        generation_mode: Option<Option<GenerationMode>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint_path: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        http_method: Option<HttpMethod>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_active: Option<bool>,
        #[serde(with = "time::serde::rfc3339")]
        updated_at: OffsetDateTime,
        /// The AI request whose applied proposal this is; absent for every other change (an
        /// owner's own edit included), and in events stored before AI requests existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ai_request_id: Option<AiRequestId>,
    },
    #[serde(rename = "FunctionDeleted")]
    FunctionDeleted {
        project_id: ProjectId,
        function_id: FunctionId,
        #[serde(with = "time::serde::rfc3339")]
        deleted_at: OffsetDateTime,
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
            | ProjectEvent::ProjectMemberRemoved { .. }
            | ProjectEvent::FunctionCreated { .. }
            | ProjectEvent::FunctionUpdated { .. }
            | ProjectEvent::FunctionDeleted { .. } => FeaturesTouched::None,
        }
    }

    /// Whether a `FunctionUpdated` changes any member (other events: false).
    pub(super) fn changes_a_function(&self) -> bool {
        match self {
            ProjectEvent::FunctionUpdated {
                name,
                description,
                language,
                function_code,
                input_schema,
                output_schema,
                examples,
                generation_mode,
                endpoint_path,
                http_method,
                is_active,
                ..
            } => {
                name.is_some()
                    || description.is_some()
                    || language.is_some()
                    || function_code.is_some()
                    || input_schema.is_some()
                    || output_schema.is_some()
                    || examples.is_some()
                    || generation_mode.is_some()
                    || endpoint_path.is_some()
                    || http_method.is_some()
                    || is_active.is_some()
            }
            _ => false,
        }
    }

    pub(super) fn function_created(project_id: ProjectId, function: Function) -> Self {
        ProjectEvent::FunctionCreated {
            project_id,
            function_id: function.id,
            name: function.name,
            description: function.description,
            language: function.language,
            function_code: function.function_code,
            input_schema: function.input_schema,
            output_schema: function.output_schema,
            examples: function.examples,
            generation_mode: function.generation_mode,
            endpoint_path: function.endpoint_path,
            http_method: function.http_method,
            is_active: function.is_active,
            created_at: function.created_at,
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
        "FunctionCreated",
        "FunctionUpdated",
        "FunctionDeleted",
    ];

    pub(super) fn feature_added(
        project_id: ProjectId,
        feature: Feature,
        at: OffsetDateTime,
    ) -> Self {
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
            ai_request_id: feature.ai_request_id,
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
            ProjectEvent::FunctionCreated { .. } => "FunctionCreated",
            ProjectEvent::FunctionUpdated { .. } => "FunctionUpdated",
            ProjectEvent::FunctionDeleted { .. } => "FunctionDeleted",
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
