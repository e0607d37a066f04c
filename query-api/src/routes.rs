//! HTTP handlers of the reads of `docs/api.md`: profile, project lists and detail, time travel, history
//! and features. Every handler takes [`Fresh`], so it answers only once the read models have
//! projected the position the client named.

use actix_web::http::header::ETAG;
use actix_web::{HttpRequest, HttpResponse, get, web};
use domain::ids::ProjectId;
use domain::project::{Access, Project, ProjectStatus};
use event_store::{EventStore, ReadUntil};
use read_model::Reader;
use read_model::rows::{self, Features, JsonText, ReadError};
use runtime::http_headers::{etag, if_none_match, rfc3339};
use runtime::openapi::{ConditionalReadHeaders, ReadHeaders};
use runtime::{ApiError, Authenticated};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::QueryState;
use crate::extract::{FeaturePath, Fresh, ProjectPath};
use crate::params::{NewestFirst, Query, encode_cursor, offset_page};

/// A read-model row that could not be read: a database failure maps as everywhere, a row the
/// domain cannot read is an internal error.
pub(crate) fn read_error(error: ReadError) -> ApiError {
    match error {
        ReadError::Database(e) => e.into(),
        other => ApiError::internal(other),
    }
}

pub(crate) fn reader(caller: &Authenticated) -> Reader {
    Reader {
        user_id: caller.user_id,
        role: caller.role,
    }
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/auth/profile", tag = "auth", security(("bearer" = [])),
    params(ReadHeaders),
    responses((status = 200, description = "The profile", body = runtime::openapi::Profile, headers(("ETag"))),
              (status = 404, description = "Not projected yet: send Backforge-Min-Position with the registration's position")))]
#[get("/auth/profile")]
pub async fn profile(
    state: web::Data<QueryState>,
    caller: Authenticated,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let p = rows::profile(&client, caller.user_id)
        .await
        .map_err(read_error)?
        .ok_or_else(|| {
            ApiError::not_found("the profile is not readable yet; send Backforge-Min-Position")
        })?;
    let body = json!({
        "id": p.id, "email": p.email, "name": p.name, "role": p.role.as_str(),
        "created_at": rfc3339(p.created_at), "updated_at": rfc3339(p.updated_at),
    });
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(p.version)))
        .json(body))
}

/// A project row as the read model has it, once the domain has said the caller may see it.
pub(crate) struct Visible {
    pub(crate) status: ProjectStatus,
    pub(crate) version: i64,
    pub(crate) document: Value,
    /// The features as a JSON array, in their order, when asked for (`Features::With`); the
    /// stored document has an empty list in their place.
    pub(crate) features: Option<JsonText>,
}

/// Loads a project the caller may see, as the domain decides it. Strangers get 404, like for a
/// project that does not exist; so do viewers of an archived project.
pub(crate) async fn visible(
    state: &QueryState,
    caller: &Authenticated,
    project_id: Uuid,
    features: Features,
) -> Result<Visible, ApiError> {
    let client = state.pool.get().await?;
    let row = match features {
        Features::With => {
            rows::project_with_features(&client, &state.feature_lists, project_id, caller.user_id)
                .await
        }
        Features::Without => rows::project(&client, project_id, caller.user_id, features).await,
    }
    .map_err(read_error)?
    .ok_or_else(|| ApiError::not_found("no such project"))?;
    if row.visibility.access(reader(caller)) == Access::None {
        return Err(ApiError::not_found("no such project"));
    }
    Ok(Visible {
        status: row.visibility.status,
        version: row.version,
        document: row.document,
        features: row.features,
    })
}

impl Visible {
    /// The features as JSON values (empty unless loaded `Features::With`).
    pub(crate) fn feature_list(&self) -> Result<Vec<Value>, ApiError> {
        match &self.features {
            Some(text) => text.parse().map_err(ApiError::internal),
            None => Ok(Vec::new()),
        }
    }
}

