//! Reads of generations: lists, status with steps and test results, and ZIP downloads served from
//! the artifact store (PostgreSQL, keyed by SHA-256, so every query-API instance can serve them).

use actix_web::http::header::{self, ETAG};
use actix_web::{HttpRequest, HttpResponse, get, web};
use domain::project::ProjectStatus;
use runtime::openapi::{ConditionalReadHeaders, ReadHeaders};
use runtime::{ApiError, Authenticated, ProblemType, path_id};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::QueryState;
use crate::params::{NewestFirst, Query, encode_cursor};
use crate::routes::{Features, current, ready, visible};

/// A generation with the API's field names.
fn present(document: Value) -> Value {
    document
}

/// Loads a generation the caller may see (through its project).
async fn visible_generation(
    state: &QueryState,
    caller: &Authenticated,
    id: Uuid,
) -> Result<(Value, String), ApiError> {
    let client = state.pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT project_id, document, status FROM rm.generations WHERE id = $1")
        .await?;
    let row = client
        .query_opt(&stmt, &[&id])
        .await?
        .ok_or_else(|| ApiError::not_found("no such generation"))?;
    let project_id: Uuid = row.try_get(0)?;
    // Only "no such project" (or not visible) means "no such generation": a 503 or a 500 while
    // reading the project stays what it is.
    let v = visible(state, caller, project_id, Features::Without)
        .await
        .map_err(|error| match error.kind() {
            ProblemType::NotFound => ApiError::not_found("no such generation"),
            _ => error,
        })?;
    if v.status == ProjectStatus::Archived && !v.privileged {
        return Err(ApiError::not_found("no such generation"));
    }
    Ok((row.try_get(1)?, row.try_get(2)?))
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
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let project_id = path_id(&path, "project")?;
    ready(&state, &req).await?;
    let query = Query::parse(&req)?;
    let limit = query.limit()?;
    let (before_time, before_id) = query.newest_first()?;
    current(&state, &caller, project_id, Features::Without).await?;
    let client = state.pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT id, requested_at, document FROM rm.generations
             WHERE project_id = $1 AND (requested_at, id) < ($2, $3)
             ORDER BY requested_at DESC, id DESC LIMIT $4",
        )
        .await?;
    let rows = client
        .query(
            &stmt,
            &[&project_id, &before_time, &before_id, &((limit + 1) as i64)],
        )
        .await?;
    let mut items = Vec::new();
    let mut last = None;
    for row in rows.iter().take(limit) {
        let id: Uuid = row.try_get(0)?;
        let at: OffsetDateTime = row.try_get(1)?;
        items.push(present(row.try_get(2)?));
        last = Some((at, id));
    }
    let next_cursor = match (rows.len() > limit, last) {
        (true, Some((at, id))) => Some(encode_cursor(&NewestFirst {
            at: at.format(&Rfc3339).unwrap_or_default(),
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
    req: HttpRequest,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&path, "generation")?;
    ready(&state, &req).await?;
    let (document, _) = visible_generation(&state, &caller, id).await?;
    Ok(HttpResponse::Ok().json(present(document)))
}

async fn zip_response(
    state: &QueryState,
    req: &HttpRequest,
    document: &Value,
) -> Result<HttpResponse, ApiError> {
    let sha256 = document["sha256"].as_str().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!("a succeeded generation has no sha256"))
    })?;
    let tag = format!("\"{sha256}\"");
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"))
    {
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
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&path, "generation")?;
    ready(&state, &req).await?;
    let (document, status) = visible_generation(&state, &caller, id).await?;
    match status.as_str() {
        "succeeded" => zip_response(&state, &req, &document).await,
        "failed" => Err(ApiError::conflict(
            ProblemType::GenerationUnfinished,
            "the generation failed and has no artifact; see its error and request a new one",
        )),
        _ => Err(ApiError::conflict(
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
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let project_id = path_id(&path, "project")?;
    ready(&state, &req).await?;
    current(&state, &caller, project_id, Features::Without).await?;
    let client = state.pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT document FROM rm.generations WHERE project_id = $1 AND status = 'succeeded'
             ORDER BY completed_at DESC, id DESC LIMIT 1",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&project_id])
        .await?
        .ok_or_else(|| ApiError::not_found("the project has no succeeded generation yet"))?;
    let document: Value = row.try_get(0)?;
    drop(client);
    zip_response(&state, &req, &document).await
}
