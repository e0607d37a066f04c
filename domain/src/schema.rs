//! The `crud` schema definition language: raw JSON in, a normalised [`EntitySchema`] or every problem out.
//!
//! [`EntitySchema::parse`] checks everything a schema can get wrong on its own and reports each
//! problem as a [`FieldError`] whose pointer sits under the prefix the caller passes. Rules that
//! need the rest of the project (reference targets, entity names and plurals unique in the
//! project) belong to the project decider.
//!
//! The output is normalised: defaults are filled in (`plural`, `required`, `unique`, string
//! `max_length`, decimal `precision` and `scale`), so events store what the generator will build,
//! and parsing the serialised output again gives the same schema.

use std::cmp::Ordering;
use std::collections::HashMap;

use regex_syntax::hir::{Class, Hir, HirKind, Look};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime};

use crate::error::{FieldError, Pointer};
use crate::limits::Limits;
use crate::reserved::{self, NameUse};

/// Entity, field and plural names: 1 to 63 characters (PostgreSQL's identifier limit).
pub const NAME_MAX_CHARS: usize = 63;
pub const STRING_MAX_LENGTH_DEFAULT: u32 = 255;
pub const STRING_MAX_LENGTH_LIMIT: u32 = 10_000;
pub const DECIMAL_PRECISION_DEFAULT: u8 = 18;
pub const DECIMAL_PRECISION_MAX: u8 = 38;
pub const DECIMAL_SCALE_DEFAULT: u8 = 2;
pub const ENUM_VALUES_MAX: usize = 100;
/// Longer patterns are refused: the generator has to sample them, and a reader has to review them.
pub const PATTERN_MAX_CHARS: usize = 500;
/// The most heap a pattern's compiled program may take (the `regex` crate's `size_limit`): a bound
/// on the cost of every match, in the generator's sampler and in the generated app.
pub const PATTERN_COMPILED_MAX_BYTES: usize = 1 << 20;
/// How deep groups and repetitions may nest (the `regex` crate's `nest_limit`).
pub const PATTERN_NEST_MAX: u32 = 32;
/// The most HIR nodes one sample of a pattern visits with every repetition at its minimum count
/// (see `expansion`): repetitions of nothing compile small but would still be walked.
pub const PATTERN_EXPANSION_MAX: u64 = 100_000;

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
    pub default: Option<Value>,
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

    fn field_type(&self) -> FieldType {
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
enum FieldType {
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

const ALL_TYPES: [FieldType; 12] = [
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
const COMMON_KEYS: [&str; 5] = ["name", "type", "required", "unique", "default"];
const SCHEMA_KEYS: [&str; 4] = ["entity", "plural", "fields", "unique"];

impl FieldType {
    fn name(self) -> &'static str {
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

    fn from_name(name: &str) -> Option<Self> {
        ALL_TYPES.into_iter().find(|t| t.name() == name)
    }

    fn options(self) -> &'static [&'static str] {
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

/// The default plural (`docs/api.md`): `s`, `es` after s, x, z, ch and sh, `ies` for a `y` after a consonant.
pub fn default_plural(entity: &str) -> String {
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|end| entity.ends_with(end))
    {
        return format!("{entity}es");
    }
    if let Some(stem) = entity.strip_suffix('y') {
        let after_consonant = stem
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_lowercase() && !"aeiou".contains(c));
        if after_consonant {
            return format!("{stem}ies");
        }
    }
    format!("{entity}s")
}

/// Why `name` is not a valid entity, field or plural name used as `usage`.
pub fn name_problem(name: &str, usage: NameUse) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !starts_with_letter
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Some(
            "must be lowercase snake_case: a letter a-z, then letters, digits or underscores"
                .into(),
        );
    }
    if name.len() > NAME_MAX_CHARS {
        return Some(format!("must be at most {NAME_MAX_CHARS} characters"));
    }
    reserved::reserved(name, usage).map(|origin| format!("`{name}` is {}", origin.describe()))
}

/// Enum values may hold capitals (`USD`), so they have their own rule; they must still be valid
/// identifiers because generated code may turn them into enum members.
fn enum_value_problem(value: &str) -> Option<String> {
    let mut chars = value.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_with_letter || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Some("must be an identifier: a letter, then letters, digits or underscores".into());
    }
    if value.len() > NAME_MAX_CHARS {
        return Some(format!("must be at most {NAME_MAX_CHARS} characters"));
    }
    reserved::reserved(value, NameUse::EnumValue)
        .map(|origin| format!("`{value}` is {}", origin.describe()))
}

fn parse_schema(
    raw: &Value,
    at: &Pointer,
    limits: &Limits,
    errors: &mut Vec<FieldError>,
) -> Option<EntitySchema> {
    let Some(obj) = raw.as_object() else {
        errors.push(FieldError::at(at, "must be an object"));
        return None;
    };
    for key in obj.keys() {
        if !SCHEMA_KEYS.contains(&key.as_str()) {
            errors.push(FieldError::at(
                &at.key(key),
                format!("unknown key `{key}`; a schema has entity, plural, fields and unique"),
            ));
        }
    }

    let entity = match obj.get("entity") {
        None => {
            errors.push(FieldError::at(&at.key("entity"), "is required"));
            None
        }
        Some(Value::String(name)) => match name_problem(name, NameUse::Entity) {
            Some(problem) => {
                errors.push(FieldError::at(&at.key("entity"), problem));
                None
            }
            None => Some(name.clone()),
        },
        Some(_) => {
            errors.push(FieldError::at(&at.key("entity"), "must be a string"));
            None
        }
    };

    let plural = match obj.get("plural") {
        // Derived from a valid entity name only: a bad entity name is reported once, at `entity`.
        None => entity.as_deref().and_then(|entity| {
            let plural = default_plural(entity);
            match name_problem(&plural, NameUse::Table) {
                Some(problem) => {
                    errors.push(FieldError::at(
                        &at.key("plural"),
                        format!(
                            "the default plural `{plural}` cannot be used ({problem}); give an \
                             explicit plural"
                        ),
                    ));
                    None
                }
                None => Some(plural),
            }
        }),
        Some(Value::String(plural)) => match name_problem(plural, NameUse::Table) {
            Some(problem) => {
                errors.push(FieldError::at(&at.key("plural"), problem));
                None
            }
            None => Some(plural.clone()),
        },
        Some(_) => {
            errors.push(FieldError::at(&at.key("plural"), "must be a string"));
            None
        }
    };

    let fields = parse_fields(obj.get("fields"), &at.key("fields"), limits, errors);
    let unique = parse_composite_unique(obj.get("unique"), &at.key("unique"), obj, errors);

    Some(EntitySchema {
        entity: entity?,
        plural: plural?,
        fields: fields?,
        unique: unique?,
    })
}

fn parse_fields(
    raw: Option<&Value>,
    at: &Pointer,
    limits: &Limits,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<FieldDef>> {
    let items = match raw {
        None => {
            errors.push(FieldError::at(at, "is required"));
            return None;
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(FieldError::at(at, "must be an array of fields"));
            return None;
        }
    };
    let mut ok = true;
    if items.is_empty() {
        errors.push(FieldError::at(at, "must hold at least one field"));
        ok = false;
    }
    if items.len() > limits.fields_per_entity {
        errors.push(FieldError::at(
            at,
            format!(
                "must hold at most {} fields, not {}",
                limits.fields_per_entity,
                items.len()
            ),
        ));
        ok = false;
    }

    let mut fields = Vec::with_capacity(items.len());
    let mut first_use: HashMap<&str, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let field_at = at.index(i);
        match parse_field(item, &field_at, limits, errors) {
            Some(field) => fields.push(field),
            None => ok = false,
        }
        // Duplicates are judged on the raw names, so they are reported even beside other errors.
        if let Some(name) = item.get("name").and_then(Value::as_str) {
            if let Some(first) = first_use.get(name) {
                errors.push(FieldError::at(
                    &field_at.key("name"),
                    format!("duplicate field name `{name}`: field {first} has it already"),
                ));
                ok = false;
            } else {
                first_use.insert(name, i);
            }
        }
    }
    ok.then_some(fields)
}

/// Reads the members of one JSON object, recording a problem for each member of the wrong shape.
struct Reader<'a, 'e> {
    obj: &'a Map<String, Value>,
    at: &'a Pointer,
    errors: &'e mut Vec<FieldError>,
    failed: bool,
}

impl<'a, 'e> Reader<'a, 'e> {
    fn new(obj: &'a Map<String, Value>, at: &'a Pointer, errors: &'e mut Vec<FieldError>) -> Self {
        Self {
            obj,
            at,
            errors,
            failed: false,
        }
    }

    fn fail(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(FieldError::at(&self.at.key(key), message));
        self.failed = true;
    }