/// `GET /projects/{id}`'s body: the stored document's members with the feature text written into
/// the place of its empty list as PostgreSQL returned it (neither parsed nor re-encoded: in W3's
/// profile, checking it as a `RawValue` was a quarter of the HTTP workers' CPU), then `version`.
fn project_body(
    document: &Value,
    features: Option<&JsonText>,
    version: i64,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(512 + features.map_or(0, |f| f.as_bytes().len()));
    out.push(b'{');
    if let Some(members) = document.as_object() {
        for (key, value) in members {
            if key == "version" {
                continue;
            }
            serde_json::to_writer(&mut out, key)?;
            out.push(b':');
            match (key.as_str(), features) {
                ("features", Some(text)) => out.extend_from_slice(text.as_bytes()),
                _ => serde_json::to_writer(&mut out, value)?,
            }
            out.push(b',');
        }
    }
    out.extend_from_slice(b"\"version\":");
    out.extend_from_slice(version.to_string().as_bytes());
    out.push(b'}');
    Ok(out)
}

/// Current state: archived projects are gone (404) for current-state reads.
pub(crate) async fn current(
    state: &QueryState,
    caller: &Authenticated,
    project_id: Uuid,
    features: Features,
) -> Result<Visible, ApiError> {
    let v = visible(state, caller, project_id, features).await?;
    if v.status == ProjectStatus::Archived {
        return Err(ApiError::not_found("no such project"));
    }
    Ok(v)
}

fn with_version(mut document: Value, version: i64) -> Value {
    if let Some(obj) = document.as_object_mut() {
        obj.insert("version".into(), json!(version));
    }
    document
}

/// Projects the caller owns or is a member of, newest first.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", security(("bearer" = [])),
    params(crate::openapi::ProjectListQuery, ReadHeaders),
    responses((status = 200, description = "`{items, next_cursor}`, newest first", body = crate::openapi::ProjectPage)))]
#[get("/projects")]
pub async fn list_projects(
    state: web::Data<QueryState>,
    req: HttpRequest,
    caller: Authenticated,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(&req)?;
    let limit = query.limit()?;
    let status = match query.get("status") {
        None => ProjectStatus::Active,
        Some(raw) => rows::spelled::<ProjectStatus>("status", raw).map_err(|_| {
            ApiError::invalid_field(
                "status",
                format!(
                    "must be `{}` or `{}`",
                    ProjectStatus::Active.as_str(),
                    ProjectStatus::Archived.as_str()
                ),
            )
        })?,
    };
    let before = query.newest_first()?;
    let client = state.pool.get().await?;
    let rows = rows::list_projects(&client, reader(&caller), status, before, limit + 1)
        .await
        .map_err(read_error)?;
    let mut items = Vec::with_capacity(limit);
    for row in rows.iter().take(limit) {
        let mut doc = row.document.clone();
        if let Some(obj) = doc.as_object_mut() {
            obj.remove("features");
            obj.remove("members");
            obj.remove("functions");
            obj.insert("feature_count".into(), json!(row.feature_count));
        }
        items.push(with_version(doc, row.version));
    }
    let next_cursor = if rows.len() > limit {
        items.last().and_then(|last| {
            Some(encode_cursor(&NewestFirst {
                at: last["created_at"].as_str()?.to_owned(),
                id: last["id"].as_str()?.parse().ok()?,
            }))
        })
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next_cursor})))
}

/// One entry of a project's history; the event body is written out as stored, not re-encoded.
#[derive(Serialize)]
struct HistoryItem<'a> {
    event_id: Uuid,
    #[serde(rename = "type")]
    kind: &'a str,
    version: u64,
    position: String,
    recorded_at: String,
    data: &'a serde_json::value::RawValue,
    metadata: HistoryMetadata,
}

#[derive(Serialize)]
struct HistoryMetadata {
    actor: Option<Uuid>,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
}

#[derive(Serialize)]
struct HistoryPage<'a> {
    items: Vec<HistoryItem<'a>>,
    next_cursor: Option<String>,
}

