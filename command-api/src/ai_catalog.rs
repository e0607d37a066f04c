//! The AI catalog's admin writes (models and prompt templates), the one resolver of a request's model, the effective prompt of a purpose, and the `BACKFORGE_AI_*` bootstrap.
//!
//! Every write appends to the model's or template's own stream and, in the same transaction,
//! updates the command-side `ai_model_catalog` and `ai_prompt_catalog` rows that the resolver and
//! [`effective_prompt`] read, so an AI request sees a catalog change the moment it is answered.
//! Writes that can move the default take one transaction-scoped advisory lock first, so the
//! rows' order of default changes is the events' commit order (the read model applies the same
//! rule in feed order).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, post, put, web};
use deadpool_postgres::GenericClient;
use domain::ai::config::{ModelConfig, Provider};
use domain::ai::models::{
    AiModel, AiModelCommand, AiModelError, AiModelEvent, ModelName, ModelPatch, RegisterModel,
    RetireModel, UpdateModel,
};
use domain::ai::prompt::{self, Prompt, Purpose};
use domain::ai::templates::{
    CreatePrompt, PromptCommand, PromptError, PromptEvent, PromptName, PromptTemplate, RevisePrompt,
};
use domain::{EventMetadata, FieldError};
use event_store::Position;
use event_store::application::{Pin, Source, Step};
use runtime::{ApiError, Authenticated, Json, ProblemType};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_postgres::types::Json as PgJson;
use utoipa::ToSchema;

use crate::CommandState;
use crate::execute::{Plan, SideWrite, WriteAnswer, failure};
use crate::http::{NoBody, Write, WriteBody};
use crate::project_routes::nullable;

/// The catalog name the `BACKFORGE_AI_*` variables register their model under.
pub const BOOTSTRAP_MODEL_NAME: &str = "default";

/// The variables that configure a default model, named by every `ai-not-configured` answer.
pub const BOOTSTRAP_VARIABLES: &str =
    "BACKFORGE_AI_PROVIDER, BACKFORGE_AI_BASE_URL, BACKFORGE_AI_MODEL and BACKFORGE_AI_API_KEY";

/// The advisory lock of writes that may move the default model (`"AIDF"`).
const DEFAULT_LOCK: i64 = 0x4149_4446;

/// 403 unless the caller is a global admin.
fn require_admin(caller: &Authenticated) -> Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("only admins manage the AI catalog"))
    }
}

fn model_error(e: AiModelError) -> ApiError {
    match e {
        AiModelError::AlreadyExists => ApiError::conflict(ProblemType::NameTaken, e.to_string()),
        AiModelError::NotFound => ApiError::not_found("no such model"),
        AiModelError::Retired => ApiError::conflict(ProblemType::Conflict, e.to_string()),
        AiModelError::Validation(errors) => ApiError::invalid("the model is invalid", errors),
    }
}

fn prompt_error(e: PromptError) -> ApiError {
    match e {
        PromptError::AlreadyExists => ApiError::conflict(ProblemType::NameTaken, e.to_string()),
        PromptError::NotFound => ApiError::not_found("no such prompt template"),
        PromptError::Validation(errors) => {
            ApiError::invalid("the prompt template is invalid", errors)
        }
    }
}

/// A name in a path: anything that is not a valid name names nothing (404), like a non-UUID id.
fn path_name<N>(
    raw: &str,
    parse: impl Fn(&str) -> Result<N, FieldError>,
    what: &str,
) -> Result<N, ApiError> {
    parse(raw).map_err(|_| ApiError::not_found(format!("no such {what}")))
}

// --- models ---