    fn has(&self, key: &str) -> bool {
        self.obj.contains_key(key)
    }

    fn string(&mut self, key: &str) -> Option<&'a str> {
        match self.obj.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.fail(key, "must be a string");
                None
            }
        }
    }

    fn required_string(&mut self, key: &str) -> Option<&'a str> {
        if !self.has(key) {
            self.fail(key, "is required");
        }
        self.string(key)
    }

    fn boolean(&mut self, key: &str) -> Option<bool> {
        match self.obj.get(key) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.fail(key, "must be true or false");
                None
            }
        }
    }

    /// A whole number in `lo..=hi`, for lengths, precisions and scales.
    fn count(&mut self, key: &str, lo: u32, hi: u32) -> Option<u32> {
        let value = self.obj.get(key)?;
        match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (lo..=hi).contains(&n) => Some(n),
            _ => {
                self.fail(key, format!("must be a whole number from {lo} to {hi}"));
                None
            }
        }
    }

    fn integer(&mut self, key: &str) -> Option<i64> {
        let value = self.obj.get(key)?;
        let n = value.as_i64();
        if n.is_none() {
            self.fail(key, "must be a 64-bit integer");
        }
        n
    }

    fn float(&mut self, key: &str) -> Option<f64> {
        let value = self.obj.get(key)?;
        let n = value.as_f64();
        if n.is_none() {
            self.fail(key, "must be a number");
        }
        n
    }

    fn number(&mut self, key: &str) -> Option<&'a Number> {
        match self.obj.get(key)? {
            Value::Number(n) => Some(n),
            _ => {
                self.fail(key, "must be a number");
                None
            }
        }
    }
}

fn parse_field(
    raw: &Value,
    at: &Pointer,
    limits: &Limits,
    errors: &mut Vec<FieldError>,
) -> Option<FieldDef> {
    let Some(obj) = raw.as_object() else {
        errors.push(FieldError::at(at, "must be an object"));
        return None;
    };
    let mut r = Reader::new(obj, at, errors);

    let name = r.required_string("name");
    if let Some(problem) = name.and_then(|n| name_problem(n, NameUse::Field)) {
        r.fail("name", problem);
    }
    let type_name = r.required_string("type");
    let field_type = type_name.and_then(|t| {
        let found = FieldType::from_name(t);
        if found.is_none() {
            r.fail(
                "type",
                format!(
                    "unknown type `{t}`; expected one of {}",
                    FIELD_TYPES.join(", ")
                ),
            );
        }
        found
    });
    let required = r.boolean("required").unwrap_or(false);
    let unique = r.boolean("unique").unwrap_or(false);
    let default = match obj.get("default") {
        Some(Value::Null) => {
            r.fail(
                "default",
                "must not be null; leave `default` out for no default",
            );
            None
        }
        other => other,
    };

    for key in obj.keys() {
        if COMMON_KEYS.contains(&key.as_str()) {
            continue;
        }
        let of_some_type = ALL_TYPES
            .iter()
            .any(|t| t.options().contains(&key.as_str()));
        match field_type {
            Some(t) if t.options().contains(&key.as_str()) => {}
            Some(t) if of_some_type => {
                r.fail(
                    key,
                    format!("`{key}` is not an option of {} fields", t.name()),
                );
            }
            // With an unknown type, only keys no type takes can be called wrong.
            None if of_some_type => {}
            _ => r.fail(key, format!("unknown key `{key}`")),
        }
    }

    let kind = field_type.and_then(|t| parse_kind(t, limits, &mut r));
    if let (Some(kind), Some(default)) = (&kind, default) {
        // Measured as stored (serialised JSON), so a default can never make an event or a
        // generated file large whatever its type (a `json` default has no max_length of its own).
        let bytes = serde_json::to_string(default).map_or(usize::MAX, |s| s.len());
        if bytes > limits.default_max_bytes {
            r.fail(
                "default",
                format!(
                    "must be at most {} bytes as JSON, not {bytes}",
                    limits.default_max_bytes
                ),
            );
        } else if let Err(problem) = check_default(kind, default) {
            r.fail("default", problem);
        }
    }
    if unique && matches!(kind, Some(FieldKind::Json)) {
        r.fail("unique", "json fields cannot be unique");
    }

    if r.failed {
        return None;
    }
    Some(FieldDef {
        name: name?.to_owned(),
        kind: kind?,
        required,
        unique,
        default: default.cloned(),
    })
}

/// The type's options, or `None` when any of them is wrong (the default is then not judged).
fn parse_kind(field_type: FieldType, limits: &Limits, r: &mut Reader<'_, '_>) -> Option<FieldKind> {
    let errors_before = r.errors.len();
    let kind = match field_type {
        FieldType::String => {
            let min_length = r.count("min_length", 0, STRING_MAX_LENGTH_LIMIT);
            let max_length = r.count("max_length", 1, STRING_MAX_LENGTH_LIMIT);
            let pattern = r.string("pattern");
            if let Some(Err(problem)) = pattern.map(check_pattern) {
                r.fail("pattern", problem);
            }
            let max_known = max_length.is_some() || !r.has("max_length");
            let max_length = max_length.unwrap_or(STRING_MAX_LENGTH_DEFAULT);
            if let Some(min) = min_length {
                if max_known && min > max_length {
                    r.fail(
                        "min_length",
                        format!("must not exceed max_length ({max_length})"),
                    );
                }
            }
            FieldKind::String {
                min_length,
                max_length,
                pattern: pattern.map(str::to_owned),
            }
        }
        FieldType::Text => FieldKind::Text {
            max_length: r.count(
                "max_length",
                1,
                u32::try_from(limits.text_max_length).unwrap_or(u32::MAX),
            ),
        },
        FieldType::Integer => {
            let min = r.integer("min");
            let max = r.integer("max");
            if let (Some(min), Some(max)) = (min, max) {
                if min > max {
                    r.fail("min", format!("must not exceed max ({max})"));
                }
            }
            FieldKind::Integer { min, max }
        }
        FieldType::Decimal => parse_decimal_kind(r),
        FieldType::Float => {
            let min = r.float("min");
            let max = r.float("max");
            if let (Some(min), Some(max)) = (min, max) {
                if min > max {
                    r.fail("min", format!("must not exceed max ({max})"));
                }
            }
            FieldKind::Float { min, max }
        }
        FieldType::Boolean => FieldKind::Boolean,
        FieldType::Date => FieldKind::Date,
        FieldType::Datetime => FieldKind::Datetime,
        FieldType::Uuid => FieldKind::Uuid,
        FieldType::Json => FieldKind::Json,
        FieldType::Enum => FieldKind::Enum {
            values: parse_enum_values(r).unwrap_or_default(),
        },
        FieldType::Reference => {
            let target = r.required_string("references");
            if let Some(problem) = target.and_then(|t| name_problem(t, NameUse::Entity)) {
                r.fail("references", format!("must name an entity: {problem}"));
            }
            FieldKind::Reference {
                references: target.unwrap_or_default().to_owned(),
            }
        }
    };
    (r.errors.len() == errors_before).then_some(kind)
}

fn parse_decimal_kind(r: &mut Reader<'_, '_>) -> FieldKind {
    let precision_given = r.count("precision", 1, u32::from(DECIMAL_PRECISION_MAX));
    let precision_ok = precision_given.is_some() || !r.has("precision");
    let precision = precision_given.map_or(DECIMAL_PRECISION_DEFAULT, |p| p as u8);
    let scale = match r.count("scale", 0, u32::from(DECIMAL_PRECISION_MAX)) {
        Some(scale) => {
            let scale = scale as u8;
            if precision_ok && scale > precision {
                r.fail("scale", format!("must not exceed precision ({precision})"));
            }
            scale
        }
        // A default of 2 would not fit `precision: 1`; the default shrinks to fit.
        None => DECIMAL_SCALE_DEFAULT.min(precision),
    };
    let min = r.number("min");
    let max = r.number("max");
    let mut bounds = Vec::new();
    for (key, bound) in [("min", min), ("max", max)] {
        let Some(bound) = bound else { continue };
        match DecimalLit::parse(&bound.to_string()) {
            Some(lit) => match lit.fit_problem(precision, scale) {
                Some(problem) => r.fail(key, problem),
                None => bounds.push(lit),
            },
            None => r.fail(key, "must be a decimal number"),
        }
    }
    if let [min_lit, max_lit] = bounds.as_slice() {
        if min_lit > max_lit {
            r.fail(
                "min",
                format!(
                    "must not exceed max ({})",
                    max.map_or_else(String::new, |m| m.to_string())
                ),
            );
        }
    }
    FieldKind::Decimal {
        precision,
        scale,
        min: min.cloned(),
        max: max.cloned(),
    }
}

