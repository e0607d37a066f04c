//! A project's custom functions: their stored shape, the checks of one function on its own, and the
//! rules that span the project (unique names and routes, the cap, routes the generated app owns).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::validation::nothing_to_update;
use super::{GenerationMode, Project, ProjectError, ProjectEvent};
use crate::error::{FieldError, Pointer};
use crate::ids::FunctionId;
use crate::limits::Limits;
use crate::reserved::{self, Origin};

/// The one language functions are written in (the sandbox's Python, standard library only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FunctionLanguage {
    #[default]
    Python,
}

impl FunctionLanguage {
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionLanguage::Python => "python",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        (raw == "python").then_some(FunctionLanguage::Python)
    }
}

/// The HTTP method a function answers on in the generated app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Post,
    Put,
    Patch,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "POST" => Some(HttpMethod::Post),
            "PUT" => Some(HttpMethod::Put),
            "PATCH" => Some(HttpMethod::Patch),
            _ => None,
        }
    }
}

/// One example call: the input and the output the function must return for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionExample {
    pub input: Value,
    pub output: Value,
}

/// A function as stored and served by `GET /projects/{id}/functions/{function_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    pub id: FunctionId,
    pub name: String,
    pub description: Option<String>,
    pub language: FunctionLanguage,
    pub function_code: String,
    /// A JSON Schema (2020-12), checked against the meta-schema by the command side.
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    pub examples: Vec<FunctionExample>,
    /// `None` follows the project's mode.
    pub generation_mode: Option<GenerationMode>,
    pub endpoint_path: String,
    pub http_method: HttpMethod,
    pub is_active: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The AI request whose applied proposal last set this function's code, kept when its owner
    /// edits it afterwards (`generation_problems` reads it); absent while there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai_request_id: Option<crate::ids::AiRequestId>,
}

/// A function as a request describes it, before validation. The id is fresh, chosen by the caller;
/// `language` and `http_method` are raw so that their rules live here.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFunction {
    pub id: FunctionId,
    pub name: String,
    pub description: Option<String>,
    pub language: String,
    pub function_code: String,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    pub examples: Vec<FunctionExample>,
    pub generation_mode: Option<GenerationMode>,
    /// `None` is `/fn/<name>`.
    pub endpoint_path: Option<String>,
    /// `None` is `POST`.
    pub http_method: Option<String>,
    pub is_active: bool,
}

impl NewFunction {
    /// A function with the API's defaults: no schemas, no examples, `POST /fn/<name>`, active.
    pub fn new(id: FunctionId, name: impl Into<String>, function_code: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
            description: None,
            language: FunctionLanguage::Python.as_str().to_owned(),
            function_code: function_code.into(),
            input_schema: None,
            output_schema: None,
            examples: Vec::new(),
            generation_mode: None,
            endpoint_path: None,
            http_method: None,
            is_active: true,
        }
    }
}

/// A partial update of a function: `None` leaves a member unchanged; `Some(None)` clears the
/// nullable ones.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FunctionChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub language: Option<String>,
    pub function_code: Option<String>,
    pub input_schema: Option<Option<Value>>,
    pub output_schema: Option<Option<Value>>,
    pub examples: Option<Vec<FunctionExample>>,
    pub generation_mode: Option<Option<GenerationMode>>,
    pub endpoint_path: Option<String>,
    pub http_method: Option<String>,
    pub is_active: Option<bool>,
}

