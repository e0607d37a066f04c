//! HTTP handlers of project, feature and member writes: request bodies in, one application
//! function each, answers out.

use actix_web::{HttpResponse, delete, post, put, web};
use domain::FieldError;
use domain::ids::{FeatureId, ProjectId, UserId};
use domain::project::{
    AddFeature, AddMember, ArchiveProject, CreateProject, FeatureChanges, FeatureType,
    GenerationMode, NewFeature, ProjectCommand, ProjectRole, RemoveFeature, RemoveMember,
    UpdateFeature, UpdateProject,
};
use runtime::openapi::{self, CreateHeaders, VersionAnswer, WriteAnswer, WriteHeaders};
use runtime::{ApiError, Json};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::CommandState;
use crate::http::{Ids, Write};
use crate::projects::{self, ProjectAnswer};

/// Tells an absent member (`None`) from an explicit `null` (`Some(None)`).
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A feature in a create request (alone or inside the project wizard).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureInput {
    /// Unique within the project (case-insensitive).
    #[schema(schema_with = openapi::display_name)]
    pub name: String,
    #[schema(schema_with = openapi::feature_type)]
    pub feature_type: FeatureType,
    /// Absent follows the project's mode.
    #[serde(default)]
    #[schema(schema_with = openapi::feature_generation_mode)]
    pub generation_mode: Option<GenerationMode>,
    #[serde(default)]
    #[schema(schema_with = openapi::configuration)]
    pub configuration: Option<Value>,
    /// Required for `crud` (`docs/api.md`, "The crud schema language"); refused for other types.
    #[serde(default)]
    #[schema(schema_with = openapi::schema_definition)]
    pub schema_definition: Option<Value>,
    #[serde(default)]
    pub is_enabled: Option<bool>,
}

impl FeatureInput {
    fn into_new(self, id: FeatureId) -> NewFeature {
        NewFeature {
            id,
            name: self.name,
            feature_type: self.feature_type,
            generation_mode: self.generation_mode,
            configuration: self.configuration,
            schema_definition: self.schema_definition,
            is_enabled: self.is_enabled.unwrap_or(true),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRequest {
    #[schema(schema_with = openapi::display_name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = openapi::description)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(schema_with = openapi::generation_mode)]
    pub generation_mode: Option<GenerationMode>,
    /// Features created with the project in the same atomic append.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::feature_inputs)]
    pub features: Vec<FeatureInput>,
}

/// A partial update: absent members are unchanged, `null` clears `description`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectRequest {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = openapi::display_name)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = openapi::description)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = openapi::generation_mode)]
    pub generation_mode: Option<Option<GenerationMode>>,
}

/// A partial update of a feature; `feature_type` cannot change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFeatureRequest {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = openapi::display_name)]
    pub name: Option<Option<String>>,
    /// Cannot change: present (even as `null`) it is refused with 422.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = openapi::feature_type)]
    pub feature_type: Option<Option<Value>>,
    /// `null` makes the feature follow the project's mode again.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = openapi::feature_generation_mode)]
    pub generation_mode: Option<Option<GenerationMode>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = openapi::configuration)]
    pub configuration: Option<Option<Value>>,
    /// The new definition (for `crud`); `null` is refused for `crud`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = openapi::nullable_schema_definition)]
    pub schema_definition: Option<Option<Value>>,
    #[serde(default, deserialize_with = "nullable")]
    pub is_enabled: Option<Option<bool>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRequest {
    #[schema(schema_with = openapi::project_role)]
    pub role: ProjectRole,
}

/// A member that may be absent but not `null`: `null` is recorded as a problem at `field`.
pub(crate) fn refuse_null<T>(
    value: Option<Option<T>>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    match value {
        Some(None) => {
            errors.push(FieldError::new(field, "must not be null"));
            None
        }
        Some(Some(v)) => Some(v),
        None => None,
    }
}

/// Create a project, optionally with features (one atomic append).
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = CreateProjectRequest,
    security(("bearer" = [])), params(CreateHeaders),
    responses((status = 201, description = "Created", body = WriteAnswer,
                headers(("Location"), ("ETag"), ("Backforge-Position"))),
              (status = 409, description = "Feature names taken twice, or the Idempotency-Key is in flight"),
              (status = 422, description = "Invalid project or feature; the project would be too large")))]
