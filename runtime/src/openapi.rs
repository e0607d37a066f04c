//! The OpenAPI pieces both APIs share: the problem document with its type enum, the headers every
//! route family takes, field constraints derived from the domain's limits and enums, the `crud`
//! schema language as a real schema, and [`complete`], the pass that gives every operation its
//! error answers.
//!
//! Nothing here copies a spelling: problem types come from [`ProblemType::ALL`], enum values from
//! serialising the domain's variants, bounds from [`Limits::default`] and the schema module's
//! constants. The document describes the default limits; an installation that changes a
//! `BACKFORGE_` limit serves the same document.

use std::collections::BTreeSet;

use domain::crud_schema::{
    DECIMAL_PRECISION_DEFAULT, DECIMAL_PRECISION_MAX, DECIMAL_SCALE_DEFAULT, ENUM_VALUES_MAX,
    NAME_MAX_CHARS, PATTERN_MAX_CHARS, STRING_MAX_LENGTH_DEFAULT, STRING_MAX_LENGTH_LIMIT,
};
use domain::generation::{GenerationStatus, StepStatus, Target};
use domain::limits::Limits;
use domain::project::{FeatureType, GenerationMode, ProjectRole, ProjectStatus};
use domain::user::Role;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema,
    SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{KnownFormat, OpenApi, Ref, RefOr};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::problem::ProblemType;

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Where the reference lives, for descriptions: the repository's own document, never elsewhere.
pub const REFERENCE: &str = "docs/api.md";

/// How serde spells each variant: the API's names, taken from the types rather than copied.
fn spellings<T: Serialize>(variants: &[T]) -> Vec<Value> {
    variants
        .iter()
        .filter_map(|v| serde_json::to_value(v).ok())
        .collect()
}

/// A string schema limited to the spellings of `variants`.
fn string_enum<T: Serialize>(variants: &[T], description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(spellings(variants)))
        .description(Some(description))
}

fn nullable(of: Type) -> SchemaType {
    SchemaType::from_iter([of, Type::Null])
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn integer() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
}

fn boolean() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Boolean)
}

fn number() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Number)
}

fn any_value() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::AnyValue)
}

fn closed(object: ObjectBuilder) -> ObjectBuilder {
    object.additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
}

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

// The variant lists below are matched exhaustively, so a new variant fails to compile here
// until the document lists it.

fn generation_modes() -> [GenerationMode; 3] {
    let _listed = |m: GenerationMode| match m {
        GenerationMode::Manual | GenerationMode::AiAssisted | GenerationMode::Mixed => (),
    };
    [
        GenerationMode::Manual,
        GenerationMode::AiAssisted,
        GenerationMode::Mixed,
    ]
}

fn project_statuses() -> [ProjectStatus; 2] {
    let _listed = |s: ProjectStatus| match s {
        ProjectStatus::Active | ProjectStatus::Archived => (),
    };
    [ProjectStatus::Active, ProjectStatus::Archived]
}

fn project_roles() -> [ProjectRole; 1] {
    let _listed = |r: ProjectRole| match r {
        ProjectRole::Viewer => (),
    };
    [ProjectRole::Viewer]
}

fn roles() -> [Role; 2] {
    let _listed = |r: Role| match r {
        Role::Admin | Role::Member => (),
    };
    [Role::Admin, Role::Member]
}

fn generation_statuses() -> [GenerationStatus; 4] {
    let _listed = |s: GenerationStatus| match s {
        GenerationStatus::Requested
        | GenerationStatus::Running
        | GenerationStatus::Succeeded
        | GenerationStatus::Failed => (),
    };
    [
        GenerationStatus::Requested,
        GenerationStatus::Running,
        GenerationStatus::Succeeded,
        GenerationStatus::Failed,
    ]
}

fn step_statuses() -> [StepStatus; 3] {
    let _listed = |s: StepStatus| match s {
        StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped => (),
    };
    [
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Skipped,
    ]
}

// Field schemas for `#[schema(schema_with = …)]` on request and answer types.

/// A display name (user, project, feature): trimmed, then 1 to `name_max_chars` characters.
pub fn display_name() -> Schema {
    let limits = Limits::default();
    string()
        .min_length(Some(1))
        .max_length(Some(limits.name_max_chars))
        .description(Some(format!(
            "1 to {} characters after trimming, no control characters",
            limits.name_max_chars
        )))
        .into()
}