/// `POST /admin/ai/models`. Prices are read from the JSON text (numbers or strings), never
/// through `f64`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateModelRequest {
    /// 1 to 64 of `a-z`, `0-9`, `_`, `-`: what AI requests name with `model`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]{1,64}$")]
    pub name: String,
    /// `openai` (also Ollama, vLLM, llama.cpp, LM Studio, OpenRouter), `azure_openai` or
    /// `anthropic`.
    #[schema(value_type = String, pattern = "^(openai|azure_openai|anthropic)$")]
    pub provider: Provider,
    #[schema(max_length = 2048)]
    pub base_url: String,
    /// The provider's model name (Azure: the deployment).
    #[schema(min_length = 1, max_length = 200)]
    pub model: String,
    /// The environment variable holding the key: `BACKFORGE_AI_KEY_…` (or `BACKFORGE_AI_API_KEY`).
    #[serde(default)]
    #[schema(max_length = 128)]
    pub api_key_env: Option<String>,
    /// Azure's `api-version` (required for `azure_openai`).
    #[serde(default)]
    pub api_version: Option<String>,
    /// USD per million input tokens: a decimal (number or string), at most 6 places.
    #[serde(with = "domain::ai::money::price")]
    #[schema(value_type = String, example = "0.15")]
    pub input_usd_per_mtok: Decimal,
    #[serde(with = "domain::ai::money::price")]
    #[schema(value_type = String, example = "0.6")]
    pub output_usd_per_mtok: Decimal,
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_output_tokens: u32,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 600000)]
    pub timeout_ms: Option<u64>,
    /// Make this the default model (the one a request without `model` uses); the previous
    /// default stops being it.
    #[serde(default)]
    pub is_default: Option<bool>,
}

/// A price member of a partial update: absent keeps the price, a number or string sets it.
fn optional_price<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    domain::ai::money::price::deserialize(d).map(Some)
}

/// `PUT /admin/ai/models/{name}`: only the members given change; `null` clears an optional one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateModelRequest {
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(openai|azure_openai|anthropic)$")]
    pub provider: Option<Provider>,
    #[serde(default)]
    #[schema(max_length = 2048)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub api_key_env: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub api_version: Option<Option<String>>,
    #[serde(default, deserialize_with = "optional_price")]
    #[schema(value_type = Option<String>)]
    pub input_usd_per_mtok: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_price")]
    #[schema(value_type = Option<String>)]
    pub output_usd_per_mtok: Option<Decimal>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f64>)]
    pub temperature: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u64>)]
    pub timeout_ms: Option<Option<u64>>,
    /// `true` makes it the default; `false` leaves no default.
    #[serde(default)]
    pub is_default: Option<bool>,
}

impl UpdateModelRequest {
    fn into_patch(self) -> ModelPatch {
        ModelPatch {
            provider: self.provider,
            base_url: self.base_url,
            model: self.model,
            api_key_env: self.api_key_env,
            api_version: self.api_version,
            input_usd_per_mtok: self.input_usd_per_mtok,
            output_usd_per_mtok: self.output_usd_per_mtok,
            max_output_tokens: self.max_output_tokens,
            temperature: self.temperature,
            timeout_ms: self.timeout_ms,
            is_default: self.is_default,
        }
    }
}

/// The answer of a model write: the model as an admin sees it (described for the OpenAPI
/// document; the handlers build it from the model's state).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AdminModel {
    name: String,
    #[schema(pattern = "^(openai|azure_openai|anthropic)$")]
    provider: String,
    base_url: String,
    model: String,
    /// The variable holding the key (never the key); absent when none.
    api_key_env: Option<String>,
    api_version: Option<String>,
    /// An exact decimal string.
    #[schema(example = "0.15")]
    input_usd_per_mtok: String,
    #[schema(example = "0.6")]
    output_usd_per_mtok: String,
    max_output_tokens: u32,
    temperature: Option<f64>,
    timeout_ms: Option<u64>,
    retired: bool,
    #[schema(schema_with = runtime::openapi::version)]
    version: u64,
    #[schema(schema_with = runtime::openapi::position)]
    position: String,
}

/// The answer of a prompt template write.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PromptWritten {
    name: String,
    #[schema(pattern = "^(generate_config|enhance_config|generate_code)$")]
    purpose: String,
    /// The template's version after the write (its stream's version).
    #[schema(schema_with = runtime::openapi::version)]
    version: u64,
    #[schema(schema_with = runtime::openapi::position)]
    position: String,
}

/// A model as an admin sees it: the whole configuration (a key's variable name, never a key).
fn admin_model_json(name: &ModelName, config: &ModelConfig, retired: bool) -> Value {
    let mut body = json!({"name": name.as_str()});
    if let (Some(obj), Ok(Value::Object(config))) =
        (body.as_object_mut(), serde_json::to_value(config))
    {
        obj.extend(config);
        obj.insert("retired".into(), Value::Bool(retired));
    }
    body
}