#[post("/projects")]
pub async fn create_project(
    state: web::Data<CommandState>,
    write: Write<Json<CreateProjectRequest>>,
) -> Result<HttpResponse, ApiError> {
    let value = &write.body.value;
    let features: Vec<NewFeature> = value
        .features
        .iter()
        .cloned()
        .map(|f| f.into_new(FeatureId::from_uuid(Uuid::now_v7())))
        .collect();
    let (name, description, generation_mode) = (
        value.name.clone(),
        value.description.clone(),
        value.generation_mode,
    );
    projects::create(&state, write, |project_id, owner_id, at| {
        ProjectCommand::CreateProject(CreateProject {
            project_id,
            owner_id,
            name: name.clone(),
            description: description.clone(),
            generation_mode,
            features: features.clone(),
            at,
        })
    })
    .await
}

/// Partially update a project.
#[utoipa::path(put, path = "/api/v1/projects/{id}", tag = "projects", request_body = UpdateProjectRequest,
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "Project id"), WriteHeaders),
    responses((status = 200, description = "Updated (or unchanged: no new event)", body = WriteAnswer,
                headers(("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not write"),
              (status = 404, description = "Unknown, not visible or archived project"),
              (status = 409, description = "Changed concurrently, or the Idempotency-Key is in flight"),
              (status = 412, description = "If-Match does not match the current version")))]
#[put("/projects/{id}")]
pub async fn update_project(
    state: web::Data<CommandState>,
    mut write: Write<Json<UpdateProjectRequest>>,
    Ids(project_id): Ids<ProjectId>,
) -> Result<HttpResponse, ApiError> {
    let value = &mut write.body.value;
    let mut errors = Vec::new();
    let name = refuse_null(value.name.take(), "/name", &mut errors);
    let generation_mode = refuse_null(
        value.generation_mode.take(),
        "/generation_mode",
        &mut errors,
    );
    let description = value.description.take();
    if !errors.is_empty() {
        return Err(ApiError::invalid("the request is invalid", errors));
    }
    let answer = ProjectAnswer::Updated {
        id: project_id.as_uuid(),
    };
    projects::change(&state, write, project_id, answer, |_, at| {
        Ok(ProjectCommand::UpdateProject(UpdateProject {
            name: name.clone(),
            description: description.clone(),
            generation_mode,
            at,
        }))
    })
    .await
}

/// Archive a project: current-state reads and writes then answer 404; history stays readable.
#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), WriteHeaders),
    responses((status = 204, description = "Archived", headers(("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not write"),
              (status = 409, description = "Changed concurrently, or the Idempotency-Key is in flight"),
              (status = 412, description = "If-Match does not match the current version")))]
#[delete("/projects/{id}")]
pub async fn archive_project(
    state: web::Data<CommandState>,
    write: Write,
    Ids(project_id): Ids<ProjectId>,
) -> Result<HttpResponse, ApiError> {
    projects::change(
        &state,
        write,
        project_id,
        ProjectAnswer::NoContent,
        |_, at| Ok(ProjectCommand::ArchiveProject(ArchiveProject { at })),
    )
    .await
}

/// Add a member (owner or admin only).
#[utoipa::path(put, path = "/api/v1/projects/{id}/members/{user_id}", tag = "members", request_body = MemberRequest,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ("user_id" = Uuid, Path, description = "User id"), WriteHeaders),
    responses((status = 200, description = "The member is added (or already was)", body = VersionAnswer,
                headers(("ETag"), ("Backforge-Position"))),
              (status = 403, description = "Only the owner or an admin manages members"),
              (status = 404, description = "Unknown project or user"),
              (status = 409, description = "Changed concurrently, or the Idempotency-Key is in flight"),
              (status = 412, description = "If-Match does not match the current version")))]
#[put("/projects/{id}/members/{user_id}")]
pub async fn put_member(
    state: web::Data<CommandState>,
    write: Write<Json<MemberRequest>>,
    Ids((project_id, user_id)): Ids<(ProjectId, UserId)>,
) -> Result<HttpResponse, ApiError> {
    projects::require_user(&state, user_id).await?;
    let role = write.body.value.role;
    projects::change(
        &state,
        write,
        project_id,
        ProjectAnswer::Versioned,
        |_, at| Ok(ProjectCommand::AddMember(AddMember { user_id, role, at })),
    )
    .await
}

/// Remove a member.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/members/{user_id}", tag = "members",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ("user_id" = Uuid, Path, description = "User id"), WriteHeaders),
    responses((status = 204, description = "Removed", headers(("ETag"), ("Backforge-Position"))),
              (status = 403, description = "Only the owner or an admin manages members"),
              (status = 404, description = "Unknown project, or not a member"),
              (status = 409, description = "Changed concurrently, or the Idempotency-Key is in flight"),
              (status = 412, description = "If-Match does not match the current version")))]