pub fn email() -> Schema {
    let limits = Limits::default();
    string()
        .min_length(Some(1))
        .max_length(Some(limits.email_max_chars))
        .description(Some(format!(
            "At most {} characters; trimmed and compared case-insensitively",
            limits.email_max_chars
        )))
        .into()
}

pub fn password() -> Schema {
    let limits = Limits::default();
    string()
        .min_length(Some(limits.password_min_chars))
        .max_length(Some(limits.password_max_chars))
        .description(Some(format!(
            "{} to {} characters",
            limits.password_min_chars, limits.password_max_chars
        )))
        .into()
}

/// A password given to be checked (login, the current one): any string; a wrong one is a 401/422.
pub fn given_password() -> Schema {
    let limits = Limits::default();
    string().max_length(Some(limits.password_max_chars)).into()
}

/// A project description; `null` clears it in an update.
pub fn description() -> Schema {
    let limits = Limits::default();
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .max_length(Some(limits.description_max_chars))
        .description(Some(format!(
            "At most {} characters; `null` clears it",
            limits.description_max_chars
        )))
        .into()
}

pub fn feature_type() -> Schema {
    string_enum(
        &FeatureType::ALL,
        "`crud` requires `schema_definition`; the others refuse it",
    )
    .into()
}

/// The `GenerationMode` component: one named enum that projects and features share, so a
/// generated client has one type for it (and a nullable one is `oneOf` it and `null`, which
/// generators read as "that enum or None" rather than as several copies of it).
fn generation_mode_schema() -> Schema {
    string_enum(
        &generation_modes(),
        "`ai_assisted` content generates once an AI request's proposal was applied to it; `mixed` and `manual` always generate",
    )
    .into()
}

pub fn generation_mode() -> RefOr<Schema> {
    reference("GenerationMode")
}

/// A feature's own mode, or `null` to follow the project's.
pub fn feature_generation_mode() -> Schema {
    OneOfBuilder::new()
        .item(reference("GenerationMode"))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some("The feature's mode; `null` follows the project's"))
        .into()
}

pub fn project_status() -> Schema {
    string_enum(&project_statuses(), "`archived` after DELETE").into()
}

pub fn project_role() -> Schema {
    string_enum(&project_roles(), "`viewer` may read, not write").into()
}

pub fn role() -> Schema {
    string_enum(&roles(), "The global role").into()
}

pub fn target() -> Schema {
    string_enum(&Target::ALL, "What to generate").into()
}

pub fn generation_status() -> Schema {
    string_enum(&generation_statuses(), "Where the generation is").into()
}

pub fn step_status() -> Schema {
    string_enum(&step_statuses(), "How the step ended").into()
}

/// The consistency token of a write, for `Backforge-Min-Position`.
pub fn position() -> Schema {
    string()
        .min_length(Some(1))
        .description(Some(
            "Opaque commit-order position of the write; send it as Backforge-Min-Position",
        ))
        .into()
}

/// A stream version: the first event of a stream is version 1.
pub fn version() -> Schema {
    integer()
        .minimum(Some(1))
        .description(Some(
            "The stream's version after the write (its event count)",
        ))
        .into()
}

/// `configuration` in a request: absent or `{}` until a feature type defines one.
pub fn configuration() -> Schema {
    closed(ObjectBuilder::new().schema_type(Type::Object))
        .max_properties(Some(0))
        .description(Some(
            "Must be absent or `{}` until a feature type defines its configuration",
        ))
        .into()
}

pub fn schema_definition() -> RefOr<Schema> {
    reference("SchemaDefinition")
}

/// `schema_definition` in an update: the new definition, or `null` (refused for `crud`).
pub fn nullable_schema_definition() -> Schema {
    OneOfBuilder::new()
        .item(reference("SchemaDefinition"))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}

/// `next_cursor` of a list page.
pub fn next_cursor() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .description(Some(
            "Opaque; pass as `cursor` for the next page; `null` on the last",
        ))
        .into()
}

// Answers both APIs give, as schemas; the handlers build them as JSON with these field names.

/// A user inside an auth answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserSummary {
    id: Uuid,
    #[schema(schema_with = email)]
    email: String,
    #[schema(schema_with = display_name)]
    name: String,
    #[schema(schema_with = role)]
    role: String,
}