impl FunctionChanges {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Route prefixes every generated app owns whatever its features (auth, files, health, docs).
const GENERATED_PREFIXES: [&str; 6] = [
    "/api/auth",
    "/api/files",
    "/health",
    "/docs",
    "/redoc",
    "/openapi.json",
];

/// The prefix of a crud entity's routes in the generated app (`/api/<plural>` and below).
pub fn entity_route_prefix(plural: &str) -> String {
    format!("/api/{plural}")
}

fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The default `endpoint_path` of a function.
pub fn default_endpoint_path(name: &str) -> String {
    format!("/fn/{name}")
}

/// A function name: snake_case, starting with a letter, at most 63 characters, no Python keyword.
fn check_function_name(raw: &str, at: &Pointer, errors: &mut Vec<FieldError>) -> Option<String> {
    let valid = raw.len() <= 63
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        errors.push(FieldError::at(
            at,
            "must be snake_case: a lower-case letter, then lower-case letters, digits or `_`, at most 63 characters",
        ));
        return None;
    }
    if reserved::words().any(|(w, origin)| w == raw && origin == Origin::PythonKeyword) {
        errors.push(FieldError::at(
            at,
            format!("`{raw}` is a keyword of Python"),
        ));
        return None;
    }
    Some(raw.to_owned())
}

/// An endpoint path: `/` then segments of lower-case letters, digits, `_` or `-`, no trailing `/`,
/// no parameters, at most 200 characters.
fn check_endpoint_path(raw: &str, at: &Pointer, errors: &mut Vec<FieldError>) -> Option<String> {
    let segments_ok = raw.strip_prefix('/').is_some_and(|rest| {
        rest.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        })
    });
    if raw.len() > 200 || !segments_ok {
        errors.push(FieldError::at(
            at,
            "must be a path such as `/fn/total`: `/` then segments of lower-case letters, digits, `_` or `-`, no trailing `/`, at most 200 characters",
        ));
        return None;
    }
    Some(raw.to_owned())
}

fn check_code(raw: &str, at: &Pointer, limits: &Limits, errors: &mut Vec<FieldError>) {
    if raw.len() > limits.function_code_max_bytes {
        errors.push(FieldError::at(
            at,
            format!(
                "must be at most {} bytes, not {}",
                limits.function_code_max_bytes,
                raw.len()
            ),
        ));
    } else if raw.trim().is_empty() {
        errors.push(FieldError::at(
            at,
            "must define `def handler(input)`; it is empty",
        ));
    } else if raw.contains('\0') {
        errors.push(FieldError::at(at, "must not contain NUL characters"));
    }
}

/// A schema is a JSON object or a boolean; its meta-schema check needs a validator, on the command
/// side.
fn check_schema_shape(raw: &Value, at: &Pointer, errors: &mut Vec<FieldError>) {
    if !(raw.is_object() || raw.is_boolean()) {
        errors.push(FieldError::at(
            at,
            "must be a JSON Schema (2020-12): an object or a boolean",
        ));
    }
}

fn check_examples(
    examples: &[FunctionExample],
    at: &Pointer,
    limits: &Limits,
    errors: &mut Vec<FieldError>,
) {
    if examples.len() > limits.examples_per_function {
        errors.push(FieldError::at(
            at,
            format!(
                "must hold at most {} examples, not {}",
                limits.examples_per_function,
                examples.len()
            ),
        ));
    }
}

fn check_language(raw: &str, at: &Pointer, errors: &mut Vec<FieldError>) -> FunctionLanguage {
    FunctionLanguage::parse(raw).unwrap_or_else(|| {
        errors.push(FieldError::at(
            at,
            "must be `python`, the only language functions are written in",
        ));
        FunctionLanguage::Python
    })
}

fn check_method(raw: &str, at: &Pointer, errors: &mut Vec<FieldError>) -> HttpMethod {
    HttpMethod::parse(raw).unwrap_or_else(|| {
        errors.push(FieldError::at(at, "must be `POST`, `PUT` or `PATCH`"));
        HttpMethod::Post
    })
}

impl Project {
    pub fn function(&self, id: FunctionId) -> Option<&Function> {
        self.functions.iter().find(|f| f.id == id)
    }

