//! The list syntax of an entity's records — `f=v`, `f__gt|gte|lt|lte|ne|in|contains|is_null=…`, `sort=f,-g` — checked against its schema, values parsed as the field's type.

use serde_json::Value;

use super::record::normalize;
use super::{EntitySchema, FieldKind};
use crate::error::FieldError;

/// Query parameters a list reads itself: never field filters.
pub const RESERVED_PARAMETERS: [&str; 4] = ["limit", "cursor", "sort", "as_of_version"];

/// How many filters and sort keys one list may take.
pub const FILTERS_MAX: usize = 32;
pub const SORT_KEYS_MAX: usize = 8;
/// How many values one `__in` filter may list.
pub const IN_VALUES_MAX: usize = 100;

/// A filter's operator: the suffix after `__`, or none for equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Contains,
    IsNull,
}

impl FilterOp {
    const SUFFIXED: [(FilterOp, &'static str); 8] = [
        (FilterOp::Ne, "ne"),
        (FilterOp::Gt, "gt"),
        (FilterOp::Gte, "gte"),
        (FilterOp::Lt, "lt"),
        (FilterOp::Lte, "lte"),
        (FilterOp::In, "in"),
        (FilterOp::Contains, "contains"),
        (FilterOp::IsNull, "is_null"),
    ];

    /// The `__` suffix (`""` for equality).
    pub fn suffix(self) -> &'static str {
        Self::SUFFIXED
            .iter()
            .find(|(op, _)| *op == self)
            .map_or("", |(_, s)| s)
    }
}

/// One filter, its operand parsed and normalised like a record's value of the field.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub field: String,
    pub op: FilterOp,
    pub operand: Operand,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// Eq, Ne, Gt, Gte, Lt, Lte: one value of the field's type.
    Value(Value),
    /// In: one value or more.
    Values(Vec<Value>),
    /// Contains: a substring, case-sensitive.
    Text(String),
    /// IsNull: whether the field must be null.
    Null(bool),
}

/// One sort key; a list always ends with the record id as the last, ascending tie-break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: String,
    pub descending: bool,
}

/// A list's filters and order, checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordQuery {
    pub filters: Vec<Filter>,
    pub sort: Vec<SortKey>,
}

/// Truth values as the generated app's filters read them (Pydantic's lax booleans).
fn truth(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
        "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// A query value (always text) as the JSON value a record of the field would hold.
fn operand(kind: &FieldKind, text: &str) -> Result<Value, String> {
    let raw = match kind {
        FieldKind::Integer { .. } => text
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| "must be a 64-bit integer".to_owned())?,
        FieldKind::Float { .. } => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from)
            .ok_or("must be a finite number")?,
        FieldKind::Boolean => Value::Bool(truth(text).ok_or("must be true or false")?),
        _ => Value::String(text.to_owned()),
    };
    // Bounds are the schema's rules for writes, not for filters: `total__gte=-1` is a fair question.
    let unbounded = match kind {
        FieldKind::Integer { .. } => FieldKind::Integer {
            min: None,
            max: None,
        },
        FieldKind::Float { .. } => FieldKind::Float {
            min: None,
            max: None,
        },
        FieldKind::Decimal {
            precision, scale, ..
        } => FieldKind::Decimal {
            precision: *precision,
            scale: *scale,
            min: None,
            max: None,
        },
        FieldKind::String { max_length, .. } => FieldKind::Text {
            max_length: Some(*max_length),
        },
        other => other.clone(),
    };
    normalize(&unbounded, &raw)
}

