//! Record bodies checked against their entity's schema — the rules of the generated app's request models — and normalised.
//!
//! A create takes every field: an absent field takes its default, or null when it has none (a
//! required field must be given). A patch takes only the fields it names, one at least: null clears an optional
//! field, while a required or defaulted field refuses null. Unknown members are refused. Values are
//! normalised to one spelling each, the one reads answer and unique keys hash: decimals as strings
//! at the field's scale, date-times in UTC, UUIDs lower-case and hyphenated.

use serde_json::{Map, Number, Value};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::values::{DecimalLit, in_range, parse_date};
use super::{EntitySchema, FieldDef, FieldKind};
use crate::error::{FieldError, Pointer};

/// The shared case table of record validation (`cases/records.json`): entities, and bodies each
/// accepted or refused at exactly a set of pointers, for a create or a patch. The domain's tests,
/// the platform's live records and a generated backend all run it.
pub const RECORD_CASES: &str = include_str!("cases/records.json");

/// A record's values by field name, normalised; a create's holds every field of the schema.
pub type RecordValues = Map<String, Value>;

/// Which write a body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordWrite {
    /// Every field: absent ones take their default or null.
    Create,
    /// Only the fields given: absent ones stay as they are.
    Patch,
}

impl FieldDef {
    /// Whether the field may hold null: neither required nor defaulted (a default makes it NOT NULL).
    pub fn nullable(&self) -> bool {
        !self.required && self.default.is_none()
    }
}

impl EntitySchema {
    /// Checks `body` for `write` and answers its normalised values, or every problem, each pointed
    /// at its member (`/total`) or at `""` when the body is not an object.
    pub fn check_record(
        &self,
        body: &Value,
        write: RecordWrite,
    ) -> Result<RecordValues, Vec<FieldError>> {
        let Some(members) = body.as_object() else {
            return Err(vec![FieldError::new("", "must be a JSON object")]);
        };
        if write == RecordWrite::Patch && members.is_empty() {
            return Err(vec![FieldError::new(
                "",
                "give at least one field to change",
            )]);
        }
        let root = Pointer::root();
        let mut errors = Vec::new();
        for name in members.keys() {
            if self.field(name).is_none() {
                errors.push(FieldError::new(
                    root.key(name).as_str(),
                    format!("`{}` has no field `{name}`", self.entity),
                ));
            }
        }
        let mut values = Map::new();
        for def in &self.fields {
            let at = root.key(&def.name);
            match (members.get(&def.name), write) {
                (None, RecordWrite::Patch) => {}
                (None, RecordWrite::Create) => match &def.default {
                    // Defaults were checked when the schema was written; normalise them too.
                    Some(default) => match normalize(&def.kind, default) {
                        Ok(value) => {
                            values.insert(def.name.clone(), value);
                        }
                        Err(message) => errors.push(FieldError::new(at.as_str(), message)),
                    },
                    None if def.required => {
                        errors.push(FieldError::new(at.as_str(), "is required"));
                    }
                    None => {
                        values.insert(def.name.clone(), Value::Null);
                    }
                },
                (Some(Value::Null), _) if !def.nullable() => {
                    let why = if def.required {
                        "is required and cannot be null"
                    } else {
                        "has a default and cannot be null"
                    };
                    errors.push(FieldError::new(at.as_str(), why));
                }
                (Some(Value::Null), _) => {
                    values.insert(def.name.clone(), Value::Null);
                }
                (Some(value), _) => match normalize(&def.kind, value) {
                    Ok(value) => {
                        values.insert(def.name.clone(), value);
                    }
                    Err(message) => errors.push(FieldError::new(at.as_str(), message)),
                },
            }
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(errors)
        }
    }

    /// `stored` as the current schema shows it, checked and normalised by it: the values a
    /// record's unique keys and references are computed from, the same after any schema change
    /// (a decimal stored at scale 2 reads at the field's new scale). `Err`: the record breaks the
    /// current schema.
    pub fn current_record(&self, stored: &RecordValues) -> Result<RecordValues, Vec<FieldError>> {
        self.check_record(
            &Value::Object(self.present_record(stored)),
            RecordWrite::Create,
        )
    }

    /// `stored` as the current schema shows it: removed fields hidden, fields added since then
    /// null or their default, in the schema's order.
    pub fn present_record(&self, stored: &RecordValues) -> RecordValues {
        self.fields
            .iter()
            .map(|def| {
                let value = match stored.get(&def.name) {
                    Some(value) => value.clone(),
                    None => def
                        .default
                        .as_ref()
                        .and_then(|d| normalize(&def.kind, d).ok())
                        .unwrap_or(Value::Null),
                };
                (def.name.clone(), value)
            })
            .collect()
    }
}

