//! Tests of the schema language: every rule, each problem at its pointer.

use super::model::{ALL_TYPES, FieldType};
use super::pattern::expansion;
use super::values::DecimalLit;
use super::*;
use crate::error::{FieldError, Pointer};
use crate::limits::Limits;
use serde_json::Value;
use serde_json::json;

/// The example of `docs/api.md`, verbatim.
const API_EXAMPLE: &str = r#"{"entity": "order", "plural": "orders", "fields": [
  {"name": "title", "type": "string", "required": true, "max_length": 120},
  {"name": "total", "type": "decimal", "precision": 12, "scale": 2, "min": 0},
  {"name": "status", "type": "enum", "values": ["new", "paid"], "default": "new"},
  {"name": "code", "type": "string", "unique": true, "pattern": "^[A-Z]{3}-[0-9]{4}$"},
  {"name": "customer_id", "type": "reference", "references": "customer", "required": true}
], "unique": [["customer_id", "title"]]}"#;

fn at() -> Pointer {
    Pointer::root().key("schema_definition")
}

fn parse(raw: Value) -> Result<EntitySchema, Vec<FieldError>> {
    EntitySchema::parse(&raw, &at(), &Limits::default())
}

#[track_caller]
fn ok(raw: Value) -> EntitySchema {
    match parse(raw) {
        Ok(schema) => schema,
        Err(errors) => panic!("expected a valid schema, got {errors:#?}"),
    }
}

#[track_caller]
fn problems(raw: Value) -> Vec<(String, String)> {
    match parse(raw) {
        Ok(schema) => panic!("expected problems, got {schema:#?}"),
        Err(errors) => errors.into_iter().map(|e| (e.field, e.message)).collect(),
    }
}

/// The pointers of every problem, in order.
#[track_caller]
fn pointers(raw: Value) -> Vec<String> {
    problems(raw).into_iter().map(|(field, _)| field).collect()
}

/// Asserts exactly one problem, at `pointer`, whose message contains `text`.
#[track_caller]
fn one_problem(raw: Value, pointer: &str, text: &str) {
    let found = problems(raw);
    assert_eq!(found.len(), 1, "expected one problem, got {found:#?}");
    assert_eq!(found[0].0, pointer, "{found:#?}");
    assert!(
        found[0].1.contains(text),
        "`{}` does not contain `{text}`",
        found[0].1
    );
}

fn with_field(field: Value) -> Value {
    json!({"entity": "thing", "fields": [field]})
}

#[track_caller]
fn field_ok(field: Value) -> FieldDef {
    ok(with_field(field)).fields.remove(0)
}

/// One problem in the only field, at `/schema_definition/fields/0/<key>`.
#[track_caller]
fn field_problem(field: Value, key: &str, text: &str) {
    let pointer = if key.is_empty() {
        "/schema_definition/fields/0".to_owned()
    } else {
        format!("/schema_definition/fields/0/{key}")
    };
    one_problem(with_field(field), &pointer, text);
}

mod shape;
mod types;
