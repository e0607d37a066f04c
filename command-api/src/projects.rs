//! Application functions for projects, their features and members: load → check access → decide →
//! plan the append, answered with the stream's new version and position.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use domain::ids::{ProjectId, UserId};
use domain::project::{Access, Project, ProjectCommand, ProjectError, ProjectStatus};
use event_store::EventStore;
use std::sync::atomic::{AtomicUsize, Ordering};

use event_store::application::{Decided, Pin, Source, Step};
use runtime::{ApiError, Authenticated, ProblemType};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::CommandState;
use crate::execute::{Plan, SideWrite, WriteAnswer, failure};
use crate::http::{Write, WriteBody};
use crate::load::Loaded;
use crate::record_constraints::SchemaChange;

/// The one mapping of project rules to HTTP answers.
pub fn project_error(e: ProjectError) -> ApiError {
    match e {
        ProjectError::NotFound | ProjectError::Archived => ApiError::not_found("no such project"),
        ProjectError::FeatureNotFound(id) => {
            ApiError::not_found(format!("the project has no feature {id}"))
        }
        ProjectError::FunctionNotFound(id) => {
            ApiError::not_found(format!("the project has no function {id}"))
        }
        e @ ProjectError::FunctionConflict(_) => {
            ApiError::conflict(ProblemType::FunctionConflict, e.to_string())
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
        | ProjectError::FeatureLimitReached { .. }
        | ProjectError::FunctionAlreadyExists(_)
        | ProjectError::FunctionLimitReached { .. }) => {
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
pub enum ProjectAnswer {
    /// 201 `{id, version, position}` with `Location`.
    Created { id: Uuid, location: String },
    /// 200 `{id, version, position}`.
    Updated { id: Uuid },
    /// 200 `{version, position}`.
    Versioned,
    /// 204 with headers only.
    NoContent,
}

impl ProjectAnswer {
    fn reply(&self, version: u64, position: event_store::Position) -> WriteAnswer {
        let token = position.to_token();
        let (status, body, location) = match self {
            ProjectAnswer::Created { id, location } => (
                StatusCode::CREATED,
                Some(json!({"id": id, "version": version, "position": token})),
                Some(location.clone()),
            ),
            ProjectAnswer::Updated { id } => (
                StatusCode::OK,
                Some(json!({"id": id, "version": version, "position": token})),
                None,
            ),
            ProjectAnswer::Versioned => (
                StatusCode::OK,
                Some(json!({"version": version, "position": token})),
                None,
            ),
            ProjectAnswer::NoContent => (StatusCode::NO_CONTENT, None, None),
        };
        WriteAnswer {
            status,
            body,
            location,
            version,
            position,
        }
    }
}

/// The step of a command on `project_id`'s stream, folded through the command side's cache.
fn step<'a, B>(
    state: &'a CommandState,
    write: &Write<B>,
    stream: String,
    source: Source<'a, Project>,
) -> Step<'a, Project> {
    Step {
        stream,
        source,
        pin: write.pin(),
        limits: &state.settings.limits,
        metadata: write.meta.metadata(Some(write.caller.user_id)),
    }
}

/// Creates a project (with its features, atomically) owned by the caller.
pub async fn create<B: WriteBody>(
    state: &CommandState,
    write: Write<B>,
    command: impl Fn(ProjectId, UserId, OffsetDateTime) -> ProjectCommand,
) -> Result<HttpResponse, ApiError> {
    let project_id = ProjectId::from_uuid(Uuid::now_v7());
    let owner = UserId::from_uuid(write.caller.user_id);
    let command = command(project_id, owner, OffsetDateTime::now_utc());
    let stream = project_id.stream();
    let step = Step {
        pin: Pin::Latest,
        ..step(state, &write, stream.clone(), Source::New)
    };
    let answer = ProjectAnswer::Created {
        id: project_id.as_uuid(),
        location: format!("/api/v1/projects/{project_id}"),
    };
    let make_plan = async || {
        let decided = step
            .decide(&state.store, |_| Ok(command.clone()))
            .await
            .map_err(|f| failure(f, project_error))?;
        Ok(remembered_plan(
            state,
            &stream,
            decided,
            answer.clone(),
            Vec::new(),
        ))
    };
    state
        .executor
        .run(write.key.clone(), write.body.raw(), Pin::Latest, make_plan)
        .await
}

/// The plan of a decided project command; once it commits, the command side's cache keeps the
/// state it left, so the next command on the project reads nothing before deciding.
fn remembered_plan(
    state: &CommandState,
    stream: &str,
    decided: Decided<Project>,
    answer: ProjectAnswer,
    side_writes: Vec<SideWrite>,
) -> Plan {
    // A change of an entity's schema is checked against its live records in the write's
    // transaction.
    let schema_change = SchemaChange::of(&decided.events, &decided.after);
    let (after, version, position, append) = decided.into_after();
    let plan = Plan::new(stream, version, position).reply(move |v, p| answer.reply(v, p));
    let Some(append) = append else {
        // Nothing changes: the state a queued load took goes back as it was.
        state.projects.remember(
            stream,
            Loaded {
                state: after,
                version,
                position,
            },
        );
        return plan;
    };
    let mut plan = side_writes.into_iter().fold(plan, Plan::side_write);
    if let Some(change) = schema_change {
        plan = plan.hook(change);
    }
    let cache = state.projects.clone();
    let stream = stream.to_owned();
    plan.append(append).on_landed(move |landed| {
        cache.remember(
            &stream,
            Loaded {
                state: after,
                version: landed.version,
                position: landed.position,
            },
        )
    })
}

/// Whether `caller` may write to the loaded project: 404 when they cannot see it or it is
/// archived, 403 for a viewer.
pub(crate) fn check_write_access(
    loaded: &Loaded<Project>,
    caller: &Authenticated,
) -> Result<(), ApiError> {
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
    Ok(())
}

/// Any write to an existing project: `command` turns the loaded state into the command to decide.
pub async fn change<B: WriteBody>(
    state: &CommandState,
    write: Write<B>,
    project_id: ProjectId,
    answer: ProjectAnswer,
    command: impl Fn(&Project, OffsetDateTime) -> Result<ProjectCommand, ApiError>,
) -> Result<HttpResponse, ApiError> {
    change_prepared(
        state,
        write,
        project_id,
        answer,
        async |_| Ok(()),
        |project, (), at| command(project, at),
        Vec::new,
    )
    .await
}

/// [`change`] after `prepare`, the checks of a write that need I/O. It runs in each attempt, inside
/// the write's turn on the project and after its `Idempotency-Key` is claimed (so a replay answers
/// without preparing anything), and hands its outcome to `command`. `side_writes` are made afresh
/// for each attempt and commit with the events.
pub async fn change_prepared<B: WriteBody, P>(
    state: &CommandState,
    write: Write<B>,
    project_id: ProjectId,
    answer: ProjectAnswer,
    prepare: impl AsyncFn(&Write<B>) -> Result<P, ApiError>,
    command: impl Fn(&Project, &P, OffsetDateTime) -> Result<ProjectCommand, ApiError>,
    side_writes: impl Fn() -> Vec<SideWrite>,
) -> Result<HttpResponse, ApiError> {
    let stream = project_id.stream();
    let now = OffsetDateTime::now_utc();
    let pin = write.pin();
    // This process's commands on the project are decided one after another, each on the state
    // the previous one left (kept by `remembered_plan`), so they never race each other: the first
    // attempt reads nothing. Only another process's write can make the append's version check
    // fail; the retry then reads the events after the cached state. A pinned write (If-Match)
    // always reads them, so the pin is compared with the stream's real version.
    let _turn = state.projects.queue(&stream).await;
    let attempts = AtomicUsize::new(0);
    let make_plan = async || {
        let first = attempts.fetch_add(1, Ordering::Relaxed) == 0;
        let source = if first && pin == Pin::Latest {
            Source::Queued(&*state.projects)
        } else {
            Source::Cache(&*state.projects)
        };
        let prepared = prepare(&write).await?;
        let step = step(state, &write, stream.clone(), source);
        let decided = step
            .decide(&state.store, |loaded| {
                check_write_access(loaded, &write.caller)?;
                command(&loaded.state, &prepared, now)
            })
            .await
            .map_err(|f| failure(f, project_error))?;
        Ok(remembered_plan(
            state,
            &stream,
            decided,
            answer.clone(),
            side_writes(),
        ))
    };
    state
        .executor
        .run(write.key.clone(), write.body.raw(), pin, make_plan)
        .await
}

/// 404 unless `user_id` names a registered user.
pub async fn require_user(state: &CommandState, user_id: UserId) -> Result<(), ApiError> {
    if state.store.stream_version(&user_id.stream()).await? == 0 {
        return Err(ApiError::not_found(format!("no user {user_id}")));
    }
    Ok(())
}