/// The caller's profile (`GET /auth/profile`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Profile {
    id: Uuid,
    #[schema(schema_with = email)]
    email: String,
    #[schema(schema_with = display_name)]
    name: String,
    #[schema(schema_with = role)]
    role: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

/// The profile after a change, with the write's version and position.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProfileUpdated {
    id: Uuid,
    #[schema(schema_with = email)]
    email: String,
    #[schema(schema_with = display_name)]
    name: String,
    #[schema(schema_with = role)]
    role: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    #[schema(schema_with = version)]
    version: u64,
    #[schema(schema_with = position)]
    position: String,
}

/// A new token pair (`POST /auth/refresh`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenPair {
    /// A JWT for `Authorization: Bearer`.
    access_token: String,
    /// Single use: `POST /auth/refresh` spends it.
    refresh_token: String,
    /// Always `Bearer`.
    token_type: String,
    /// Seconds until the access token expires.
    expires_in: u64,
}

/// The answer to a login: the user and a token pair.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LoggedIn {
    user: UserSummary,
    access_token: String,
    refresh_token: String,
    /// Always `Bearer`.
    token_type: String,
    expires_in: u64,
}

/// The answer to a registration: the user, a token pair, and the write's version and position.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Registered {
    user: UserSummary,
    access_token: String,
    refresh_token: String,
    /// Always `Bearer`.
    token_type: String,
    expires_in: u64,
    #[schema(schema_with = version)]
    version: u64,
    #[schema(schema_with = position)]
    position: String,
}

/// The answer to a password change: a new pair, and the write's version and position.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PasswordChanged {
    access_token: String,
    refresh_token: String,
    /// Always `Bearer`.
    token_type: String,
    expires_in: u64,
    #[schema(schema_with = version)]
    version: u64,
    #[schema(schema_with = position)]
    position: String,
}

/// The answer to a write that names its resource.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WriteAnswer {
    id: Uuid,
    #[schema(schema_with = version)]
    version: u64,
    #[schema(schema_with = position)]
    position: String,
}

/// The answer to a write to a resource the caller named.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct VersionAnswer {
    #[schema(schema_with = version)]
    version: u64,
    #[schema(schema_with = position)]
    position: String,
}

/// The body of a download: a ZIP archive's bytes, described as binary content rather than as
/// an array of numbers (`body = inline(ZipArchive)` on the download routes).
pub struct ZipArchive;

impl utoipa::PartialSchema for ZipArchive {
    fn schema() -> RefOr<Schema> {
        string()
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .content_media_type("application/zip")
            .into()
    }
}

impl ToSchema for ZipArchive {}

// The `crud` schema language.

fn snake_case_name(what: &str) -> ObjectBuilder {
    string()
        .min_length(Some(1))
        .max_length(Some(NAME_MAX_CHARS))
        .pattern(Some("^[a-z][a-z0-9_]*$"))
        .description(Some(format!(
            "{what}: lowercase snake_case, 1 to {NAME_MAX_CHARS} characters, not a reserved word \
             ({REFERENCE} lists them)"
        )))
}