    /// Why `path` belongs to a route of the generated app, if it does.
    pub fn generated_route_owning(&self, path: &str) -> Option<String> {
        if let Some(prefix) = GENERATED_PREFIXES.iter().find(|p| under(path, p)) {
            return Some(format!(
                "collides with the generated app's routes under `{prefix}`"
            ));
        }
        self.entities().find_map(|(feature, schema)| {
            let prefix = entity_route_prefix(&schema.plural);
            under(path, &prefix).then(|| {
                format!(
                    "collides with the routes of entity `{}` (feature `{}`) under `{prefix}`",
                    schema.entity, feature.name
                )
            })
        })
    }

    /// The first function whose endpoint lies under `prefix` (an entity's routes).
    pub(super) fn function_under(&self, prefix: &str) -> Option<&Function> {
        self.functions
            .iter()
            .find(|f| under(&f.endpoint_path, prefix))
    }

    /// The 409s of a function: its name or its `(method, path)` used by another function.
    fn check_function_taken(&self, function: &Function) -> Result<(), ProjectError> {
        for other in self.functions.iter().filter(|f| f.id != function.id) {
            if other.name == function.name {
                return Err(ProjectError::FunctionConflict(format!(
                    "the project has a function named `{}` already",
                    function.name
                )));
            }
            if other.http_method == function.http_method
                && other.endpoint_path == function.endpoint_path
            {
                return Err(ProjectError::FunctionConflict(format!(
                    "function `{}` answers {} {} already",
                    other.name,
                    function.http_method.as_str(),
                    function.endpoint_path
                )));
            }
        }
        Ok(())
    }

    pub(super) fn create_function(
        &self,
        function: &NewFunction,
        at: OffsetDateTime,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        if self.function(function.id).is_some() {
            return Err(ProjectError::FunctionAlreadyExists(function.id));
        }
        if self.functions.len() >= limits.functions_per_project {
            return Err(ProjectError::FunctionLimitReached {
                limit: limits.functions_per_project,
            });
        }
        let root = Pointer::root();
        let mut errors = Vec::new();
        let name = check_function_name(&function.name, &root.key("name"), &mut errors);
        if let Some(description) = &function.description {
            if let Err(message) = limits.check_description(description) {
                errors.push(FieldError::at(&root.key("description"), message));
            }
        }
        let language = check_language(&function.language, &root.key("language"), &mut errors);
        check_code(
            &function.function_code,
            &root.key("function_code"),
            limits,
            &mut errors,
        );
        for (key, schema) in [
            ("input_schema", &function.input_schema),
            ("output_schema", &function.output_schema),
        ] {
            if let Some(schema) = schema {
                check_schema_shape(schema, &root.key(key), &mut errors);
            }
        }
        check_examples(
            &function.examples,
            &root.key("examples"),
            limits,
            &mut errors,
        );
        let http_method = function
            .http_method
            .as_deref()
            .map_or(HttpMethod::Post, |m| {
                check_method(m, &root.key("http_method"), &mut errors)
            });
        let path_at = root.key("endpoint_path");
        let endpoint_path = match (&function.endpoint_path, &name) {
            (Some(path), _) => check_endpoint_path(path, &path_at, &mut errors),
            (None, Some(name)) => Some(default_endpoint_path(name)),
            (None, None) => None,
        };
        if let Some(path) = &endpoint_path {
            if let Some(why) = self.generated_route_owning(path) {
                errors.push(FieldError::at(&path_at, why));
            }
        }
        let (Some(name), Some(endpoint_path), true) = (name, endpoint_path, errors.is_empty())
        else {
            return Err(ProjectError::Validation(errors));
        };
        let created = Function {
            id: function.id,
            name,
            description: function.description.clone(),
            language,
            function_code: function.function_code.clone(),
            input_schema: function.input_schema.clone(),
            output_schema: function.output_schema.clone(),
            examples: function.examples.clone(),
            generation_mode: function.generation_mode,
            endpoint_path,
            http_method,
            is_active: function.is_active,
            created_at: at,
            updated_at: at,
            ai_request_id: None,
        };
        self.check_function_taken(&created)?;
        Ok(vec![ProjectEvent::function_created(self.id, created)])
    }

