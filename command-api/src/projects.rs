//! Application functions for projects, their features and members: load → check access → decide →
//! plan the append, answered with the stream's new version and position.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use domain::ids::{ProjectId, UserId};
use domain::project::{Access, Project, ProjectCommand, ProjectError, ProjectStatus};
use event_store::{EventStore, ExpectedVersion, NewEvent, StreamAppend};
use runtime::{ApiError, Authenticated, ProblemType};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::CommandState;
use crate::execute::{Idempotency, Plan, Reply};
use crate::http::{IfMatch, RequestMeta};
use crate::load::Loaded;

/// The one mapping of project rules to HTTP answers.
pub fn project_error(e: ProjectError) -> ApiError {
    match e {
        ProjectError::NotFound | ProjectError::Archived => ApiError::not_found("no such project"),
        ProjectError::FeatureNotFound(id) => {
            ApiError::not_found(format!("the project has no feature {id}"))
        }
        ProjectError::MemberNotFound(id) => {
            ApiError::not_found(format!("user {id} is not a member of the project"))
        }
        e @ (ProjectError::FeatureNameTaken { .. }
        | ProjectError::EntityNameTaken { .. }
        | ProjectError::PluralTaken { .. }) => {
            ApiError::conflict(ProblemType::NameTaken, e.to_string())
        }
        e @ ProjectError::FeatureReferenced { .. } => {
            ApiError::conflict(ProblemType::StillReferenced, e.to_string())
        }
        e @ (ProjectError::AlreadyExists
        | ProjectError::FeatureAlreadyExists(_)
        | ProjectError::FeatureLimitReached { .. }) => {
            ApiError::conflict(ProblemType::Conflict, e.to_string())
        }
        e @ ProjectError::OwnerCannotBeMember => ApiError::invalid_field("/user_id", e.to_string()),
        ProjectError::Validation(errors) => ApiError::invalid("the request is invalid", errors),
        e @ ProjectError::TooLarge { .. } => ApiError::new(
            ProblemType::ProjectTooLarge,
            format!("{e} (BACKFORGE_PROJECT_MAX_BYTES)"),
        ),
    }
}

/// How a successful project write answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 201 `{id, version, position}` with `Location`.
    Created { id: Uuid, location: String },
    /// 200 `{id, version, position}`.
    Updated { id: Uuid },
    /// 200 `{version, position}`.
    Versioned,
    /// 204 with headers only.
    NoContent,
}

impl Answer {
    fn reply(self, version: u64, position: event_store::Position) -> Reply {
        let token = position.to_token();
        let (status, body, location) = match self {
            Answer::Created { id, location } => (
                StatusCode::CREATED,
                Some(json!({"id": id, "version": version, "position": token})),
                Some(location),
            ),
            Answer::Updated { id } => (
                StatusCode::OK,
                Some(json!({"id": id, "version": version, "position": token})),
                None,
            ),
            Answer::Versioned => (
                StatusCode::OK,
                Some(json!({"version": version, "position": token})),
                None,
            ),
            Answer::NoContent => (StatusCode::NO_CONTENT, None, None),
        };
        Reply {
            status,
            body,
            location,
            version,
            position,
        }
    }
}

/// A write to a project by `caller`.
pub struct ProjectWrite<'a> {
    pub req: &'a HttpRequest,
    pub meta: &'a RequestMeta,
    pub caller: &'a Authenticated,
    pub body: &'a [u8],
}

fn new_events(
    events: &[domain::project::ProjectEvent],
    meta: &RequestMeta,
    actor: Uuid,
) -> Vec<NewEvent> {
    events
        .iter()
        .map(|e| NewEvent::from_domain(e, Uuid::now_v7(), meta.metadata(Some(actor))))
        .collect()
}