/// The command-side rows of model events, in the append's transaction.
fn model_rows(events: &[AiModelEvent]) -> Vec<SideWrite> {
    let mut writes = Vec::new();
    if events.iter().any(|e| e.default_after().is_some()) {
        writes.push(SideWrite::new(
            "SELECT pg_advisory_xact_lock($1)",
            vec![Box::new(DEFAULT_LOCK)],
        ));
    }
    for event in events {
        if let Some(true) = event.default_after() {
            let name = match event {
                AiModelEvent::AiModelRegistered { name, .. }
                | AiModelEvent::AiModelUpdated { name, .. }
                | AiModelEvent::AiModelRetired { name, .. } => name.to_string(),
            };
            writes.push(SideWrite::new(
                "UPDATE ai_model_catalog SET is_default = false WHERE is_default AND name <> $1",
                vec![Box::new(name)],
            ));
        }
        match event {
            AiModelEvent::AiModelRegistered {
                name,
                config,
                is_default,
                registered_at,
            } => writes.push(SideWrite::new(
                "INSERT INTO ai_model_catalog (name, config, is_default, retired, updated_at)
                 VALUES ($1, $2, $3, false, $4)",
                vec![
                    Box::new(name.to_string()),
                    Box::new(PgJson(config.clone())),
                    Box::new(*is_default),
                    Box::new(*registered_at),
                ],
            )),
            AiModelEvent::AiModelUpdated {
                name,
                config,
                is_default,
                updated_at,
            } => writes.push(SideWrite::new(
                "UPDATE ai_model_catalog SET config = $2, is_default = COALESCE($3, is_default),
                        updated_at = $4
                 WHERE name = $1",
                vec![
                    Box::new(name.to_string()),
                    Box::new(PgJson(config.clone())),
                    Box::new(*is_default),
                    Box::new(*updated_at),
                ],
            )),
            AiModelEvent::AiModelRetired { name, retired_at } => writes.push(SideWrite::new(
                "UPDATE ai_model_catalog SET retired = true, is_default = false, updated_at = $2
                 WHERE name = $1",
                vec![Box::new(name.to_string()), Box::new(*retired_at)],
            )),
        }
    }
    writes
}

/// Who asks for a model write and how: the envelope's metadata, the `If-Match` pin, the
/// idempotency key's claim and the body it covers.
struct Asked<'a> {
    metadata: EventMetadata,
    pin: Pin,
    key: Option<crate::idempotency::Claim>,
    raw: &'a [u8],
}

impl<'a> Asked<'a> {
    fn by<B: WriteBody>(write: &'a Write<B>) -> Self {
        Asked {
            metadata: write.meta.metadata(Some(write.caller.user_id)),
            pin: write.pin(),
            key: write.key.clone(),
            raw: write.body.raw(),
        }
    }
}

/// Decides `command` on the model's stream and commits it with its command-side rows; the
/// answer is `status` with the model as an admin sees it (`None`: no body).
async fn run_model_command(
    state: &CommandState,
    name: &ModelName,
    command: impl Fn(&AiModel) -> Result<AiModelCommand, ApiError>,
    asked: Asked<'_>,
    status: StatusCode,
) -> Result<HttpResponse, ApiError> {
    let Asked {
        metadata,
        pin,
        key,
        raw,
    } = asked;
    let stream = name.stream();
    let step = Step::<AiModel> {
        stream: stream.clone(),
        source: Source::Fold,
        pin,
        limits: &state.settings.limits,
        metadata,
    };
    let make_plan = async || {
        let decided = step
            .decide(&state.store, |loaded| command(&loaded.state))
            .await
            .map_err(|f| failure(f, model_error))?;
        let rows = model_rows(&decided.events);
        let after = decided.after();
        let body = match (status, &after.name, &after.config) {
            (StatusCode::NO_CONTENT, _, _) => None,
            (_, Some(name), Some(config)) => Some(admin_model_json(name, config, after.retired)),
            _ => None,
        };
        let mut plan = Plan::decided(stream.clone(), decided);
        for row in rows {
            plan = plan.side_write(row);
        }
        Ok(plan.reply(move |version, position: Position| {
            let body = body.clone().map(|mut body| {
                body["version"] = json!(version);
                body["position"] = json!(position.to_token());
                body
            });
            WriteAnswer {
                status,
                body,
                location: None,
                version,
                position,
            }
        }))
    };
    state.executor.run(key, raw, pin, make_plan).await
}