/// One project: the current state, or with `as_of_version` / `as_of` the state folded from its
/// events up to that point.
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"),
           ("as_of_version" = Option<u64>, Query, minimum = 1, description = "State folded up to this version"),
           ("as_of" = Option<String>, Query, format = DateTime, description = "State at this RFC 3339 instant (not with `as_of_version`)"),
           ConditionalReadHeaders),
    responses((status = 200, description = "The project", body = crate::openapi::Project, headers(("ETag"))),
              (status = 304, description = "If-None-Match names the current version", headers(("ETag"))),
              (status = 404, description = "Unknown, not visible, archived, or no such version")))]
#[get("/projects/{id}")]
pub async fn get_project(
    state: web::Data<QueryState>,
    req: HttpRequest,
    caller: Authenticated,
    ProjectPath(project_id): ProjectPath,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(&req)?;
    let as_of_version = query.number("as_of_version")?;
    let as_of = query
        .get("as_of")
        .map(|raw| {
            OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| {
                ApiError::invalid_field(
                    "as_of",
                    "must be an RFC 3339 instant such as 2026-01-31T12:00:00Z",
                )
            })
        })
        .transpose()?;
    let until = match (as_of_version, as_of) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_field(
                "as_of",
                "give as_of_version or as_of, not both",
            ));
        }
        (Some(0), None) => {
            return Err(ApiError::invalid_field(
                "as_of_version",
                "versions start at 1",
            ));
        }
        (Some(v), None) => Some(ReadUntil::Version(v)),
        (None, Some(t)) => Some(ReadUntil::Time(t)),
        (None, None) => None,
    };
    let Some(until) = until else {
        let v = current(&state, &caller, project_id, Features::With).await?;
        let tag = etag(v.version);
        if if_none_match(&req, &tag) {
            return Ok(HttpResponse::NotModified()
                .insert_header((ETAG, tag))
                .finish());
        }
        let body = project_body(&v.document, v.features.as_ref(), v.version)
            .map_err(ApiError::internal)?;
        return Ok(HttpResponse::Ok()
            .insert_header((ETAG, tag))
            .content_type(actix_web::http::header::ContentType::json())
            .body(body));
    };
    // Owners and admins keep reading an archived project's past; `visible` asks the domain.
    visible(&state, &caller, project_id, Features::Without).await?;
    let stream = ProjectId::from_uuid(project_id).stream();
    let loaded: event_store::Loaded<Project> =
        state.store.load_beside_drivers(&stream, until).await?;
    let (project, version) = (loaded.state, loaded.version);
    if version == 0 || matches!(until, ReadUntil::Version(n) if n > version) {
        return Err(ApiError::not_found("the project has no such version"));
    }
    let version = version as i64;
    // Written straight from the state: the same object `with_version` makes of a stored document.
    #[derive(Serialize)]
    struct AsOf<'a> {
        #[serde(flatten)]
        project: &'a Project,
        version: i64,
    }
    let body = serde_json::to_vec(&AsOf {
        project: &project,
        version,
    })
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(version)))
        .content_type(actix_web::http::header::ContentType::json())
        .body(body))
}

#[derive(Serialize, Deserialize)]
struct HistoryCursor {
    after_version: u64,
}

/// The project's events, oldest first, with their metadata: the audit trail.
#[utoipa::path(get, path = "/api/v1/projects/{id}/history", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"),
           ("after_version" = Option<u64>, Query, minimum = 0, description = "Start after this version (not with `cursor`)"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, default 50"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ReadHeaders),
    responses((status = 200, description = "`{items, next_cursor}`, oldest first", body = crate::openapi::HistoryPage)))]
#[get("/projects/{id}/history")]
pub async fn history(
    state: web::Data<QueryState>,
    req: HttpRequest,
    caller: Authenticated,
    ProjectPath(project_id): ProjectPath,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    // Owners and admins keep reading an archived project's past; `visible` asks the domain.
    visible(&state, &caller, project_id, Features::Without).await?;
    stream_history(&state, &req, &ProjectId::from_uuid(project_id).stream()).await
}

