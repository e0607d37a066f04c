//! Requesting a generation: checks the project and its requested version, then appends
//! `GenerationRequested` to a new generation stream; the projector turns it into a job.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use domain::generation::{Generation, GenerationCommand, GenerationError, RequestGeneration};
use domain::ids::{GenerationId, ProjectId, UserId};
use domain::project::Project;
use event_store::ReadUntil;
use event_store::application::{Pin, Source, Step};
use runtime::{ApiError, Json, ProblemType};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::CommandState;
use crate::execute::{Plan, WriteAnswer, failure};
use crate::http::{Ids, Write, WriteBody};
use crate::projects::check_write_access;

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
    /// The generation whose database this one's migrations upgrade: same project and target, at
    /// a project version no later than this one's. Default: the latest succeeded generation of
    /// the project and target when the request is made; none → the migrations start afresh.
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub base_generation_id: Option<GenerationId>,
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

/// The base generation as its stream tells it: the one the request names, else the latest
/// succeeded generation of the project and target (found through the read model, then loaded
/// from the store) unless it is of a later project version than `version` (then none: an older
/// version regenerated starts its chain afresh). `Generation::default()` stands for a named base
/// that does not exist, so the domain refuses it at its pointer.
async fn base_of(
    state: &CommandState,
    named: Option<GenerationId>,
    project_id: ProjectId,
    target: &str,
    version: u64,
) -> Result<Option<Box<Generation>>, ApiError> {
    let id = match named {
        Some(id) => id,
        None => {
            let client = state.pool.get().await?;
            let latest = read_model::rows::latest_succeeded(&client, project_id.as_uuid())
                .await
                .map_err(|e| match e {
                    read_model::rows::ReadError::Database(e) => e.into(),
                    other => ApiError::internal(other),
                })?;
            drop(client);
            let latest: Option<Generation> = latest
                .map(serde_json::from_value)
                .transpose()
                .map_err(ApiError::internal)?;
            // Only one of this target is a default base.
            match latest.filter(|g| g.target.as_str() == target) {
                Some(g) => g.id,
                None => return Ok(None),
            }
        }
    };
    let loaded: event_store::Loaded<Generation> =
        event_store::load(&state.store, &id.stream(), ReadUntil::End).await?;
    if named.is_none() && loaded.state.project_version > version {
        return Ok(None);
    }
    Ok(Some(Box::new(loaded.state)))
}

/// Request a generation of the project (202); the job runs asynchronously.
#[utoipa::path(post, path = "/api/v1/projects/{id}/generations", tag = "generations", request_body = GenerationRequest,
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "Project id"), runtime::openapi::CreateHeaders),
    responses((status = 202, description = "Requested; poll GET /generations/{id}", body = runtime::openapi::WriteAnswer,
                headers(("Location"), ("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not request generations"),
              (status = 404, description = "Unknown project or version"),
              (status = 409, description = "The Idempotency-Key is in flight"),
              (status = 422, description = "Nothing to generate, unknown target, unsupported feature or mode, a base generation of another project or target, of a later version or not succeeded")))]
#[post("/projects/{id}/generations")]
pub async fn request_generation(
    state: web::Data<CommandState>,
    write: Write<Json<GenerationRequest>>,
    Ids(project_id): Ids<ProjectId>,
) -> Result<HttpResponse, ApiError> {
    let value = &write.body.value;
    let generation_id = GenerationId::from_uuid(Uuid::now_v7());
    let stream = generation_id.stream();
    let now = OffsetDateTime::now_utc();
    let target = value
        .target
        .clone()
        .unwrap_or_else(|| "python-fastapi".to_owned());
    // The project is only read (its access rules, the version asked for); the step is the new
    // generation's stream.
    let step = Step::<Generation> {
        stream: stream.clone(),
        source: Source::New,
        pin: Pin::Latest,
        limits: &state.settings.limits,
        metadata: write.meta.metadata(Some(write.caller.user_id)),
    };
    let make_plan = async || {
        let current = state
            .projects
            .load(&state.store, &project_id.stream())
            .await?;
        check_write_access(&current, &write.caller)?;
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
            project_at(&state, project_id, version).await?
        };
        let base = base_of(
            &state,
            value.base_generation_id,
            project_id,
            &target,
            version,
        )
        .await?;
        let command = GenerationCommand::RequestGeneration(RequestGeneration {
            generation_id,
            project: snapshot,
            project_version: version,
            current_project_version: current.version,
            target: target.clone(),
            base,
            verify: value.verify.unwrap_or(false),
            requested_by: UserId::from_uuid(write.caller.user_id),
            at: now,
        });
        let decided = step
            .decide(&state.store, |_| Ok(command))
            .await
            .map_err(|f| failure(f, generation_error))?;
        Ok(
            Plan::decided(stream.clone(), decided).reply(move |version, position| WriteAnswer {
                status: StatusCode::ACCEPTED,
                body: Some(
                    json!({"id": generation_id, "version": version, "position": position.to_token()}),
                ),
                location: Some(format!("/api/v1/generations/{generation_id}")),
                version,
                position,
            }),
        )
    };
    state
        .executor
        .run(write.key.clone(), write.body.raw(), Pin::Latest, make_plan)
        .await
}