/// Register a model (admins only).
#[utoipa::path(post, path = "/api/v1/admin/ai/models", tag = "ai", request_body = CreateModelRequest,
    security(("bearer" = [])), params(runtime::openapi::CreateHeaders),
    responses((status = 201, description = "Registered: the model as an admin sees it, with `version` and `position`", body = AdminModel,
                headers(("ETag"), ("Backforge-Position"))),
              (status = 403, description = "Only admins manage the AI catalog"),
              (status = 409, description = "A model of this name exists (a retired one keeps its name), or the Idempotency-Key is in flight"),
              (status = 422, description = "Invalid name, URL, key variable, price (over 6 places, negative), limits")))]
#[post("/admin/ai/models")]
pub async fn register_model(
    state: web::Data<CommandState>,
    write: Write<Json<CreateModelRequest>>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&write.caller)?;
    let body = &write.body.value;
    let name = ModelName::parse(&body.name)
        .map_err(|e| ApiError::invalid("the model is invalid", vec![e]))?;
    let config = ModelConfig {
        provider: body.provider,
        base_url: body.base_url.clone(),
        model: body.model.clone(),
        api_key_env: body.api_key_env.clone(),
        api_version: body.api_version.clone(),
        input_usd_per_mtok: body.input_usd_per_mtok,
        output_usd_per_mtok: body.output_usd_per_mtok,
        max_output_tokens: body.max_output_tokens,
        temperature: body.temperature,
        timeout_ms: body.timeout_ms,
    };
    let command = AiModelCommand::Register(RegisterModel {
        name: name.clone(),
        config,
        is_default: body.is_default.unwrap_or(false),
        at: OffsetDateTime::now_utc(),
    });
    run_model_command(
        &state,
        &name,
        |_| Ok(command.clone()),
        Asked::by(&write),
        StatusCode::CREATED,
    )
    .await
}

/// Change a model partially (admins only).
#[utoipa::path(put, path = "/api/v1/admin/ai/models/{name}", tag = "ai", request_body = UpdateModelRequest,
    security(("bearer" = [])), params(("name" = String, Path, description = "Model name"), runtime::openapi::WriteHeaders),
    responses((status = 200, description = "Updated (or unchanged: no new event): the whole model, with `version` and `position`", body = AdminModel,
                headers(("ETag"), ("Backforge-Position"))),
              (status = 403, description = "Only admins manage the AI catalog"),
              (status = 404, description = "No such model"),
              (status = 409, description = "The model is retired, or changed concurrently"),
              (status = 412, description = "If-Match does not match the current version"),
              (status = 422, description = "The merged configuration breaks a rule")))]
#[put("/admin/ai/models/{name}")]
pub async fn update_model(
    state: web::Data<CommandState>,
    mut write: Write<Json<UpdateModelRequest>>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&write.caller)?;
    let name = path_name(&path, ModelName::parse, "model")?;
    let patch = std::mem::take(&mut write.body.value).into_patch();
    let command = AiModelCommand::Update(UpdateModel {
        patch,
        at: OffsetDateTime::now_utc(),
    });
    run_model_command(
        &state,
        &name,
        |_| Ok(command.clone()),
        Asked::by(&write),
        StatusCode::OK,
    )
    .await
}

/// Retire a model (admins only): no new request may use it; its name stays taken.
#[utoipa::path(delete, path = "/api/v1/admin/ai/models/{name}", tag = "ai",
    security(("bearer" = [])), params(("name" = String, Path, description = "Model name"), runtime::openapi::WriteHeaders),
    responses((status = 204, description = "Retired (or already retired)", headers(("ETag"), ("Backforge-Position"))),
              (status = 403, description = "Only admins manage the AI catalog"),
              (status = 404, description = "No such model"),
              (status = 412, description = "If-Match does not match the current version")))]
#[delete("/admin/ai/models/{name}")]
pub async fn retire_model(
    state: web::Data<CommandState>,
    write: Write<NoBody>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&write.caller)?;
    let name = path_name(&path, ModelName::parse, "model")?;
    let command = AiModelCommand::Retire(RetireModel {
        at: OffsetDateTime::now_utc(),
    });
    run_model_command(
        &state,
        &name,
        |_| Ok(command.clone()),
        Asked::by(&write),
        StatusCode::NO_CONTENT,
    )
    .await
}

// --- prompt templates ---

