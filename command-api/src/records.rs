//! Live record writes: `POST /projects/{id}/data/{plural}`, `PUT` (partial, If-Match) and `DELETE /projects/{id}/data/{plural}/{record_id}` — each record its own stream, decided under the entity's current schema, committed with its constraint rows.

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, delete, dev::Payload, post, put, web};
use domain::ids::{ProjectId, RecordId, UserId};
use domain::project::Project;
use domain::record::{
    CreateRecord, DeleteRecord, LiveEntity, Record, RecordCommand, RecordError, UpdateRecord,
};
use event_store::application::{Pin, Source, Step};
use runtime::openapi::WriteHeaders;
use runtime::{ApiError, Json, ProblemType};
use serde_json::{Map, Value, json};
use std::future::{Ready, ready};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::CommandState;
use crate::execute::{Plan, WriteAnswer, failure};
use crate::http::{Ids, PathId, Write, WriteBody};
use crate::projects::check_write_access;
use crate::record_constraints::RecordConstraints;

impl PathId for RecordId {
    const SEGMENT: &'static str = "record_id";
    const WHAT: &'static str = "record";
    fn from_uuid(id: Uuid) -> Self {
        RecordId::from_uuid(id)
    }
}

/// The `{plural}` segment of a `/data/{plural}` route: an entity's table name, at most 63 bytes
/// (longer names cannot exist: 404).
pub struct Plural(pub String);

impl FromRequest for Plural {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let plural = req.match_info().get("plural").unwrap_or_default();
        ready(
            if plural.is_empty() || plural.len() > domain::crud_schema::NAME_MAX_CHARS {
                Err(ApiError::not_found(format!(
                    "the project serves no entity at /data/{plural}"
                )))
            } else {
                Ok(Plural(plural.to_owned()))
            },
        )
    }
}

/// The one mapping of the record aggregate's refusals.
pub fn record_error(e: RecordError) -> ApiError {
    match e {
        RecordError::NoSuchEntity(plural) => ApiError::not_found(format!(
            "the project serves no enabled crud entity at /data/{plural}"
        )),
        RecordError::ProjectArchived => ApiError::not_found("no such project"),
        RecordError::NotFound => ApiError::not_found("no such record"),
        RecordError::AlreadyExists => {
            ApiError::conflict(ProblemType::Conflict, "the record exists already")
        }
        RecordError::Validation(errors) => ApiError::invalid("the record is invalid", errors),
    }
}

/// The project and the entity at `plural`, for a write by the caller of `write`: 404 for a
/// stranger or an archived project, 403 for a viewer, 404 for an entity the project does not serve.
async fn writable<B>(
    state: &CommandState,
    write: &Write<B>,
    project_id: ProjectId,
    plural: &str,
) -> Result<(Project, LiveEntity), ApiError> {
    // The cached fold plus the events after it: a record write reads the project's tail, not its
    // whole stream. Its schema is checked again in the append's transaction (`entity_schema`).
    let loaded = state
        .projects
        .load(&state.store, &project_id.stream())
        .await
        .map_err(ApiError::from)?;
    check_write_access(&loaded, &write.caller)?;
    let entity = loaded.state.writable_entity(plural).map_err(record_error)?;
    Ok((loaded.state, entity))
}

fn timestamp(at: Option<OffsetDateTime>) -> Value {
    at.and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

/// A record as the API answers it: its id, its values through the entity's current schema, its
/// timestamps and version.
pub fn record_body(entity: &LiveEntity, record: &Record, version: u64) -> Value {
    let mut body = Map::new();
    body.insert(
        "id".into(),
        json!(record.id.map(|id| id.to_string()).unwrap_or_default()),
    );
    body.extend(entity.schema.present_record(&record.values));
    body.insert("created_at".into(), timestamp(record.created_at));
    body.insert("updated_at".into(), timestamp(record.updated_at));
    body.insert("version".into(), json!(version));
    Value::Object(body)
}

fn step<'a, B>(
    state: &'a CommandState,
    write: &Write<B>,
    record_id: RecordId,
    source: Source<'a, Record>,
    pin: Pin,
) -> Step<'a, Record> {
    Step {
        stream: record_id.stream(),
        source,
        pin,
        limits: &state.settings.limits,
        metadata: write.meta.metadata(Some(write.caller.user_id)),
    }
}

/// Create a record of a project's entity.
#[utoipa::path(post, path = "/api/v1/projects/{id}/data/{plural}", tag = "records",
    request_body = Object, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ("plural" = String, Path, description = "The entity's plural"), WriteHeaders),
    responses((status = 201, description = "Created: the record with `id`, its fields, `created_at`, `updated_at`, `version`", body = Object,
                headers(("Location"), ("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not write"),
              (status = 404, description = "Unknown, not visible or archived project, or no enabled crud entity at this plural"),
              (status = 409, description = "A unique value taken (unique-violation), changed concurrently, or the Idempotency-Key is in flight"),
              (status = 412, description = "If-Match given: a record being created has no version to match"),
              (status = 422, description = "Invalid record: an unknown field, a wrong type, a value out of range, a missing required field, a reference to no record (errors at each field)")))]
