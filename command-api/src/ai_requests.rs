//! AI requests: `POST /ai/generate-config`, `/ai/enhance-config` and `/ai/generate-code` append
//! `AiRequested` (with the resolved model's configuration and the effective prompt's text) to a
//! new request stream, which the projector turns into a job; `POST /ai/requests/{id}/apply` turns a
//! succeeded proposal into ordinary project events in one append with `AiProposalApplied`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use domain::ai::budget;
use domain::ai::proposal::{self, Origin, Proposal};
use domain::ai::request::{
    AiRequest, AiRequestCommand, AiRequestError, AiRequestKind, ApplyProposal, PromptRef, RequestAi,
};
use domain::envelope::SOURCE_AI;
use domain::ids::{AiRequestId, FeatureId, FunctionId, ProjectId, UserId};
use domain::project::Project;
use event_store::application::{Pin, Source, Step, stamp};
use event_store::{ExpectedVersion, Loaded, ReadUntil, StreamAppend};
use runtime::ai_budget::Admission;
use runtime::{ApiError, Json, ProblemType};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::CommandState;
use crate::ai_catalog::{effective_prompt, resolve_model};
use crate::execute::{Plan, WriteAnswer, failure};
use crate::http::{Ids, IfMatch, NoBody, PathId, Write, WriteBody};
use crate::projects::{check_write_access, project_error};
use crate::record_constraints::SchemaChange;