/// `POST /admin/ai/prompts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePromptRequest {
    #[schema(min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]{1,64}$")]
    pub name: String,
    #[schema(value_type = String, pattern = "^(generate_config|enhance_config|generate_code)$")]
    pub purpose: Purpose,
    /// The system message: a MiniJinja template, at most 8,000 characters (may be empty).
    #[schema(max_length = 8000)]
    pub system: String,
    /// The user message: a MiniJinja template using only `project`, `spec`, `schema_language`,
    /// `prompt`, `feature`, `function` and `errors`; at most 8,000 characters.
    #[schema(min_length = 1, max_length = 8000)]
    pub template: String,
}

/// `PUT /admin/ai/prompts/{name}`: the next version's texts, whole.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevisePromptRequest {
    /// If given, the template's own purpose (it cannot change).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(generate_config|enhance_config|generate_code)$")]
    pub purpose: Option<Purpose>,
    #[schema(max_length = 8000)]
    pub system: String,
    #[schema(min_length = 1, max_length = 8000)]
    pub template: String,
}

fn prompt_rows(events: &[PromptEvent], purpose: Option<Purpose>) -> Vec<SideWrite> {
    let mut writes = Vec::new();
    let Some(purpose) = purpose else {
        return writes;
    };
    for event in events {
        let (name, version, system, template, at) = match event {
            PromptEvent::PromptTemplateCreated {
                name,
                version,
                system,
                template,
                created_at,
                ..
            } => (name, version, system, template, created_at),
            PromptEvent::PromptTemplateRevised {
                name,
                version,
                system,
                template,
                revised_at,
            } => (name, version, system, template, revised_at),
        };
        writes.push(SideWrite::new(
            "INSERT INTO ai_prompt_catalog (name, version, purpose, system, template, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                Box::new(name.to_string()),
                Box::new(i32::try_from(*version).unwrap_or(i32::MAX)),
                Box::new(purpose.as_str()),
                Box::new(system.clone()),
                Box::new(template.clone()),
                Box::new(*at),
            ],
        ));
    }
    writes
}

async fn run_prompt_command(
    state: &CommandState,
    write: &Write<impl WriteBody>,
    name: &PromptName,
    command: PromptCommand,
    status: StatusCode,
) -> Result<HttpResponse, ApiError> {
    let stream = name.stream();
    let step = Step::<PromptTemplate> {
        stream: stream.clone(),
        source: Source::Fold,
        pin: write.pin(),
        limits: &state.settings.limits,
        metadata: write.meta.metadata(Some(write.caller.user_id)),
    };
    let make_plan = async || {
        let decided = step
            .decide(&state.store, |_| Ok(command.clone()))
            .await
            .map_err(|f| failure(f, prompt_error))?;
        let after = decided.after();
        let rows = prompt_rows(&decided.events, after.purpose);
        let answer = json!({
            "name": name.as_str(),
            "purpose": after.purpose,
        });
        let mut plan = Plan::decided(stream.clone(), decided);
        for row in rows {
            plan = plan.side_write(row);
        }
        Ok(plan.reply(move |version, position: Position| {
            let mut body = answer.clone();
            body["version"] = json!(version);
            body["position"] = json!(position.to_token());
            WriteAnswer {
                status,
                body: Some(body),
                location: Some(format!(
                    "/api/v1/ai/prompts/{}?version={version}",
                    body_name(&answer)
                )),
                version,
                position,
            }
        }))
    };
    state
        .executor
        .run(write.key.clone(), write.body.raw(), write.pin(), make_plan)
        .await
}

fn body_name(answer: &Value) -> &str {
    answer["name"].as_str().unwrap_or_default()
}

/// Create a prompt template at version 1 (admins only).
#[utoipa::path(post, path = "/api/v1/admin/ai/prompts", tag = "ai", request_body = CreatePromptRequest,
    security(("bearer" = [])), params(runtime::openapi::CreateHeaders),
    responses((status = 201, description = "Created: `{name, purpose, version: 1, position}`", body = PromptWritten,
                headers(("Location"), ("ETag"), ("Backforge-Position"))),
              (status = 403, description = "Only admins manage the AI catalog"),
              (status = 409, description = "A template of this name exists, or the Idempotency-Key is in flight"),
              (status = 422, description = "Invalid name or purpose; a template that does not parse, uses another variable, or is over 8,000 characters")))]