fn parse_enum_values(r: &mut Reader<'_, '_>) -> Option<Vec<String>> {
    let at = r.at.key("values");
    let items = match r.obj.get("values") {
        None => {
            r.fail("values", "is required");
            return None;
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            r.fail("values", "must be an array of strings");
            return None;
        }
    };
    if items.is_empty() || items.len() > ENUM_VALUES_MAX {
        r.fail(
            "values",
            format!(
                "must hold from 1 to {ENUM_VALUES_MAX} values, not {}",
                items.len()
            ),
        );
    }
    let mut values = Vec::with_capacity(items.len());
    // Distinct ignoring case: a generator may upper-case values into member names.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let Some(value) = item.as_str() else {
            r.errors
                .push(FieldError::at(&at.index(i), "must be a string"));
            r.failed = true;
            continue;
        };
        if let Some(problem) = enum_value_problem(value) {
            r.errors.push(FieldError::at(&at.index(i), problem));
            r.failed = true;
        }
        if let Some(first) = seen.get(&value.to_lowercase()) {
            r.errors.push(FieldError::at(
                &at.index(i),
                format!("repeats value {first} (values are compared ignoring case)"),
            ));
            r.failed = true;
        } else {
            seen.insert(value.to_lowercase(), i);
        }
        values.push(value.to_owned());
    }
    Some(values)
}

fn parse_composite_unique(
    raw: Option<&Value>,
    at: &Pointer,
    schema: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<Vec<String>>> {
    let groups = match raw {
        None => return Some(Vec::new()),
        Some(Value::Array(groups)) => groups,
        Some(_) => {
            errors.push(FieldError::at(
                at,
                "must be an array of arrays of field names",
            ));
            return None;
        }
    };
    // Judged against the raw field list, so a problem elsewhere in a field does not hide this one.
    let declared: HashMap<&str, Option<&str>> = schema
        .get("fields")
        .and_then(Value::as_array)
        .map(|fields| {
            fields
                .iter()
                .filter_map(|f| {
                    let name = f.get("name")?.as_str()?;
                    Some((name, f.get("type").and_then(Value::as_str)))
                })
                .collect()
        })
        .unwrap_or_default();

    let errors_before = errors.len();
    let mut result = Vec::with_capacity(groups.len());
    let mut seen_sets: Vec<(Vec<&str>, usize)> = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let group_at = at.index(g);
        let Some(names) = group.as_array() else {
            errors.push(FieldError::at(&group_at, "must be an array of field names"));
            continue;
        };
        if names.len() < 2 {
            errors.push(FieldError::at(
                &group_at,
                "must name at least two fields; for one field, set its own `unique`",
            ));
        }
        let mut group_names: Vec<&str> = Vec::with_capacity(names.len());
        for (k, name) in names.iter().enumerate() {
            let name_at = group_at.index(k);
            let Some(name) = name.as_str() else {
                errors.push(FieldError::at(&name_at, "must be a field name"));
                continue;
            };
            match declared.get(name) {
                None => errors.push(FieldError::at(
                    &name_at,
                    format!("`{name}` is not a field of this entity"),
                )),
                Some(Some("json")) => errors.push(FieldError::at(
                    &name_at,
                    "json fields cannot be part of a unique constraint",
                )),
                Some(_) => {}
            }
            if group_names.contains(&name) {
                errors.push(FieldError::at(
                    &name_at,
                    format!("`{name}` is listed twice"),
                ));
            }
            group_names.push(name);
        }
        let mut set = group_names.clone();
        set.sort_unstable();
        set.dedup();
        if let Some((_, first)) = seen_sets.iter().find(|(s, _)| *s == set) {
            errors.push(FieldError::at(
                &group_at,
                format!("repeats the constraint at /unique/{first}"),
            ));
        } else {
            seen_sets.push((set, g));
        }
        result.push(group_names.into_iter().map(str::to_owned).collect());
    }
    (errors.len() == errors_before).then_some(result)
}

/// Why `value` is not a valid default for a field of `kind`.
fn check_default(kind: &FieldKind, value: &Value) -> Result<(), String> {
    match kind {
        FieldKind::String {
            min_length,
            max_length,
            pattern,
        } => {
            let s = value.as_str().ok_or("must be a string")?;
            let length = s.chars().count();
            if let Some(min) = min_length {
                if length < *min as usize {
                    return Err(format!("must be at least {min} characters"));
                }
            }
            if length > *max_length as usize {
                return Err(format!("must be at most {max_length} characters"));
            }
            if let Some(pattern) = pattern {
                // The pattern was checked already; an error here cannot happen and would have
                // been reported at `pattern`.
                if let Ok(re) = regex::Regex::new(pattern) {
                    if !re.is_match(s) {
                        return Err(format!("does not match the pattern {pattern}"));
                    }
                }
            }
            Ok(())
        }
        FieldKind::Text { max_length } => {
            let s = value.as_str().ok_or("must be a string")?;
            match max_length {
                Some(max) if s.chars().count() > *max as usize => {
                    Err(format!("must be at most {max} characters"))
                }
                _ => Ok(()),
            }
        }
        FieldKind::Integer { min, max } => {
            let n = value.as_i64().ok_or("must be a 64-bit integer")?;
            in_range(n, *min, *max)
        }
        FieldKind::Decimal {
            precision,
            scale,
            min,
            max,
        } => {
            let n = value.as_number().ok_or("must be a number")?;
            let lit = DecimalLit::parse(&n.to_string()).ok_or("must be a decimal number")?;
            if let Some(problem) = lit.fit_problem(*precision, *scale) {
                return Err(problem);
            }
            let bound =
                |b: &Option<Number>| b.as_ref().and_then(|b| DecimalLit::parse(&b.to_string()));
            if let Some(min_lit) = bound(min) {
                if lit < min_lit {
                    return Err(format!(
                        "must be at least {}",
                        min.as_ref().map_or_else(String::new, Number::to_string)
                    ));
                }
            }
            if let Some(max_lit) = bound(max) {
                if lit > max_lit {
                    return Err(format!(
                        "must be at most {}",
                        max.as_ref().map_or_else(String::new, Number::to_string)
                    ));
                }
            }
            Ok(())
        }
        FieldKind::Float { min, max } => {
            let n = value.as_f64().ok_or("must be a number")?;
            in_range(n, *min, *max)
        }
        FieldKind::Boolean => value
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| "must be true or false".into()),
        FieldKind::Date => {
            let s = value.as_str().ok_or("must be a string")?;
            parse_date(s)
                .map(|_| ())
                .ok_or_else(|| "must be a date written YYYY-MM-DD".into())
        }
        FieldKind::Datetime => {
            let s = value.as_str().ok_or("must be a string")?;
            OffsetDateTime::parse(s, &Rfc3339)
                .map(|_| ())
                .map_err(|_| "must be an RFC 3339 date-time such as 2025-01-31T12:00:00Z".into())
        }
        FieldKind::Uuid => {
            let s = value.as_str().ok_or("must be a string")?;
            // Only the hyphenated form: it is the one every generated target reads back.
            if s.len() == 36 && uuid::Uuid::parse_str(s).is_ok() {
                Ok(())
            } else {
                Err("must be a UUID such as 123e4567-e89b-12d3-a456-426614174000".into())
            }
        }
        FieldKind::Json => Ok(()),
        FieldKind::Enum { values } => {
            let s = value.as_str().ok_or("must be a string")?;
            if values.iter().any(|v| v == s) {
                Ok(())
            } else {
                Err(format!("must be one of the values: {}", values.join(", ")))
            }
        }
        FieldKind::Reference { .. } => Err("reference fields take no default".into()),
    }
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    n: T,
    min: Option<T>,
    max: Option<T>,
) -> Result<(), String> {
    if let Some(min) = min {
        if n < min {
            return Err(format!("must be at least {min}"));
        }
    }
    if let Some(max) = max {
        if n > max {
            return Err(format!("must be at most {max}"));
        }
    }
    Ok(())
}

/// A calendar date written exactly `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    let bytes = s.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    let year: i32 = s[0..4].parse().ok()?;
    let month: u8 = s[5..7].parse().ok()?;
    let day: u8 = s[8..10].parse().ok()?;
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

