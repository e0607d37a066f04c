//! Target `python-fastapi`: FastAPI + SQLAlchemy 2 + Pydantic v2, an Alembic migration, SQLite by
//! default and PostgreSQL through `DATABASE_URL`, and a pytest suite derived from the schema.
//!
//! Naming contract (see `domain::reserved`): in every generated module where user-chosen names
//! appear as identifiers (models, schemas, routers), every name the generated code binds itself
//! starts with `_` or an upper-case letter, so a field can never shadow it.

mod app;
mod deploy;
mod entity_suite;
mod functions;
mod migration;
mod plan;
mod readme;
mod test_suite;

use std::collections::BTreeMap;

use domain::project::Project;
use serde_json::Value;

use crate::GenerateError;
use crate::escape::{python_str, python_str_formatted};

/// The file tree of `project` for this target.
pub fn files(
    project: &Project,
    project_version: u64,
) -> Result<BTreeMap<String, Vec<u8>>, GenerateError> {
    let mut plan = plan::build(project, project_version).map_err(GenerateError::Refused)?;
    let mut out = Files::default();

    deploy::add(&mut out, !plan.functions.is_empty());
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
    functions::add(&mut out, &plan);

    out.add("tests/__init__.py", "");
    out.add("tests/support.py", include_str!("templates/support.py"));
    out.add("tests/conftest.py", &test_suite::conftest(&plan));
    out.add(
        "tests/database.py",
        include_str!("templates/database_test.py"),
    );
    out.add("tests/data.py", &test_suite::data(&plan));
    out.add("tests/test_app.py", include_str!("templates/test_app.py"));
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
    /// Adds a file; a Python module's long expression lines are split as `ruff format` splits
    /// them (see [`reflow`]).
    fn add(&mut self, name: &str, content: &str) {
        let content = if name.ends_with(".py") {
            reflow(content)
        } else {
            content.to_owned()
        };
        self.add_verbatim(name, &content);
    }

    /// Adds a file exactly as given (the user's own code, JSON data).
    fn add_verbatim(&mut self, name: &str, content: &str) {
        let previous = self.0.insert(name.to_owned(), content.as_bytes().to_vec());
        assert!(previous.is_none(), "{name} generated twice");
    }
}

/// A JSON value as a Python literal; every string goes through [`python_str_formatted`].
pub fn py_value(value: &Value) -> String {
    py_lit(value).flat()
}

/// A JSON value as a [`Lit`].
pub fn py_lit(value: &Value) -> Lit {
    match value {
        Value::Null => Lit::atom("None"),
        Value::Bool(true) => Lit::atom("True"),
        Value::Bool(false) => Lit::atom("False"),
        Value::Number(n) => Lit::atom(n.to_string()),
        Value::String(s) => Lit::atom(python_str_formatted(s)),
        Value::Array(items) => Lit::list(items.iter().map(py_lit).collect()),
        Value::Object(members) => Lit::dict(
            members
                .iter()
                .map(|(k, v)| (python_str_formatted(k), py_lit(v)))
                .collect(),
        ),
    }
}

/// A Python expression whose collection literals `ruff format` lays out: an atom (anything it
/// leaves on one line) or a list, tuple or dict of items, each with an optional `key: ` prefix.
#[derive(Debug, Clone)]
pub enum Lit {
    Atom(String),
    Seq {
        open: &'static str,
        close: &'static str,
        items: Vec<(String, Lit)>,
    },
    /// `callee(args)` or `callee[args]`: split like a collection, except that the arguments
    /// first go together on one indented line when they fit there.
    Call {
        callee: String,
        open: &'static str,
        close: &'static str,
        args: Vec<(String, Lit)>,
    },
}

impl Lit {
    pub fn atom(text: impl Into<String>) -> Lit {
        Lit::Atom(text.into())
    }

    pub fn list(items: Vec<Lit>) -> Lit {
        Lit::seq("[", "]", items)
    }

    pub fn tuple(items: Vec<Lit>) -> Lit {
        Lit::seq("(", ")", items)
    }

    fn seq(open: &'static str, close: &'static str, items: Vec<Lit>) -> Lit {
        let items = items.into_iter().map(|v| (String::new(), v)).collect();
        Lit::Seq { open, close, items }
    }

