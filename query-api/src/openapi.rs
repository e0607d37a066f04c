//! The OpenAPI description of the read routes: the answers' schemas (the handlers serve the read
//! models' JSON documents, which the domain's types serialise with these field names) and the
//! document assembled from the handlers' annotations.

#![allow(dead_code)] // The structs below exist to be described, never built.

use runtime::openapi;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::{generations, routes};

/// A member of a project.
#[derive(ToSchema)]
pub struct Member {
    user_id: Uuid,
    #[schema(schema_with = openapi::project_role)]
    role: String,
    added_at: OffsetDateTime,
}

/// A feature as `GET /projects/{id}/features/{feature_id}` serves it.
#[derive(ToSchema)]
pub struct Feature {
    id: Uuid,
    #[schema(schema_with = openapi::display_name)]
    name: String,
    #[schema(schema_with = openapi::feature_type)]
    feature_type: String,
    /// `null` follows the project's mode.
    #[schema(schema_with = openapi::feature_generation_mode)]
    generation_mode: Option<String>,
    /// `{}` until a feature type defines its configuration.
    configuration: Object,
    /// The normalised definition (defaults filled in) for `crud`, else `null`.
    #[schema(schema_with = openapi::nullable_schema_definition)]
    schema_definition: Option<Value>,
    is_enabled: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    /// The AI request whose applied proposal last set the feature's content (kept when its owner
    /// edits it afterwards); absent when none did.
    ai_request_id: Option<Uuid>,
}

/// A custom function as `GET /projects/{id}/functions/{function_id}` serves it.
#[derive(ToSchema)]
pub struct Function {
    id: Uuid,
    /// snake_case, unique within the project.
    name: String,
    description: Option<String>,
    /// `python`.
    language: String,
    function_code: String,
    /// A JSON Schema (2020-12), or `null`.
    #[schema(value_type = Option<Object>)]
    input_schema: Option<Value>,
    #[schema(value_type = Option<Object>)]
    output_schema: Option<Value>,
    /// `[{input, output}]`.
    examples: Vec<Object>,
    /// `null` follows the project's mode.
    #[schema(schema_with = openapi::feature_generation_mode)]
    generation_mode: Option<String>,
    endpoint_path: String,
    /// `POST`, `PUT` or `PATCH`.
    http_method: String,
    is_active: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    /// The generate-code request whose code was last applied (kept when its owner edits the
    /// function afterwards); absent when none was.
    ai_request_id: Option<Uuid>,
}

#[derive(ToSchema)]
pub struct FunctionPage {
    items: Vec<Function>,
    #[schema(schema_with = openapi::next_cursor)]
    next_cursor: Option<String>,
}

/// A JSON object of no fixed shape.
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub struct Object(Value);

/// A live record: `id`, its entity's fields as the current schema shows them (decimals as
/// strings at the field's scale, date-times in UTC), `created_at`, `updated_at`, `version`.
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub struct Record(Value);

#[derive(ToSchema)]
pub struct RecordPage {
    items: Vec<Record>,
    #[schema(schema_with = openapi::next_cursor)]
    next_cursor: Option<String>,
}

/// A project with its features and members (`GET /projects/{id}`).
#[derive(ToSchema)]
pub struct Project {
    id: Uuid,
    #[schema(schema_with = openapi::display_name)]
    name: String,
    #[schema(schema_with = openapi::description)]
    description: Option<String>,
    owner_id: Uuid,
    #[schema(schema_with = openapi::project_status)]
    status: String,
    #[schema(schema_with = openapi::generation_mode)]
    generation_mode: String,
    /// In creation order.
    features: Vec<Feature>,
    members: Vec<Member>,
    /// In creation order; absent while the project has none.
    functions: Option<Vec<Function>>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    #[schema(schema_with = openapi::version)]
    version: u64,
}

/// A project in a list: no features or members, their count instead.
#[derive(ToSchema)]
pub struct ProjectSummary {
    id: Uuid,
    #[schema(schema_with = openapi::display_name)]
    name: String,
    #[schema(schema_with = openapi::description)]
    description: Option<String>,
    owner_id: Uuid,
    #[schema(schema_with = openapi::project_status)]
    status: String,
    #[schema(schema_with = openapi::generation_mode)]
    generation_mode: String,
    feature_count: u64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    #[schema(schema_with = openapi::version)]
    version: u64,
}

