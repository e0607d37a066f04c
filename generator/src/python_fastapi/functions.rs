//! Custom functions in this target: their code modules, the router that serves them, their tests.
//!
//! The user's code is copied verbatim to `app/functions/<name>.py` (it is theirs: the platform
//! compiled it and checked that it defines `def handler(input)`, but it need not be ruff or mypy
//! clean, so that package is excluded from both in the shipped configuration). Schemas and
//! examples travel as JSON files written by `serde_json` (`app/function_schemas.json`,
//! `tests/function_examples.json`) rather than as Python literals: JSON needs no second escaping
//! and a long schema string cannot break the generated modules' line length.

use std::fmt::Write as _;

use domain::project::{Function, HttpMethod};
use serde_json::{Map, Value, json};

use super::plan::Plan;
use super::{Files, Lit, imports, py_value};
use crate::escape::python_str_formatted;

/// Adds the functions' files to `out`; nothing when the project has no active function.
pub(super) fn add(out: &mut Files, plan: &Plan<'_>) {
    if plan.functions.is_empty() {
        return;
    }
    out.add("app/functions/__init__.py", PACKAGE_DOC);
    for function in &plan.functions {
        out.add_verbatim(
            &format!("app/functions/{}.py", function.name),
            &function.function_code,
        );
    }
    out.add_verbatim("app/function_schemas.json", &schemas_json(plan));
    out.add("app/function_routes.py", &routes(plan));
    out.add_verbatim("tests/function_examples.json", &examples_json(plan));
    out.add("tests/test_functions.py", &tests(plan));
}

const PACKAGE_DOC: &str = "\"\"\"The project's custom functions, one module each, exactly as written on the platform.\n\n\
Each defines `handler(input)`; `app/function_routes.py` serves them. Not checked by ruff or mypy\n\
(ruff.toml, mypy.ini): the code is the author's own.\n\"\"\"\n";

/// The route operation (and handler) name of a function: `call_<name>`, which no entity, auth or
/// file operation starts with.
fn operation(function: &Function) -> String {
    format!("call_{}", function.name)
}

fn method(function: &Function) -> &'static str {
    match function.http_method {
        HttpMethod::Post => "post",
        HttpMethod::Put => "put",
        HttpMethod::Patch => "patch",
    }
}

/// A pretty-printed JSON document (members in the stored order) with a final newline.
fn json_file(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
}

/// `app/function_schemas.json`: `{name: {input_schema, output_schema}}`, null where none.
fn schemas_json(plan: &Plan<'_>) -> String {
    let mut all = Map::new();
    for function in &plan.functions {
        all.insert(
            function.name.clone(),
            json!({
                "input_schema": function.input_schema,
                "output_schema": function.output_schema,
            }),
        );
    }
    json_file(&Value::Object(all))
}

/// `tests/function_examples.json`: `{name: [{input, output}]}` for functions with examples.
fn examples_json(plan: &Plan<'_>) -> String {
    let mut all = Map::new();
    for function in plan.functions.iter().filter(|f| !f.examples.is_empty()) {
        let examples = function
            .examples
            .iter()
            .map(|e| json!({"input": e.input, "output": e.output}))
            .collect();
        all.insert(function.name.clone(), Value::Array(examples));
    }
    json_file(&Value::Object(all))
}