/// Why `pattern` cannot be used: it must compile with the `regex` crate and use only constructs a
/// generator can sample test data from.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.chars().count() > PATTERN_MAX_CHARS {
        return Err(format!("must be at most {PATTERN_MAX_CHARS} characters"));
    }
    let compiled = regex::RegexBuilder::new(pattern)
        .size_limit(PATTERN_COMPILED_MAX_BYTES)
        .nest_limit(PATTERN_NEST_MAX)
        .build();
    if let Err(regex::Error::CompiledTooBig(_)) = compiled {
        return Err(format!(
            "is too costly: it compiles to more than {} KiB; bound the length with min_length \
             and max_length rather than with large counted repetitions such as {{100}}",
            PATTERN_COMPILED_MAX_BYTES / 1024
        ));
    }
    if let Err(error) = compiled {
        let text = error.to_string();
        // The regex crate draws a caret diagram over several lines; its last line says what is wrong.
        let reason = text
            .lines()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or(&text);
        return Err(format!("is not a valid regular expression: {reason}"));
    }
    let hir = regex_syntax::parse(pattern)
        .map_err(|error| format!("is not a valid regular expression: {error}"))?;
    samplable(&hir)?;
    let steps = expansion(&hir);
    if steps > PATTERN_EXPANSION_MAX {
        return Err(format!(
            "repeats too much: building one matching value takes {steps} steps, at most \
             {PATTERN_EXPANSION_MAX} are allowed; use fewer or smaller nested repetitions"
        ));
    }
    Ok(())
}

/// HIR nodes visited to build one value with every repetition at its minimum count (at least
/// once), saturating: the work the generator's sampler cannot avoid for this pattern.
fn expansion(hir: &Hir) -> u64 {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) | HirKind::Class(_) => 1,
        HirKind::Literal(literal) => 1 + literal.0.len() as u64,
        HirKind::Repetition(repetition) => u64::from(repetition.min.max(1))
            .saturating_mul(expansion(&repetition.sub))
            .saturating_add(1),
        HirKind::Capture(capture) => expansion(&capture.sub).saturating_add(1),
        HirKind::Concat(parts) | HirKind::Alternation(parts) => parts
            .iter()
            .fold(1u64, |sum, part| sum.saturating_add(expansion(part))),
    }
}

/// Only literals, classes, repetitions, alternations, groups and `^`/`$` can be sampled from
/// without a solver; word boundaries and multi-line anchors constrain the context of a match.
fn samplable(hir: &Hir) -> Result<(), String> {
    match hir.kind() {
        HirKind::Empty | HirKind::Literal(_) => Ok(()),
        HirKind::Class(class) => {
            let empty = match class {
                Class::Unicode(c) => c.ranges().is_empty(),
                Class::Bytes(c) => c.ranges().is_empty(),
            };
            if empty {
                Err("contains a character class that matches nothing".into())
            } else {
                Ok(())
            }
        }
        HirKind::Look(Look::Start | Look::End) => Ok(()),
        HirKind::Look(Look::StartLF | Look::EndLF | Look::StartCRLF | Look::EndCRLF) => Err(
            "uses multi-line anchors, which cannot be sampled; use ^ and $ without the m flag"
                .into(),
        ),
        HirKind::Look(_) => {
            Err("uses word boundaries (\\b, \\B, \\< or \\>), which cannot be sampled".into())
        }
        HirKind::Repetition(repetition) => samplable(&repetition.sub),
        HirKind::Capture(capture) => samplable(&capture.sub),
        HirKind::Concat(parts) | HirKind::Alternation(parts) => {
            parts.iter().try_for_each(samplable)
        }
    }
}

/// A decimal literal split into its digits, to check precision and scale and to compare bounds
/// exactly (an `f64` cannot hold 38 digits).
#[derive(Debug, Clone, PartialEq, Eq)]
struct DecimalLit {
    negative: bool,
    /// Integer digits without leading zeros (empty for zero).
    int: String,
    /// Fraction digits without trailing zeros.
    frac: String,
}