impl EntitySchema {
    /// Checks a list's query parameters (in their order, repeated names kept) against the schema:
    /// every problem is reported, pointed at the parameter's name. Reserved parameters other than
    /// `sort` are skipped: the list reads them itself.
    pub fn parse_query(&self, pairs: &[(String, String)]) -> Result<RecordQuery, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut query = RecordQuery::default();
        let mut seen: Vec<&str> = Vec::new();
        for (name, text) in pairs {
            if name == "sort" {
                if seen.contains(&"sort") {
                    errors.push(FieldError::new("sort", "is given more than once"));
                } else {
                    seen.push("sort");
                    query.sort = self.parse_sort(text, &mut errors);
                }
                continue;
            }
            if RESERVED_PARAMETERS.contains(&name.as_str()) {
                continue;
            }
            // PostgreSQL's `text` cannot hold U+0000: no stored value has one to match.
            if text.contains('\0') {
                errors.push(FieldError::new(
                    name.as_str(),
                    "must not contain NUL characters",
                ));
                continue;
            }
            let (field, op) = self.split_filter(name);
            let Some(def) = field.and_then(|f| self.field(f)) else {
                let base = name.split("__").next().unwrap_or(name);
                let why = if RESERVED_PARAMETERS.contains(&base) {
                    format!("`{base}` is a reserved parameter: it cannot be filtered on")
                } else {
                    format!("`{name}` is not a filter of `{}`", self.entity)
                };
                errors.push(FieldError::new(name.as_str(), why));
                continue;
            };
            let repeated = seen.contains(&name.as_str());
            if repeated && op != FilterOp::In {
                errors.push(FieldError::new(name.as_str(), "is given more than once"));
                continue;
            }
            match self.filter(def, op, text) {
                Ok(Operand::Values(more)) if repeated => {
                    // A repeated `__in` adds one value per occurrence, commas included.
                    if let Some(Filter {
                        operand: Operand::Values(values),
                        ..
                    }) = query
                        .filters
                        .iter_mut()
                        .find(|f| f.field == def.name && f.op == FilterOp::In)
                    {
                        let joined = if more.len() == 1 {
                            more
                        } else {
                            match operand(&def.kind, text) {
                                Ok(one) => vec![one],
                                Err(message) => {
                                    errors.push(FieldError::new(name.as_str(), message));
                                    continue;
                                }
                            }
                        };
                        values.extend(joined);
                        if values.len() > IN_VALUES_MAX {
                            errors.push(FieldError::new(
                                name.as_str(),
                                format!("lists at most {IN_VALUES_MAX} values"),
                            ));
                        }
                    }
                }
                Ok(operand) => {
                    seen.push(name.as_str());
                    query.filters.push(Filter {
                        field: def.name.clone(),
                        op,
                        operand,
                    });
                }
                Err(message) => {
                    seen.push(name.as_str());
                    errors.push(FieldError::new(name.as_str(), message));
                }
            }
        }
        if query.filters.len() > FILTERS_MAX {
            errors.push(FieldError::new(
                "",
                format!("a list takes at most {FILTERS_MAX} filters"),
            ));
        }
        if errors.is_empty() {
            Ok(query)
        } else {
            Err(errors)
        }
    }

    /// `name` as a field and an operator: a known `__` suffix after a field of the schema, else
    /// the whole name as a field compared for equality (field names may hold `__`).
    fn split_filter<'a>(&self, name: &'a str) -> (Option<&'a str>, FilterOp) {
        for (op, suffix) in FilterOp::SUFFIXED {
            if let Some(field) = name
                .strip_suffix(suffix)
                .and_then(|rest| rest.strip_suffix("__"))
            {
                if self.field(field).is_some() {
                    return (Some(field), op);
                }
            }
        }
        (Some(name), FilterOp::Eq)
    }

    fn filter(&self, def: &super::FieldDef, op: FilterOp, text: &str) -> Result<Operand, String> {
        let name = &def.name;
        let kind = def.kind.type_name();
        match op {
            FilterOp::IsNull => truth(text)
                .map(Operand::Null)
                .ok_or_else(|| "must be true or false".into()),
            _ if matches!(def.kind, FieldKind::Json) => Err(format!(
                "`{name}` is json: only `{name}__is_null` filters it"
            )),
            FilterOp::Eq | FilterOp::Ne => operand(&def.kind, text).map(Operand::Value),
            FilterOp::In => {
                let values = text
                    .split(',')
                    .map(|item| operand(&def.kind, item))
                    .collect::<Result<Vec<_>, _>>()?;
                if values.len() > IN_VALUES_MAX {
                    return Err(format!("lists at most {IN_VALUES_MAX} values"));
                }
                Ok(Operand::Values(values))
            }
            FilterOp::Contains => match def.kind {
                FieldKind::String { .. } | FieldKind::Text { .. } => {
                    Ok(Operand::Text(text.to_owned()))
                }
                _ => Err(format!(
                    "`contains` filters string and text fields, and `{name}` is {kind}"
                )),
            },
            FilterOp::Gt | FilterOp::Gte | FilterOp::Lt | FilterOp::Lte => match def.kind {
                FieldKind::Integer { .. }
                | FieldKind::Decimal { .. }
                | FieldKind::Float { .. }
                | FieldKind::Date
                | FieldKind::Datetime => operand(&def.kind, text).map(Operand::Value),
                _ => Err(format!(
                    "`{}` compares numbers, dates and times, and `{name}` is {kind}",
                    op.suffix()
                )),
            },
        }
    }

    fn parse_sort(&self, text: &str, errors: &mut Vec<FieldError>) -> Vec<SortKey> {
        let mut keys: Vec<SortKey> = Vec::new();
        for part in text.split(',') {
            let (descending, name) = match part.strip_prefix('-') {
                Some(name) => (true, name),
                None => (false, part),
            };
            match self.field(name) {
                Some(def) if matches!(def.kind, FieldKind::Json) => errors.push(FieldError::new(
                    "sort",
                    format!("`{name}` is json: it cannot be sorted on"),
                )),
                Some(_) if keys.iter().any(|k| k.field == name) => {
                    errors.push(FieldError::new("sort", format!("`{name}` is listed twice")))
                }
                Some(_) => keys.push(SortKey {
                    field: name.to_owned(),
                    descending,
                }),
                None if matches!(name, "created_at" | "updated_at" | "id") => keys.push(SortKey {
                    field: name.to_owned(),
                    descending,
                }),
                None => errors.push(FieldError::new(
                    "sort",
                    format!("`{name}` is not a field of `{}`", self.entity),
                )),
            }
        }
        if keys.len() > SORT_KEYS_MAX {
            errors.push(FieldError::new(
                "sort",
                format!("takes at most {SORT_KEYS_MAX} fields"),
            ));
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::Pointer;
    use crate::limits::Limits;

    fn orders() -> EntitySchema {
        let raw = json!({
            "entity": "order",
            "fields": [
                {"name": "status", "type": "enum", "values": ["new", "paid"]},
                {"name": "total", "type": "decimal", "precision": 10, "scale": 2, "min": 0},
                {"name": "note", "type": "string"},
                {"name": "paid", "type": "boolean"},
                {"name": "meta", "type": "json"},
                {"name": "cursor_position", "type": "integer"}
            ]
        });
        match EntitySchema::parse(&raw, &Pointer::root(), &Limits::default()) {
            Ok(schema) => schema,
            Err(errors) => panic!("the test's schema is invalid: {errors:?}"),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn refused(list: &[(&str, &str)]) -> Vec<String> {
        match orders().parse_query(&pairs(list)) {
            Ok(query) => panic!("expected problems, got {query:?}"),
            Err(errors) => errors.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn given_the_benchmark_list_then_filters_and_sort_are_parsed_and_normalised() {
        let query = orders().parse_query(&pairs(&[
            ("status", "paid"),
            ("total__gte", "100"),
            ("sort", "-created_at"),
            ("limit", "50"),
        ]));
        assert_eq!(
            query,
            Ok(RecordQuery {
                filters: vec![
                    Filter {
                        field: "status".into(),
                        op: FilterOp::Eq,
                        operand: Operand::Value(json!("paid")),
                    },
                    Filter {
                        field: "total".into(),
                        op: FilterOp::Gte,
                        operand: Operand::Value(json!("100.00")),
                    },
                ],
                sort: vec![SortKey {
                    field: "created_at".into(),
                    descending: true,
                }],
            })
        );
    }

    #[test]
    fn given_in_once_or_repeated_then_commas_split_only_a_single_occurrence() {
        let query = orders().parse_query(&pairs(&[("note__in", "a,b")]));
        assert_eq!(
            query.map(|q| q.filters[0].operand.clone()),
            Ok(Operand::Values(vec![json!("a"), json!("b")]))
        );
        let query = orders().parse_query(&pairs(&[("note__in", "a,b"), ("note__in", "c")]));
        assert_eq!(
            query.map(|q| q.filters[0].operand.clone()),
            Ok(Operand::Values(vec![json!("a"), json!("b"), json!("c")]))
        );
    }

    #[test]
    fn given_bad_filters_then_each_is_refused_at_its_parameter() {
        assert_eq!(refused(&[("nope", "1")]), ["nope"]);
        assert_eq!(refused(&[("note__like", "x")]), ["note__like"]);
        assert_eq!(refused(&[("total__gt", "abc")]), ["total__gt"]);
        assert_eq!(refused(&[("status__gt", "new")]), ["status__gt"]);
        assert_eq!(refused(&[("total__contains", "1")]), ["total__contains"]);
        assert_eq!(refused(&[("meta", "{}")]), ["meta"]);
        assert_eq!(refused(&[("status", "old")]), ["status"]);
        assert_eq!(refused(&[("paid", "maybe")]), ["paid"]);
        assert_eq!(refused(&[("note", "a"), ("note", "b")]), ["note"]);
    }

    #[test]
    fn given_a_nul_in_a_filter_value_then_it_is_refused_at_its_parameter() {
        assert_eq!(refused(&[("note", "a\0b")]), ["note"]);
        assert_eq!(refused(&[("note__contains", "\0")]), ["note__contains"]);
        assert_eq!(refused(&[("note__in", "x,\0")]), ["note__in"]);
    }

    #[test]
    fn given_a_reserved_parameter_used_as_a_filter_then_it_is_refused() {
        assert_eq!(refused(&[("cursor__ne", "x")]), ["cursor__ne"]);
        assert_eq!(refused(&[("limit__gt", "3")]), ["limit__gt"]);
    }

    #[test]
    fn given_sorts_on_json_unknown_or_repeated_fields_then_they_are_refused() {
        assert_eq!(refused(&[("sort", "meta")]), ["sort"]);
        assert_eq!(refused(&[("sort", "nope")]), ["sort"]);
        assert_eq!(refused(&[("sort", "note,-note")]), ["sort"]);
        assert_eq!(refused(&[("sort", "note"), ("sort", "total")]), ["sort"]);
    }

    #[test]
    fn given_json_then_only_is_null_filters_it() {
        let query = orders().parse_query(&pairs(&[("meta__is_null", "false")]));
        assert_eq!(
            query.map(|q| q.filters[0].operand.clone()),
            Ok(Operand::Null(false))
        );
    }

    #[test]
    fn given_a_field_whose_name_starts_with_a_reserved_word_then_it_is_still_a_filter() {
        assert!(
            orders()
                .parse_query(&pairs(&[("cursor_position__gt", "3")]))
                .is_ok()
        );
    }
}