/// An option of a field type: its name, its schema, and whether the type requires it.
type FieldOption = (&'static str, RefOr<Schema>, bool);

fn option(name: &'static str, schema: impl Into<RefOr<Schema>>) -> FieldOption {
    (name, schema.into(), false)
}

fn required_option(name: &'static str, schema: impl Into<RefOr<Schema>>) -> FieldOption {
    (name, schema.into(), true)
}

/// One field of one type: the options every field takes, then the type's own.
fn field_variant(type_name: &str, options: Vec<FieldOption>) -> RefOr<Schema> {
    // Titled "<type> field": generated clients name each variant's class after its title, and a
    // bare type name would give classes like `Decimal`, `Enum` or `Float_`.
    let mut object = closed(ObjectBuilder::new().schema_type(Type::Object))
        .title(Some(format!("{type_name} field")))
        .property("name", snake_case_name("The field's name"))
        .required("name")
        .property(
            "type",
            string().enum_values(Some([Value::String(type_name.to_owned())])),
        )
        .required("type")
        .property("required", boolean().default(Some(Value::Bool(false))))
        .property("unique", boolean().default(Some(Value::Bool(false))))
        .property(
            "default",
            any_value().description(Some(
                "Must satisfy the field's own rules; `null` is refused",
            )),
        );
    for (name, schema, required) in options {
        object = object.property(name, schema);
        if required {
            object = object.required(name);
        }
    }
    object.into()
}

fn field_definition() -> Schema {
    let limits = Limits::default();
    let bounds = |numbers: bool| {
        vec![
            option("min", if numbers { number() } else { integer() }),
            option("max", if numbers { number() } else { integer() }),
        ]
    };
    let variants =
        vec![
            field_variant(
                "string",
                vec![
                option(
                    "min_length",
                    integer().minimum(Some(0)).maximum(Some(STRING_MAX_LENGTH_LIMIT)),
                ),
                option(
                    "max_length",
                    integer()
                        .minimum(Some(1))
                        .maximum(Some(STRING_MAX_LENGTH_LIMIT))
                        .default(Some(STRING_MAX_LENGTH_DEFAULT.into())),
                ),
                option(
                    "pattern",
                    string().max_length(Some(PATTERN_MAX_CHARS)).description(Some(
                        "A regular expression the generator can sample; matched with search \
                         semantics, so anchor it with ^…$",
                    )),
                ),
            ],
            ),
            field_variant(
                "text",
                vec![option(
                    "max_length",
                    integer()
                        .minimum(Some(1))
                        .maximum(Some(limits.text_max_length as u64)),
                )],
            ),
            field_variant("integer", bounds(false)),
            field_variant(
                "decimal",
                [
                    vec![
                        option(
                            "precision",
                            integer()
                                .minimum(Some(1))
                                .maximum(Some(DECIMAL_PRECISION_MAX))
                                .default(Some(DECIMAL_PRECISION_DEFAULT.into())),
                        ),
                        option(
                            "scale",
                            integer()
                                .minimum(Some(0))
                                .maximum(Some(DECIMAL_PRECISION_MAX))
                                .default(Some(DECIMAL_SCALE_DEFAULT.into()))
                                .description(Some("0 to `precision`")),
                        ),
                    ],
                    bounds(true),
                ]
                .concat(),
            ),
            field_variant("float", bounds(true)),
            field_variant("boolean", vec![]),
            field_variant("date", vec![]),
            field_variant("datetime", vec![]),
            field_variant("uuid", vec![]),
            field_variant("json", vec![]),
            field_variant(
                "enum",
                vec![required_option(
                    "values",
                    ArrayBuilder::new()
                        .items(
                            string()
                                .min_length(Some(1))
                                .max_length(Some(NAME_MAX_CHARS))
                                .pattern(Some("^[A-Za-z][A-Za-z0-9_]*$")),
                        )
                        .min_items(Some(1))
                        .max_items(Some(ENUM_VALUES_MAX))
                        .unique_items(true)
                        .description(Some(format!("1 to {ENUM_VALUES_MAX} distinct identifiers"))),
                )],
            ),
            field_variant(
                "reference",
                vec![required_option(
                    "references",
                    snake_case_name("A `crud` entity of the same project"),
                )],
            ),
        ];
    let mut one_of = OneOfBuilder::new().description(Some(format!(
        "One field; its `type` decides which options it takes ({REFERENCE}, \"The crud schema \
         definition\")"
    )));
    for variant in variants {
        one_of = one_of.item(variant);
    }
    one_of.into()
}

fn schema_definition_schema() -> Schema {
    let limits = Limits::default();
    closed(ObjectBuilder::new().schema_type(Type::Object))
        .description(Some(format!(
            "A `crud` entity in the schema language ({REFERENCE}). Every entity also has `id`, \
             `created_at` and `updated_at`; those names are reserved."
        )))
        .property("entity", snake_case_name("The entity's name"))
        .required("entity")
        .property(
            "plural",
            snake_case_name("The plural used in routes; defaults to the entity name with `s`"),
        )
        .property(
            "fields",
            ArrayBuilder::new()
                .items(reference("FieldDefinition"))
                .min_items(Some(1))
                .max_items(Some(limits.fields_per_entity)),
        )
        .required("fields")
        .property(
            "unique",
            ArrayBuilder::new()
                .items(
                    ArrayBuilder::new()
                        .items(snake_case_name("A field of this entity"))
                        .min_items(Some(2)),
                )
                .description(Some(
                    "Composite unique constraints, each naming at least two existing fields",
                )),
        )
        .into()
}

// The problem document.

fn field_error_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "field",
            string().description(Some(
                "A JSON Pointer into the request (`/schema_definition/fields/2/name`), or the \
                 name of a query parameter",
            )),
        )
        .required("field")
        .property("message", string())
        .required("message")
        .into()
}