#[post("/admin/ai/prompts")]
pub async fn create_prompt(
    state: web::Data<CommandState>,
    write: Write<Json<CreatePromptRequest>>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&write.caller)?;
    let body = &write.body.value;
    let name = PromptName::parse(&body.name)
        .map_err(|e| ApiError::invalid("the prompt template is invalid", vec![e]))?;
    let command = PromptCommand::Create(CreatePrompt {
        name: name.clone(),
        purpose: body.purpose,
        system: body.system.clone(),
        template: body.template.clone(),
        at: OffsetDateTime::now_utc(),
    });
    run_prompt_command(&state, &write, &name, command, StatusCode::CREATED).await
}

/// Write the next version of a prompt template (admins only).
#[utoipa::path(put, path = "/api/v1/admin/ai/prompts/{name}", tag = "ai", request_body = RevisePromptRequest,
    security(("bearer" = [])), params(("name" = String, Path, description = "Prompt template name"), runtime::openapi::WriteHeaders),
    responses((status = 200, description = "The next version (or unchanged texts: no new version): `{name, purpose, version, position}`", body = PromptWritten,
                headers(("Location"), ("ETag"), ("Backforge-Position"))),
              (status = 403, description = "Only admins manage the AI catalog"),
              (status = 404, description = "No such prompt template"),
              (status = 412, description = "If-Match does not match the current version"),
              (status = 422, description = "A template that does not parse, uses another variable, is over 8,000 characters, or another purpose")))]
#[put("/admin/ai/prompts/{name}")]
pub async fn revise_prompt(
    state: web::Data<CommandState>,
    write: Write<Json<RevisePromptRequest>>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&write.caller)?;
    let name = path_name(&path, PromptName::parse, "prompt template")?;
    let body = &write.body.value;
    let command = PromptCommand::Revise(RevisePrompt {
        purpose: body.purpose,
        system: body.system.clone(),
        template: body.template.clone(),
        at: OffsetDateTime::now_utc(),
    });
    run_prompt_command(&state, &write, &name, command, StatusCode::OK).await
}

// --- for AI requests ---

/// The model an AI request uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedModel {
    pub name: ModelName,
    pub config: ModelConfig,
}

fn not_configured(detail: &str) -> ApiError {
    ApiError::ai_not_configured(format!(
        "{detail}: an admin registers one with POST /admin/ai/models, or the operator sets \
         {BOOTSTRAP_VARIABLES}"
    ))
}

fn config_of(text: &str) -> Result<ModelConfig, ApiError> {
    serde_json::from_str(text).map_err(ApiError::internal)
}

/// The one rule of which model an AI request uses, read from the command side's catalog rows
/// (written with the catalog's events, so current the moment a write is answered): `named`, or
/// the default when `None`.
///
/// - no usable model at all, or none is the default and none is named → 503 `ai-not-configured`
///   naming the `BACKFORGE_AI_*` variables;
/// - a named model that does not exist or is retired → 422 at `/model`.
pub async fn resolve_model<C: GenericClient>(
    client: &C,
    named: Option<&str>,
) -> Result<ResolvedModel, ApiError> {
    match named {
        Some(raw) => {
            let unknown = || ApiError::invalid_field("/model", "no such model");
            let name = ModelName::parse(raw).map_err(|_| unknown())?;
            let row = client
                .query_opt(
                    "SELECT config::text, retired FROM ai_model_catalog WHERE name = $1",
                    &[&name.as_str()],
                )
                .await?
                .ok_or_else(unknown)?;
            if row.try_get::<_, bool>(1)? {
                return Err(ApiError::invalid_field(
                    "/model",
                    format!("the model `{name}` is retired"),
                ));
            }
            let config = config_of(row.try_get(0)?)?;
            Ok(ResolvedModel { name, config })
        }
        None => {
            let row = client
                .query_opt(
                    "SELECT name, config::text FROM ai_model_catalog WHERE is_default AND NOT retired",
                    &[],
                )
                .await?;
            match row {
                Some(row) => {
                    let name: &str = row.try_get(0)?;
                    let name = ModelName::parse(name)
                        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
                    let config = config_of(row.try_get(1)?)?;
                    Ok(ResolvedModel { name, config })
                }
                None => {
                    let any: bool = client
                        .query_one(
                            "SELECT EXISTS (SELECT 1 FROM ai_model_catalog WHERE NOT retired)",
                            &[],
                        )
                        .await?
                        .try_get(0)?;
                    Err(not_configured(if any {
                        "no model is the default; name one with `model`, or make one the default"
                    } else {
                        "no AI model is configured"
                    }))
                }
            }
        }
    }
}