#[post("/projects/{id}/data/{plural}")]
pub async fn create_record(
    state: web::Data<CommandState>,
    write: Write<Json<Value>>,
    Ids(project_id): Ids<ProjectId>,
    Plural(plural): Plural,
) -> Result<HttpResponse, ApiError> {
    if write.if_match.is_some() {
        return Err(ApiError::new(
            ProblemType::PreconditionFailed,
            "If-Match names a version, and a record being created has none",
        ));
    }
    let record_id = RecordId::from_uuid(Uuid::now_v7());
    let by = UserId::from_uuid(write.caller.user_id);
    let at = OffsetDateTime::now_utc();
    let make_plan = async || {
        let (project, entity) = writable(&state, &write, project_id, &plural).await?;
        let command = RecordCommand::Create(CreateRecord {
            record_id,
            entity: entity.clone(),
            body: write.body.value.clone(),
            by,
            at,
        });
        let decided = step(&state, &write, record_id, Source::New, Pin::Latest)
            .decide(&state.store, |_| Ok(command.clone()))
            .await
            .map_err(|f| failure(f, record_error))?;
        let constraints =
            RecordConstraints::put(&project, &entity, record_id, &decided.after, true)?;
        let body = record_body(&entity, &decided.after, 1);
        let location = format!("/api/v1/projects/{project_id}/data/{plural}/{record_id}");
        Ok(Plan::decided(record_id.stream(), decided)
            .hook(constraints)
            .reply(move |version, position| WriteAnswer {
                status: StatusCode::CREATED,
                body: Some(body.clone()),
                location: Some(location.clone()),
                version,
                position,
            }))
    };
    state
        .executor
        .run(write.key.clone(), write.body.raw(), Pin::Latest, make_plan)
        .await
}

/// Change some fields of a record.
#[utoipa::path(put, path = "/api/v1/projects/{id}/data/{plural}/{record_id}", tag = "records",
    request_body = Object, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ("plural" = String, Path, description = "The entity's plural"),
           ("record_id" = Uuid, Path, description = "Record id"), WriteHeaders),
    responses((status = 200, description = "Updated: the record as stored", body = Object, headers(("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not write"),
              (status = 404, description = "Unknown project, entity or record"),
              (status = 409, description = "A unique value taken (unique-violation), changed concurrently, or the Idempotency-Key is in flight"),
              (status = 412, description = "If-Match does not match the record's version"),
              (status = 422, description = "Invalid change (errors at each field), or no field to change")))]
#[put("/projects/{id}/data/{plural}/{record_id}")]
pub async fn update_record(
    state: web::Data<CommandState>,
    write: Write<Json<Value>>,
    Ids((project_id, record_id)): Ids<(ProjectId, RecordId)>,
    Plural(plural): Plural,
) -> Result<HttpResponse, ApiError> {
    let by = UserId::from_uuid(write.caller.user_id);
    let at = OffsetDateTime::now_utc();
    let pin = write.pin();
    let make_plan = async || {
        let (project, entity) = writable(&state, &write, project_id, &plural).await?;
        let command = RecordCommand::Update(UpdateRecord {
            entity: entity.clone(),
            body: write.body.value.clone(),
            by,
            at,
        });
        let decided = step(&state, &write, record_id, Source::Fold, pin)
            .decide(&state.store, |_| Ok(command.clone()))
            .await
            .map_err(|f| failure(f, record_error))?;
        let constraints =
            RecordConstraints::put(&project, &entity, record_id, &decided.after, false)?;
        let after = decided.after.clone();
        Ok(Plan::decided(record_id.stream(), decided)
            .hook(constraints)
            .reply(move |version, position| WriteAnswer {
                status: StatusCode::OK,
                body: Some(record_body(&entity, &after, version)),
                location: None,
                version,
                position,
            }))
    };
    state
        .executor
        .run(write.key.clone(), write.body.raw(), pin, make_plan)
        .await
}

/// Delete a record (409 while other records reference it).
#[utoipa::path(delete, path = "/api/v1/projects/{id}/data/{plural}/{record_id}", tag = "records",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ("plural" = String, Path, description = "The entity's plural"),
           ("record_id" = Uuid, Path, description = "Record id"), WriteHeaders),
    responses((status = 204, description = "Deleted", headers(("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not write"),
              (status = 404, description = "Unknown project, entity or record"),
              (status = 409, description = "Other records reference it (still-referenced), changed concurrently, or the Idempotency-Key is in flight"),
              (status = 412, description = "If-Match does not match the record's version")))]
#[delete("/projects/{id}/data/{plural}/{record_id}")]
pub async fn delete_record(
    state: web::Data<CommandState>,
    write: Write,
    Ids((project_id, record_id)): Ids<(ProjectId, RecordId)>,
    Plural(plural): Plural,
) -> Result<HttpResponse, ApiError> {
    let by = UserId::from_uuid(write.caller.user_id);
    let at = OffsetDateTime::now_utc();
    let pin = write.pin();
    let make_plan = async || {
        let (_, entity) = writable(&state, &write, project_id, &plural).await?;
        let command = RecordCommand::Delete(DeleteRecord {
            entity: entity.clone(),
            by,
            at,
        });
        let decided = step(&state, &write, record_id, Source::Fold, pin)
            .decide(&state.store, |_| Ok(command.clone()))
            .await
            .map_err(|f| failure(f, record_error))?;
        Ok(Plan::decided(record_id.stream(), decided)
            .hook(RecordConstraints::delete(&entity, record_id)))
    };
    state
        .executor
        .run(write.key.clone(), write.body.raw(), pin, make_plan)
        .await
}
