//! Raw JSON to a normalised [`EntitySchema`], recording every problem at its pointer.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use super::model::{ALL_TYPES, COMMON_KEYS, FieldType, SCHEMA_KEYS};
use super::names::{default_plural, enum_value_problem, name_problem};
use super::pattern::check_pattern;
use super::values::{DecimalLit, check_default};
use super::*;
use crate::error::{FieldError, Pointer};
use crate::limits::Limits;
use crate::reserved::NameUse;

pub(super) fn parse_schema(
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

    let (mut fields, mut unique) = (fields?, unique?);
    // A constraint on one field is that field's own `unique`: stored in that one spelling, so the
    // generator and the live-data checks read a single-field rule from one place.
    unique.retain(|group| match group.as_slice() {
        [name] => {
            if let Some(field) = fields.iter_mut().find(|f| f.name == *name) {
                field.unique = true;
            }
            false
        }
        _ => true,
    });
    Some(EntitySchema {
        entity: entity?,
        plural: plural?,
        fields,
        unique,
    })
}

pub(super) fn parse_fields(
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
pub(super) struct Reader<'a, 'e> {
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

pub(super) fn parse_field(
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
        default: default.cloned().map(Box::new),
    })
}

/// The type's options, or `None` when any of them is wrong (the default is then not judged).
pub(super) fn parse_kind(
    field_type: FieldType,
    limits: &Limits,
    r: &mut Reader<'_, '_>,
) -> Option<FieldKind> {
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

pub(super) fn parse_decimal_kind(r: &mut Reader<'_, '_>) -> FieldKind {
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

pub(super) fn parse_enum_values(r: &mut Reader<'_, '_>) -> Option<Vec<String>> {
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

pub(super) fn parse_composite_unique(
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
        if names.is_empty() {
            errors.push(FieldError::at(&group_at, "must name at least one field"));
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
