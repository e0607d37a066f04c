//! The generated pytest suite's shared parts: fixtures, the sampled test data, the app-wide tests
//! (migration, health, OpenAPI) and the file-storage tests; entity modules live in `entity_suite`.

use std::fmt::Write as _;

use super::plan::{FILES_TABLE, Plan};
use super::{Lit, py_lit, section};
use crate::escape::python_str_formatted;

/// The upload limit the suite runs the app with, so the 413 test stays small.
const TEST_FILE_MAX_BYTES: u64 = 64 * 1024;

pub fn conftest(plan: &Plan<'_>) -> String {
    let auth = !plan.auth.is_empty();
    let out = section(include_str!("templates/conftest.py"), "auth", auth);
    let out = section(&out, "noauth", !auth);
    section(&out, "files", !plan.files.is_empty())
}

/// `tests/data.py`: the sampled rows of every entity and what the fixtures need to know.
pub fn data(plan: &Plan<'_>) -> String {
    let text = |s: &str| Lit::atom(python_str_formatted(s));
    let flag = |b: bool| Lit::atom(if b { "True" } else { "False" });
    let mut entities = Vec::new();
    for entity in &plan.entities {
        let access = match entity.access {
            Some(access) => text(access.as_str()),
            None => Lit::atom("None"),
        };
        let kinds = entity
            .fields
            .iter()
            .map(|f| (python_str_formatted(f.name()), text(f.def.kind.type_name())))
            .collect();
        let rows = entity
            .rows
            .iter()
            .map(|row| {
                Lit::dict(
                    row.iter()
                        .map(|(k, v)| (python_str_formatted(k), py_lit(v)))
                        .collect(),
                )
            })
            .collect();
        let mut required = Vec::new();
        let mut optional = Vec::new();
        for field in &entity.fields {
            let Some(t) = field.target else { continue };
            let (name, target) = (text(field.name()), text(plan.entities[t].name()));
            if field.def.required {
                required.push(Lit::tuple(vec![name, target, flag(field.fresh_parent)]));
            } else {
                optional.push(Lit::tuple(vec![name, target]));
            }
        }
        let members = [
            ("path", text(&entity.path())),
            ("table", text(entity.table())),
            ("access", access),
            ("capacity", Lit::atom(entity.capacity.to_string())),
            ("unknown_field", text(&entity.unknown_field)),
            ("kinds", Lit::dict(kinds)),
            ("rows", Lit::list(rows)),
            ("required_references", Lit::list(required)),
            ("optional_references", Lit::list(optional)),
        ];
        let members = members
            .into_iter()
            .map(|(k, v)| (python_str_formatted(k), v))
            .collect();
        entities.push((python_str_formatted(entity.name()), Lit::dict(members)));
    }
    let mut out = String::from(DATA_HEADER);
    out.push_str(&Lit::dict(entities).render(0, "ENTITIES: dict[str, EntitySpec] = ", ""));
    out.push_str("\n# Children before parents, so deleting every row never breaks a reference.\n");
    let mut delete_order: Vec<Lit> = plan
        .creation_order
        .iter()
        .rev()
        .map(|&i| text(plan.entities[i].table()))
        .collect();
    if !plan.files.is_empty() {
        delete_order.push(text(FILES_TABLE));
    }
    out.push_str(&Lit::list(delete_order).render(0, "DELETE_ORDER: list[str] = ", ""));
    out.push_str("# Optional references are cleared first: they may form cycles.\n");
    let mut nullable = Vec::new();
    for entity in &plan.entities {
        for field in &entity.fields {
            if field.target.is_some() && field.nullable() {
                nullable.push(Lit::tuple(vec![text(entity.table()), text(field.name())]));
            }
        }
    }
    out.push_str(&Lit::list(nullable).render(
        0,
        "NULLABLE_REFERENCES: list[tuple[str, str]] = ",
        "",
    ));
    out.push_str("# Every route the app serves, as OpenAPI spells its path.\n");
    let mut paths = vec![text("/health")];
    if !plan.auth.is_empty() {
        for path in ["register", "login", "refresh", "logout", "me"] {
            paths.push(text(&format!("/api/auth/{path}")));
        }
    }
    if !plan.files.is_empty() {
        for path in ["", "/{file_id}", "/{file_id}/content"] {
            paths.push(text(&format!("/api/files{path}")));
        }
    }
    for entity in &plan.entities {
        paths.push(text(&entity.path()));
        paths.push(text(&format!("{}/{{id}}", entity.path())));
    }
    for function in &plan.functions {
        paths.push(text(&function.endpoint_path));
    }
    out.push_str(&Lit::list(paths).render(0, "PATHS: list[str] = ", ""));
    if !plan.files.is_empty() {
        let _ = writeln!(out, "FILE_MAX_BYTES = {TEST_FILE_MAX_BYTES}");
    }
    out
}

const DATA_HEADER: &str = r#""""Test data the generator derived from the schema's constraints: for each entity, rows of
valid values, pairwise distinct on every unique constraint. Regenerate rather than edit.
"""

from typing import Any, TypedDict


class EntitySpec(TypedDict):
    path: str
    table: str
    # owner_scoped, shared_read, or None without an auth feature.
    access: str | None
    capacity: int
    unknown_field: str
    kinds: dict[str, str]
    rows: list[dict[str, Any]]
    # (field, target entity, whether each row needs a parent of its own)
    required_references: list[tuple[str, str, bool]]
    # (field, target entity)
    optional_references: list[tuple[str, str]]


"#;

pub fn test_files(plan: &Plan<'_>) -> String {
    section(
        include_str!("templates/test_files.py"),
        "auth",
        !plan.auth.is_empty(),
    )
}