    /// A dict of `(key literal, value)` members.
    pub fn dict(members: Vec<(String, Lit)>) -> Lit {
        let items = members
            .into_iter()
            .map(|(k, v)| (format!("{k}: "), v))
            .collect();
        Lit::Seq {
            open: "{",
            close: "}",
            items,
        }
    }

    /// `callee(args)`, each argument with an optional `name=` prefix.
    pub fn call(callee: &str, args: Vec<(String, Lit)>) -> Lit {
        Lit::Call {
            callee: callee.to_owned(),
            open: "(",
            close: ")",
            args,
        }
    }

    /// On one line (a one-item tuple keeps its comma).
    pub fn flat(&self) -> String {
        match self {
            Lit::Atom(text) => text.clone(),
            Lit::Call {
                callee,
                open,
                close,
                args,
            } => {
                let inner: Vec<String> = args
                    .iter()
                    .map(|(k, v)| format!("{k}{}", v.flat()))
                    .collect();
                format!("{callee}{open}{}{close}", inner.join(", "))
            }
            Lit::Seq { open, close, items } => {
                let inner: Vec<String> = items
                    .iter()
                    .map(|(k, v)| format!("{k}{}", v.flat()))
                    .collect();
                let comma = if *open == "(" && items.len() == 1 {
                    ","
                } else {
                    ""
                };
                format!("{open}{}{comma}{close}", inner.join(", "))
            }
        }
    }

    /// `prefix` and this literal at `indent` spaces, then `suffix`, as `ruff format` writes them
    /// when the source has no magic trailing comma: on one line if it fits, else opened with one
    /// item a line (each laid out the same way) and a trailing comma after several.
    pub fn render(&self, indent: usize, prefix: &str, suffix: &str) -> String {
        let pad = " ".repeat(indent);
        let line = format!("{pad}{prefix}{}{suffix}", self.flat());
        if line.chars().count() <= LINE_LENGTH {
            return line + "\n";
        }
        let (head, close, items, comma) = match self {
            Lit::Seq { open, close, items } if !items.is_empty() => {
                let comma = if items.len() > 1 || *open == "(" {
                    ","
                } else {
                    ""
                };
                (open.to_string(), close, items, comma)
            }
            Lit::Call {
                callee,
                open,
                close,
                args,
            } if !args.is_empty() => {
                let inner: Vec<String> = args
                    .iter()
                    .map(|(k, v)| format!("{k}{}", v.flat()))
                    .collect();
                let inner = inner.join(", ");
                if indent + 4 + inner.chars().count() <= LINE_LENGTH {
                    return format!(
                        "{pad}{prefix}{callee}{open}\n{pad}    {inner}\n{pad}{close}{suffix}\n"
                    );
                }
                (format!("{callee}{open}"), close, args, ",")
            }
            _ => return line + "\n",
        };
        let mut out = format!("{pad}{prefix}{head}\n");
        for (key, value) in items {
            out.push_str(&value.render(indent + 4, key, comma));
        }
        out.push_str(&format!("{pad}{close}{suffix}\n"));
        out
    }
}

/// The line length of generated Python (the shipped ruff.toml's `line-length`).
pub const LINE_LENGTH: usize = 100;