/// Checks one non-null value against its field's type and answers its one spelling.
pub fn normalize(kind: &FieldKind, value: &Value) -> Result<Value, String> {
    match kind {
        FieldKind::String { .. } | FieldKind::Text { .. } | FieldKind::Enum { .. } => {
            super::values::check_default(kind, value)?;
            Ok(value.clone())
        }
        FieldKind::Integer { min, max } => {
            let n = value.as_i64().ok_or("must be a 64-bit integer")?;
            in_range(n, *min, *max)?;
            Ok(value.clone())
        }
        FieldKind::Float { min, max } => {
            let n = value.as_f64().ok_or("must be a number")?;
            in_range(n, *min, *max)?;
            // -0.0 equals 0.0, in SQL and here: one spelling for both.
            let n = if n == 0.0 { 0.0 } else { n };
            Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(|| "must be a finite number".into())
        }
        FieldKind::Decimal {
            precision,
            scale,
            min,
            max,
        } => {
            let text = match value {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => return Err("must be a decimal number or a string holding one".into()),
            };
            let lit = DecimalLit::parse(&text).ok_or("must be a decimal number such as 12.50")?;
            if let Some(problem) = lit.fit_problem(*precision, *scale) {
                return Err(problem);
            }
            let bound =
                |b: &Option<Number>| b.as_ref().and_then(|b| DecimalLit::parse(&b.to_string()));
            if let Some(low) = bound(min) {
                if lit < low {
                    return Err(format!("must be at least {}", number_text(min)));
                }
            }
            if let Some(high) = bound(max) {
                if lit > high {
                    return Err(format!("must be at most {}", number_text(max)));
                }
            }
            Ok(Value::String(lit.at_scale(*scale)))
        }
        FieldKind::Boolean => value
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| "must be true or false".into()),
        FieldKind::Date => {
            let s = value.as_str().ok_or("must be a string")?;
            parse_date(s)
                .map(|_| value.clone())
                .ok_or_else(|| "must be a date written YYYY-MM-DD".into())
        }
        FieldKind::Datetime => {
            let s = value.as_str().ok_or("must be a string")?;
            let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
                "must be an RFC 3339 date-time such as 2025-01-31T12:00:00Z".to_owned()
            })?;
            Ok(Value::String(utc_text(t)))
        }
        FieldKind::Uuid | FieldKind::Reference { .. } => {
            let s = value.as_str().ok_or("must be a string")?;
            uuid::Uuid::parse_str(s)
                .map(|u| Value::String(u.hyphenated().to_string()))
                .map_err(|_| "must be a UUID such as 123e4567-e89b-12d3-a456-426614174000".into())
        }
        FieldKind::Json => Ok(value.clone()),
    }
}

fn number_text(n: &Option<Number>) -> String {
    n.as_ref().map_or_else(String::new, Number::to_string)
}