fn problem_types(status: Option<u16>) -> Vec<Value> {
    ProblemType::ALL
        .iter()
        .filter(|t| status.is_none_or(|s| t.status().as_u16() == s))
        .map(|t| Value::String(t.uri()))
        .collect()
}

fn problem_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!(
            "An RFC 9457 problem document. {REFERENCE} explains every `type`."
        )))
        .property("type", string().enum_values(Some(problem_types(None))))
        .required("type")
        .property("title", string())
        .required("title")
        .property("status", integer().minimum(Some(400)).maximum(Some(599)))
        .required("status")
        .property("detail", string())
        .required("detail")
        .property("instance", string())
        .property("errors", ArrayBuilder::new().items(reference("FieldError")))
        .into()
}

/// The problem schema narrowed to the types one status can carry.
fn problem_with_status(status: u16) -> Schema {
    AllOfBuilder::new()
        .item(reference("Problem"))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(
                    "type",
                    string().enum_values(Some(problem_types(Some(status)))),
                )
                .property("status", integer().enum_values(Some([Value::from(status)]))),
        )
        .into()
}

fn header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(string())
        .description(Some(description))
        .build()
}

/// The answer for an error status: the narrowed problem document, with the headers it carries.
fn problem_response(status: u16, description: &str) -> Response {
    let mut response = ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(problem_with_status(status)))
            .build(),
    );
    if status == 401 {
        response = response.header(
            "WWW-Authenticate",
            header("`Bearer realm=\"backforge\", error=\"invalid_token\"`"),
        );
    }
    if status == 429 || status == 503 {
        response = response.header("Retry-After", header("Seconds to wait before retrying"));
    }
    response.build()
}

fn default_description(status: u16) -> &'static str {
    match status {
        400 => "Malformed JSON, header, query string or cursor",
        401 => "Missing, invalid, expired or revoked access token",
        403 => "The caller can see the resource but may not change it (a viewer)",
        404 => "Unknown, not visible to the caller, or not a valid id",
        409 => "Conflict with the current state",
        412 => "If-Match does not match the current version",
        413 => "The body is over the size limit",
        415 => "The body is not JSON",
        422 => "Well-formed but invalid content; `errors` points at each problem",
        429 => "Rate limited; Retry-After says when to retry",
        500 => "The server failed; the body carries no internals",
        503 => "A dependency is down or a consistency wait timed out; Retry-After",
        _ => "Error",
    }
}

/// Adds the shared components and gives every operation of `doc` the error answers its shape
/// implies, then gives every error answer without content the problem document of its status.
///
/// What an operation's shape implies: every operation can answer 500 and 503; a secured one
/// 401; one with a body 400, 413, 415 and 422; one with a path parameter 404; one with query or
/// header parameters 400 and 422. Answers an operation states itself (409, 412, 403, …) keep
/// their description. Running it twice changes nothing.
pub fn complete(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, schema) in [
        ("Problem", problem_schema()),
        ("FieldError", field_error_schema()),
        ("SchemaDefinition", schema_definition_schema()),
        ("FieldDefinition", field_definition()),
        ("GenerationMode", generation_mode_schema()),
    ] {
        components
            .schemas
            .entry(name.to_owned())
            .or_insert(schema.into());
    }
    for item in doc.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            complete_operation(operation);
        }
    }
}

fn complete_operation(operation: &mut Operation) {
    let mut implied: BTreeSet<u16> = BTreeSet::from([500, 503]);
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        implied.insert(401);
    }
    if operation.request_body.is_some() {
        implied.extend([400, 413, 415, 422]);
    }
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    if parameters
        .iter()
        .any(|p| p.parameter_in == ParameterIn::Path)
    {
        implied.insert(404);
    }
    if parameters
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query | ParameterIn::Header))
    {
        implied.extend([400, 422]);
    }
    let responses = &mut operation.responses.responses;
    for status in implied {
        responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(problem_response(status, default_description(status))));
    }
    for (code, response) in responses.iter_mut() {
        let Ok(status) = code.parse::<u16>() else {
            continue;
        };
        if let RefOr::T(r) = response {
            for (name, h) in r.headers.iter_mut() {
                if h.description.is_none() {
                    h.description = header_description(name).map(str::to_owned);
                }
            }
        }
        if status < 400 {
            continue;
        }
        if let RefOr::T(r) = response {
            if r.content.is_empty() {
                let description = if r.description.is_empty() {
                    default_description(status).to_owned()
                } else {
                    r.description.clone()
                };
                *response = RefOr::T(problem_response(status, &description));
            }
        }
    }
}