/// A call `callee(args)` at `indent` spaces, followed by `suffix`, laid out as `ruff format` (and
/// black) lay out a call without a magic trailing comma: on one line if it fits; else its
/// arguments together on one indented line; else one per line with a trailing comma.
pub fn py_call(indent: usize, callee: &str, args: &[String], suffix: &str) -> String {
    let args = args
        .iter()
        .map(|a| (String::new(), Lit::atom(a.as_str())))
        .collect();
    Lit::call(callee, args).render(indent, "", suffix)
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

/// The import block of a generated module whose code is `body`: `groups` are isort's sections in
/// order, each a list of statements in order (`import x`, `import x as y`, `from m import a, b`).
/// A statement whose names `body` never uses is dropped, a `from` keeps only the names used (a
/// statement with a comment is kept whole), and empty sections vanish; laid out as isort and
/// `ruff format` lay them out.
pub fn imports(body: &str, groups: &[&[&str]]) -> String {
    let used = |name: &str| uses(body, name);
    let mut sections = Vec::new();
    for group in groups {
        let mut lines = String::new();
        for statement in *group {
            if statement.contains('#') {
                lines.push_str(statement);
                lines.push('\n');
            } else if let Some((module, names)) = statement
                .strip_prefix("from ")
                .and_then(|s| s.split_once(" import "))
            {
                let names: Vec<&str> = names
                    .split(", ")
                    .filter(|n| used(n.rsplit(" as ").next().unwrap_or(n)))
                    .collect();
                if !names.is_empty() {
                    let line = format!("from {module} import {}", names.join(", "));
                    if line.chars().count() <= LINE_LENGTH {
                        lines.push_str(&line);
                        lines.push('\n');
                    } else {
                        lines.push_str(&format!("from {module} import (\n"));
                        for name in names {
                            lines.push_str(&format!("    {name},\n"));
                        }
                        lines.push_str(")\n");
                    }
                }
            } else {
                let bound = statement
                    .rsplit(" as ")
                    .next()
                    .unwrap_or(statement)
                    .trim_start_matches("import ");
                if used(bound.split('.').next().unwrap_or(bound)) {
                    lines.push_str(statement);
                    lines.push('\n');
                }
            }
        }
        if !lines.is_empty() {
            sections.push(lines);
        }
    }
    sections.join("\n")
}

/// Whether `name` occurs in `code` as a whole word (not as part of a longer identifier, nor as
/// an attribute after a dot).
fn uses(code: &str, name: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(name).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + name.len()..].chars().next();
        !before.is_some_and(|c| ident(c) || c == '.') && !after.is_some_and(ident)
    })
}

/// `text` wrapped at word boundaries to lines of at most `width` characters (a word longer than
/// that stays whole on its own line).
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out
}

impl Lit {
    /// A generated Python expression read back as a [`Lit`]: a call or subscript whose callee is
    /// a dotted name, or a list, tuple or dict display, split at its top-level commas (strings
    /// and nested brackets respected); anything else is an atom.
    pub fn parse(expr: &str) -> Lit {
        let expr = expr.trim();
        let Some(last) = expr.chars().last() else {
            return Lit::atom(expr);
        };
        let close = match last {
            ')' => ")",
            ']' => "]",
            '}' => "}",
            _ => return Lit::atom(expr),
        };
        let Some(open_at) = matching_open(expr) else {
            return Lit::atom(expr);
        };
        let (head, inner) = (&expr[..open_at], &expr[open_at + 1..expr.len() - 1]);
        let open = &expr[open_at..=open_at];
        let parts = split_top(inner, ',');
        if head.is_empty() {
            let items: Vec<(String, Lit)> = if open == "{" {
                let mut items = Vec::new();
                for part in &parts {
                    let kv = split_top(part, ':');
                    let [key, value] = kv.as_slice() else {
                        return Lit::atom(expr);
                    };
                    items.push((format!("{}: ", key.trim()), Lit::parse(value)));
                }
                items
            } else {
                parts
                    .iter()
                    .map(|p| (String::new(), Lit::parse(p)))
                    .collect()
            };
            if open == "(" && parts.len() < 2 || items.is_empty() {
                return Lit::atom(expr);
            }
            let open = match open {
                "[" => "[",
                "(" => "(",
                _ => "{",
            };
            return Lit::Seq { open, close, items };
        }
        let dotted = head
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.');
        if !dotted || open == "{" || parts.is_empty() {
            return Lit::atom(expr);
        }
        let args = parts
            .iter()
            .map(|part| {
                let part = part.trim();
                let name_len = part
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(0);
                let rest = &part[name_len..];
                if name_len > 0 && rest.starts_with('=') && !rest.starts_with("==") {
                    (format!("{}=", &part[..name_len]), Lit::parse(&rest[1..]))
                } else {
                    (String::new(), Lit::parse(part))
                }
            })
            .collect();
        Lit::Call {
            callee: head.to_owned(),
            open: if open == "(" { "(" } else { "[" },
            close,
            args,
        }
    }
}

/// The characters of Python code `text` with their byte offsets, each marked whether it is
/// code (outside string literals; the quotes count as string).
fn code_chars(text: &str) -> impl Iterator<Item = (usize, char, bool)> + '_ {
    let (mut quote, mut escaped) = (None::<char>, false);
    text.char_indices().map(move |(at, c)| match quote {
        Some(q) => {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            (at, c, false)
        }
        None if c == '"' || c == '\'' => {
            quote = Some(c);
            (at, c, false)
        }
        None => (at, c, true),
    })
}