/// `app/function_routes.py`: one route per active function.
fn routes(plan: &Plan<'_>) -> String {
    let auth = !plan.auth.is_empty();
    let mut body = String::from(ROUTES_BODY);
    for function in &plan.functions {
        let name = &function.name;
        let var = format!("_FN_{}", name.to_uppercase());
        let call = Lit::call(
            "_Function",
            vec![
                (String::new(), Lit::atom(python_str_formatted(name))),
                (String::new(), Lit::atom(format!("_fn_{name}.handler"))),
            ],
        );
        let _ = write!(body, "\n\n{}", call.render(0, &format!("{var} = "), ""));
        let statuses = if auth {
            "400, 401, 422, 500"
        } else {
            "400, 422, 500"
        };
        let decorator = Lit::call(
            &format!("@ROUTER.{}", method(function)),
            vec![
                (
                    String::new(),
                    Lit::atom(python_str_formatted(&function.endpoint_path)),
                ),
                (
                    "operation_id=".into(),
                    Lit::atom(python_str_formatted(&operation(function))),
                ),
                (
                    "responses=".into(),
                    Lit::atom(format!("errors.responses({statuses})")),
                ),
                ("openapi_extra=".into(), Lit::atom("_BODY")),
            ],
        );
        let _ = write!(body, "\n\n{}", decorator.render(0, "", ""));
        let mut params = vec!["request: Request".to_owned()];
        if auth {
            params.push("_actor: Actor = Depends(require_actor)".to_owned());
        }
        body.push_str(&super::py_call(
            0,
            &format!("async def {}", operation(function)),
            &params,
            " -> Response:",
        ));
        let _ = writeln!(body, "    return await {var}.call(request)");
    }
    let mut app_imports: Vec<String> = vec!["from app import errors".into()];
    if auth {
        app_imports.push("from app.auth import require_actor".into());
        app_imports.push("from app.crud import Actor".into());
    }
    // isort's order: one line per aliased name, by name.
    let mut names: Vec<&str> = plan.functions.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    for name in names {
        app_imports.push(format!("from app.functions import {name} as _fn_{name}"));
    }
    let app_imports: Vec<&str> = app_imports.iter().map(String::as_str).collect();
    let imports = imports(
        &body,
        &[
            &[
                "import json",
                "import logging",
                "from collections.abc import Callable",
                "from pathlib import Path",
                "from typing import Any",
            ],
            &[
                "from fastapi import APIRouter, Depends, Request",
                "from fastapi.exceptions import RequestValidationError",
                "from fastapi.responses import JSONResponse, Response",
                "from jsonschema import Draft202012Validator",
                "from starlette.concurrency import run_in_threadpool",
            ],
            &app_imports,
        ],
    );
    format!(
        "\"\"\"Routes of the project's custom functions (README.md lists them).\n\n{ROUTES_DOC}\"\"\"\n\n{imports}{body}"
    )
}

const ROUTES_DOC: &str = "Each reads the body as JSON (an empty body is `null`) and validates it against the function's\n\
input schema (JSON Schema 2020-12, from app/function_schemas.json): 422 with one error per broken\n\
rule, `field` a JSON Pointer into the body and `type` the schema keyword. It then calls the\n\
function's `handler` (app/functions/<name>.py) in a worker thread and validates what it returns\n\
against the output schema. A return that is not JSON or breaks the output schema is a bug of the\n\
function, not of the request: it is logged and answered 500, never sent. An exception raised by\n\
the handler is a 500 too.\n";

const ROUTES_BODY: &str = r#"
_LOG = logging.getLogger(__name__)
# How many schema errors one answer lists at most.
_MAX_ERRORS = 20
# The body is any JSON value; the function's input schema is checked by the route itself.
_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}
}
_SCHEMAS: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "function_schemas.json").read_text(encoding="utf-8")
)

ROUTER = APIRouter(tags=["functions"])