impl PathId for AiRequestId {
    const SEGMENT: &'static str = "id";
    const WHAT: &'static str = "AI request";
    fn from_uuid(id: Uuid) -> Self {
        AiRequestId::from_uuid(id)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfigRequest {
    #[schema(value_type = Uuid)]
    pub project_id: ProjectId,
    /// What to build, at most 8,000 characters.
    pub prompt: String,
    /// A specification to build from (answered 422 `unknown spec` until specifications exist).
    #[serde(default)]
    pub spec_id: Option<Uuid>,
    /// The model's name; default: the default model.
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnhanceConfigRequest {
    #[schema(value_type = Uuid)]
    pub project_id: ProjectId,
    #[schema(value_type = Uuid)]
    pub feature_id: FeatureId,
    /// What to improve, at most 8,000 characters.
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateCodeRequest {
    #[schema(value_type = Uuid)]
    pub project_id: ProjectId,
    #[schema(value_type = Uuid)]
    pub function_id: FunctionId,
    /// What the code should do beyond the function's description, at most 8,000 characters.
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

/// The answer to an apply: the project's version after it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ApplyAnswer {
    project_id: Uuid,
    #[schema(schema_with = runtime::openapi::version)]
    version: u64,
    #[schema(schema_with = runtime::openapi::position)]
    position: String,
}

pub fn ai_request_error(e: AiRequestError) -> ApiError {
    match e {
        AiRequestError::Validation(errors) => {
            ApiError::invalid("the AI request is invalid", errors)
        }
        AiRequestError::ProjectNotFound | AiRequestError::ProjectArchived => {
            ApiError::not_found("no such project")
        }
        AiRequestError::NotFound => ApiError::not_found("no such AI request"),
        e @ (AiRequestError::AlreadyRequested
        | AiRequestError::NotStarted
        | AiRequestError::AlreadyFinished
        | AiRequestError::AttemptOutOfOrder { .. }
        | AiRequestError::TooManyAttempts
        | AiRequestError::NoUsableAttempt
        | AiRequestError::NotSucceeded(_)
        | AiRequestError::AlreadyApplied) => {
            ApiError::conflict(ProblemType::Conflict, e.to_string())
        }
    }
}

/// What every AI request route asks for, once its body is read.
struct Asked {
    kind: AiRequestKind,
    project_id: ProjectId,
    feature_id: Option<FeatureId>,
    function_id: Option<FunctionId>,
    prompt: Option<String>,
    model: Option<String>,
}

/// Checks the caller's access to the project (a stranger 404, a viewer 403), resolves the model
/// and the prompt, and appends `AiRequested` to a new request stream: 202.
async fn request_ai(
    state: &CommandState,
    write: &Write<impl WriteBody>,
    asked: Asked,
) -> Result<HttpResponse, ApiError> {
    let request_id = AiRequestId::from_uuid(Uuid::now_v7());
    let stream = request_id.stream();
    let now = OffsetDateTime::now_utc();
    let step = Step::<AiRequest> {
        stream: stream.clone(),
        source: Source::New,
        pin: Pin::Latest,
        limits: &state.settings.limits,
        metadata: write.meta.metadata(Some(write.caller.user_id)),
    };
    let asked = &asked;
    let make_plan = async || {
        let current = state
            .projects
            .load(&state.store, &asked.project_id.stream())
            .await?;
        check_write_access(&current, &write.caller)?;
        let client = state.pool.get().await?;
        let model = resolve_model(&client, asked.model.as_deref()).await?;
        let prompt = effective_prompt(&client, asked.kind).await?;
        drop(client);
        let request = RequestAi {
            request_id,
            kind: asked.kind,
            project: current.state.clone(),
            project_version: current.version,
            feature_id: asked.feature_id,
            function_id: asked.function_id,
            user_prompt: asked.prompt.clone(),
            model: model.name.to_string(),
            model_config: model.config,
            prompt: PromptRef {
                name: prompt.name,
                version: prompt.version,
            },
            system: prompt.system,
            template: prompt.template,
            requested_by: UserId::from_uuid(write.caller.user_id),
            at: now,
        };
        // Admission: the worst case is reserved in the user's month row in the transaction of
        // `AiRequested`, or the write is refused (429) and nothing is appended.
        let admission = Admission {
            request_id: request_id.as_uuid(),
            user_id: write.caller.user_id,
            at: now,
            reservation_usd: budget::request_reservation(&request),
            default_budget_usd: state.settings.ai_monthly_budget_usd,
        };
        let command = AiRequestCommand::Request(Box::new(request));
        let decided = step
            .decide(&state.store, |_| Ok(command))
            .await
            .map_err(|f| failure(f, ai_request_error))?;
        Ok(Plan::decided(stream.clone(), decided)
            .hook(admission)
            .reply(move |version, position| WriteAnswer {
                status: StatusCode::ACCEPTED,
                body: Some(
                    json!({"id": request_id, "version": version, "position": position.to_token()}),
                ),
                location: Some(format!("/api/v1/ai/requests/{request_id}")),
                version,
                position,
            }))
    };
    state
        .executor
        .run(write.key.clone(), write.body.raw(), Pin::Latest, make_plan)
        .await
}

/// Ask the model for features for a project (202); poll `GET /ai/requests/{id}`.
#[utoipa::path(post, path = "/api/v1/ai/generate-config", tag = "ai", request_body = GenerateConfigRequest,
    security(("bearer" = [])), params(runtime::openapi::CreateHeaders),
    responses((status = 202, description = "Requested; poll GET /ai/requests/{id}", body = runtime::openapi::WriteAnswer,
                headers(("Location"), ("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not make AI requests"),
              (status = 404, description = "Unknown project"),
              (status = 422, description = "A prompt over 8,000 characters, an unknown model, or a `spec_id` (unknown spec)"),
              (status = 429, description = "The caller's monthly AI budget cannot hold this request's worst case (`ai-budget-exceeded`; `Retry-After`: seconds to the next UTC month)",
                headers(("Retry-After" = u64, description = "Seconds to the start of the next UTC month"))),
              (status = 503, description = "No AI model is configured (`ai-not-configured`)")))]
#[post("/ai/generate-config")]
pub async fn generate_config(
    state: web::Data<CommandState>,
    write: Write<Json<GenerateConfigRequest>>,
) -> Result<HttpResponse, ApiError> {
    let body = &write.body.value;
    if body.spec_id.is_some() {
        return Err(ApiError::invalid_field("/spec_id", "unknown spec"));
    }
    let asked = Asked {
        kind: AiRequestKind::GenerateConfig,
        project_id: body.project_id,
        feature_id: None,
        function_id: None,
        prompt: Some(body.prompt.clone()),
        model: body.model.clone(),
    };
    request_ai(&state, &write, asked).await
}

/// Ask the model to improve one feature (mixed mode: the user's base) (202).
#[utoipa::path(post, path = "/api/v1/ai/enhance-config", tag = "ai", request_body = EnhanceConfigRequest,
    security(("bearer" = [])), params(runtime::openapi::CreateHeaders),
    responses((status = 202, description = "Requested; poll GET /ai/requests/{id}", body = runtime::openapi::WriteAnswer,
                headers(("Location"), ("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not make AI requests"),
              (status = 404, description = "Unknown project"),
              (status = 422, description = "An unknown feature, a prompt over 8,000 characters, or an unknown model"),
              (status = 429, description = "The caller's monthly AI budget cannot hold this request's worst case (`ai-budget-exceeded`; `Retry-After`: seconds to the next UTC month)",
                headers(("Retry-After" = u64, description = "Seconds to the start of the next UTC month"))),
              (status = 503, description = "No AI model is configured (`ai-not-configured`)")))]
#[post("/ai/enhance-config")]
pub async fn enhance_config(
    state: web::Data<CommandState>,
    write: Write<Json<EnhanceConfigRequest>>,
) -> Result<HttpResponse, ApiError> {
    let body = &write.body.value;
    let asked = Asked {
        kind: AiRequestKind::EnhanceConfig,
        project_id: body.project_id,
        feature_id: Some(body.feature_id),
        function_id: None,
        prompt: body.prompt.clone(),
        model: body.model.clone(),
    };
    request_ai(&state, &write, asked).await
}

/// Ask the model for a custom function's code (202).
#[utoipa::path(post, path = "/api/v1/ai/generate-code", tag = "ai", request_body = GenerateCodeRequest,
    security(("bearer" = [])), params(runtime::openapi::CreateHeaders),
    responses((status = 202, description = "Requested; poll GET /ai/requests/{id}", body = runtime::openapi::WriteAnswer,
                headers(("Location"), ("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not make AI requests"),
              (status = 404, description = "Unknown project"),
              (status = 422, description = "An unknown function, a prompt over 8,000 characters, or an unknown model"),
              (status = 429, description = "The caller's monthly AI budget cannot hold this request's worst case (`ai-budget-exceeded`; `Retry-After`: seconds to the next UTC month)",
                headers(("Retry-After" = u64, description = "Seconds to the start of the next UTC month"))),
              (status = 503, description = "No AI model is configured (`ai-not-configured`)")))]
#[post("/ai/generate-code")]
pub async fn generate_code(
    state: web::Data<CommandState>,
    write: Write<Json<GenerateCodeRequest>>,
) -> Result<HttpResponse, ApiError> {
    let body = &write.body.value;
    let asked = Asked {
        kind: AiRequestKind::GenerateCode,
        project_id: body.project_id,
        feature_id: None,
        function_id: Some(body.function_id),
        prompt: body.prompt.clone(),
        model: body.model.clone(),
    };
    request_ai(&state, &write, asked).await
}

/// `request`'s recorded proposal.
fn stored_proposal(request: &AiRequest) -> Result<Proposal, ApiError> {
    let stored = request
        .proposal
        .as_ref()
        .ok_or_else(|| ai_request_error(AiRequestError::NotSucceeded(request.status.as_str())))?;
    proposal::parse(request.kind, stored).map_err(|problems| {
        ApiError::internal(anyhow::anyhow!(
            "the stored proposal of AI request {} does not parse: {problems:?}",
            request.id
        ))
    })
}

/// The project events that apply `request`'s proposal (`parsed`) to `project`, or why it no
/// longer fits.
fn proposal_events(
    request: &AiRequest,
    parsed: &Proposal,
    project: &Loaded<Project>,
    limits: &domain::Limits,
    at: OffsetDateTime,
) -> Result<Vec<domain::project::ProjectEvent>, ApiError> {
    let origin = Origin {
        ai_request_id: request.id,
        at,
    };
    let commands = proposal::validate(
        &project.state,
        parsed,
        &origin,
        || FeatureId::from_uuid(Uuid::now_v7()),
        limits,
    )
    .map_err(|problems| {
        ApiError::invalid(
            "the proposal no longer fits the project (the problems point into the proposal)",
            problems,
        )
    })?;
    proposal::decide_in_turn(&project.state, &commands, limits).map_err(|(_, e)| project_error(e))
}

/// Apply a succeeded AI request's proposal to its project: its features or code become ordinary
/// project events (causation: the AI request; metadata `source: "ai"`) in the same append as
/// `AiProposalApplied`.
#[utoipa::path(post, path = "/api/v1/ai/requests/{id}/apply", tag = "ai",
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "AI request id"), runtime::openapi::WriteHeaders),
    responses((status = 200, description = "Applied: the project's new version", body = ApplyAnswer,
                headers(("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not apply"),
              (status = 404, description = "Unknown AI request, or a project the caller cannot see"),
              (status = 409, description = "Not succeeded, or applied already"),
              (status = 412, description = "`If-Match` is not the project's version"),
              (status = 422, description = "The proposal no longer fits the project")))]
#[post("/ai/requests/{id}/apply")]
pub async fn apply_proposal(
    state: web::Data<CommandState>,
    write: Write<NoBody>,
    Ids(request_id): Ids<AiRequestId>,
) -> Result<HttpResponse, ApiError> {
    let request_stream = request_id.stream();
    let make_plan = async || {
        let request: Loaded<AiRequest> =
            event_store::load(&state.store, &request_stream, ReadUntil::End).await?;
        if !request.state.exists() {
            return Err(ApiError::not_found("no such AI request"));
        }
        let project_id = request.state.project_id;
        let project_stream = project_id.stream();
        let project: Loaded<Project> =
            event_store::load(&state.store, &project_stream, ReadUntil::End).await?;
        check_write_access(&project, &write.caller)?;
        // The request again, read after the project: an apply that landed before the project was
        // read shows here too (the append is atomic), so a lost race answers 409 rather than a
        // 422 for the project's own copy of the features.
        let request: Loaded<AiRequest> =
            event_store::load(&state.store, &request_stream, ReadUntil::End).await?;
        let at = OffsetDateTime::now_utc();
        let applied_by = UserId::from_uuid(write.caller.user_id);
        let limits = &state.settings.limits;
        // 409 before anything else is decided: not succeeded, or applied already.
        let check = AiRequestCommand::Apply(ApplyProposal {
            project_version: project.version,
            applied_by,
            at,
        });
        request
            .state
            .decide(&check, limits)
            .map_err(ai_request_error)?;
        IfMatch::check(write.if_match, project.version)?;
        let parsed = stored_proposal(&request.state)?;
        // Code is compiled where it is written, as `PUT /functions/{id}` does: the worker compiled
        // it (and ran the function's examples) too, but a function's code must compile to be
        // stored whatever checked it before.
        if let Proposal::GenerateCode(code) = &parsed {
            crate::functions::compile(&state, &code.function_code).await?;
        }
        let events = proposal_events(&request.state, &parsed, &project, limits, at)?;
        let version = project.version + events.len() as u64;
        let applied = request
            .state
            .decide(
                &AiRequestCommand::Apply(ApplyProposal {
                    project_version: version,
                    applied_by,
                    at,
                }),
                limits,
            )
            .map_err(ai_request_error)?;
        let mut ai_metadata = write.meta.metadata(Some(write.caller.user_id));
        ai_metadata.causation_id = Some(request_id.as_uuid());
        ai_metadata.source = Some(SOURCE_AI.to_owned());
        let expected = |v: u64| {
            if v == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(v)
            }
        };
        let project_append = StreamAppend::new(
            project_stream.clone(),
            expected(project.version),
            stamp(&events, &ai_metadata, Some(project_id)),
        );
        let request_append = StreamAppend::new(
            request_stream.clone(),
            expected(request.version),
            stamp(
                &applied,
                &write.meta.metadata(Some(write.caller.user_id)),
                Some(project_id),
            ),
        );
        // An applied change of an entity's schema is checked against its live records, as an
        // owner's own change is.
        let schema_change = {
            let mut after = project.state.clone();
            for event in &events {
                after.evolve(event);
            }
            SchemaChange::of(&events, &after)
        };
        let plan = Plan::new(project_stream, project.version, project.position);
        let plan = match schema_change {
            Some(change) => plan.hook(change),
            None => plan,
        };
        Ok(plan
            .append(project_append)
            .append(request_append)
            .reply(move |version, position| WriteAnswer {
                status: StatusCode::OK,
                body: Some(json!({
                    "project_id": project_id,
                    "version": version,
                    "position": position.to_token(),
                })),
                location: None,
                version,
                position,
            }))
    };
    // Pinned by If-Match (checked against the project's version in the plan): a lost race is a
    // failed precondition; without it, a lost race is decided again (and then answers 409 when
    // the other apply won).
    let pin = match write.if_match {
        Some(_) => Pin::Any,
        None => Pin::Latest,
    };
    state
        .executor
        .run(write.key.clone(), write.body.raw(), pin, make_plan)
        .await
}