/// The byte offset of the bracket that the last character of `expr` closes, or None when the
/// brackets do not balance.
fn matching_open(expr: &str) -> Option<usize> {
    let mut stack = Vec::new();
    let mut last_pair = None;
    for (at, c, code) in code_chars(expr) {
        match c {
            '(' | '[' | '{' if code => stack.push(at),
            ')' | ']' | '}' if code => last_pair = Some((stack.pop()?, at)),
            _ => {}
        }
    }
    match last_pair {
        Some((open, close)) if stack.is_empty() && close + 1 == expr.len() => Some(open),
        _ => None,
    }
}

/// The byte offset of the bracket that closes the one at byte `open` of `text`.
pub fn matching_close(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (at, c, code) in code_chars(&text[open..]) {
        match c {
            '(' | '[' | '{' if code => depth += 1,
            ')' | ']' | '}' if code => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(open + at);
                }
            }
            _ => {}
        }
    }
    None
}

/// `text` split at `sep` outside strings and brackets; empty trailing parts dropped.
fn split_top(text: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0usize;
    for (_, c, code) in code_chars(text) {
        match c {
            '(' | '[' | '{' if code => depth += 1,
            ')' | ']' | '}' if code => depth = depth.saturating_sub(1),
            c if code && c == sep && depth == 0 => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        parts.last_mut().expect("one part at least").push(c);
    }
    while parts.last().is_some_and(|p| p.trim().is_empty()) {
        parts.pop();
    }
    parts
}

/// `source` with every code line longer than [`LINE_LENGTH`] that is one expression (with an
/// optional `name = ` before it and an optional `,` after it) laid out again as `ruff format`
/// would split it.
pub fn reflow(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    for line in source.split_inclusive('\n') {
        let text = line.trim_end_matches('\n');
        if text.chars().count() <= LINE_LENGTH {
            out.push_str(line);
            continue;
        }
        let indent = text.len() - text.trim_start().len();
        let rest = text.trim_start();
        // A statement keyword before the expression stays on the first line.
        let keyword = ["if ", "elif ", "return ", "raise "]
            .into_iter()
            .find(|k| rest.starts_with(k))
            .unwrap_or("");
        let rest = &rest[keyword.len()..];
        let (rest, suffix) = match rest.strip_suffix(',') {
            Some(r) => (r, ","),
            None if keyword.ends_with("if ") => match rest.strip_suffix(':') {
                Some(r) => (r, ":"),
                None => (rest, ""),
            },
            None => (rest, ""),
        };
        let name_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(0);
        // `name = expr`, or `name: annotation = expr` with a plain (bracket-free) annotation.
        let assigned = rest[name_len..].find(" = ").filter(|at| {
            let between = &rest[name_len..name_len + at];
            between.is_empty()
                || between.starts_with(": ")
                    && between[2..]
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        });
        let (prefix, expr) = match assigned {
            Some(at) if name_len > 0 && keyword.is_empty() => rest.split_at(name_len + at + 3),
            _ => ("", rest),
        };
        match Lit::parse(expr) {
            Lit::Atom(_) => out.push_str(line),
            lit => out.push_str(&lit.render(indent, &format!("{keyword}{prefix}"), suffix)),
        }
    }
    out
}

/// `*([items] if sqlite else []),` at `indent` spaces, an item of `op.create_table(...)` that
/// only SQLite gets, laid out as `ruff format` writes it.
pub fn sqlite_only(indent: usize, items: &[String]) -> String {
    let list = Lit::list(items.iter().map(|i| Lit::parse(i)).collect());
    let pad = " ".repeat(indent);
    let ternary = format!("{} if sqlite else []", list.flat());
    if indent + ternary.chars().count() + 4 <= LINE_LENGTH {
        return format!("{pad}*({ternary}),\n");
    }
    if indent + 4 + ternary.chars().count() <= LINE_LENGTH {
        return format!("{pad}*(\n{pad}    {ternary}\n{pad}),\n");
    }
    format!(
        "{pad}*(\n{}{pad}    if sqlite\n{pad}    else []\n{pad}),\n",
        list.render(indent + 4, "", "")
    )
}
