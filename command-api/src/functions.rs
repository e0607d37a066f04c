//! A project's custom functions on the write side: creating, changing and deleting them (the domain's
//! rules first, then the schema checks and the sandbox's compile, then one project command), and
//! `POST /functions/{function_id}/test`, which runs one in the sandbox and changes nothing.

use actix_web::{HttpResponse, delete, post, put, web};
use domain::FieldError;
use domain::ids::{FunctionId, ProjectId, UserId};
use domain::project::{
    Access, CreateFunction, DeleteFunction, Function, FunctionChanges, FunctionExample,
    GenerationMode, NewFunction, Project, ProjectCommand, ProjectStatus, UpdateFunction,
};
use runtime::openapi::{WriteAnswer, WriteHeaders};
use runtime::{ApiError, Authenticated, Json, ProblemType};
use sandbox::{Execution, ExecutionError, ExecutionStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::CommandState;
use crate::execute::SideWrite;
use crate::function_checks::{self, off_the_runtime};
use crate::http::{Ids, Write};
use crate::load::Loaded;
use crate::project_routes::{nullable, refuse_null};
use crate::projects::{self, ProjectAnswer, check_write_access, project_error};

/// Remembers which project a function belongs to, for the test route (which names only the function).
const REMEMBER_FUNCTION: &str = "INSERT INTO function_projects (function_id, project_id) VALUES ($1, $2) ON CONFLICT (function_id) DO NOTHING";

const FIND_FUNCTION: &str = "SELECT project_id FROM function_projects WHERE function_id = $1";

/// One example: the function called with `input` must return `output`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExampleInput {
    #[schema(value_type = Object)]
    pub input: Value,
    #[schema(value_type = Object)]
    pub output: Value,
}

impl From<ExampleInput> for FunctionExample {
    fn from(e: ExampleInput) -> Self {
        FunctionExample {
            input: e.input,
            output: e.output,
        }
    }
}

/// A function in a create request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionInput {
    /// snake_case, unique within the project.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Only `python`.
    pub language: String,
    /// At most 64 KiB; defines a top-level `def handler(input)` returning a JSON value.
    pub function_code: String,
    /// A JSON Schema (2020-12) of the input; only local `$ref`s.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<Value>,
    /// A JSON Schema (2020-12) of the output; only local `$ref`s.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
    #[serde(default)]
    pub examples: Option<Vec<ExampleInput>>,
    #[serde(default)]
    #[schema(schema_with = runtime::openapi::feature_generation_mode)]
    pub generation_mode: Option<GenerationMode>,
    /// Default `/fn/<name>`; must not collide with a route the generated app owns.
    #[serde(default)]
    pub endpoint_path: Option<String>,
    /// `POST` (default), `PUT` or `PATCH`.
    #[serde(default)]
    pub http_method: Option<String>,
    #[serde(default)]
    pub is_active: Option<bool>,
}

/// A partial update: absent members are unchanged; `null` clears `description`, the schemas,
/// `examples` and `generation_mode`, and is refused for the others.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFunctionRequest {
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub language: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub function_code: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<Option<Value>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Option<Value>>,
    #[serde(default, deserialize_with = "nullable")]
    pub examples: Option<Option<Vec<ExampleInput>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = runtime::openapi::feature_generation_mode)]
    pub generation_mode: Option<Option<GenerationMode>>,
    #[serde(default, deserialize_with = "nullable")]
    pub endpoint_path: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub http_method: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub is_active: Option<Option<bool>>,
}

impl UpdateFunctionRequest {
    fn into_changes(self) -> Result<FunctionChanges, ApiError> {
        let mut errors = Vec::new();
        let changes = FunctionChanges {
            name: refuse_null(self.name, "/name", &mut errors),
            description: self.description,
            language: refuse_null(self.language, "/language", &mut errors),
            function_code: refuse_null(self.function_code, "/function_code", &mut errors),
            input_schema: self.input_schema,
            output_schema: self.output_schema,
            examples: self
                .examples
                .map(|e| e.unwrap_or_default().into_iter().map(Into::into).collect()),
            generation_mode: self.generation_mode,
            endpoint_path: refuse_null(self.endpoint_path, "/endpoint_path", &mut errors),
            http_method: refuse_null(self.http_method, "/http_method", &mut errors),
            is_active: refuse_null(self.is_active, "/is_active", &mut errors),
        };
        if !errors.is_empty() {
            return Err(ApiError::invalid("the request is invalid", errors));
        }
        Ok(changes)
    }
}

