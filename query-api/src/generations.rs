//! Reads of generations: lists, status with steps and test results, and ZIP downloads served from
//! the artifact store (PostgreSQL, keyed by SHA-256, so every query-API instance can serve them).

use actix_web::http::header::{self, ETAG};
use actix_web::{HttpRequest, HttpResponse, get, web};
use domain::generation::GenerationStatus;
use read_model::rows::{self, Features};
use runtime::http_headers::{etag, if_none_match, rfc3339};
use runtime::openapi::{ConditionalReadHeaders, ReadHeaders};
use runtime::{ApiError, Authenticated, ProblemType};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::QueryState;
use crate::extract::{Fresh, GenerationPath, ProjectPath};
use crate::params::{NewestFirst, Query, encode_cursor};
use crate::routes::{current, read_error, visible};

/// A generation with the API's field names.
fn present(document: Value) -> Value {
    document
}

/// Loads a generation the caller may see (through its project).
async fn visible_generation(
    state: &QueryState,
    caller: &Authenticated,
    id: Uuid,
) -> Result<rows::GenerationRow, ApiError> {
    let client = state.pool.get().await?;
    let row = rows::generation(&client, id)
        .await
        .map_err(read_error)?
        .ok_or_else(|| ApiError::not_found("no such generation"))?;
    drop(client);
    // Only "no such project" (or not visible) means "no such generation": a 503 or a 500 while
    // reading the project stays what it is.
    visible(state, caller, row.project_id, Features::Without)
        .await
        .map_err(|error| match error.kind() {
            ProblemType::NotFound => ApiError::not_found("no such generation"),
            _ => error,
        })?;
    Ok(row)
}

/// A project's generations, newest first.
#[utoipa::path(get, path = "/api/v1/projects/{id}/generations", tag = "generations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, default 50"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ReadHeaders),
    responses((status = 200, description = "`{items, next_cursor}`, newest first", body = crate::openapi::GenerationPage)))]
#[get("/projects/{id}/generations")]
pub async fn list_generations(
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
    let rows = rows::list_generations(&client, project_id, before, limit + 1)
        .await
        .map_err(read_error)?;
    let more = rows.len() > limit;
    let mut items = Vec::new();
    let mut last = None;
    for row in rows.into_iter().take(limit) {
        last = Some((row.requested_at, row.id));
        items.push(present(row.document));
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

/// A generation's status, steps, artifact facts and test results.
#[utoipa::path(get, path = "/api/v1/generations/{id}", tag = "generations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Generation id"), ReadHeaders),
    responses((status = 200, description = "The generation", body = crate::openapi::Generation),
              (status = 404, description = "Unknown or not visible")))]
#[get("/generations/{id}")]
pub async fn get_generation(
    state: web::Data<QueryState>,
    caller: Authenticated,
    GenerationPath(id): GenerationPath,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let generation = visible_generation(&state, &caller, id).await?;
    Ok(HttpResponse::Ok().json(present(generation.document)))
}

async fn zip_response(
    state: &QueryState,
    req: &HttpRequest,
    document: &Value,
) -> Result<HttpResponse, ApiError> {
    let sha256 = document["sha256"].as_str().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!("a succeeded generation has no sha256"))
    })?;
    let tag = etag(sha256);
    if if_none_match(req, &tag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((ETAG, tag))
            .finish());
    }
    let client = state.pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT content FROM artifacts WHERE sha256 = $1")
        .await?;
    let row = client.query_opt(&stmt, &[&sha256]).await?.ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "artifact {sha256} is missing from the store"
        ))
    })?;
    let content: Vec<u8> = row.try_get(0)?;
    // Stored data that lacks what every generation has is an error, never a made-up name.
    let (Some(project_id), Some(project_version)) = (
        document["project_id"].as_str(),
        document["project_version"].as_u64(),
    ) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "generation document without project_id or project_version"
        )));
    };
    let name = format!("backforge-{project_id}-v{project_version}.zip");
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .insert_header((ETAG, tag))
        .body(content))
}

/// The generated backend as a ZIP (409 until the generation has succeeded).
#[utoipa::path(get, path = "/api/v1/generations/{id}/download", tag = "generations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Generation id"), ConditionalReadHeaders),
    responses((status = 200, description = "The ZIP", content_type = "application/zip",
                body = inline(runtime::openapi::ZipArchive),
                headers(("ETag"), ("Content-Disposition"))),
              (status = 304, description = "If-None-Match names this ZIP", headers(("ETag"))),
              (status = 404, description = "Unknown or not visible"),
              (status = 409, description = "Not finished, or failed")))]
#[get("/generations/{id}/download")]
pub async fn download_generation(
    state: web::Data<QueryState>,
    req: HttpRequest,
    caller: Authenticated,
    GenerationPath(id): GenerationPath,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let generation = visible_generation(&state, &caller, id).await?;
    match generation.status {
        GenerationStatus::Succeeded => zip_response(&state, &req, &generation.document).await,
        GenerationStatus::Failed => Err(ApiError::conflict(
            ProblemType::GenerationUnfinished,
            "the generation failed and has no artifact; see its error and request a new one",
        )),
        GenerationStatus::Requested | GenerationStatus::Running => Err(ApiError::conflict(
            ProblemType::GenerationUnfinished,
            "the generation has not finished yet; poll GET /generations/{id}",
        )),
    }
}

/// The ZIP of the project's latest succeeded generation (404 if none).
#[utoipa::path(get, path = "/api/v1/projects/{id}/download", tag = "generations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ConditionalReadHeaders),
    responses((status = 200, description = "The ZIP of the latest succeeded generation", content_type = "application/zip",
                body = inline(runtime::openapi::ZipArchive), headers(("ETag"), ("Content-Disposition"))),
              (status = 304, description = "If-None-Match names this ZIP", headers(("ETag"))),
              (status = 404, description = "Unknown or not visible project, or no succeeded generation")))]
#[get("/projects/{id}/download")]
pub async fn download_project(
    state: web::Data<QueryState>,
    req: HttpRequest,
    caller: Authenticated,
    ProjectPath(project_id): ProjectPath,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    current(&state, &caller, project_id, Features::Without).await?;
    let client = state.pool.get().await?;
    let document = rows::latest_succeeded(&client, project_id)
        .await
        .map_err(read_error)?
        .ok_or_else(|| ApiError::not_found("the project has no succeeded generation yet"))?;
    drop(client);
    zip_response(&state, &req, &document).await
}
