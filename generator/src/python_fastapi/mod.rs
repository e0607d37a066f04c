//! Target `python-fastapi`: FastAPI + SQLAlchemy 2 + Pydantic v2, an Alembic migration, SQLite by
//! default and PostgreSQL through `DATABASE_URL`, and a pytest suite derived from the schema.
//!
//! Naming contract (see `domain::reserved`): in every generated module where user-chosen names
//! appear as identifiers (models, schemas, routers), every name the generated code binds itself
//! starts with `_` or an upper-case letter, so a field can never shadow it.

mod app;
mod deploy;
mod entity_suite;
mod migration;
mod plan;
mod readme;
mod test_suite;

use std::collections::BTreeMap;

use domain::project::Project;
use serde_json::Value;

use crate::GenerateError;
use crate::escape::python_str;

/// The file tree of `project` for this target.
pub fn files(
    project: &Project,
    project_version: u64,
) -> Result<BTreeMap<String, Vec<u8>>, GenerateError> {
    let mut plan = plan::build(project, project_version).map_err(GenerateError::Refused)?;
    let mut out = Files::default();

    deploy::add(&mut out);
    out.add(".env.example", &app::env_example(&plan));
    out.add("pytest.ini", include_str!("templates/pytest.ini"));
    out.add("alembic.ini", include_str!("templates/alembic.ini"));
    out.add("alembic/env.py", include_str!("templates/env.py"));
    out.add(
        "alembic/script.py.mako",
        include_str!("templates/script.py.mako"),
    );
    out.add(
        "alembic/versions/0001_initial.py",
        &migration::initial(&mut plan),
    );

    out.add("app/__init__.py", "");
    out.add("app/config.py", &app::config(&plan));
    out.add("app/database.py", include_str!("templates/database.py"));
    out.add("app/errors.py", include_str!("templates/errors.py"));
    out.add("app/crud.py", include_str!("templates/crud.py"));
    out.add("app/fields.py", include_str!("templates/fields.py"));
    out.add("app/health.py", include_str!("templates/health.py"));
    out.add("app/logs.py", include_str!("templates/logs.py"));
    out.add("app/main.py", &app::main(&plan));
    out.add("app/models.py", &app::models(&mut plan));
    out.add("app/system_models.py", &app::system_models(&mut plan));
    out.add("app/schemas.py", &app::schemas(&plan));
    out.add("app/routers/__init__.py", "");
    for i in 0..plan.entities.len() {
        let entity = &plan.entities[i];
        out.add(
            &format!("app/routers/{}.py", entity.name()),
            &app::router(&plan, i),
        );
    }
    out.add(
        "app/cli.py",
        &section(
            include_str!("templates/cli.py"),
            "admin",
            !plan.auth.is_empty(),
        ),
    );
    if !plan.auth.is_empty() {
        out.add("app/auth.py", include_str!("templates/auth.py"));
    }
    if !plan.files.is_empty() {
        out.add("app/files.py", &app::files_module(&plan));
    }

    out.add("tests/__init__.py", "");
    out.add("tests/support.py", include_str!("templates/support.py"));
    out.add("tests/conftest.py", &test_suite::conftest(&plan));
    out.add(
        "tests/database.py",
        include_str!("templates/database_test.py"),
    );
    out.add("tests/data.py", &test_suite::data(&plan));
    out.add("tests/test_app.py", &test_suite::test_app(&plan));
    for i in 0..plan.entities.len() {
        let name = format!("tests/test_crud_{}.py", plan.entities[i].name());
        out.add(&name, &entity_suite::entity_tests(&mut plan, i));
    }
    let settings_tests = include_str!("templates/test_settings.py");
    let marker = "\n\n\n# The app's signing key (only with an auth feature).\n";
    out.add(
        "tests/test_settings.py",
        &if plan.auth.is_empty() {
            format!(
                "{}\n",
                settings_tests
                    .split(marker)
                    .next()
                    .unwrap_or(settings_tests)
            )
        } else {
            settings_tests.replace(marker, "\n\n\n")
        },
    );
    if !plan.auth.is_empty() {
        out.add("tests/test_auth.py", include_str!("templates/test_auth.py"));
    }
    if !plan.auth.is_empty() && !plan.entities.is_empty() {
        out.add(
            "tests/test_authorization.py",
            include_str!("templates/test_authorization.py"),
        );
    }
    if !plan.files.is_empty() {
        out.add("tests/test_files.py", &test_suite::test_files(&plan));
    }

    out.add("README.md", &readme::readme(&plan));
    Ok(out.0)
}

/// `template` with the lines between `# {name}:begin` and `# {name}:end` (at any indentation)
/// kept when `keep`, else dropped; the marker lines themselves are always dropped.
fn section(template: &str, name: &str, keep: bool) -> String {
    let (begin, end) = (format!("# {name}:begin"), format!("# {name}:end"));
    let mut inside = false;
    let mut out = String::with_capacity(template.len());
    for line in template.split_inclusive('\n') {
        let marker = line.trim();
        if marker == begin {
            inside = true;
        } else if marker == end {
            inside = false;
        } else if keep || !inside {
            out.push_str(line);
        }
    }
    out
}

#[derive(Default)]
struct Files(BTreeMap<String, Vec<u8>>);

impl Files {
    fn add(&mut self, name: &str, content: &str) {
        let previous = self.0.insert(name.to_owned(), content.as_bytes().to_vec());
        assert!(previous.is_none(), "{name} generated twice");
    }
}

/// A JSON value as a Python literal; every string goes through [`python_str`].
pub fn py_value(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => python_str(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(py_value).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(members) => {
            let members: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}: {}", python_str(k), py_value(v)))
                .collect();
            format!("{{{}}}", members.join(", "))
        }
    }
}

/// The line length of generated Python (the shipped ruff.toml's `line-length`).
pub const LINE_LENGTH: usize = 100;

/// A call `callee(args)` at `indent` spaces, followed by `suffix`, laid out as `ruff format` (and
/// black) lay out a call without a magic trailing comma: on one line if it fits; else its
/// arguments together on one indented line; else one per line with a trailing comma.
pub fn py_call(indent: usize, callee: &str, args: &[String], suffix: &str) -> String {
    let pad = " ".repeat(indent);
    let joined = args.join(", ");
    let width = |s: &str| s.chars().count();
    if indent + width(callee) + width(&joined) + 2 + width(suffix) <= LINE_LENGTH {
        return format!("{pad}{callee}({joined}){suffix}\n");
    }
    if indent + 4 + width(&joined) <= LINE_LENGTH {
        return format!("{pad}{callee}(\n{pad}    {joined}\n{pad}){suffix}\n");
    }
    let mut out = format!("{pad}{callee}(\n");
    for arg in args {
        out.push_str(&format!("{pad}    {arg},\n"));
    }
    out.push_str(&format!("{pad}){suffix}\n"));
    out
}

/// A Python tuple literal of strings: `("a", "b")`, `("a",)`, `()`.
pub fn py_str_tuple<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => "()".into(),
        [one] => format!("({},)", python_str(one.as_ref())),
        many => {
            let items: Vec<String> = many.iter().map(|s| python_str(s.as_ref())).collect();
            format!("({})", items.join(", "))
        }
    }
}