/// What a write checked outside the domain: the function as it stood (`None` for a new one).
/// The write is decided only if the stored function still is what was checked (the turn on the
/// project keeps this process's writes out; another process's write may slip in between).
#[derive(Clone)]
struct Checked {
    before: Option<Function>,
}

impl Checked {
    fn still_holds(&self, project: &Project, id: FunctionId) -> Result<(), ApiError> {
        let Some(before) = &self.before else {
            return Ok(());
        };
        let now = project.function(id);
        let same = now.is_some_and(|f| {
            f.function_code == before.function_code
                && f.input_schema == before.input_schema
                && f.output_schema == before.output_schema
                && f.examples == before.examples
        });
        if same || now.is_none() {
            // A deleted function is the domain's 404.
            return Ok(());
        }
        Err(ApiError::conflict(
            ProblemType::ConcurrentModification,
            "the function changed while this request was checked; retry",
        ))
    }
}

/// The checks of a function write that the domain cannot make, on the state the write will be
/// decided on: the domain's own answer first (nothing is compiled for a request it refuses), then
/// the schemas and examples of the function as it will be stored, then the sandbox's compile of
/// new code.
async fn check(
    state: &CommandState,
    project_id: ProjectId,
    caller: &Authenticated,
    command: &impl Fn(OffsetDateTime) -> ProjectCommand,
    function_id: FunctionId,
) -> Result<Checked, ApiError> {
    let loaded = load(state, project_id).await?;
    check_write_access(&loaded, caller)?;
    let events = loaded
        .state
        .decide(&command(OffsetDateTime::now_utc()), &state.settings.limits)
        .map_err(project_error)?;
    let before = loaded.state.function(function_id).cloned();
    let mut after = loaded.state.clone();
    for event in &events {
        after.evolve(event);
    }
    let Some(function) = after.function(function_id).cloned() else {
        return Ok(Checked { before });
    };
    if before.as_ref() == Some(&function) {
        return Ok(Checked { before });
    }
    let schemas_changed = before.as_ref().is_none_or(|b| {
        b.input_schema != function.input_schema
            || b.output_schema != function.output_schema
            || b.examples != function.examples
    });
    if schemas_changed {
        let (input, output, examples) = (
            function.input_schema.clone(),
            function.output_schema.clone(),
            function.examples.clone(),
        );
        let errors = off_the_runtime(move || {
            function_checks::check_function(input.as_ref(), output.as_ref(), &examples)
        })
        .await?;
        if !errors.is_empty() {
            return Err(ApiError::invalid("the function is invalid", errors));
        }
    }
    let code_changed = before
        .as_ref()
        .is_none_or(|b| b.function_code != function.function_code);
    if code_changed {
        compile(state, &function.function_code).await?;
    }
    Ok(Checked { before })
}

/// 422 at `/function_code` unless the sandbox's interpreter compiles the code and finds a
/// top-level `def handler(input)`.
pub(crate) async fn compile(state: &CommandState, code: &str) -> Result<(), ApiError> {
    state.sandbox.check_code(code).await?.map_err(|why| {
        ApiError::invalid(
            "the function is invalid",
            vec![FieldError::new("/function_code", why)],
        )
    })
}

/// Loads the project the write is for, through the command side's cache.
async fn load(state: &CommandState, project_id: ProjectId) -> Result<Loaded<Project>, ApiError> {
    Ok(state
        .projects
        .load(&state.store, &project_id.stream())
        .await?)
}