    pub(super) fn update_function(
        &self,
        function_id: FunctionId,
        changes: &FunctionChanges,
        at: OffsetDateTime,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        let current = self
            .function(function_id)
            .ok_or(ProjectError::FunctionNotFound(function_id))?;
        if changes.is_empty() {
            return Err(nothing_to_update());
        }
        let root = Pointer::root();
        let mut errors = Vec::new();
        let name = changes
            .name
            .as_deref()
            .and_then(|n| check_function_name(n, &root.key("name"), &mut errors));
        if let Some(Some(description)) = &changes.description {
            if let Err(message) = limits.check_description(description) {
                errors.push(FieldError::at(&root.key("description"), message));
            }
        }
        let language = changes
            .language
            .as_deref()
            .map(|l| check_language(l, &root.key("language"), &mut errors));
        if let Some(code) = &changes.function_code {
            check_code(code, &root.key("function_code"), limits, &mut errors);
        }
        for (key, schema) in [
            ("input_schema", &changes.input_schema),
            ("output_schema", &changes.output_schema),
        ] {
            if let Some(Some(schema)) = schema {
                check_schema_shape(schema, &root.key(key), &mut errors);
            }
        }
        if let Some(examples) = &changes.examples {
            check_examples(examples, &root.key("examples"), limits, &mut errors);
        }
        let http_method = changes
            .http_method
            .as_deref()
            .map(|m| check_method(m, &root.key("http_method"), &mut errors));
        let path_at = root.key("endpoint_path");
        let endpoint_path = changes
            .endpoint_path
            .as_deref()
            .and_then(|p| check_endpoint_path(p, &path_at, &mut errors));
        if let Some(path) = &endpoint_path {
            if let Some(why) = self.generated_route_owning(path) {
                errors.push(FieldError::at(&path_at, why));
            }
        }
        if !errors.is_empty() {
            return Err(ProjectError::Validation(errors));
        }

        // Only what differs from the stored function becomes part of the event.
        let name = name.filter(|n| *n != current.name);
        let description = changes
            .description
            .clone()
            .filter(|d| *d != current.description);
        let language = language.filter(|l| *l != current.language);
        let function_code = changes
            .function_code
            .clone()
            .filter(|c| *c != current.function_code);
        let input_schema = changes
            .input_schema
            .clone()
            .filter(|s| *s != current.input_schema);
        let output_schema = changes
            .output_schema
            .clone()
            .filter(|s| *s != current.output_schema);
        let examples = changes.examples.clone().filter(|e| *e != current.examples);
        let generation_mode = changes
            .generation_mode
            .filter(|m| *m != current.generation_mode);
        let endpoint_path = endpoint_path.filter(|p| *p != current.endpoint_path);
        let http_method = http_method.filter(|m| *m != current.http_method);
        let is_active = changes.is_active.filter(|a| *a != current.is_active);
        let event = ProjectEvent::FunctionUpdated {
            project_id: self.id,
            function_id,
            name,
            description,
            language,
            function_code,
            input_schema,
            output_schema,
            examples,
            generation_mode,
            endpoint_path,
            http_method,
            is_active,
            updated_at: at,
            ai_request_id: None,
        };
        if !event.changes_a_function() {
            return Ok(vec![]);
        }
        let mut after = self.clone();
        after.evolve(&event);
        if let Some(updated) = after.function(function_id) {
            self.check_function_taken(updated)?;
        }
        Ok(vec![event])
    }

    pub(super) fn delete_function(
        &self,
        function_id: FunctionId,
        at: OffsetDateTime,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        if self.function(function_id).is_none() {
            return Err(ProjectError::FunctionNotFound(function_id));
        }
        Ok(vec![ProjectEvent::FunctionDeleted {
            project_id: self.id,
            function_id,
            deleted_at: at,
        }])
    }
}