/// The prompt a request of `purpose` uses: the admin template of that purpose whose latest
/// version was written last, else the built-in (`builtin.<purpose>`, version 1).
pub async fn effective_prompt<C: GenericClient>(
    client: &C,
    purpose: Purpose,
) -> Result<Prompt, ApiError> {
    let row = client
        .query_opt(
            "SELECT name, version, system, template FROM ai_prompt_catalog
             WHERE purpose = $1 ORDER BY created_at DESC, version DESC, name DESC LIMIT 1",
            &[&purpose.as_str()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(prompt::builtin(purpose));
    };
    let version: i32 = row.try_get(1)?;
    Ok(Prompt {
        name: row.try_get(0)?,
        version: u32::try_from(version).map_err(ApiError::internal)?,
        purpose,
        system: row.try_get(2)?,
        template: row.try_get(3)?,
    })
}

// --- bootstrap ---

/// Makes the model the `BACKFORGE_AI_*` variables describe the default, as `default`, appending
/// only when the catalog does not already say exactly that (a restart with the same variables
/// appends nothing). Run at start by a process serving the command API.
pub async fn bootstrap(state: &CommandState) -> anyhow::Result<()> {
    let Some(config) = state.settings.ai_default_model.clone() else {
        return Ok(());
    };
    let name = ModelName::parse(BOOTSTRAP_MODEL_NAME).map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT config::text, is_default, retired FROM ai_model_catalog WHERE name = $1",
            &[&name.as_str()],
        )
        .await?;
    drop(client);
    if let Some(row) = row {
        let stored: ModelConfig = serde_json::from_str(row.try_get(0)?)?;
        let (is_default, retired): (bool, bool) = (row.try_get(1)?, row.try_get(2)?);
        if retired {
            tracing::warn!(
                model = BOOTSTRAP_MODEL_NAME,
                "BACKFORGE_AI_* describe a default model, but the model `default` was retired; \
                 it is not used again (register another model as the default)"
            );
            return Ok(());
        }
        if stored == config && is_default {
            return Ok(());
        }
    }
    let now = OffsetDateTime::now_utc();
    // Register or update as the stream says when the command is decided, so two processes
    // starting at once both end with the model (the loser of the race decides again).
    let command = |model: &AiModel| {
        Ok(if model.exists() {
            AiModelCommand::Update(UpdateModel {
                patch: full_patch(&config),
                at: now,
            })
        } else {
            AiModelCommand::Register(RegisterModel {
                name: name.clone(),
                config: config.clone(),
                is_default: true,
                at: now,
            })
        })
    };
    let metadata = EventMetadata {
        correlation_id: Some(uuid::Uuid::now_v7()),
        request_id: Some("backforge start: BACKFORGE_AI_*".into()),
        ..EventMetadata::default()
    };
    let answer = run_model_command(
        state,
        &name,
        command,
        Asked {
            metadata,
            pin: Pin::Latest,
            key: None,
            raw: &[],
        },
        StatusCode::OK,
    )
    .await
    .map_err(|e| anyhow::anyhow!("the default model of BACKFORGE_AI_* was not recorded: {e}"))?;
    tracing::info!(
        model = BOOTSTRAP_MODEL_NAME,
        provider = config.provider.as_str(),
        status = answer.status().as_u16(),
        "the default AI model follows BACKFORGE_AI_*"
    );
    Ok(())
}