/// Creates a project (with its features, atomically) owned by the caller.
pub async fn create(
    state: &CommandState,
    write: ProjectWrite<'_>,
    command: impl Fn(ProjectId, UserId, OffsetDateTime) -> ProjectCommand,
) -> Result<HttpResponse, ApiError> {
    let project_id = ProjectId::from_uuid(Uuid::now_v7());
    let owner = UserId::from_uuid(write.caller.user_id);
    let now = OffsetDateTime::now_utc();
    let stream = project_id.stream();
    let command = command(project_id, owner, now);
    let make_plan = || {
        let stream = stream.clone();
        let command = command.clone();
        async move {
            let events = Project::default()
                .decide(&command, &state.settings.limits)
                .map_err(project_error)?;
            let answer = Answer::Created {
                id: project_id.as_uuid(),
                location: format!("/api/v1/projects/{project_id}"),
            };
            Ok(Plan::new(stream.clone(), 0, event_store::Position::START)
                .append(StreamAppend::new(
                    stream,
                    ExpectedVersion::NoStream,
                    new_events(&events, write.meta, write.caller.user_id),
                ))
                .reply(move |v, p| answer.reply(v, p)))
        }
    };
    let idempotency = Idempotency::Caller {
        user_id: write.caller.user_id,
        body: write.body,
    };
    state
        .executor
        .run(write.req, idempotency, false, make_plan)
        .await
}

/// Loads a project for writing: 404 when the caller cannot see it or it is archived, 403 for a
/// viewer, 412 when `If-Match` names another version.
pub(crate) async fn load_for_write(
    state: &CommandState,
    caller: &Authenticated,
    project_id: ProjectId,
    if_match: Option<IfMatch>,
) -> Result<Loaded<Project>, ApiError> {
    let loaded = state
        .projects
        .load(&state.store, &project_id.stream())
        .await?;
    match loaded
        .state
        .access_for(UserId::from_uuid(caller.user_id), caller.role)
    {
        Access::None => return Err(ApiError::not_found("no such project")),
        Access::Viewer => {
            return Err(ApiError::forbidden(
                "viewers of a project may read it but not change it",
            ));
        }
        Access::Owner | Access::Admin => {}
    }
    if loaded.state.status == ProjectStatus::Archived {
        return Err(ApiError::not_found("no such project"));
    }
    IfMatch::check(if_match, loaded.version)?;
    Ok(loaded)
}

/// Any write to an existing project: `command` turns the loaded state into the command to decide.
pub async fn change(
    state: &CommandState,
    write: ProjectWrite<'_>,
    project_id: ProjectId,
    answer: Answer,
    command: impl Fn(&Project, OffsetDateTime) -> Result<ProjectCommand, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let if_match = IfMatch::from_request(write.req)?;
    let stream = project_id.stream();
    let now = OffsetDateTime::now_utc();
    let make_plan = || {
        let stream = stream.clone();
        let answer = answer.clone();
        let command = &command;
        async move {
            let loaded = load_for_write(state, write.caller, project_id, if_match).await?;
            let command = command(&loaded.state, now)?;
            let events = loaded
                .state
                .decide(&command, &state.settings.limits)
                .map_err(project_error)?;
            let mut plan = Plan::new(stream.clone(), loaded.version, loaded.position);
            if !events.is_empty() {
                plan = plan.append(StreamAppend::new(
                    stream,
                    ExpectedVersion::Exact(loaded.version),
                    new_events(&events, write.meta, write.caller.user_id),
                ));
            }
            Ok(plan.reply(move |v, p| answer.reply(v, p)))
        }
    };
    let idempotency = Idempotency::Caller {
        user_id: write.caller.user_id,
        body: write.body,
    };
    state
        .executor
        .run(write.req, idempotency, if_match.is_some(), make_plan)
        .await
}

/// 404 unless `user_id` names a registered user.
pub async fn require_user(state: &CommandState, user_id: UserId) -> Result<(), ApiError> {
    if state.store.stream_version(&user_id.stream()).await? == 0 {
        return Err(ApiError::not_found(format!("no user {user_id}")));
    }
    Ok(())
}