/// Create a function in a project.
#[utoipa::path(post, path = "/api/v1/projects/{id}/functions", tag = "functions", request_body = FunctionInput,
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "Project id"), WriteHeaders),
    responses((status = 201, description = "Created", body = WriteAnswer,
                headers(("Location"), ("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not write"),
              (status = 404, description = "Unknown, not visible or archived project"),
              (status = 409, description = "Name or method and path taken (function-conflict), 50 functions already, changed concurrently, or the Idempotency-Key is in flight"),
              (status = 412, description = "If-Match does not match the current version"),
              (status = 422, description = "Invalid function: a syntax error (line and column), no `def handler(input)`, a schema that is not JSON Schema 2020-12 or has a non-local `$ref`, an example that fails its schema, code over 64 KiB, a path of the generated app"),
              (status = 503, description = "The sandbox is busy (Retry-After) or unavailable (sandbox-unavailable)")))]
#[post("/projects/{id}/functions")]
pub async fn create_function(
    state: web::Data<CommandState>,
    write: Write<Json<FunctionInput>>,
    Ids(project_id): Ids<ProjectId>,
) -> Result<HttpResponse, ApiError> {
    let function_id = FunctionId::from_uuid(Uuid::now_v7());
    let input = write.body.value.clone();
    let function = NewFunction {
        id: function_id,
        name: input.name,
        description: input.description,
        language: input.language,
        function_code: input.function_code,
        input_schema: input.input_schema,
        output_schema: input.output_schema,
        examples: input
            .examples
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect(),
        generation_mode: input.generation_mode,
        endpoint_path: input.endpoint_path,
        http_method: input.http_method,
        is_active: input.is_active.unwrap_or(true),
    };
    let command = |at| {
        ProjectCommand::CreateFunction(CreateFunction {
            function: function.clone(),
            at,
        })
    };
    let answer = ProjectAnswer::Created {
        id: function_id.as_uuid(),
        location: format!("/api/v1/projects/{project_id}/functions/{function_id}"),
    };
    projects::change_prepared(
        &state,
        write,
        project_id,
        answer,
        async |write| check(&state, project_id, &write.caller, &command, function_id).await,
        |_, _, at| Ok(command(at)),
        || {
            vec![SideWrite::new(
                REMEMBER_FUNCTION,
                vec![
                    Box::new(function_id.as_uuid()),
                    Box::new(project_id.as_uuid()),
                ],
            )]
        },
    )
    .await
}

/// Partially update a function.
#[utoipa::path(put, path = "/api/v1/projects/{id}/functions/{function_id}", tag = "functions",
    request_body = UpdateFunctionRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ("function_id" = Uuid, Path, description = "Function id"), WriteHeaders),
    responses((status = 200, description = "Updated (or unchanged: no new event)", body = WriteAnswer,
                headers(("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not write"),
              (status = 404, description = "Unknown project or function"),
              (status = 409, description = "Name or method and path taken (function-conflict), changed concurrently, or the Idempotency-Key is in flight"),
              (status = 412, description = "If-Match does not match the current version"),
              (status = 422, description = "Invalid function (as for creation), or nothing to update"),
              (status = 503, description = "The sandbox is busy (Retry-After) or unavailable (sandbox-unavailable)")))]
#[put("/projects/{id}/functions/{function_id}")]
pub async fn update_function(
    state: web::Data<CommandState>,
    mut write: Write<Json<UpdateFunctionRequest>>,
    Ids((project_id, function_id)): Ids<(ProjectId, FunctionId)>,
) -> Result<HttpResponse, ApiError> {
    let changes = std::mem::take(&mut write.body.value).into_changes()?;
    let command = |at| {
        ProjectCommand::UpdateFunction(UpdateFunction {
            function_id,
            changes: changes.clone(),
            at,
        })
    };
    let answer = ProjectAnswer::Updated {
        id: function_id.as_uuid(),
    };
    projects::change_prepared(
        &state,
        write,
        project_id,
        answer,
        async |write| check(&state, project_id, &write.caller, &command, function_id).await,
        |project, checked, at| {
            checked.still_holds(project, function_id)?;
            Ok(command(at))
        },
        Vec::new,
    )
    .await
}

/// Delete a function.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/functions/{function_id}", tag = "functions",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Project id"), ("function_id" = Uuid, Path, description = "Function id"), WriteHeaders),
    responses((status = 204, description = "Deleted", headers(("ETag"), ("Backforge-Position"))),
              (status = 403, description = "A viewer may not write"),
              (status = 404, description = "Unknown project or function"),
              (status = 409, description = "Changed concurrently, or the Idempotency-Key is in flight"),
              (status = 412, description = "If-Match does not match the current version")))]