/// A patch that sets every field to `config`'s and makes the model the default.
fn full_patch(config: &ModelConfig) -> ModelPatch {
    ModelPatch {
        provider: Some(config.provider),
        base_url: Some(config.base_url.clone()),
        model: Some(config.model.clone()),
        api_key_env: Some(config.api_key_env.clone()),
        api_version: Some(config.api_version.clone()),
        input_usd_per_mtok: Some(config.input_usd_per_mtok),
        output_usd_per_mtok: Some(config.output_usd_per_mtok),
        max_output_tokens: Some(config.max_output_tokens),
        temperature: Some(config.temperature),
        timeout_ms: Some(config.timeout_ms),
        is_default: Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_operation_documents_its_answer_and_errors() {
        let doc = serde_json::to_value(crate::openapi::document()).unwrap();
        for (method, path) in [
            ("post", "/api/v1/admin/ai/models"),
            ("put", "/api/v1/admin/ai/models/{name}"),
            ("delete", "/api/v1/admin/ai/models/{name}"),
            ("post", "/api/v1/admin/ai/prompts"),
            ("put", "/api/v1/admin/ai/prompts/{name}"),
        ] {
            let responses = doc["paths"][path][method]["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} is not documented"));
            for code in ["401", "403", "500", "503"] {
                assert!(responses.contains_key(code), "{method} {path} lacks {code}");
            }
            for (code, response) in responses {
                if code.starts_with('2') && code != "204" {
                    assert!(response["content"].is_object(), "{method} {path} {code}");
                }
            }
        }
        let schemas = &doc["components"]["schemas"];
        assert!(schemas["AdminModel"].is_object());
        assert!(schemas["PromptWritten"].is_object());
        assert!(schemas["CreateModelRequest"].is_object());
    }

    #[test]
    fn a_full_patch_gives_back_the_configuration_whatever_it_is_merged_into() {
        let a: ModelConfig = serde_json::from_value(json!({
            "provider": "openai", "base_url": "http://localhost:11434/v1", "model": "llama3.2",
            "input_usd_per_mtok": 0, "output_usd_per_mtok": 0, "max_output_tokens": 4096
        }))
        .unwrap();
        let b: ModelConfig = serde_json::from_value(json!({
            "provider": "azure_openai", "base_url": "https://r.openai.azure.com", "model": "gpt-4o",
            "api_key_env": "BACKFORGE_AI_KEY_AZ", "api_version": "2024-10-21",
            "input_usd_per_mtok": "2.5", "output_usd_per_mtok": "10", "max_output_tokens": 100,
            "temperature": 0.5, "timeout_ms": 1000
        }))
        .unwrap();
        assert_eq!(full_patch(&a).merge(&b), a);
        assert_eq!(full_patch(&b).merge(&a), b);
    }

    #[test]
    fn a_price_in_a_partial_update_is_read_from_its_text() {
        let body: UpdateModelRequest =
            runtime::json::parse(br#"{"input_usd_per_mtok": 0.000150, "temperature": null}"#)
                .unwrap();
        assert_eq!(
            body.input_usd_per_mtok.map(|p| p.to_string()),
            Some("0.00015".into())
        );
        assert_eq!(body.temperature, Some(None));
        assert_eq!(body.output_usd_per_mtok, None);
        let too_fine =
            runtime::json::parse::<UpdateModelRequest>(br#"{"output_usd_per_mtok": "0.0000001"}"#)
                .err()
                .map(|e| e.problem());
        assert_eq!(too_fine.map(|p| p.status), Some(422));
    }

    #[test]
    fn only_events_that_move_the_default_take_the_lock_and_clear_the_old_default() {
        let name = ModelName::parse("m").unwrap();
        let retired = AiModelEvent::AiModelRetired {
            name: name.clone(),
            retired_at: OffsetDateTime::UNIX_EPOCH,
        };
        let sql: Vec<&str> = model_rows(&[retired]).iter().map(|w| w.sql).collect();
        assert_eq!(sql.len(), 2);
        assert!(sql[0].contains("pg_advisory_xact_lock"));
        assert!(sql[1].contains("retired = true"));
        let config: ModelConfig = serde_json::from_value(json!({
            "provider": "openai", "base_url": "http://localhost:1/v1", "model": "x",
            "input_usd_per_mtok": 0, "output_usd_per_mtok": 0, "max_output_tokens": 1
        }))
        .unwrap();
        let quiet = AiModelEvent::AiModelUpdated {
            name: name.clone(),
            config: config.clone(),
            is_default: None,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(model_rows(&[quiet]).len(), 1);
        let loud = AiModelEvent::AiModelRegistered {
            name,
            config,
            is_default: true,
            registered_at: OffsetDateTime::UNIX_EPOCH,
        };
        let sql: Vec<&str> = model_rows(&[loud]).iter().map(|w| w.sql).collect();
        assert!(sql[1].contains("SET is_default = false"));
        assert!(sql[2].starts_with("INSERT INTO ai_model_catalog"));
    }
}
