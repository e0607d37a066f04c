//! Reads of AI requests: one request (status, attempts with usage and cost, the proposal) and a
//! project's requests, newest first; visible to whoever may see the project.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, get, web};
use domain::ai::request::AiRequest;
use read_model::ai_requests;
use read_model::rows::Features;
use runtime::http_headers::rfc3339;
use runtime::openapi::{self as openapi, ReadHeaders};
use runtime::{ApiError, Authenticated, ProblemType};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::QueryState;
use crate::extract::{Fresh, ProjectPath};
use crate::params::{NewestFirst, Query, encode_cursor};
use crate::routes::{current, read_error, visible};

/// The AI request id of a `/ai/requests/{id}` route (not a UUID → 404).
#[derive(Debug, Clone, Copy)]
pub struct AiRequestPath(pub Uuid);

impl FromRequest for AiRequestPath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.match_info()
                .get("id")
                .and_then(|raw| raw.parse::<Uuid>().ok())
                .map(AiRequestPath)
                .ok_or_else(|| ApiError::not_found("no such AI request")),
        )
    }
}

/// A request with the API's field names: the folded request's view (no model URL, key variable
/// or template text).
fn present(document: Value) -> Result<Value, ApiError> {
    let request: AiRequest = serde_json::from_value(document).map_err(ApiError::internal)?;
    serde_json::to_value(request.view()).map_err(ApiError::internal)
}

/// One attempt as `GET /ai/requests/{id}` lists it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AiAttempt {
    n: u32,
    usage: AiUsage,
    /// A decimal string, 6 places.
    cost_usd: String,
    latency_ms: u64,
    error: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AiUsage {
    input_tokens: u64,
    output_tokens: u64,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AiPromptRef {
    name: String,
    version: u32,
}

/// An AI request.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AiRequestDoc {
    id: Uuid,
    /// `generate_config`, `enhance_config` or `generate_code`.
    kind: String,
    project_id: Uuid,
    #[schema(schema_with = openapi::version)]
    project_version: u64,
    feature_id: Option<Uuid>,
    function_id: Option<Uuid>,
    /// `requested`, `running`, `succeeded` or `failed`.
    status: String,
    model: String,
    prompt: AiPromptRef,
    /// The proposal once succeeded: `{features}`, `{feature_id, changes, rationale}` or
    /// `{function_id, function_code}`.
    proposal: Option<Value>,
    attempts: Vec<AiAttempt>,
    usage: AiUsage,
    /// The attempts' costs summed, a decimal string.
    cost_usd: String,
    error: Option<String>,
    applied_at: Option<String>,
    requested_by: Uuid,
    requested_at: String,
    completed_at: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AiRequestPage {
    items: Vec<AiRequestDoc>,
    #[schema(schema_with = openapi::next_cursor)]
    next_cursor: Option<String>,
}

/// An AI request: status, attempts (usage, cost, latency, error), the proposal and its cost.
#[utoipa::path(get, path = "/api/v1/ai/requests/{id}", tag = "ai", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "AI request id"), ReadHeaders),
    responses((status = 200, description = "The AI request", body = AiRequestDoc),
              (status = 404, description = "Unknown or not visible")))]
#[get("/ai/requests/{id}")]
pub async fn get_ai_request(
    state: web::Data<QueryState>,
    caller: Authenticated,
    AiRequestPath(id): AiRequestPath,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let row = ai_requests::ai_request(&client, id)
        .await
        .map_err(read_error)?
        .ok_or_else(|| ApiError::not_found("no such AI request"))?;
    drop(client);
    visible(&state, &caller, row.project_id, Features::Without)
        .await
        .map_err(|error| match error.kind() {
            ProblemType::NotFound => ApiError::not_found("no such AI request"),
            _ => error,
        })?;
    Ok(HttpResponse::Ok().json(present(row.document)?))
}

/// A project's AI requests, newest first.
#[utoipa::path(get, path = "/api/v1/projects/{id}/ai/requests", tag = "ai", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, default 50"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ReadHeaders),
    responses((status = 200, description = "`{items, next_cursor}`, newest first", body = AiRequestPage)))]
#[get("/projects/{id}/ai/requests")]
pub async fn list_ai_requests(
    state: web::Data<QueryState>,
    req: HttpRequest,
    caller: Authenticated,
    ProjectPath(project_id): ProjectPath,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(&req)?;
    let limit = query.limit()?;
    let before = query.newest_first()?;
    current(&state, &caller, project_id, Features::Without).await?;
    let client = state.pool.get().await?;
    let rows = ai_requests::list_ai_requests(&client, project_id, before, limit + 1)
        .await
        .map_err(read_error)?;
    let more = rows.len() > limit;
    let mut items = Vec::new();
    let mut last = None;
    for row in rows.into_iter().take(limit) {
        last = Some((row.requested_at, row.id));
        items.push(present(row.document)?);
    }
    let next_cursor = match (more, last) {
        (true, Some((at, id))) => Some(encode_cursor(&NewestFirst {
            at: rfc3339(at),
            id,
        })),
        _ => None,
    };
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next_cursor})))
}