#[delete("/projects/{id}/functions/{function_id}")]
pub async fn delete_function(
    state: web::Data<CommandState>,
    write: Write,
    Ids((project_id, function_id)): Ids<(ProjectId, FunctionId)>,
) -> Result<HttpResponse, ApiError> {
    projects::change(
        &state,
        write,
        project_id,
        ProjectAnswer::NoContent,
        |_, at| {
            Ok(ProjectCommand::DeleteFunction(DeleteFunction {
                function_id,
                at,
            }))
        },
    )
    .await
}

/// What to run: one input, or every example of the function.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestFunctionRequest {
    /// Passed to `handler`; `null` is an input too.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Option<Value>>,
    /// `true` runs every example and reports each.
    #[serde(default)]
    pub examples: Option<bool>,
}

/// One example's run.
#[derive(Debug, Serialize)]
struct ExampleRun {
    input: Value,
    expected: Value,
    actual: Option<Value>,
    passed: bool,
    status: ExecutionStatus,
}

/// The run result of docs/api.md, with `examples` when they were asked for.
#[derive(Debug, Serialize)]
struct TestRun {
    #[serde(flatten)]
    run: Execution,
    #[serde(skip_serializing_if = "Option::is_none")]
    examples: Option<Vec<ExampleRun>>,
}

/// The function and the project it belongs to, if the caller may run it: 404 when they cannot
/// see it, 403 for a viewer.
async fn runnable(
    state: &CommandState,
    caller: &Authenticated,
    function_id: FunctionId,
) -> Result<Function, ApiError> {
    let not_found = || ApiError::not_found("no such function");
    let client = state.pool.get().await?;
    let row = client
        .query_opt(FIND_FUNCTION, &[&function_id.as_uuid()])
        .await?;
    drop(client);
    let project_id = ProjectId::from_uuid(row.ok_or_else(not_found)?.get(0));
    let loaded = load(state, project_id).await?;
    let project = &loaded.state;
    match project.access_for(UserId::from_uuid(caller.user_id), caller.role) {
        Access::None => return Err(not_found()),
        Access::Viewer => {
            return Err(ApiError::forbidden(
                "viewers of a project may read its functions but not run them",
            ));
        }
        Access::Owner | Access::Admin => {}
    }
    if project.status == ProjectStatus::Archived {
        return Err(not_found());
    }
    project.function(function_id).cloned().ok_or_else(not_found)
}

/// Runs the function with `input` and checks an `ok` output against `output_schema`
/// (`invalid_output` when it fails).
async fn run_once(
    state: &CommandState,
    function: &Function,
    input: &Value,
) -> Result<Execution, ApiError> {
    let mut run = state
        .sandbox
        .execute(&function.function_code, Some(input))
        .await?;
    check_output(function, &mut run).await?;
    Ok(run)
}

/// Makes an `ok` run whose output fails the function's `output_schema` `invalid_output`.
async fn check_output(function: &Function, run: &mut Execution) -> Result<(), ApiError> {
    if let (ExecutionStatus::Ok, Some(schema)) = (run.status, &function.output_schema) {
        let (schema, output) = (schema.clone(), run.output.clone().unwrap_or(Value::Null));
        let errors = off_the_runtime(move || {
            let mut errors = Vec::new();
            if let Some(validator) = function_checks::compile(&schema, "", &mut Vec::new()) {
                function_checks::validate(&validator, &output, "/output", &mut errors);
            }
            errors
        })
        .await?;
        if !errors.is_empty() {
            run.status = ExecutionStatus::InvalidOutput;
            run.error = Some(ExecutionError {
                kind: "InvalidOutput".into(),
                message: errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
                line: None,
                column: None,
            });
        }
    }
    Ok(())
}