// Request headers, named once: `params(ReadHeaders)` and the like on each route.

/// `Backforge-Min-Position`: read-your-writes on every read.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct ReadHeaders {
    /// Answer only once the read models have projected this position (the `position` or
    /// `Backforge-Position` of a write); waits up to BACKFORGE_MIN_POSITION_WAIT_MS (default
    /// 5000), then 503 with Retry-After. A token this API did not issue → 400.
    #[param(nullable = false, rename = "Backforge-Min-Position", min_length = 1)]
    pub min_position: Option<String>,
}

/// The read headers plus `If-None-Match`, on reads that send an `ETag`.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct ConditionalReadHeaders {
    /// Answer only once the read models have projected this position (the `position` or
    /// `Backforge-Position` of a write); waits up to BACKFORGE_MIN_POSITION_WAIT_MS (default
    /// 5000), then 503 with Retry-After. A token this API did not issue → 400.
    #[param(nullable = false, rename = "Backforge-Min-Position", min_length = 1)]
    pub min_position: Option<String>,
    /// Entity tags the client holds (or `*`): 304 when one of them is current.
    #[param(nullable = false, rename = "If-None-Match")]
    pub if_none_match: Option<String>,
}

/// `Idempotency-Key` on writes that create a stream.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct CreateHeaders {
    /// 1 to 255 printable ASCII characters, scoped to (caller, method, route) and kept 24 h: a
    /// retry returns the first answer and appends nothing; the same key with another body → 422;
    /// while the first is still in flight → 409.
    #[param(
        nullable = false,
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    pub idempotency_key: Option<String>,
}

/// `If-Match` and `Idempotency-Key` on writes to an existing project.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct WriteHeaders {
    /// One strong entity tag (`"3"`, as ETag sends it) or `*`: 412 when it is not the current
    /// version. A malformed one → 400.
    #[param(nullable = false, rename = "If-Match")]
    pub if_match: Option<String>,
    /// 1 to 255 printable ASCII characters, scoped to (caller, method, route) and kept 24 h: a
    /// retry returns the first answer and appends nothing; the same key with another body → 422;
    /// while the first is still in flight → 409.
    #[param(
        nullable = false,
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    pub idempotency_key: Option<String>,
}

/// What each response header the routes name means, so a route lists only the names.
fn header_description(name: &str) -> Option<&'static str> {
    Some(match name {
        "ETag" => {
            "The current version as a strong entity tag: `\"<version>\"` (a ZIP: `\"<sha256>\"`)"
        }
        "Backforge-Position" => {
            "The write's consistency token; send it as Backforge-Min-Position to read your write"
        }
        "Location" => "The created resource's URL",
        "Retry-After" => "Seconds to wait before retrying",
        "Content-Disposition" => "`attachment; filename=\"…\"`",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_problem_type_enum_lists_every_documented_type() {
        let Schema::Object(problem) = problem_schema() else {
            panic!("an object");
        };
        let RefOr::T(Schema::Object(kind)) = &problem.properties["type"] else {
            panic!("an inline type");
        };
        let listed = kind.enum_values.clone().unwrap_or_default();
        assert_eq!(listed.len(), ProblemType::ALL.len());
        for t in ProblemType::ALL {
            assert!(listed.contains(&Value::String(t.uri())), "{t:?} missing");
        }
    }

    #[test]
    fn enums_are_spelled_as_serde_spells_them() {
        assert_eq!(
            spellings(&generation_modes()),
            vec!["manual", "ai_assisted", "mixed"]
        );
        assert_eq!(spellings(&Target::ALL), vec!["python-fastapi"]);
    }

    #[test]
    fn every_field_type_of_the_schema_language_is_a_variant() {
        let Schema::OneOf(one_of) = field_definition() else {
            panic!("oneOf");
        };
        let titles: Vec<&str> = one_of
            .items
            .iter()
            .filter_map(|s| match s {
                RefOr::T(Schema::Object(o)) => o.title.as_deref()?.strip_suffix(" field"),
                _ => None,
            })
            .collect();
        assert_eq!(titles, domain::crud_schema::FIELD_TYPES.to_vec());
    }
}