async def _body(request: Request) -> Any:
    """The body as JSON; an empty body is `null`. Not JSON → 400, like every route's body."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        error = {"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error"}
        raise RequestValidationError([error]) from None


def _message(keyword: str, rule: Any) -> str:
    """What a schema keyword asks, from the schema alone: the value sent is never echoed."""
    text = json.dumps(rule, ensure_ascii=False)
    if len(text) > 200:
        text = text[:197] + "..."
    return f"must satisfy `{keyword}`: {text}"


def _check_input(validator: Draft202012Validator, value: Any) -> None:
    """422 listing the schema errors of `value`, if any (a missing property at its own pointer)."""
    found: list[dict[str, Any]] = []
    for error in validator.iter_errors(value):
        where = ("body", *error.absolute_path)
        keyword = str(error.validator)
        if keyword == "required" and isinstance(error.instance, dict):
            for name in error.validator_value:
                missing = {"type": "missing", "loc": (*where, name), "msg": "Field required"}
                if name not in error.instance and missing not in found:
                    found.append(missing)
        else:
            found.append(
                {"type": keyword, "loc": where, "msg": _message(keyword, error.validator_value)}
            )
        if len(found) >= _MAX_ERRORS:
            break
    if found:
        raise RequestValidationError(found)


class _Function:
    """One function: its name, its handler and the validators of its schemas."""

    def __init__(self, name: str, handler: Callable[[Any], Any]) -> None:
        self.name = name
        self.handler = handler
        schemas = _SCHEMAS[name]
        self.input = _validator(schemas["input_schema"])
        self.output = _validator(schemas["output_schema"])

    async def call(self, request: Request) -> Response:
        value = await _body(request)
        if self.input is not None:
            _check_input(self.input, value)
        result = await run_in_threadpool(self.handler, value)
        try:
            output = json.loads(json.dumps(result, allow_nan=False))
        except (TypeError, ValueError):
            _LOG.error("function %s returned a value that is not JSON", self.name)
            detail = f"function `{self.name}` returned a value that is not JSON"
            return errors.problem(request, 500, detail)
        broken = [] if self.output is None else list(self.output.iter_errors(output))
        if broken:
            reasons = "; ".join(error.message for error in broken[:_MAX_ERRORS])
            _LOG.error("function %s broke its output schema: %s", self.name, reasons)
            detail = f"function `{self.name}` returned a value that breaks its output schema"
            return errors.problem(request, 500, detail)
        return JSONResponse(output)


def _validator(schema: Any) -> Draft202012Validator | None:
    return None if schema is None else Draft202012Validator(schema)
"#;

/// `tests/test_functions.py`: every example through its endpoint, and the refusals.
fn tests(plan: &Plan<'_>) -> String {
    let mut body = String::new();
    for function in &plan.functions {
        let (name, path) = (
            &function.name,
            python_str_formatted(&function.endpoint_path),
        );
        let verb = python_str_formatted(function.http_method.as_str());
        for n in 1..=function.examples.len() {
            let _ = write!(
                body,
                "\n\ndef test_{name}_example_{n}(client: TestClient) -> None:\n    \
                 _assert_example(client, {verb}, {path}, _EXAMPLES[{}][{}])\n",
                python_str_formatted(name),
                n - 1
            );
        }
        if let Some(bad) = function.input_schema.as_ref().and_then(breaking_type) {
            let _ = write!(
                body,
                "\n\ndef test_{name}_refuses_input_that_breaks_its_schema(client: TestClient) -> None:\n    \
                 response = client.request({verb}, {path}, json={})\n    \
                 errors = assert_problem(response, 422)[\"errors\"]\n    \
                 assert any(error[\"type\"] == \"type\" for error in errors), errors\n",
                py_value(&bad)
            );
        }
    }
    if !plan.auth.is_empty() {
        if let Some(function) = plan.functions.first() {
            let _ = write!(
                body,
                "\n\ndef test_functions_need_a_signed_in_caller(anonymous: TestClient) -> None:\n    \
                 response = anonymous.request({}, {}, json=None)\n    \
                 assert_problem(response, 401)\n",
                python_str_formatted(function.http_method.as_str()),
                python_str_formatted(&function.endpoint_path)
            );
        }
    }
    let body = format!("{TESTS_BODY}{body}");
    let imports = imports(
        &body,
        &[
            &[
                "import json",
                "from pathlib import Path",
                "from typing import Any",
            ],
            &["from fastapi.testclient import TestClient"],
            &["from tests.support import assert_problem"],
        ],
    );
    format!(
        "\"\"\"Generated tests of the custom functions: each example through its endpoint (status 200 and\n\
         the example's output, numbers compared by value), and input that breaks the input schema.\n\"\"\"\n\n\
         {imports}{body}"
    )
}

const TESTS_BODY: &str = r#"
_EXAMPLES: dict[str, list[dict[str, Any]]] = json.loads(
    (Path(__file__).parent / "function_examples.json").read_text(encoding="utf-8")
)


def _same(left: Any, right: Any) -> bool:
    """JSON equality: numbers by value (5 and 5.0 are one number), but `true` is never 1."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same(v, right[k]) for k, v in left.items())
    return type(left) is type(right) and bool(left == right)


def _assert_example(client: TestClient, method: str, path: str, example: dict[str, Any]) -> None:
    response = client.request(method, path, json=example["input"])
    assert response.status_code == 200, response.text
    expected, actual = example["output"], response.json()
    assert _same(actual, expected), f"expected {expected!r}, got {actual!r}"
"#;

/// A value `schema` refuses whatever its other keywords say: one of a JSON type its `type`
/// keyword leaves out (`number` admits integers). None when it has no `type`.
fn breaking_type(schema: &Value) -> Option<Value> {
    let allowed: Vec<&str> = match schema.get("type")? {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    let admits = |t: &str| allowed.contains(&t) || (t == "integer" && allowed.contains(&"number"));
    [
        ("object", json!({})),
        ("array", json!([])),
        ("string", json!("x")),
        ("integer", json!(0)),
        ("boolean", json!(true)),
    ]
    .into_iter()
    .find(|(t, _)| !admits(t))
    .map(|(_, v)| v)
}