/// Run a project's function in the sandbox with `{input}`, or every example with
/// `{examples: true}`. Changes nothing; the owner and admins only.
#[utoipa::path(post, path = "/api/v1/functions/{function_id}/test", tag = "functions",
    request_body = TestFunctionRequest, security(("bearer" = [])),
    params(("function_id" = Uuid, Path, description = "Function id")),
    responses((status = 200, description = "The run result: status ok, error, timeout, memory_limit, output_limit or invalid_output, output, error, stdout, stderr, truncated, duration_ms, and with examples each {input, expected, actual, passed, status}", body = Object),
              (status = 403, description = "A viewer may not run a project's function"),
              (status = 404, description = "Unknown function, or not visible"),
              (status = 422, description = "Neither or both of input and examples, no examples to run, or an input that fails input_schema (with pointers)"),
              (status = 429, description = "Too many runs; the allowance is shared with POST /ai/sandbox-execute; Retry-After"),
              (status = 503, description = "The sandbox is busy (Retry-After) or unavailable (sandbox-unavailable)")))]
#[post("/functions/{function_id}/test")]
pub async fn test_function(
    state: web::Data<CommandState>,
    caller: Authenticated,
    Ids(function_id): Ids<FunctionId>,
    body: Json<TestFunctionRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let with_examples = request.examples.unwrap_or(false);
    let input = match (request.input, with_examples) {
        (Some(input), false) => Some(input.unwrap_or(Value::Null)),
        (None, true) => None,
        (Some(_), true) => {
            return Err(ApiError::invalid_field(
                "",
                "give `input` or `examples: true`, not both",
            ));
        }
        (None, false) => {
            return Err(ApiError::invalid_field(
                "",
                "give `input`, or `examples: true` to run the function's examples",
            ));
        }
    };
    let function = runnable(&state, &caller, function_id).await?;
    state.sandbox.admit(&caller)?;
    let answer = match input {
        Some(input) => {
            if let Some(schema) = function.input_schema.clone() {
                let checked = input.clone();
                let errors = off_the_runtime(move || {
                    let mut errors = Vec::new();
                    if let Some(validator) = function_checks::compile(&schema, "", &mut Vec::new())
                    {
                        function_checks::validate(&validator, &checked, "/input", &mut errors);
                    }
                    errors
                })
                .await?;
                if !errors.is_empty() {
                    return Err(ApiError::invalid(
                        "the input does not match the function's input_schema",
                        errors,
                    ));
                }
            }
            TestRun {
                run: run_once(&state, &function, &input).await?,
                examples: None,
            }
        }
        None => run_examples(&state, &function).await?,
    };
    tracing::info_span!("function_test", function = %function_id)
        .in_scope(|| state.sandbox.record(&caller, "function-test", &answer.run));
    Ok(HttpResponse::Ok().json(answer))
}

/// Runs every example one after another (the sandbox's own example runs, which the worker's check
/// of generated code makes too), each `ok` output checked against `output_schema`; the result's
/// status is the first that is not `ok`.
async fn run_examples(state: &CommandState, function: &Function) -> Result<TestRun, ApiError> {
    if function.examples.is_empty() {
        return Err(ApiError::invalid_field(
            "/examples",
            "the function has no examples to run",
        ));
    }
    let examples = state
        .sandbox
        .run_examples(
            &function.function_code,
            &function
                .examples
                .iter()
                .map(|e| (&e.input, &e.output))
                .collect::<Vec<_>>(),
        )
        .await?;
    let mut total = Execution {
        status: ExecutionStatus::Ok,
        output: None,
        error: None,
        stdout: String::new(),
        stderr: String::new(),
        truncated: false,
        duration_ms: 0,
    };
    let mut runs = Vec::with_capacity(examples.len());
    for example in examples {
        let mut run = example.run;
        check_output(function, &mut run).await?;
        let passed = example.passed && run.status == ExecutionStatus::Ok;
        if total.status == ExecutionStatus::Ok && run.status != ExecutionStatus::Ok {
            total.status = run.status;
            total.error = run.error.clone();
        }
        total.stdout.push_str(&run.stdout);
        total.stderr.push_str(&run.stderr);
        total.truncated |= run.truncated;
        total.duration_ms = total.duration_ms.saturating_add(run.duration_ms);
        runs.push(ExampleRun {
            input: example.input,
            expected: example.expected,
            actual: run.output,
            passed,
            status: run.status,
        });
    }
    Ok(TestRun {
        run: total,
        examples: Some(runs),
    })
}
