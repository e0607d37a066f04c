//! The reads of a project's custom functions, from the project's read-model document (functions
//! live in the project's stream and its folded state); their history is the project's history.

use actix_web::http::header::ETAG;
use actix_web::{HttpRequest, HttpResponse, get, web};
use runtime::http_headers::etag;
use runtime::openapi::ReadHeaders;
use runtime::{ApiError, Authenticated};
use serde_json::Value;
use uuid::Uuid;

use crate::QueryState;
use crate::extract::{Fresh, FunctionPath, ProjectPath};
use crate::params::{Query, offset_page};
use crate::routes::current;
use read_model::rows::Features;

/// The functions of a visible, active project, in creation order (the document has none while
/// the project has none).
async fn functions_of(
    state: &QueryState,
    caller: &Authenticated,
    project_id: Uuid,
) -> Result<(Vec<Value>, i64), ApiError> {
    let v = current(state, caller, project_id, Features::Without).await?;
    let functions = match v.document.get("functions") {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    Ok((functions, v.version))
}

/// A project's functions in creation order.
#[utoipa::path(get, path = "/api/v1/projects/{id}/functions", tag = "functions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, default 50"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ReadHeaders),
    responses((status = 200, description = "`{items, next_cursor}` in creation order", body = crate::openapi::FunctionPage,
                headers(("ETag")))))]
#[get("/projects/{id}/functions")]
pub async fn list_functions(
    state: web::Data<QueryState>,
    req: HttpRequest,
    caller: Authenticated,
    ProjectPath(project_id): ProjectPath,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(&req)?;
    let (functions, version) = functions_of(&state, &caller, project_id).await?;
    let page = offset_page(&query, &functions)?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(version)))
        .json(page))
}

/// One function.
#[utoipa::path(get, path = "/api/v1/projects/{id}/functions/{function_id}", tag = "functions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ("function_id" = Uuid, Path, description = "Function id"),
           ReadHeaders),
    responses((status = 200, description = "The function", body = crate::openapi::Function, headers(("ETag"))),
              (status = 404, description = "Unknown, not visible or archived project, or no such function")))]
#[get("/projects/{id}/functions/{function_id}")]
pub async fn get_function(
    state: web::Data<QueryState>,
    caller: Authenticated,
    FunctionPath { project, function }: FunctionPath,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let (functions, version) = functions_of(&state, &caller, project).await?;
    let wanted = function.to_string();
    let function = functions
        .into_iter()
        .find(|f| f["id"].as_str() == Some(wanted.as_str()))
        .ok_or_else(|| ApiError::not_found("the project has no such function"))?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(version)))
        .json(function))
}