/// A page of `stream`'s events, oldest first, with their metadata (`after_version`, `limit`,
/// `cursor`): the audit trail of a project or a record, once the caller may see it.
pub(crate) async fn stream_history(
    state: &QueryState,
    req: &HttpRequest,
    stream: &str,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(req)?;
    let limit = query.limit()?;
    let cursor: Option<HistoryCursor> = query.cursor()?;
    let after_version = match (cursor, query.number("after_version")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_field(
                "cursor",
                "give cursor or after_version, not both",
            ));
        }
        (Some(c), None) => c.after_version,
        (None, Some(v)) => v,
        (None, None) => 0,
    };
    let events = state
        .store
        .read_stream(stream, after_version, ReadUntil::End, limit + 1)
        .await?;
    let items: Vec<HistoryItem> = events
        .iter()
        .take(limit)
        .map(|e| HistoryItem {
            event_id: e.event_id,
            kind: &e.event_type,
            version: e.stream_version,
            position: e.position.to_token(),
            recorded_at: rfc3339(e.recorded_at),
            data: &e.data,
            metadata: HistoryMetadata {
                actor: e.metadata.actor,
                correlation_id: e.metadata.correlation_id,
                causation_id: e.metadata.causation_id,
                source: e.metadata.source.clone(),
            },
        })
        .collect();
    let next_cursor = (events.len() > limit)
        .then(|| {
            events.get(limit - 1).map(|e| {
                encode_cursor(&HistoryCursor {
                    after_version: e.stream_version,
                })
            })
        })
        .flatten();
    Ok(HttpResponse::Ok().json(HistoryPage { items, next_cursor }))
}

/// A project's features in creation order.
#[utoipa::path(get, path = "/api/v1/projects/{id}/features", tag = "features", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, default 50"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ReadHeaders),
    responses((status = 200, description = "`{items, next_cursor}` in creation order", body = crate::openapi::FeaturePage,
                headers(("ETag")))))]
#[get("/projects/{id}/features")]
pub async fn list_features(
    state: web::Data<QueryState>,
    req: HttpRequest,
    caller: Authenticated,
    ProjectPath(project_id): ProjectPath,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(&req)?;
    let v = current(&state, &caller, project_id, Features::With).await?;
    let page = offset_page(&query, &v.feature_list()?)?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(v.version)))
        .json(page))
}

/// One feature.
#[utoipa::path(get, path = "/api/v1/projects/{id}/features/{feature_id}", tag = "features", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ("feature_id" = Uuid, Path, description = "Feature id"),
           ReadHeaders),
    responses((status = 200, description = "The feature", body = crate::openapi::Feature, headers(("ETag")))))]
#[get("/projects/{id}/features/{feature_id}")]
pub async fn get_feature(
    state: web::Data<QueryState>,
    caller: Authenticated,
    FeaturePath { project, feature }: FeaturePath,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    let v = current(&state, &caller, project, Features::With).await?;
    let wanted = feature.to_string();
    let feature = v
        .feature_list()?
        .into_iter()
        .find(|f| f["id"].as_str() == Some(wanted.as_str()))
        .ok_or_else(|| ApiError::not_found("the project has no such feature"))?;
    Ok(HttpResponse::Ok()
        .insert_header((ETAG, etag(v.version)))
        .json(feature))
}

#[cfg(test)]
mod tests {
    use super::project_body;
    use read_model::rows::JsonText;
    use serde_json::json;

    #[test]
    fn the_detail_body_is_the_document_with_the_feature_text_and_the_version() {
        let document = json!({"id": "p", "name": "a \"quoted\" name", "features": [], "version": 1, "members": []});
        let features: JsonText = tokio_postgres::types::FromSql::from_sql(
            &tokio_postgres::types::Type::TEXT,
            br#"[{"id":"f","name":"x"}]"#,
        )
        .expect("text");
        let body = project_body(&document, Some(&features), 7).expect("body");
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(
            parsed,
            json!({"id": "p", "name": "a \"quoted\" name", "features": [{"id": "f", "name": "x"}], "members": [], "version": 7})
        );
        let empty = project_body(&json!({}), None, 3).expect("body");
        assert_eq!(empty, br#"{"version":3}"#);
    }
}
