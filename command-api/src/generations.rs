//! Requesting a generation: checks the project and its requested version, then appends
//! `GenerationRequested` to a new generation stream; the projector turns it into a job.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use domain::generation::{Generation, GenerationCommand, GenerationError, RequestGeneration};
use domain::ids::{GenerationId, ProjectId, UserId};
use domain::project::Project;
use event_store::{ExpectedVersion, NewEvent, Position, ReadUntil, StreamAppend};
use runtime::{ApiError, Authenticated, Json, ProblemType, path_id};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::CommandState;
use crate::execute::{Idempotency, Plan, Reply};
use crate::http::RequestMeta;
use crate::projects::load_for_write;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerationRequest {
    /// Default: `python-fastapi`, the one target today.
    #[serde(default)]
    #[schema(schema_with = runtime::openapi::target)]
    pub target: Option<String>,
    /// The project version to generate; default: the current one.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub project_version: Option<u64>,
    /// Run the generated test suite and fail the generation if it fails.
    #[serde(default)]
    pub verify: Option<bool>,
}

pub fn generation_error(e: GenerationError) -> ApiError {
    match e {
        GenerationError::Validation(errors) => {
            ApiError::invalid("the project cannot be generated", errors)
        }
        GenerationError::ProjectNotFound | GenerationError::ProjectArchived => {
            ApiError::not_found("no such project")
        }
        e @ GenerationError::VersionNotFound { .. } => ApiError::not_found(e.to_string()),
        GenerationError::NotFound => ApiError::not_found("no such generation"),
        e @ (GenerationError::AlreadyRequested
        | GenerationError::NotStarted
        | GenerationError::AlreadyFinished) => {
            ApiError::conflict(ProblemType::Conflict, e.to_string())
        }
    }
}

/// The project folded up to `version`.
async fn project_at(
    state: &CommandState,
    project_id: ProjectId,
    version: u64,
) -> Result<Project, ApiError> {
    let loaded: event_store::Loaded<Project> = event_store::load(
        &state.store,
        &project_id.stream(),
        ReadUntil::Version(version),
    )
    .await?;
    Ok(loaded.state)
}

/// Request a generation of the project (202); the job runs asynchronously.
#[utoipa::path(post, path = "/api/v1/projects/{id}/generations", tag = "generations", request_body = GenerationRequest,
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "Project id"), runtime::openapi::CreateHeaders),
    responses((status = 202, description = "Requested; poll GET /generations/{id}", body = runtime::openapi::WriteAnswer,
                headers(("Location"), ("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not request generations"),
              (status = 404, description = "Unknown project or version"),
              (status = 409, description = "The Idempotency-Key is in flight"),
              (status = 422, description = "Nothing to generate, unknown target, unsupported feature or mode")))]
#[post("/projects/{id}/generations")]
pub async fn request_generation(
    state: web::Data<CommandState>,
    req: HttpRequest,
    meta: RequestMeta,
    caller: Authenticated,
    path: web::Path<String>,
    body: Json<GenerationRequest>,
) -> Result<HttpResponse, ApiError> {
    let project_id = ProjectId::from_uuid(path_id(&path, "project")?);
    let Json { value, raw } = body;
    let generation_id = GenerationId::from_uuid(Uuid::now_v7());
    let stream = generation_id.stream();
    let now = OffsetDateTime::now_utc();
    let state_ref = &state;
    let caller_ref = &caller;
    let meta_ref = &meta;
    let make_plan = || {
        let stream = stream.clone();
        let target = value
            .target
            .clone()
            .unwrap_or_else(|| "python-fastapi".to_owned());
        async move {
            let current = load_for_write(state_ref, caller_ref, project_id, None).await?;
            let version = value.project_version.unwrap_or(current.version);
            if version == 0 || version > current.version {
                return Err(ApiError::not_found(format!(
                    "the project has no version {version} (its latest is {})",
                    current.version
                )));
            }
            let snapshot = if version == current.version {
                current.state.clone()
            } else {
                project_at(state_ref, project_id, version).await?
            };
            let command = GenerationCommand::RequestGeneration(RequestGeneration {
                generation_id,
                project: snapshot,
                project_version: version,
                current_project_version: current.version,
                target,
                verify: value.verify.unwrap_or(false),
                requested_by: UserId::from_uuid(caller_ref.user_id),
                at: now,
            });
            let events = Generation::default()
                .decide(&command, &state_ref.settings.limits)
                .map_err(generation_error)?;
            let new: Vec<NewEvent> = events
                .iter()
                .map(|e| {
                    NewEvent::from_domain(
                        e,
                        Uuid::now_v7(),
                        meta_ref.metadata(Some(caller_ref.user_id)),
                    )
                })
                .collect();
            Ok(Plan::new(stream.clone(), 0, Position::START)
                .append(StreamAppend::new(stream, ExpectedVersion::NoStream, new))
                .reply(move |version, position| Reply {
                    status: StatusCode::ACCEPTED,
                    body: Some(json!({"id": generation_id, "version": version, "position": position.to_token()})),
                    location: Some(format!("/api/v1/generations/{generation_id}")),
                    version,
                    position,
                }))
        }
    };
    let idempotency = Idempotency::Caller {
        user_id: caller.user_id,
        body: &raw,
    };
    state
        .executor
        .run(&req, idempotency, false, make_plan)
        .await
}
