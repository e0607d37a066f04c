//! Live record reads: `GET /projects/{id}/data/{plural}` (filters, sort, cursor), one record (now or `as_of_version`), and a record's history — each shown through the entity's current schema.

use actix_web::http::header::ETAG;
use actix_web::{HttpRequest, HttpResponse, get, web};
use domain::crud_schema::{EntitySchema, RESERVED_PARAMETERS};
use domain::ids::RecordId;
use domain::record::Record;
use event_store::ReadUntil;
use read_model::records::{After, RecordRow};
use runtime::http_headers::etag;
use runtime::openapi::ReadHeaders;
use runtime::{ApiError, Authenticated};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::QueryState;
use crate::extract::{Fresh, ProjectPath, segment};
use crate::params::{Query, decode_cursor, encode_cursor};
use crate::routes::{current, read_error, stream_history};
use read_model::rows::Features;

/// The entity a `/data/{plural}` route names: an enabled `crud` entity of a project the caller
/// may see (404 otherwise).
struct Entity {
    feature_id: Uuid,
    schema: EntitySchema,
}

async fn entity(
    state: &QueryState,
    caller: &Authenticated,
    project_id: Uuid,
    plural: &str,
) -> Result<Entity, ApiError> {
    let v = current(state, caller, project_id, Features::With).await?;
    for feature in v.feature_list()? {
        let schema = feature
            .get("schema_definition")
            .filter(|s| s.get("plural").and_then(Value::as_str) == Some(plural))
            .filter(|_| feature.get("is_enabled") == Some(&Value::Bool(true)));
        if let Some(schema) = schema {
            let schema: EntitySchema =
                serde_json::from_value(schema.clone()).map_err(ApiError::internal)?;
            let feature_id = feature
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| id.parse().ok())
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a feature without an id")))?;
            return Ok(Entity { feature_id, schema });
        }
    }
    Err(ApiError::not_found(format!(
        "the project serves no enabled crud entity at /data/{plural}"
    )))
}

/// Whether a record folded from its stream is one of `entity`'s in `project_id` (a record of
/// another project or entity is not found through this route).
fn belongs(record: &Record, project_id: Uuid, entity: &Entity) -> bool {
    record.project_id.map(|p| p.as_uuid()) == Some(project_id)
        && record.feature_id.map(|f| f.as_uuid()) == Some(entity.feature_id)
}

fn rfc3339(t: OffsetDateTime) -> Value {
    t.format(&Rfc3339).map_or(Value::Null, Value::String)
}

fn body(
    schema: &EntitySchema,
    id: Uuid,
    values: &Map<String, Value>,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
) -> Value {
    let mut body = Map::new();
    body.insert("id".into(), json!(id));
    body.extend(schema.present_record(values));
    body.insert("created_at".into(), rfc3339(created_at));
    body.insert("updated_at".into(), rfc3339(updated_at));
    body.insert("version".into(), json!(version));
    Value::Object(body)
}

fn row_body(schema: &EntitySchema, row: &RecordRow) -> Value {
    body(
        schema,
        row.id,
        &row.values,
        row.version,
        row.created_at,
        row.updated_at,
    )
}

/// The path's plural and record id.
fn record_id(req: &HttpRequest) -> Result<Uuid, ApiError> {
    segment(req, "record_id", "record")
}

fn plural(req: &HttpRequest) -> &str {
    req.match_info().get("plural").unwrap_or_default()
}

/// An entity's records, filtered and sorted.
#[utoipa::path(get, path = "/api/v1/projects/{id}/data/{plural}", tag = "records", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ("plural" = String, Path, description = "The entity's plural"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, default 50"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("sort" = Option<String>, Query, description = "Fields to sort by, `-` for descending, comma-separated; default creation order"),
           ReadHeaders),
    responses((status = 200, description = "`{items, next_cursor}`", body = crate::openapi::RecordPage),
              (status = 404, description = "Unknown, not visible or archived project, or no enabled crud entity at this plural"),
              (status = 422, description = "An unknown filter or operator, a value of the wrong type, a sort on a json field, a reserved parameter used as a filter")))]