#[derive(ToSchema)]
pub struct ProjectPage {
    items: Vec<ProjectSummary>,
    #[schema(schema_with = openapi::next_cursor)]
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
pub struct FeaturePage {
    items: Vec<Feature>,
    #[schema(schema_with = openapi::next_cursor)]
    next_cursor: Option<String>,
}

/// Who caused an event.
#[derive(ToSchema)]
pub struct EventMetadata {
    actor: Option<Uuid>,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    /// `ai` on the events of an applied AI proposal (their causation is the AI request); absent
    /// otherwise.
    source: Option<String>,
}

/// One event of a project's history.
#[derive(ToSchema)]
pub struct HistoryEvent {
    event_id: Uuid,
    /// The stored event type (`ProjectCreated`, `FeatureAdded`, …).
    #[schema(rename = "type")]
    kind: String,
    #[schema(schema_with = openapi::version)]
    version: u64,
    #[schema(schema_with = openapi::position)]
    position: String,
    recorded_at: OffsetDateTime,
    /// The event at its latest schema version.
    data: Object,
    metadata: EventMetadata,
}

#[derive(ToSchema)]
pub struct HistoryPage {
    items: Vec<HistoryEvent>,
    #[schema(schema_with = openapi::next_cursor)]
    next_cursor: Option<String>,
}

/// One step of a generation run.
#[derive(ToSchema)]
pub struct Step {
    name: String,
    #[schema(schema_with = openapi::step_status)]
    status: String,
    duration_ms: u64,
    log: Option<String>,
}

/// The generated suite's result, when verification was asked for.
#[derive(ToSchema)]
pub struct TestReport {
    passed: u32,
    failed: u32,
    report: String,
}

/// A generation (`GET /generations/{id}`).
#[derive(ToSchema)]
pub struct Generation {
    id: Uuid,
    project_id: Uuid,
    #[schema(minimum = 1)]
    project_version: u64,
    #[schema(schema_with = openapi::target)]
    target: String,
    /// The generation whose database this one's migrations upgrade; null: none.
    base_generation_id: Option<Uuid>,
    verify: bool,
    requested_by: Uuid,
    #[schema(schema_with = openapi::generation_status)]
    status: String,
    /// The delivery attempt of the latest start; 0 before the first.
    attempt: u32,
    steps: Vec<Step>,
    file_count: Option<u64>,
    size_bytes: Option<u64>,
    sha256: Option<String>,
    tests: Option<TestReport>,
    /// Why it failed.
    error: Option<String>,
    requested_at: OffsetDateTime,
    started_at: Option<OffsetDateTime>,
    completed_at: Option<OffsetDateTime>,
}

#[derive(ToSchema)]
pub struct GenerationPage {
    items: Vec<Generation>,
    #[schema(schema_with = openapi::next_cursor)]
    next_cursor: Option<String>,
}

/// The query string of `GET /projects`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectListQuery {
    /// Default `active`; `archived` lists the caller's own archived projects.
    #[param(schema_with = openapi::project_status)]
    status: Option<String>,
    /// Page size, default 50.
    #[param(nullable = false, minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(nullable = false)]
    cursor: Option<String>,
}

/// A model of the AI catalog as any user sees it (no URL, no key variable).
#[derive(ToSchema)]
pub struct AiModelSummary {
    name: String,
    #[schema(pattern = "^(openai|azure_openai|anthropic)$")]
    provider: String,
    /// The provider's model name.
    model: String,
    /// USD per million input tokens, an exact decimal string.
    #[schema(example = "0.15")]
    input_usd_per_mtok: String,
    #[schema(example = "0.6")]
    output_usd_per_mtok: String,
    max_output_tokens: u32,
    /// The model a request without `model` uses.
    is_default: bool,
}

/// `GET /ai/models`.
#[derive(ToSchema)]
pub struct AiModelList {
    items: Vec<AiModelSummary>,
}

/// One version of a prompt template.
#[derive(ToSchema)]
pub struct PromptTemplateVersion {
    name: String,
    #[schema(minimum = 1)]
    version: u32,
    #[schema(pattern = "^(generate_config|enhance_config|generate_code)$")]
    purpose: String,
    #[schema(max_length = 8000)]
    system: String,
    #[schema(max_length = 8000)]
    template: String,
    created_at: OffsetDateTime,
}

/// `GET /ai/prompts`: each template at its latest version.
#[derive(ToSchema)]
pub struct PromptTemplateList {
    items: Vec<PromptTemplateVersion>,
}

#[derive(OpenApi)]
#[openapi(
    paths(
        routes::profile,
        routes::list_projects,
        routes::get_project,
        routes::history,
        routes::list_features,
        routes::get_feature,
        crate::functions::list_functions,
        crate::functions::get_function,
        crate::records::list_records,
        crate::records::get_record,
        crate::records::record_history,
        generations::list_generations,
        generations::get_generation,
        generations::download_generation,
        generations::download_project,
        crate::ai_catalog::list_models,
        crate::ai_catalog::list_prompts,
        crate::ai_catalog::get_prompt,
        crate::ai_requests::get_ai_request,
        crate::ai_requests::list_ai_requests,
        crate::ai_usage::my_usage,
        crate::ai_usage::all_usage,
    ),
    components(schemas(
        Project,
        ProjectSummary,
        ProjectPage,
        Feature,
        FeaturePage,
        Function,
        FunctionPage,
        Record,
        RecordPage,
        HistoryPage,
        Generation,
        GenerationPage,
        AiModelSummary,
        AiModelList,
        PromptTemplateVersion,
        PromptTemplateList,
        crate::ai_requests::AiRequestDoc,
        crate::ai_requests::AiRequestPage,
        crate::ai_requests::AiAttempt,
        crate::ai_requests::AiUsage,
        crate::ai_usage::UsageReport,
        crate::ai_usage::UsageGroup,
        crate::ai_usage::UsageTotal,
        crate::ai_requests::AiPromptRef
    ))
)]
pub struct QueryApiDoc;

/// The read routes' document, with the error answers and shared schemas of every operation.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = QueryApiDoc::openapi();
    openapi::complete(&mut doc);
    doc
}
