//! Reads of the AI catalog for any signed-in user: the models (without URLs or key variable names) and the prompt templates with their versions.

use actix_web::{HttpRequest, HttpResponse, get, web};
use domain::ai::ModelConfig;
use domain::ai::templates::PromptName;
use read_model::LIVE;
use read_model::tables::{AI_MODELS, AI_PROMPT_VERSIONS};
use runtime::openapi::ReadHeaders;
use runtime::{ApiError, Authenticated};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::QueryState;
use crate::extract::Fresh;
use crate::params::Query;

/// A model as users see it: what it is and what it costs, never where it is reached or which
/// variable holds its key.
fn public_model(name: &str, config: &ModelConfig, is_default: bool) -> Value {
    json!({
        "name": name,
        "provider": config.provider.as_str(),
        "model": config.model,
        "input_usd_per_mtok": config.input_usd_per_mtok.to_string(),
        "output_usd_per_mtok": config.output_usd_per_mtok.to_string(),
        "max_output_tokens": config.max_output_tokens,
        "is_default": is_default,
    })
}

/// The models AI requests may use (retired ones are not listed), by name.
#[utoipa::path(get, path = "/api/v1/ai/models", tag = "ai", security(("bearer" = [])),
    params(ReadHeaders),
    responses((status = 200, description = "`{items: [{name, provider, model, input_usd_per_mtok, output_usd_per_mtok, max_output_tokens, is_default}]}` by name; prices are decimal strings", body = crate::openapi::AiModelList)))]
#[get("/ai/models")]
pub async fn list_models(
    state: web::Data<QueryState>,
    _caller: Authenticated,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT name, config::text, is_default FROM {LIVE}.{AI_MODELS}
                 WHERE NOT retired ORDER BY name"
            ),
            &[],
        )
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let name: &str = row.try_get(0)?;
        let config: ModelConfig =
            serde_json::from_str(row.try_get(1)?).map_err(ApiError::internal)?;
        items.push(public_model(name, &config, row.try_get(2)?));
    }
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

fn version_json(
    name: &str,
    version: i32,
    purpose: &str,
    system: &str,
    template: &str,
    created_at: OffsetDateTime,
) -> Value {
    json!({
        "name": name,
        "version": version,
        "purpose": purpose,
        "system": system,
        "template": template,
        "created_at": runtime::http_headers::rfc3339(created_at),
    })
}

/// Every prompt template at its latest version, by name.
#[utoipa::path(get, path = "/api/v1/ai/prompts", tag = "ai", security(("bearer" = [])),
    params(ReadHeaders),
    responses((status = 200, description = "`{items: [{name, version, purpose, system, template, created_at}]}`: each template at its latest version, by name", body = crate::openapi::PromptTemplateList)))]
#[get("/ai/prompts")]
pub async fn list_prompts(
    state: web::Data<QueryState>,
    _caller: Authenticated,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT DISTINCT ON (name) name, version, purpose, system, template, created_at
                 FROM {LIVE}.{AI_PROMPT_VERSIONS} ORDER BY name, version DESC"
            ),
            &[],
        )
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(version_json(
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
            row.try_get(5)?,
        ));
    }
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

/// One prompt template at its latest version, or at `?version=N`.
#[utoipa::path(get, path = "/api/v1/ai/prompts/{name}", tag = "ai", security(("bearer" = [])),
    params(("name" = String, Path, description = "Prompt template name"),
           ("version" = Option<u32>, Query, minimum = 1, description = "A version; default the latest"),
           ReadHeaders),
    responses((status = 200, description = "`{name, version, purpose, system, template, created_at}`", body = crate::openapi::PromptTemplateVersion),
              (status = 404, description = "No such template or version")))]
#[get("/ai/prompts/{name}")]
pub async fn get_prompt(
    state: web::Data<QueryState>,
    req: HttpRequest,
    _caller: Authenticated,
    path: web::Path<String>,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::not_found("no such prompt template");
    let name = PromptName::parse(&path).map_err(|_| not_found())?;
    let version = Query::parse(&req)?.number("version")?;
    let version = match version {
        Some(v) => Some(
            i32::try_from(v)
                .ok()
                .filter(|v| *v >= 1)
                .ok_or_else(|| ApiError::not_found(format!("the template has no version {v}")))?,
        ),
        None => None,
    };
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            &format!(
                "SELECT name, version, purpose, system, template, created_at
                 FROM {LIVE}.{AI_PROMPT_VERSIONS}
                 WHERE name = $1 AND ($2::integer IS NULL OR version = $2)
                 ORDER BY version DESC LIMIT 1"
            ),
            &[&name.as_str(), &version],
        )
        .await?;
    let Some(row) = row else {
        return Err(match version {
            Some(v) => {
                let exists = client
                    .query_opt(
                        &format!(
                            "SELECT 1 FROM {LIVE}.{AI_PROMPT_VERSIONS} WHERE name = $1 LIMIT 1"
                        ),
                        &[&name.as_str()],
                    )
                    .await?
                    .is_some();
                if exists {
                    ApiError::not_found(format!("the template has no version {v}"))
                } else {
                    not_found()
                }
            }
            None => not_found(),
        });
    };
    Ok(HttpResponse::Ok().json(version_json(
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
    )))
}