impl DecimalLit {
    /// Parses JSON number text: `-12.50`, `1e-7`, `3E+2`.
    fn parse(text: &str) -> Option<Self> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        // JSON numbers stay within a few hundred digits of the point; refuse anything wilder.
        if exponent.abs() > 400 {
            return None;
        }
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int_part.is_empty() || !all_digits(int_part) || !all_digits(frac_part) {
            return None;
        }
        let digits = format!("{int_part}{frac_part}");
        let point = int_part.len() as i64 + exponent;
        let (int, frac) = if point <= 0 {
            (
                String::new(),
                format!("{}{digits}", "0".repeat((-point) as usize)),
            )
        } else if point as usize >= digits.len() {
            let zeros = "0".repeat(point as usize - digits.len());
            (format!("{digits}{zeros}"), String::new())
        } else {
            let (i, f) = digits.split_at(point as usize);
            (i.to_owned(), f.to_owned())
        };
        let int = int.trim_start_matches('0').to_owned();
        let frac = frac.trim_end_matches('0').to_owned();
        let negative = negative && !(int.is_empty() && frac.is_empty());
        Some(Self {
            negative,
            int,
            frac,
        })
    }

    /// Why the value does not fit a `NUMERIC(precision, scale)` column.
    fn fit_problem(&self, precision: u8, scale: u8) -> Option<String> {
        let int_max = usize::from(precision.saturating_sub(scale));
        if self.frac.len() > usize::from(scale) {
            Some(format!("must have at most {scale} decimal places"))
        } else if self.int.len() > int_max {
            Some(format!(
                "must have at most {int_max} digits before the decimal point (precision {precision}, scale {scale})"
            ))
        } else {
            None
        }
    }

    fn cmp_magnitude(&self, other: &Self) -> Ordering {
        // Without leading zeros, a longer integer part is larger; without trailing zeros, fraction
        // digits compare as strings.
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

impl Ord for DecimalLit {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for DecimalLit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    // --- the example of docs/api.md ---

    #[test]
    fn the_api_example_schema_parses() {
        let raw: Value = serde_json::from_str(API_EXAMPLE).unwrap();
        let schema = ok(raw);
        assert_eq!(schema.entity, "order");
        assert_eq!(schema.plural, "orders");
        assert_eq!(schema.fields.len(), 5);
        assert_eq!(
            schema.unique,
            vec![vec!["customer_id".to_owned(), "title".to_owned()]]
        );
        let refs: Vec<_> = schema
            .references()
            .map(|(i, f, t)| (i, f.name.as_str(), t))
            .collect();
        assert_eq!(refs, vec![(4, "customer_id", "customer")]);
    }

    #[test]
    fn the_api_example_is_normalised_with_every_default_filled_in() {
        let schema = ok(serde_json::from_str(API_EXAMPLE).unwrap());
        let expected = json!({"entity": "order", "plural": "orders", "fields": [
            {"name": "title", "type": "string", "max_length": 120, "required": true, "unique": false},
            {"name": "total", "type": "decimal", "precision": 12, "scale": 2, "min": 0, "required": false, "unique": false},
            {"name": "status", "type": "enum", "values": ["new", "paid"], "required": false, "unique": false, "default": "new"},
            {"name": "code", "type": "string", "max_length": 255, "pattern": "^[A-Z]{3}-[0-9]{4}$", "required": false, "unique": true},
            {"name": "customer_id", "type": "reference", "references": "customer", "required": true, "unique": false}
        ], "unique": [["customer_id", "title"]]});
        // Compared as text so the member order of the API shape is checked too.
        assert_eq!(
            serde_json::to_string(&schema).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
    }

    /// A schema using every type and option.
    fn every_type() -> Value {
        json!({"entity": "sample", "fields": [
            {"name": "s", "type": "string", "min_length": 2, "max_length": 20, "pattern": "^(ab|cd)+[x-z]?$", "default": "abx"},
            {"name": "t", "type": "text", "max_length": 5000},
            {"name": "t2", "type": "text"},
            {"name": "i", "type": "integer", "min": -5, "max": 5, "default": 0},
            {"name": "d", "type": "decimal", "min": -1.5, "max": 99.99, "default": 12.5},
            {"name": "f", "type": "float", "min": 0, "max": 1.5, "default": 0.25},
            {"name": "b", "type": "boolean", "default": true},
            {"name": "day", "type": "date", "default": "2024-02-29"},
            {"name": "at", "type": "datetime", "default": "2025-01-31T12:00:00+01:00"},
            {"name": "u", "type": "uuid", "default": "123e4567-e89b-12d3-a456-426614174000"},
            {"name": "j", "type": "json", "default": {"a": [1, 2]}},
            {"name": "e", "type": "enum", "values": ["USD", "eur"], "default": "USD"},
            {"name": "parent_id", "type": "reference", "references": "sample"}
        ], "unique": [["s", "i"], ["b", "day", "u"]]})
    }

    #[test]
    fn parsing_the_normalised_output_gives_the_same_schema() {
        for raw in [serde_json::from_str(API_EXAMPLE).unwrap(), every_type()] {
            let schema = ok(raw);
            let again = ok(serde_json::to_value(&schema).unwrap());
            assert_eq!(again, schema);
        }
    }

    #[test]
    fn the_normalised_output_round_trips_through_serde() {
        let schema = ok(every_type());
        let text = serde_json::to_string(&schema).unwrap();
        let back: EntitySchema = serde_json::from_str(&text).unwrap();
        assert_eq!(back, schema);
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }

    #[test]
    fn every_type_with_every_option_is_accepted() {
        let schema = ok(every_type());
        let types: Vec<_> = schema.fields.iter().map(|f| f.kind.type_name()).collect();
        assert_eq!(
            types,
            [
                "string",
                "text",
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
                "reference"
            ]
        );
        assert_eq!(schema.plural, "samples");
    }

    #[test]
    fn the_type_list_names_every_type_in_order() {
        let names: Vec<_> = ALL_TYPES.iter().map(|t| t.name()).collect();
        assert_eq!(names, FIELD_TYPES);
        assert_eq!(FieldType::from_name("decimal"), Some(FieldType::Decimal));
        assert_eq!(FieldType::from_name("Decimal"), None);
    }

    // --- the schema object ---

    #[test]
    fn a_schema_that_is_not_an_object_is_rejected() {
        one_problem(json!([]), "/schema_definition", "must be an object");
        one_problem(json!("order"), "/schema_definition", "must be an object");
    }

    #[test]
    fn unknown_top_level_keys_are_rejected_each_at_its_pointer() {
        let raw = json!({"entity": "thing", "fields": [{"name": "a", "type": "text"}], "table": "x", "a/b~c": 1});
        assert_eq!(
            pointers(raw),
            ["/schema_definition/table", "/schema_definition/a~1b~0c"]
        );
    }

    #[test]
    fn the_pointer_prefix_is_the_callers() {
        let raw = json!({"entity": "thing", "fields": [{"name": "a", "type": "text"}, {"name": "Bad", "type": "text"}]});
        let at = Pointer::root()
            .key("features")
            .index(3)
            .key("schema_definition");
        let errors = EntitySchema::parse(&raw, &at, &Limits::default()).unwrap_err();
        assert_eq!(
            errors[0].field,
            "/features/3/schema_definition/fields/1/name"
        );
    }

    #[test]
    fn a_schema_without_entity_or_fields_reports_both() {
        let found = problems(json!({}));
        assert_eq!(
            found,
            [
                (
                    "/schema_definition/entity".to_owned(),
                    "is required".to_owned()
                ),
                (
                    "/schema_definition/fields".to_owned(),
                    "is required".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn members_of_the_wrong_json_type_are_rejected() {
        let raw = json!({"entity": 5, "plural": [], "fields": {}, "unique": "a"});
        assert_eq!(
            pointers(raw),
            [
                "/schema_definition/entity",
                "/schema_definition/plural",
                "/schema_definition/fields",
                "/schema_definition/unique"
            ]
        );
    }

    #[test]
    fn every_problem_of_a_schema_is_reported_at_once() {
        let raw = json!({"entity": "Order", "fields": [
            {"name": "id", "type": "string"},
            {"name": "total", "type": "money"},
            {"name": "n", "type": "integer", "min": 5, "max": 1},
            {"name": "n", "type": "boolean", "default": "yes"}
        ], "unique": [["nope", "n"]], "extra": true});
        assert_eq!(
            pointers(raw),
            [
                "/schema_definition/extra",
                "/schema_definition/entity",
                "/schema_definition/fields/0/name",
                "/schema_definition/fields/1/type",
                "/schema_definition/fields/2/min",
                "/schema_definition/fields/3/default",
                "/schema_definition/fields/3/name",
                "/schema_definition/unique/0/0",
            ]
        );
    }

    // --- names ---

    #[test]
    fn entity_names_must_be_lowercase_snake_case() {
        for bad in [
            "Order",
            "1order",
            "order-line",
            "_order",
            "ordér",
            "order line",
        ] {
            one_problem(
                json!({"entity": bad, "fields": [{"name": "a", "type": "text"}]}),
                "/schema_definition/entity",
                "lowercase snake_case",
            );
        }
        one_problem(
            json!({"entity": "", "fields": [{"name": "a", "type": "text"}]}),
            "/schema_definition/entity",
            "must not be empty",
        );
    }

    #[test]
    fn names_may_have_63_characters_but_not_64() {
        let name63 = format!("a{}", "b".repeat(62));
        let field = field_ok(json!({"name": name63, "type": "text"}));
        assert_eq!(field.name.len(), 63);
        field_problem(
            json!({"name": format!("{name63}c"), "type": "text"}),
            "name",
            "at most 63 characters",
        );
    }

    #[test]
    fn trailing_and_double_underscores_and_digits_are_allowed() {
        let schema = ok(
            json!({"entity": "line_item_", "plural": "line__items2", "fields": [{"name": "a__b_", "type": "text"}, {"name": "x1", "type": "text"}]}),
        );
        assert_eq!(schema.plural, "line__items2");
    }

    #[test]
    fn an_sql_reserved_word_is_a_valid_entity_name() {
        for entity in ["order", "user", "group", "table"] {
            assert_eq!(
                ok(json!({"entity": entity, "fields": [{"name": "a", "type": "text"}]})).entity,
                entity
            );
        }
    }

    #[test]
    fn python_words_are_rejected_as_entity_names() {
        one_problem(
            json!({"entity": "class", "fields": [{"name": "a", "type": "text"}]}),
            "/schema_definition/entity",
            "`class` is a Python keyword",
        );
        one_problem(
            json!({"entity": "model_thing", "fields": [{"name": "a", "type": "text"}]}),
            "/schema_definition/entity",
            "reserved by Pydantic",
        );
        one_problem(
            json!({"entity": "registry", "fields": [{"name": "a", "type": "text"}]}),
            "/schema_definition/entity",
            "reserved by SQLAlchemy",
        );
    }

    #[test]
    fn sql_reserved_words_are_rejected_as_field_names() {
        field_problem(
            json!({"name": "order", "type": "text"}),
            "name",
            "`order` is a reserved word of SQL",
        );
        field_problem(json!({"name": "select", "type": "text"}), "name", "SQL");
        field_problem(json!({"name": "limit", "type": "integer"}), "name", "SQL");
    }

    #[test]
    fn python_pydantic_and_sqlalchemy_words_are_rejected_as_field_names() {
        field_problem(
            json!({"name": "import", "type": "text"}),
            "name",
            "Python keyword",
        );
        field_problem(
            json!({"name": "str", "type": "text"}),
            "name",
            "Python builtin",
        );
        field_problem(
            json!({"name": "model_config", "type": "text"}),
            "name",
            "Pydantic",
        );
        field_problem(
            json!({"name": "schema", "type": "text"}),
            "name",
            "Pydantic",
        );
        field_problem(
            json!({"name": "fields", "type": "text"}),
            "name",
            "Pydantic",
        );
        field_problem(
            json!({"name": "metadata", "type": "json"}),
            "name",
            "SQLAlchemy",
        );
        field_problem(
            json!({"name": "query", "type": "text"}),
            "name",
            "SQLAlchemy",
        );
    }

    #[test]
    fn the_implicit_fields_are_reserved() {
        for name in ["id", "created_at", "updated_at"] {
            field_problem(
                json!({"name": name, "type": "text"}),
                "name",
                "implicit field",
            );
        }
    }

    #[test]
    fn common_field_names_like_type_and_date_are_allowed() {
        for name in ["type", "date", "name", "key", "status", "description"] {
            assert_eq!(field_ok(json!({"name": name, "type": "text"})).name, name);
        }
    }

    // --- plurals ---

    #[test]
    fn the_default_plural_follows_the_api_rules() {
        let cases = [
            ("order", "orders"),
            ("bus", "buses"),
            ("box", "boxes"),
            ("quiz", "quizes"),
            ("match", "matches"),
            ("dish", "dishes"),
            ("category", "categories"),
            ("day", "days"),
            ("key", "keys"),
            ("boy", "boys"),
            ("y", "ys"),
            ("sub_y", "sub_ys"),
        ];
        for (entity, plural) in cases {
            assert_eq!(default_plural(entity), plural, "{entity}");
        }
        assert_eq!(
            ok(json!({"entity": "category", "fields": [{"name": "a", "type": "text"}]})).plural,
            "categories"
        );
    }

    #[test]
    fn an_explicit_plural_is_kept() {
        let schema = ok(
            json!({"entity": "person", "plural": "people", "fields": [{"name": "a", "type": "text"}]}),
        );
        assert_eq!(schema.plural, "people");
    }

    #[test]
    fn an_explicit_plural_follows_the_identifier_rules_and_avoids_sql_words() {
        one_problem(
            json!({"entity": "person", "plural": "People", "fields": [{"name": "a", "type": "text"}]}),
            "/schema_definition/plural",
            "lowercase snake_case",
        );
        one_problem(
            json!({"entity": "person", "plural": "select", "fields": [{"name": "a", "type": "text"}]}),
            "/schema_definition/plural",
            "SQL",
        );
    }

    #[test]
    fn a_plural_may_be_a_python_word_because_it_names_only_a_table() {
        assert_eq!(ok(json!({"entity": "thing", "plural": "class", "fields": [{"name": "a", "type": "text"}]})).plural, "class");
    }

    #[test]
    fn a_default_plural_that_is_an_sql_word_asks_for_an_explicit_plural() {
        one_problem(
            json!({"entity": "value", "fields": [{"name": "a", "type": "text"}]}),
            "/schema_definition/plural",
            "the default plural `values` cannot be used",
        );
    }

    #[test]
    fn a_default_plural_longer_than_63_characters_asks_for_an_explicit_plural() {
        let entity = format!("a{}", "b".repeat(61)); // 62 + "s" = 63: fine
        assert_eq!(
            ok(json!({"entity": entity, "fields": [{"name": "a", "type": "text"}]}))
                .plural
                .len(),
            63
        );
        let entity = format!("a{}s", "b".repeat(61)); // 63 + "es" = 65
        one_problem(
            json!({"entity": entity, "fields": [{"name": "a", "type": "text"}]}),
            "/schema_definition/plural",
            "at most 63 characters",
        );
    }

    // --- sizes every consumer can carry ---

    #[test]
    fn a_text_field_may_declare_up_to_a_million_characters() {
        let text = |n: u64| json!({"entity": "thing", "fields": [{"name": "body", "type": "text", "max_length": n}]});
        assert!(EntitySchema::parse(&text(1_000_000), &at(), &Limits::default()).is_ok());
        one_problem(
            text(4_294_967_295),
            "/schema_definition/fields/0/max_length",
            "from 1 to 1000000",
        );
    }

    #[test]
    fn a_default_is_at_most_ten_kibibytes_whatever_its_type() {
        let with_default = |default: Value| json!({"entity": "thing", "fields": [{"name": "blob", "type": "json", "default": default}]});
        assert!(
            EntitySchema::parse(
                &with_default(json!("x".repeat(10_000))),
                &at(),
                &Limits::default()
            )
            .is_ok()
        );
        one_problem(
            with_default(json!("x".repeat(10_240))),
            "/schema_definition/fields/0/default",
            "at most 10240 bytes",
        );
        one_problem(
            json!({"entity": "thing", "fields": [{"name": "t", "type": "text", "default": "x".repeat(20_000)}]}),
            "/schema_definition/fields/0/default",
            "at most 10240 bytes",
        );
    }

    // --- the field list ---

    #[test]
    fn a_schema_needs_at_least_one_field() {
        one_problem(
            json!({"entity": "thing", "fields": []}),
            "/schema_definition/fields",
            "at least one field",
        );
    }

    #[test]
    fn a_schema_may_hold_as_many_fields_as_the_limit_and_no_more() {
        let limits = Limits {
            fields_per_entity: 3,
            ..Limits::default()
        };
        let fields = |n: usize| -> Vec<Value> {
            (0..n)
                .map(|i| json!({"name": format!("f{i}"), "type": "text"}))
                .collect()
        };
        let three = json!({"entity": "thing", "fields": fields(3)});
        assert!(EntitySchema::parse(&three, &at(), &limits).is_ok());
        let four = json!({"entity": "thing", "fields": fields(4)});
        let errors = EntitySchema::parse(&four, &at(), &limits).unwrap_err();
        assert_eq!(
            errors,
            [FieldError::new(
                "/schema_definition/fields",
                "must hold at most 3 fields, not 4"
            )]
        );
    }

    #[test]
    fn the_default_field_limit_is_one_hundred() {
        let fields: Vec<Value> = (0..101)
            .map(|i| json!({"name": format!("f{i}"), "type": "text"}))
            .collect();
        one_problem(
            json!({"entity": "thing", "fields": fields}),
            "/schema_definition/fields",
            "at most 100 fields",
        );
    }

    #[test]
    fn a_duplicate_field_name_is_reported_at_the_later_field() {
        let raw = json!({"entity": "thing", "fields": [
            {"name": "a", "type": "text"}, {"name": "b", "type": "text"}, {"name": "a", "type": "integer"}
        ]});
        assert_eq!(
            problems(raw),
            [(
                "/schema_definition/fields/2/name".to_owned(),
                "duplicate field name `a`: field 0 has it already".to_owned()
            )]
        );
    }

    #[test]
    fn a_field_that_is_not_an_object_is_rejected() {
        field_problem(json!("title"), "", "must be an object");
    }

    #[test]
    fn a_field_needs_a_name_and_a_type() {
        let found = problems(with_field(json!({})));
        assert_eq!(
            found,
            [
                (
                    "/schema_definition/fields/0/name".to_owned(),
                    "is required".to_owned()
                ),
                (
                    "/schema_definition/fields/0/type".to_owned(),
                    "is required".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn an_unknown_type_is_rejected_naming_the_known_ones() {
        field_problem(
            json!({"name": "a", "type": "money"}),
            "type",
            "unknown type `money`; expected one of string, text",
        );
    }

    #[test]
    fn required_and_unique_default_to_false_and_must_be_booleans() {
        let field = field_ok(json!({"name": "a", "type": "text"}));
        assert!(!field.required && !field.unique);
        field_problem(
            json!({"name": "a", "type": "text", "required": "yes"}),
            "required",
            "true or false",
        );
        field_problem(
            json!({"name": "a", "type": "text", "unique": 1}),
            "unique",
            "true or false",
        );
    }

    #[test]
    fn an_option_of_another_type_is_rejected_naming_the_type() {
        field_problem(
            json!({"name": "a", "type": "string", "precision": 5}),
            "precision",
            "`precision` is not an option of string fields",
        );
        field_problem(
            json!({"name": "a", "type": "boolean", "max_length": 5}),
            "max_length",
            "not an option of boolean fields",
        );
        field_problem(
            json!({"name": "a", "type": "text", "min_length": 5}),
            "min_length",
            "not an option of text fields",
        );
    }

    #[test]
    fn an_unknown_field_key_is_rejected() {
        field_problem(
            json!({"name": "a", "type": "string", "nullable": true}),
            "nullable",
            "unknown key `nullable`",
        );
    }

    // --- string and text ---

    #[test]
    fn a_string_defaults_to_255_characters() {
        let field = field_ok(json!({"name": "a", "type": "string"}));
        assert_eq!(
            field.kind,
            FieldKind::String {
                min_length: None,
                max_length: 255,
                pattern: None
            }
        );
    }

    #[test]
    fn a_string_max_length_is_from_1_to_10000() {
        assert!(matches!(
            field_ok(json!({"name": "a", "type": "string", "max_length": 10000})).kind,
            FieldKind::String {
                max_length: 10000,
                ..
            }
        ));
        field_problem(
            json!({"name": "a", "type": "string", "max_length": 10001}),
            "max_length",
            "from 1 to 10000",
        );
        field_problem(
            json!({"name": "a", "type": "string", "max_length": 0}),
            "max_length",
            "from 1 to 10000",
        );
        field_problem(
            json!({"name": "a", "type": "string", "max_length": -3}),
            "max_length",
            "whole number",
        );
        field_problem(
            json!({"name": "a", "type": "string", "max_length": 12.5}),
            "max_length",
            "whole number",
        );
        field_problem(
            json!({"name": "a", "type": "string", "max_length": "120"}),
            "max_length",
            "whole number",
        );
    }

    #[test]
    fn a_min_length_above_the_max_length_is_rejected() {
        field_problem(
            json!({"name": "a", "type": "string", "min_length": 10, "max_length": 5}),
            "min_length",
            "must not exceed max_length (5)",
        );
        // Against the default maximum too.
        field_problem(
            json!({"name": "a", "type": "string", "min_length": 300}),
            "min_length",
            "max_length (255)",
        );
        field_ok(json!({"name": "a", "type": "string", "min_length": 5, "max_length": 5}));
    }

    #[test]
    fn a_text_max_length_is_optional_and_positive() {
        assert_eq!(
            field_ok(json!({"name": "a", "type": "text"})).kind,
            FieldKind::Text { max_length: None }
        );
        field_problem(
            json!({"name": "a", "type": "text", "max_length": 0}),
            "max_length",
            "whole number",
        );
    }

    // --- patterns ---

    #[test]
    fn samplable_patterns_are_accepted() {
        for pattern in [
            "^[A-Z]{3}-[0-9]{4}$",
            "abc",
            "^(foo|bar)+baz?$",
            "[a-z]*x+",
            "\\d{2,}\\w\\s",
            "(?i)hello",
            "\\Aabc\\z",
            ".{1,5}",
        ] {
            assert!(check_pattern(pattern).is_ok(), "{pattern}");
        }
    }

    #[test]
    fn a_pattern_that_does_not_compile_is_rejected_with_the_reason() {
        field_problem(
            json!({"name": "a", "type": "string", "pattern": "[a-"}),
            "pattern",
            "is not a valid regular expression: unclosed character class",
        );
    }

    #[test]
    fn look_around_and_backreferences_are_rejected() {
        field_problem(
            json!({"name": "a", "type": "string", "pattern": "(?=a)b"}),
            "pattern",
            "look-around",
        );
        field_problem(
            json!({"name": "a", "type": "string", "pattern": "(a)\\1"}),
            "pattern",
            "backreferences",
        );
    }

    #[test]
    fn word_boundaries_are_rejected() {
        for pattern in ["\\bword\\b", "a\\Bb", "\\<a\\>"] {
            field_problem(
                json!({"name": "a", "type": "string", "pattern": pattern}),
                "pattern",
                "word boundaries",
            );
        }
    }

    #[test]
    fn multi_line_anchors_are_rejected() {
        field_problem(
            json!({"name": "a", "type": "string", "pattern": "(?m)^a$"}),
            "pattern",
            "multi-line anchors",
        );
    }

    #[test]
    fn a_class_that_matches_nothing_is_rejected() {
        field_problem(
            json!({"name": "a", "type": "string", "pattern": "a[^\\x00-\\x{10FFFF}]"}),
            "pattern",
            "matches nothing",
        );
    }

    #[test]
    fn patterns_too_costly_to_match_or_sample_are_rejected() {
        // Issue 10 (H2): a pattern that compiles large, one that repeats nothing a billion
        // times, and one nested deeper than 32 groups.
        field_problem(
            json!({"name": "a", "type": "string", "pattern": "^\\w{100}$"}),
            "pattern",
            "is too costly: it compiles to more than 1024 KiB",
        );
        field_problem(
            json!({"name": "a", "type": "string", "pattern": "(?:(?:(?:a?){1000}){1000}){1000}x"}),
            "pattern",
            "is too costly",
        );
        // The expansion bound is the sampler's own guard (the compiled size catches this first).
        let bomb = regex_syntax::parse("(?:(?:(?:a?){1000}){1000}){1000}x").unwrap();
        assert!(expansion(&bomb) > PATTERN_EXPANSION_MAX);
        let nested = format!("{}a{}", "(".repeat(40), ")".repeat(40));
        field_problem(
            json!({"name": "a", "type": "string", "pattern": nested}),
            "pattern",
            "nest",
        );
        // Counted nesting that stays small is fine: ten thousand `a`s.
        assert!(check_pattern("^(?:(?:(?:a{10}){10}){10}){10}$").is_ok());
        assert!(check_pattern("^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$").is_ok());
    }

    #[test]
    fn a_pattern_may_have_500_characters_but_not_501() {
        assert!(check_pattern(&"a".repeat(500)).is_ok());
        field_problem(
            json!({"name": "a", "type": "string", "pattern": "a".repeat(501)}),
            "pattern",
            "at most 500 characters",
        );
    }

    // --- numbers ---

    #[test]
    fn integer_bounds_are_64_bit_integers_with_min_not_above_max() {
        let field =
            field_ok(json!({"name": "a", "type": "integer", "min": i64::MIN, "max": i64::MAX}));
        assert_eq!(
            field.kind,
            FieldKind::Integer {
                min: Some(i64::MIN),
                max: Some(i64::MAX)
            }
        );
        field_problem(
            json!({"name": "a", "type": "integer", "min": 1.5}),
            "min",
            "64-bit integer",
        );
        field_problem(
            json!({"name": "a", "type": "integer", "max": u64::MAX}),
            "max",
            "64-bit integer",
        );
        field_problem(
            json!({"name": "a", "type": "integer", "min": 2, "max": 1}),
            "min",
            "must not exceed max (1)",
        );
        field_ok(json!({"name": "a", "type": "integer", "min": 1, "max": 1}));
    }

    #[test]
    fn a_decimal_defaults_to_precision_18_and_scale_2() {
        assert_eq!(
            field_ok(json!({"name": "a", "type": "decimal"})).kind,
            FieldKind::Decimal {
                precision: 18,
                scale: 2,
                min: None,
                max: None
            }
        );
    }

    #[test]
    fn the_default_scale_shrinks_to_fit_a_precision_of_one() {
        assert!(matches!(
            field_ok(json!({"name": "a", "type": "decimal", "precision": 1})).kind,
            FieldKind::Decimal {
                precision: 1,
                scale: 1,
                ..
            }
        ));
    }

    #[test]
    fn a_decimal_precision_is_from_1_to_38() {
        field_ok(json!({"name": "a", "type": "decimal", "precision": 38}));
        field_problem(
            json!({"name": "a", "type": "decimal", "precision": 0}),
            "precision",
            "from 1 to 38",
        );
        field_problem(
            json!({"name": "a", "type": "decimal", "precision": 39}),
            "precision",
            "from 1 to 38",
        );
    }

    #[test]
    fn a_decimal_scale_is_from_0_to_the_precision() {
        field_ok(json!({"name": "a", "type": "decimal", "precision": 5, "scale": 0}));
        field_ok(json!({"name": "a", "type": "decimal", "precision": 5, "scale": 5}));
        field_problem(
            json!({"name": "a", "type": "decimal", "precision": 5, "scale": 6}),
            "scale",
            "must not exceed precision (5)",
        );
        field_problem(
            json!({"name": "a", "type": "decimal", "scale": -1}),
            "scale",
            "whole number",
        );
    }

    #[test]
    fn decimal_bounds_must_fit_the_column_and_be_ordered() {
        field_problem(
            json!({"name": "a", "type": "decimal", "precision": 4, "scale": 2, "max": 100}),
            "max",
            "at most 2 digits before the decimal point",
        );
        field_problem(
            json!({"name": "a", "type": "decimal", "scale": 2, "min": 0.125}),
            "min",
            "at most 2 decimal places",
        );
        field_problem(
            json!({"name": "a", "type": "decimal", "min": 10, "max": 9.99}),
            "min",
            "must not exceed max (9.99)",
        );
        field_problem(
            json!({"name": "a", "type": "decimal", "min": "0"}),
            "min",
            "must be a number",
        );
        field_ok(
            json!({"name": "a", "type": "decimal", "precision": 4, "scale": 2, "min": -99.99, "max": 99.99}),
        );
    }

    #[test]
    fn float_bounds_are_numbers_with_min_not_above_max() {
        field_ok(json!({"name": "a", "type": "float", "min": -1e300, "max": 2.5}));
        field_problem(
            json!({"name": "a", "type": "float", "min": "0"}),
            "min",
            "must be a number",
        );
        field_problem(
            json!({"name": "a", "type": "float", "min": 1.5, "max": 1.25}),
            "min",
            "must not exceed max",
        );
    }

    #[test]
    fn decimal_literals_compare_exactly() {
        let d = |s: &str| DecimalLit::parse(s).unwrap();
        assert!(d("0.5") < d("0.51"));
        assert!(d("0.6") > d("0.51"));
        assert!(d("-1") < d("0"));
        assert!(d("-2") < d("-1.5"));
        assert!(d("10") > d("9.99"));
        assert_eq!(d("1e2"), d("100"));
        assert_eq!(d("1.50"), d("1.5"));
        assert_eq!(d("-0"), d("0"));
        assert_eq!(d("1e-7").frac, "0000001");
        assert!(DecimalLit::parse("abc").is_none());
    }

    // --- enums and references ---

    #[test]
    fn an_enum_needs_between_1_and_100_values() {
        field_problem(
            json!({"name": "a", "type": "enum"}),
            "values",
            "is required",
        );
        field_problem(
            json!({"name": "a", "type": "enum", "values": []}),
            "values",
            "from 1 to 100 values, not 0",
        );
        let many: Vec<String> = (0..101).map(|i| format!("v{i}")).collect();
        field_problem(
            json!({"name": "a", "type": "enum", "values": many}),
            "values",
            "not 101",
        );
        let hundred: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
        field_ok(json!({"name": "a", "type": "enum", "values": hundred}));
        field_problem(
            json!({"name": "a", "type": "enum", "values": "a,b"}),
            "values",
            "array of strings",
        );
    }

    #[test]
    fn enum_values_are_distinct_identifiers() {
        field_problem(
            json!({"name": "a", "type": "enum", "values": ["new", "New"]}),
            "values/1",
            "repeats value 0",
        );
        field_problem(
            json!({"name": "a", "type": "enum", "values": ["new", "in progress"]}),
            "values/1",
            "must be an identifier",
        );
        field_problem(
            json!({"name": "a", "type": "enum", "values": ["ok", 3]}),
            "values/1",
            "must be a string",
        );
        field_problem(
            json!({"name": "a", "type": "enum", "values": ["None", "x"]}),
            "values/0",
            "Python keyword",
        );
        assert!(matches!(
            field_ok(json!({"name": "a", "type": "enum", "values": ["USD", "eur", "select"]})).kind,
            FieldKind::Enum { .. }
        ));
    }

    #[test]
    fn a_reference_names_an_entity() {
        field_problem(
            json!({"name": "a_id", "type": "reference"}),
            "references",
            "is required",
        );
        field_problem(
            json!({"name": "a_id", "type": "reference", "references": "Customer"}),
            "references",
            "must name an entity",
        );
        field_problem(
            json!({"name": "a_id", "type": "reference", "references": 7}),
            "references",
            "must be a string",
        );
    }

    // --- defaults ---

    #[test]
    fn a_required_field_may_have_a_default() {
        let field =
            field_ok(json!({"name": "a", "type": "integer", "required": true, "default": 3}));
        assert!(field.required);
        assert_eq!(field.default, Some(json!(3)));
    }

    #[test]
    fn a_null_default_is_rejected() {
        field_problem(
            json!({"name": "a", "type": "json", "default": null}),
            "default",
            "must not be null",
        );
    }

    #[test]
    fn a_string_default_must_satisfy_lengths_and_pattern() {
        field_problem(
            json!({"name": "a", "type": "string", "max_length": 3, "default": "abcd"}),
            "default",
            "at most 3 characters",
        );
        field_problem(
            json!({"name": "a", "type": "string", "min_length": 2, "default": "a"}),
            "default",
            "at least 2 characters",
        );
        field_problem(
            json!({"name": "a", "type": "string", "pattern": "^[A-Z]{3}$", "default": "abc"}),
            "default",
            "does not match the pattern",
        );
        field_problem(
            json!({"name": "a", "type": "string", "default": 5}),
            "default",
            "must be a string",
        );
        field_ok(json!({"name": "a", "type": "string", "max_length": 3, "default": "ééé"}));
    }

    #[test]
    fn a_text_default_must_fit_its_max_length() {
        field_problem(
            json!({"name": "a", "type": "text", "max_length": 2, "default": "abc"}),
            "default",
            "at most 2 characters",
        );
    }

    #[test]
    fn a_number_default_must_have_the_type_and_range() {
        field_problem(
            json!({"name": "a", "type": "integer", "default": 1.5}),
            "default",
            "64-bit integer",
        );
        field_problem(
            json!({"name": "a", "type": "integer", "min": 0, "default": -1}),
            "default",
            "at least 0",
        );
        field_problem(
            json!({"name": "a", "type": "integer", "max": 10, "default": 11}),
            "default",
            "at most 10",
        );
        field_problem(
            json!({"name": "a", "type": "float", "max": 1, "default": 1.5}),
            "default",
            "at most 1",
        );
        field_problem(
            json!({"name": "a", "type": "float", "default": "1"}),
            "default",
            "must be a number",
        );
    }

    #[test]
    fn a_decimal_default_must_fit_precision_scale_and_range() {
        field_problem(
            json!({"name": "a", "type": "decimal", "scale": 2, "default": 1.005}),
            "default",
            "at most 2 decimal places",
        );
        field_problem(
            json!({"name": "a", "type": "decimal", "precision": 3, "scale": 2, "default": 10}),
            "default",
            "at most 1 digits before",
        );
        field_problem(
            json!({"name": "a", "type": "decimal", "min": 0, "default": -0.5}),
            "default",
            "at least 0",
        );
        field_problem(
            json!({"name": "a", "type": "decimal", "max": 5, "default": 5.01}),
            "default",
            "at most 5",
        );
        field_ok(json!({"name": "a", "type": "decimal", "min": 0, "max": 5, "default": 5}));
    }

    #[test]
    fn boolean_date_datetime_and_uuid_defaults_must_parse() {
        field_problem(
            json!({"name": "a", "type": "boolean", "default": "true"}),
            "default",
            "true or false",
        );
        field_problem(
            json!({"name": "a", "type": "date", "default": "2025-02-30"}),
            "default",
            "YYYY-MM-DD",
        );
        field_problem(
            json!({"name": "a", "type": "date", "default": "2025-2-3"}),
            "default",
            "YYYY-MM-DD",
        );
        field_problem(
            json!({"name": "a", "type": "date", "default": "2025-01-01T00:00:00Z"}),
            "default",
            "YYYY-MM-DD",
        );
        field_problem(
            json!({"name": "a", "type": "datetime", "default": "2025-01-31 12:00"}),
            "default",
            "RFC 3339",
        );
        field_problem(
            json!({"name": "a", "type": "datetime", "default": "2025-01-31T12:00:00"}),
            "default",
            "RFC 3339",
        );
        field_problem(
            json!({"name": "a", "type": "uuid", "default": "nope"}),
            "default",
            "must be a UUID",
        );
        field_problem(
            json!({"name": "a", "type": "uuid", "default": "123e4567e89b12d3a456426614174000"}),
            "default",
            "must be a UUID",
        );
        field_ok(json!({"name": "a", "type": "datetime", "default": "2025-01-31T12:00:00.5Z"}));
    }

    #[test]
    fn an_enum_default_must_be_one_of_its_values() {
        field_problem(
            json!({"name": "a", "type": "enum", "values": ["new", "paid"], "default": "old"}),
            "default",
            "must be one of the values: new, paid",
        );
    }

    #[test]
    fn a_reference_takes_no_default() {
        field_problem(
            json!({"name": "a_id", "type": "reference", "references": "thing", "default": "123e4567-e89b-12d3-a456-426614174000"}),
            "default",
            "reference fields take no default",
        );
    }

    #[test]
    fn a_json_default_may_be_any_value() {
        for default in [json!({}), json!([1]), json!("x"), json!(false), json!(0)] {
            assert_eq!(
                field_ok(json!({"name": "a", "type": "json", "default": default})).default,
                Some(default)
            );
        }
    }

    #[test]
    fn the_default_is_not_judged_while_the_options_are_wrong() {
        // One problem (the option), not a second one about the default.
        field_problem(
            json!({"name": "a", "type": "string", "max_length": 0, "default": "abc"}),
            "max_length",
            "from 1 to 10000",
        );
    }

    #[test]
    fn a_json_field_cannot_be_unique() {
        field_problem(
            json!({"name": "a", "type": "json", "unique": true}),
            "unique",
            "json fields cannot be unique",
        );
    }

    // --- composite unique constraints ---

    fn two_fields_and(unique: Value) -> Value {
        json!({"entity": "thing", "fields": [
            {"name": "a", "type": "text"}, {"name": "b", "type": "integer"}, {"name": "c", "type": "json"}
        ], "unique": unique})
    }

    #[test]
    fn composite_unique_constraints_are_kept_in_order() {
        let schema = ok(two_fields_and(json!([["b", "a"]])));
        assert_eq!(schema.unique, vec![vec!["b".to_owned(), "a".to_owned()]]);
        assert!(ok(two_fields_and(json!([]))).unique.is_empty());
    }

    #[test]
    fn a_composite_unique_needs_two_fields() {
        one_problem(
            two_fields_and(json!([["a"]])),
            "/schema_definition/unique/0",
            "at least two fields",
        );
    }

    #[test]
    fn a_composite_unique_names_existing_distinct_fields() {
        one_problem(
            two_fields_and(json!([["a", "zz"]])),
            "/schema_definition/unique/0/1",
            "`zz` is not a field of this entity",
        );
        one_problem(
            two_fields_and(json!([["a", "id"]])),
            "/schema_definition/unique/0/1",
            "not a field",
        );
        one_problem(
            two_fields_and(json!([["a", "b", "a"]])),
            "/schema_definition/unique/0/2",
            "listed twice",
        );
        one_problem(
            two_fields_and(json!([["a", 1]])),
            "/schema_definition/unique/0/1",
            "must be a field name",
        );
        one_problem(
            two_fields_and(json!([["a", "c"]])),
            "/schema_definition/unique/0/1",
            "json fields cannot be part",
        );
    }

    #[test]
    fn a_repeated_composite_unique_is_rejected_whatever_its_order() {
        one_problem(
            two_fields_and(json!([["a", "b"], ["b", "a"]])),
            "/schema_definition/unique/1",
            "repeats the constraint at /unique/0",
        );
    }

    #[test]
    fn composite_uniques_must_be_arrays_of_names() {
        one_problem(
            two_fields_and(json!(["a"])),
            "/schema_definition/unique/0",
            "must be an array of field names",
        );
        one_problem(
            two_fields_and(json!({"a": "b"})),
            "/schema_definition/unique",
            "arrays of field names",
        );
    }
}