#[delete("/projects/{id}/members/{user_id}")]
pub async fn delete_member(
    state: web::Data<CommandState>,
    write: Write,
    Ids((project_id, user_id)): Ids<(ProjectId, UserId)>,
) -> Result<HttpResponse, ApiError> {
    projects::change(
        &state,
        write,
        project_id,
        ProjectAnswer::NoContent,
        |_, at| Ok(ProjectCommand::RemoveMember(RemoveMember { user_id, at })),
    )
    .await
}

/// Add a feature to a project.
#[utoipa::path(post, path = "/api/v1/projects/{id}/features", tag = "features", request_body = FeatureInput,
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "Project id"), WriteHeaders),
    responses((status = 201, description = "Added", body = WriteAnswer,
                headers(("Location"), ("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not write"),
              (status = 409, description = "Name taken, entity name or plural taken, changed concurrently, or the Idempotency-Key is in flight"),
              (status = 412, description = "If-Match does not match the current version")))]
#[post("/projects/{id}/features")]
pub async fn add_feature(
    state: web::Data<CommandState>,
    write: Write<Json<FeatureInput>>,
    Ids(project_id): Ids<ProjectId>,
) -> Result<HttpResponse, ApiError> {
    let feature_id = FeatureId::from_uuid(Uuid::now_v7());
    let feature = write.body.value.clone().into_new(feature_id);
    let answer = ProjectAnswer::Created {
        id: feature_id.as_uuid(),
        location: format!("/api/v1/projects/{project_id}/features/{feature_id}"),
    };
    projects::change(&state, write, project_id, answer, |_, at| {
        Ok(ProjectCommand::AddFeature(AddFeature {
            feature: feature.clone(),
            at,
        }))
    })
    .await
}

/// Partially update a feature.
#[utoipa::path(put, path = "/api/v1/projects/{id}/features/{feature_id}", tag = "features",
    request_body = UpdateFeatureRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ("feature_id" = Uuid, Path, description = "Feature id"), WriteHeaders),
    responses((status = 200, description = "Updated (or unchanged: no new event)", body = WriteAnswer,
                headers(("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not write"),
              (status = 409, description = "Name taken, still referenced, changed concurrently, or the Idempotency-Key is in flight"),
              (status = 412, description = "If-Match does not match the current version")))]
#[put("/projects/{id}/features/{feature_id}")]
pub async fn update_feature(
    state: web::Data<CommandState>,
    mut write: Write<Json<UpdateFeatureRequest>>,
    Ids((project_id, feature_id)): Ids<(ProjectId, FeatureId)>,
) -> Result<HttpResponse, ApiError> {
    let value = std::mem::take(&mut write.body.value);
    let mut errors = Vec::new();
    let changes = FeatureChanges {
        name: refuse_null(value.name, "/name", &mut errors),
        // The domain refuses any change of type (`/feature_type`); the member is only passed on.
        feature_type: value.feature_type.map(|v| v.unwrap_or(Value::Null)),
        generation_mode: value.generation_mode,
        configuration: refuse_null(value.configuration, "/configuration", &mut errors),
        schema_definition: value.schema_definition.map(|v| v.unwrap_or(Value::Null)),
        is_enabled: refuse_null(value.is_enabled, "/is_enabled", &mut errors),
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid("the request is invalid", errors));
    }
    let answer = ProjectAnswer::Updated {
        id: feature_id.as_uuid(),
    };
    projects::change(&state, write, project_id, answer, |_, at| {
        Ok(ProjectCommand::UpdateFeature(UpdateFeature {
            feature_id,
            changes: changes.clone(),
            at,
        }))
    })
    .await
}

/// Remove a feature (409 while another entity references it).
#[utoipa::path(delete, path = "/api/v1/projects/{id}/features/{feature_id}", tag = "features",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ("feature_id" = Uuid, Path, description = "Feature id"), WriteHeaders),
    responses((status = 204, description = "Removed", headers(("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not write"),
              (status = 409, description = "Another entity references it, changed concurrently, or the Idempotency-Key is in flight"),
              (status = 412, description = "If-Match does not match the current version")))]
#[delete("/projects/{id}/features/{feature_id}")]
pub async fn remove_feature(
    state: web::Data<CommandState>,
    write: Write,
    Ids((project_id, feature_id)): Ids<(ProjectId, FeatureId)>,
) -> Result<HttpResponse, ApiError> {
    projects::change(
        &state,
        write,
        project_id,
        ProjectAnswer::NoContent,
        |_, at| {
            Ok(ProjectCommand::RemoveFeature(RemoveFeature {
                feature_id,
                at,
            }))
        },
    )
    .await
}
