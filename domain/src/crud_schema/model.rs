//! The normalised schema types that events store and the generator builds, and the type table.

use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use super::parse::parse_schema;
use crate::error::{FieldError, Pointer};
use crate::limits::Limits;

/// A validated, normalised `crud` entity: what `FeatureAdded` stores and the generator builds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntitySchema {
    pub entity: String,
    pub plural: String,
    pub fields: Vec<FieldDef>,
    /// Composite unique constraints, each naming at least two fields.
    #[serde(default)]
    pub unique: Vec<Vec<String>>,
}

/// One declared field. Serialises flat, as in `docs/api.md`: `{"name", "type", <options>, "required",
/// "unique", "default"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDef {
    pub name: String,
    #[serde(flatten)]
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub unique: bool,
    /// Never `Some(Value::Null)`: a null default is refused, so "no default" has one spelling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Box<Value>>,
}

/// A field's type with the options that type takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldKind {
    String {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_length: Option<u32>,
        max_length: u32,
        /// Matched with search semantics (like JSON Schema and Pydantic's default engine): anchor
        /// it with `^…$` to constrain the whole value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<String>,
    },
    Text {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_length: Option<u32>,
    },
    Integer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<i64>,
    },
    /// Bounds are JSON numbers, kept exactly as written (`0`, `12.5`), and must fit the column.
    Decimal {
        precision: u8,
        scale: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<Number>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<Number>,
    },
    Float {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    Boolean,
    Date,
    Datetime,
    Uuid,
    Json,
    Enum {
        values: Vec<String>,
    },
    /// Points at the `id` of another `crud` entity of the same project (or this one).
    Reference {
        references: String,
    },
}

impl FieldKind {
    /// The `type` string of `docs/api.md`.
    pub fn type_name(&self) -> &'static str {
        self.field_type().name()
    }

    pub(super) fn field_type(&self) -> FieldType {
        match self {
            FieldKind::String { .. } => FieldType::String,
            FieldKind::Text { .. } => FieldType::Text,
            FieldKind::Integer { .. } => FieldType::Integer,
            FieldKind::Decimal { .. } => FieldType::Decimal,
            FieldKind::Float { .. } => FieldType::Float,
            FieldKind::Boolean => FieldType::Boolean,
            FieldKind::Date => FieldType::Date,
            FieldKind::Datetime => FieldType::Datetime,
            FieldKind::Uuid => FieldType::Uuid,
            FieldKind::Json => FieldType::Json,
            FieldKind::Enum { .. } => FieldType::Enum,
            FieldKind::Reference { .. } => FieldType::Reference,
        }
    }
}

/// The `type` strings `docs/api.md` defines, in its order.
pub const FIELD_TYPES: [&str; 12] = [
    "string",
    "text",
    "integer",
    "decimal",
    "float",
    "boolean",
    "date",
    "datetime",
    "uuid",
    "json",
    "enum",
    "reference",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldType {
    String,
    Text,
    Integer,
    Decimal,
    Float,
    Boolean,
    Date,
    Datetime,
    Uuid,
    Json,
    Enum,
    Reference,
}

pub(super) const ALL_TYPES: [FieldType; 12] = [
    FieldType::String,
    FieldType::Text,
    FieldType::Integer,
    FieldType::Decimal,
    FieldType::Float,
    FieldType::Boolean,
    FieldType::Date,
    FieldType::Datetime,
    FieldType::Uuid,
    FieldType::Json,
    FieldType::Enum,
    FieldType::Reference,
];

/// Keys every field takes, whatever its type.
pub(super) const COMMON_KEYS: [&str; 5] = ["name", "type", "required", "unique", "default"];
pub(super) const SCHEMA_KEYS: [&str; 4] = ["entity", "plural", "fields", "unique"];

impl FieldType {
    pub(super) fn name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Float => "float",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Uuid => "uuid",
            FieldType::Json => "json",
            FieldType::Enum => "enum",
            FieldType::Reference => "reference",
        }
    }

    pub(super) fn from_name(name: &str) -> Option<Self> {
        ALL_TYPES.into_iter().find(|t| t.name() == name)
    }

    pub(super) fn options(self) -> &'static [&'static str] {
        match self {
            FieldType::String => &["min_length", "max_length", "pattern"],
            FieldType::Text => &["max_length"],
            FieldType::Integer | FieldType::Float => &["min", "max"],
            FieldType::Decimal => &["precision", "scale", "min", "max"],
            FieldType::Enum => &["values"],
            FieldType::Reference => &["references"],
            FieldType::Boolean
            | FieldType::Date
            | FieldType::Datetime
            | FieldType::Uuid
            | FieldType::Json => &[],
        }
    }
}

impl EntitySchema {
    /// Parses and validates a raw `schema_definition`. Every problem is reported, each pointed at
    /// under `at` (e.g. `/schema_definition` or `/features/3/schema_definition`).
    pub fn parse(raw: &Value, at: &Pointer, limits: &Limits) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        match parse_schema(raw, at, limits, &mut errors) {
            Some(schema) if errors.is_empty() => Ok(schema),
            _ => Err(errors),
        }
    }

    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The reference fields: (index in `fields`, field, target entity name).
    pub fn references(&self) -> impl Iterator<Item = (usize, &FieldDef, &str)> {
        self.fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match &f.kind {
                FieldKind::Reference { references } => Some((i, f, references.as_str())),
                _ => None,
            })
    }

    /// Whether any field of this entity references `entity`.
    pub fn references_entity(&self, entity: &str) -> bool {
        self.references().any(|(_, _, target)| target == entity)
    }
}