/// A date-time in UTC to the microsecond (what a `timestamptz` column keeps):
/// `2025-01-31T12:00:00.5Z`, without trailing zeros in the fraction.
pub fn utc_text(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let micros = t.microsecond();
    let mut text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if micros > 0 {
        let fraction = format!("{micros:06}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

impl DecimalLit {
    /// The value written with exactly `scale` fraction digits (`12.3` at scale 2 → `12.30`);
    /// the value fits the scale already.
    pub(super) fn at_scale(&self, scale: u8) -> String {
        let int = if self.int.is_empty() { "0" } else { &self.int };
        let sign = if self.negative { "-" } else { "" };
        if scale == 0 {
            return format!("{sign}{int}");
        }
        let mut frac = self.frac.clone();
        frac.extend(std::iter::repeat_n('0', usize::from(scale) - frac.len()));
        format!("{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::limits::Limits;

    fn schema(raw: Value) -> EntitySchema {
        match EntitySchema::parse(&raw, &Pointer::root(), &Limits::default()) {
            Ok(schema) => schema,
            Err(errors) => panic!("the test's schema is invalid: {errors:?}"),
        }
    }

    fn order() -> EntitySchema {
        schema(json!({
            "entity": "order",
            "fields": [
                {"name": "title", "type": "string", "max_length": 5, "required": true},
                {"name": "total", "type": "decimal", "precision": 6, "scale": 2, "min": 0},
                {"name": "status", "type": "enum", "values": ["new", "paid"], "default": "new"},
                {"name": "at", "type": "datetime"},
                {"name": "ref", "type": "uuid"},
                {"name": "meta", "type": "json"}
            ]
        }))
    }

    fn pointers(result: Result<RecordValues, Vec<FieldError>>) -> Vec<String> {
        match result {
            Ok(values) => panic!("expected problems, got {values:?}"),
            Err(errors) => errors.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn given_a_create_with_only_the_required_field_then_the_others_take_their_default_or_null() {
        let values = order().check_record(&json!({"title": "a"}), RecordWrite::Create);
        assert_eq!(
            values,
            Ok(json!({"title": "a", "total": null, "status": "new", "at": null, "ref": null, "meta": null})
                .as_object()
                .cloned()
                .unwrap_or_default())
        );
    }

    #[test]
    fn given_a_create_without_a_required_field_then_it_is_refused_at_that_field() {
        assert_eq!(
            pointers(order().check_record(&json!({}), RecordWrite::Create)),
            ["/title"]
        );
    }

    #[test]
    fn given_unknown_members_and_wrong_types_then_every_problem_is_reported() {
        let body = json!({"title": 5, "total": "abc", "status": "old", "at": "yesterday",
                          "ref": "x", "extra": 1, "a/b": 2});
        let mut got = pointers(order().check_record(&body, RecordWrite::Create));
        got.sort();
        assert_eq!(
            got,
            [
                "/at", "/a~1b", "/extra", "/ref", "/status", "/title", "/total"
            ]
        );
    }

    #[test]
    fn given_a_patch_then_absent_fields_stay_and_null_clears_only_optional_ones() {
        let s = order();
        assert_eq!(
            s.check_record(&json!({"total": null}), RecordWrite::Patch),
            Ok(json!({"total": null})
                .as_object()
                .cloned()
                .unwrap_or_default())
        );
        let mut got =
            pointers(s.check_record(&json!({"title": null, "status": null}), RecordWrite::Patch));
        got.sort();
        assert_eq!(got, ["/status", "/title"]);
    }

    #[test]
    fn given_decimals_as_numbers_or_strings_then_they_are_written_at_the_fields_scale() {
        let s = order();
        for (given, stored) in [
            (json!(12.3), "12.30"),
            (json!("12.30"), "12.30"),
            (json!(7), "7.00"),
            (json!("0.5"), "0.50"),
            (json!("1e2"), "100.00"),
        ] {
            let values = s.check_record(&json!({"title": "a", "total": given}), RecordWrite::Patch);
            assert_eq!(
                values.ok().and_then(|v| v.get("total").cloned()),
                Some(json!(stored)),
                "{given}"
            );
        }
        for bad in [
            json!("12.345"),
            json!(-1),
            json!("10000"),
            json!(true),
            json!("1,5"),
        ] {
            assert_eq!(
                pointers(s.check_record(&json!({"total": bad}), RecordWrite::Patch)),
                ["/total"],
                "{bad}"
            );
        }
    }

    #[test]
    fn given_date_times_and_uuids_then_they_are_written_in_utc_and_lower_case() {
        let values = order().check_record(
            &json!({"at": "2025-01-31T14:00:00.250+02:00", "ref": "123E4567-E89B-12D3-A456-426614174000"}),
            RecordWrite::Patch,
        );
        assert_eq!(
            values,
            Ok(json!({"at": "2025-01-31T12:00:00.25Z", "ref": "123e4567-e89b-12d3-a456-426614174000"})
                .as_object()
                .cloned()
                .unwrap_or_default())
        );
    }

    #[test]
    fn given_a_body_that_is_not_an_object_then_it_is_refused_as_a_whole() {
        assert_eq!(
            pointers(order().check_record(&json!([1]), RecordWrite::Create)),
            [""]
        );
    }

    #[test]
    fn given_the_shared_case_table_then_every_body_is_accepted_or_refused_at_its_pointers() {
        let table: Value = serde_json::from_str(RECORD_CASES).unwrap_or_default();
        let schemas: Vec<EntitySchema> = table["entities"]
            .as_array()
            .map(|e| e.iter().map(|e| schema(e["schema"].clone())).collect())
            .unwrap_or_default();
        let cases = table["cases"].as_array().cloned().unwrap_or_default();
        assert!(cases.len() > 50, "the table has its cases");
        let mut wrong = Vec::new();
        for case in &cases {
            let Some(s) = schemas.iter().find(|s| s.entity == case["entity"]) else {
                panic!("{case}: no such entity");
            };
            let write = match case["write"].as_str() {
                Some("create") => RecordWrite::Create,
                _ => RecordWrite::Patch,
            };
            let got: Option<Vec<String>> = match s.check_record(&case["body"], write) {
                Ok(_) => None,
                Err(errors) => {
                    let mut pointers: Vec<String> = errors.into_iter().map(|e| e.field).collect();
                    pointers.sort();
                    pointers.dedup();
                    Some(pointers)
                }
            };
            let want: Option<Vec<String>> = serde_json::from_value(case["errors"].clone()).ok();
            if got != want {
                wrong.push(format!("{}: want {want:?}, got {got:?}", case["what"]));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn given_a_decimal_stored_at_an_older_scale_then_its_current_values_are_at_the_new_scale() {
        let stored = json!({"title": "ab", "total": "12.30"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut wider = order();
        if let Some(field) = wider.fields.iter_mut().find(|f| f.name == "total") {
            field.kind = FieldKind::Decimal {
                precision: 8,
                scale: 3,
                min: None,
                max: None,
            };
        }
        let current = wider.current_record(&stored);
        assert_eq!(
            current.ok().and_then(|v| v.get("total").cloned()),
            Some(json!("12.300"))
        );
    }

    #[test]
    fn given_a_record_stored_under_an_older_schema_then_reads_show_it_through_the_current_one() {
        let stored = json!({"title": "a", "gone": 1})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let shown = order().present_record(&stored);
        assert_eq!(
            Value::Object(shown),
            json!({"title": "a", "total": null, "status": "new", "at": null, "ref": null, "meta": null})
        );
    }
}