#[get("/projects/{id}/data/{plural}")]
pub async fn list_records(
    state: web::Data<QueryState>,
    req: HttpRequest,
    caller: Authenticated,
    ProjectPath(project_id): ProjectPath,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let pairs = Query::pairs(&req)?;
    let paging = Query::of(
        pairs
            .iter()
            .filter(|(k, _)| RESERVED_PARAMETERS.contains(&k.as_str()) && k != "sort")
            .cloned(),
    )?;
    let limit = paging.limit()?;
    let after: Option<After> = paging.get("cursor").map(decode_cursor).transpose()?;
    let entity = entity(&state, &caller, project_id, plural(&req)).await?;
    let query = entity
        .schema
        .parse_query(&pairs)
        .map_err(|errors| ApiError::invalid("the list's query is invalid", errors))?;
    if after
        .as_ref()
        .is_some_and(|a| a.keys.len() != query.sort.len().max(1))
    {
        return Err(ApiError::malformed("the cursor belongs to another sort"));
    }
    let client = state.pool.get().await?;
    let statement = read_model::records::list_statement(
        project_id,
        entity.feature_id,
        &entity.schema,
        &query,
        after.as_ref(),
        limit + 1,
    );
    let rows = read_model::records::list(&client, &statement)
        .await
        .map_err(|e| {
            // Filter operands are the domain's normalised values, so the one input PostgreSQL can
            // fail to read as its type (a data exception, class 22) is a cursor's sort key: a
            // cursor this API did not issue.
            let data_exception = e.code().is_some_and(|c| c.code().starts_with("22"));
            if after.is_some() && data_exception {
                ApiError::malformed("the cursor is not one this API issued")
            } else {
                read_error(e.into())
            }
        })?;
    let next_cursor = (rows.len() > limit)
        .then(|| rows.get(limit - 1))
        .flatten()
        .map(|row| {
            encode_cursor(&After {
                keys: row.keys.clone(),
                id: row.id,
            })
        });
    let items: Vec<Value> = rows
        .iter()
        .take(limit)
        .map(|row| row_body(&entity.schema, row))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next_cursor})))
}

/// One record: as it is now, or with `as_of_version` as it was after that version of its stream.
#[utoipa::path(get, path = "/api/v1/projects/{id}/data/{plural}/{record_id}", tag = "records", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ("plural" = String, Path, description = "The entity's plural"),
           ("record_id" = Uuid, Path, description = "Record id"),
           ("as_of_version" = Option<u64>, Query, minimum = 1, description = "The record as it was after this version"),
           ReadHeaders),
    responses((status = 200, description = "The record", body = crate::openapi::Record, headers(("ETag"))),
              (status = 404, description = "Unknown project, entity, record or version")))]
#[get("/projects/{id}/data/{plural}/{record_id}")]
pub async fn get_record(
    state: web::Data<QueryState>,
    req: HttpRequest,
    caller: Authenticated,
    ProjectPath(project_id): ProjectPath,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let id = record_id(&req)?;
    let query = Query::parse(&req)?;
    let as_of_version = query.number("as_of_version")?;
    let entity = entity(&state, &caller, project_id, plural(&req)).await?;
    let answer = match as_of_version {
        Some(0) => {
            return Err(ApiError::invalid_field(
                "as_of_version",
                "versions start at 1",
            ));
        }
        Some(version) => {
            let loaded: event_store::Loaded<Record> = state
                .store
                .load_beside_drivers(
                    &RecordId::from_uuid(id).stream(),
                    ReadUntil::Version(version),
                )
                .await?;
            let record = loaded.state;
            if !belongs(&record, project_id, &entity) || loaded.version < version || record.deleted
            {
                return Err(ApiError::not_found("the record has no such version"));
            }
            let (Some(created_at), Some(updated_at)) = (record.created_at, record.updated_at)
            else {
                return Err(ApiError::not_found("the record has no such version"));
            };
            body(
                &entity.schema,
                id,
                &record.values,
                version as i64,
                created_at,
                updated_at,
            )
        }
        None => {
            let client = state.pool.get().await?;
            let row = read_model::records::record(&client, project_id, entity.feature_id, id)
                .await
                .map_err(|e| read_error(e.into()))?
                .ok_or_else(|| ApiError::not_found("no such record"))?;
            row_body(&entity.schema, &row)
        }
    };
    let version = answer["version"].as_i64().unwrap_or_default();
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(version)))
        .json(answer))
}

/// A record's events, oldest first, with their metadata (also after it was deleted).
#[utoipa::path(get, path = "/api/v1/projects/{id}/data/{plural}/{record_id}/history", tag = "records", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ("plural" = String, Path, description = "The entity's plural"),
           ("record_id" = Uuid, Path, description = "Record id"),
           ("after_version" = Option<u64>, Query, minimum = 0, description = "Start after this version (not with `cursor`)"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, default 50"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ReadHeaders),
    responses((status = 200, description = "`{items, next_cursor}`, oldest first", body = crate::openapi::HistoryPage),
              (status = 404, description = "Unknown project, entity or record")))]
#[get("/projects/{id}/data/{plural}/{record_id}/history")]
pub async fn record_history(
    state: web::Data<QueryState>,
    req: HttpRequest,
    caller: Authenticated,
    ProjectPath(project_id): ProjectPath,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let id = record_id(&req)?;
    let entity = entity(&state, &caller, project_id, plural(&req)).await?;
    let stream = RecordId::from_uuid(id).stream();
    // The record's first event says whose it is; a deleted record keeps its history.
    let created: event_store::Loaded<Record> =
        event_store::load(&state.store, &stream, ReadUntil::Version(1)).await?;
    if !belongs(&created.state, project_id, &entity) {
        return Err(ApiError::not_found("no such record"));
    }
    stream_history(&state, &req, &stream).await
}
