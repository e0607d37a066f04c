//! Readers of `rm.records`: one record, and a page of an entity's records filtered and sorted by the list syntax (`domain::crud_schema::RecordQuery`) in SQL over each field's typed value, with keyset cursors.

use deadpool_postgres::GenericClient;
use domain::crud_schema::{EntitySchema, FieldKind, FilterOp, Operand, RecordQuery, RecordValues};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tokio_postgres::types::{Json, ToSql};
use uuid::Uuid;

use crate::tables::{LIVE, RECORDS};

/// A record as the read model holds it.
#[derive(Debug, Clone)]
pub struct RecordRow {
    pub id: Uuid,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub values: RecordValues,
    /// The row's sort-key values as text (`None` for null), for the next page's cursor.
    pub keys: Vec<Option<String>>,
}

/// Where the next page starts: after the row with these sort-key values and id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct After {
    pub keys: Vec<Option<String>>,
    pub id: Uuid,
}

/// One record of the entity (`None`: no such live record).
pub async fn record<C: GenericClient>(
    client: &C,
    project_id: Uuid,
    feature_id: Uuid,
    id: Uuid,
) -> Result<Option<RecordRow>, tokio_postgres::Error> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT id, version, created_at, updated_at, data FROM {LIVE}.{RECORDS}
             WHERE id = $1 AND project_id = $2 AND feature_id = $3"
        ))
        .await?;
    let row = client
        .query_opt(&statement, &[&id, &project_id, &feature_id])
        .await?;
    row.map(|row| read(&row, 0)).transpose()
}

fn read(row: &tokio_postgres::Row, keys: usize) -> Result<RecordRow, tokio_postgres::Error> {
    let Json(values): Json<RecordValues> = row.try_get(4)?;
    let mut sort = Vec::with_capacity(keys);
    for i in 0..keys {
        sort.push(row.try_get::<_, Option<String>>(5 + i)?);
    }
    Ok(RecordRow {
        id: row.try_get(0)?,
        version: row.try_get(1)?,
        created_at: row.try_get(2)?,
        updated_at: row.try_get(3)?,
        values,
        keys: sort,
    })
}

/// The SQL type a field's values are compared and sorted as.
fn sql_type(kind: &FieldKind) -> Option<&'static str> {
    match kind {
        FieldKind::Integer { .. } => Some("bigint"),
        FieldKind::Decimal { .. } => Some("numeric"),
        FieldKind::Float { .. } => Some("float8"),
        FieldKind::Boolean => Some("boolean"),
        FieldKind::Date => Some("date"),
        FieldKind::Datetime => Some("timestamptz"),
        _ => None,
    }
}

/// A statement under construction: its text and its parameters (all sent as text or jsonb).
struct Sql {
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Sql {
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    /// A field's value as the current schema shows it: its stored value, else its default.
    fn field_text(&mut self, schema: &EntitySchema, name: &str) -> String {
        // Field names are checked snake_case identifiers: safe inside a quoted literal.
        let stored = format!("data->'{name}'");
        let value = match schema.field(name).and_then(|f| f.default.clone()) {
            Some(default) => format!("COALESCE({stored}, {}::jsonb)", self.bind(Json(default))),
            None => format!("({stored})"),
        };
        format!("({value} #>> '{{}}')")
    }

    /// The typed expression a filter or sort on `name` uses.
    fn typed(&mut self, schema: &EntitySchema, name: &str) -> (String, Option<&'static str>) {
        match name {
            "created_at" | "updated_at" => (name.to_owned(), Some("timestamptz")),
            "id" => (name.to_owned(), Some("uuid")),
            _ => {
                let text = self.field_text(schema, name);
                let kind = schema.field(name).map(|f| &f.kind);
                match kind.and_then(sql_type) {
                    Some(t) => (format!("({text})::{t}"), Some(t)),
                    None if matches!(
                        kind,
                        Some(
                            FieldKind::String { .. }
                                | FieldKind::Text { .. }
                                | FieldKind::Enum { .. }
                        )
                    ) =>
                    {
                        (format!("({text} COLLATE \"C\")"), None)
                    }
                    None => (text, None),
                }
            }
        }
    }

    fn operand(&mut self, value: &Value, t: Option<&'static str>) -> String {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let p = self.bind(text);
        match t {
            // Sent as text and cast in SQL: a parameter cast straight to `numeric` would make
            // PostgreSQL expect a numeric parameter.
            Some(t) => format!("{p}::text::{t}"),
            None => format!("{p}::text"),
        }
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs a [`list_statement`]: a page of an entity's records.
pub async fn list<C: GenericClient>(
    client: &C,
    statement: &ListStatement,
) -> Result<Vec<RecordRow>, tokio_postgres::Error> {
    let rows = client.query(&statement.sql, &statement.params()).await?;
    rows.iter()
        .map(|row| read(row, statement.sort_keys))
        .collect()
}

/// The statement [`list`] runs and its parameters (the benchmark runs it raw as its baseline).
pub struct ListStatement {
    pub sql: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
    sort_keys: usize,
}

impl ListStatement {
    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref() as _).collect()
    }
}

/// The statement of a page of the entity's records: `limit` rows after `after` (the cursor),
/// filtered and sorted by `query`, the record id as the last tie-break (in the first key's
/// direction); the default order is creation.
pub fn list_statement(
    project_id: Uuid,
    feature_id: Uuid,
    schema: &EntitySchema,
    query: &RecordQuery,
    after: Option<&After>,
    limit: usize,
) -> ListStatement {
    let mut sql = Sql { params: Vec::new() };
    let project = sql.bind(project_id);
    let feature = sql.bind(feature_id);
    let mut conditions = vec![
        format!("project_id = {project}"),
        format!("feature_id = {feature}"),
    ];
    for filter in &query.filters {
        let (expr, t) = sql.typed(schema, &filter.field);
        let condition = match (&filter.op, &filter.operand) {
            (FilterOp::IsNull, Operand::Null(true)) => format!("{expr} IS NULL"),
            (FilterOp::IsNull, _) => format!("{expr} IS NOT NULL"),
            (FilterOp::Contains, Operand::Text(text)) => {
                let p = sql.bind(text.clone());
                format!(
                    "strpos({}, {p}::text) > 0",
                    sql.field_text(schema, &filter.field)
                )
            }
            (FilterOp::In, Operand::Values(values)) => {
                let texts: Vec<String> = values.iter().map(text_of).collect();
                let p = sql.bind(texts);
                let cast = t.map_or_else(|| "text[]".to_owned(), |t| format!("{t}[]"));
                format!("{expr} = ANY({p}::text[]::{cast})")
            }
            (op, Operand::Value(value)) => {
                let v = sql.operand(value, t);
                match op {
                    FilterOp::Ne => format!("({expr} <> {v} OR {expr} IS NULL)"),
                    FilterOp::Gt => format!("{expr} > {v}"),
                    FilterOp::Gte => format!("{expr} >= {v}"),
                    FilterOp::Lt => format!("{expr} < {v}"),
                    FilterOp::Lte => format!("{expr} <= {v}"),
                    _ => format!("{expr} = {v}"),
                }
            }
            // The domain pairs every operator with its operand's shape.
            _ => "false".to_owned(),
        };
        conditions.push(condition);
    }
    let mut keys: Vec<SortKey> = query
        .sort
        .iter()
        .map(|k| {
            let (expr, t) = sql.typed(schema, &k.field);
            SortKey {
                not_null: is_column(&k.field),
                expr,
                t,
                descending: k.descending,
            }
        })
        .collect();
    if keys.is_empty() {
        keys.push(SortKey {
            expr: "created_at".to_owned(),
            t: Some("timestamptz"),
            descending: false,
            not_null: true,
        });
    }
    // The id breaks ties in the first key's direction, so a one-key sort on a column is one walk
    // of the entity's index (`project_id, feature_id, created_at, id`), forwards or backwards.
    let id_descending = keys.first().is_some_and(|k| k.descending);
    if let Some(after) = after {
        conditions.push(after_condition(&mut sql, &keys, id_descending, after));
    }
    let order: Vec<String> = keys
        .iter()
        .map(|k| match (k.descending, k.not_null) {
            (true, true) => format!("{} DESC", k.expr),
            (false, true) => format!("{} ASC", k.expr),
            (true, false) => format!("{} DESC NULLS LAST", k.expr),
            (false, false) => format!("{} ASC NULLS FIRST", k.expr),
        })
        .chain(std::iter::once(
            if id_descending { "id DESC" } else { "id ASC" }.to_owned(),
        ))
        .collect();
    // Named, so an ORDER BY on `created_at` names one output column.
    let key_columns: String = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!(", ({})::text AS bf_sort_key_{i}", k.expr))
        .collect();
    let limit_param = sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    let statement = format!(
        "SELECT id, version, created_at, updated_at, data{key_columns} FROM {LIVE}.{RECORDS}
         WHERE {} ORDER BY {} LIMIT {limit_param}",
        conditions.join(" AND "),
        order.join(", ")
    );
    ListStatement {
        sql: statement,
        params: sql.params,
        sort_keys: keys.len(),
    }
}

/// One key of a list's order: its typed expression, its SQL type, its direction, and whether it
/// is a column that is never null (`id`, `created_at`, `updated_at`).
struct SortKey {
    expr: String,
    t: Option<&'static str>,
    descending: bool,
    not_null: bool,
}

/// The record columns a list can sort on by name, all `NOT NULL`.
fn is_column(name: &str) -> bool {
    matches!(name, "id" | "created_at" | "updated_at")
}

/// "After the cursor's row" in the list's order: a lexicographic comparison over the sort keys
/// (nulls first when ascending, last when descending), then the id in `id_descending`'s
/// direction. Keys that are never null and all run the id's way compare as one row value, which
/// PostgreSQL turns into an index bound: a later page starts where the last one ended instead of
/// filtering every row before it.
fn after_condition(sql: &mut Sql, keys: &[SortKey], id_descending: bool, after: &After) -> String {
    let id = sql.bind(after.id);
    let id_beyond = if id_descending { "<" } else { ">" };
    let values: Vec<Option<String>> = (0..keys.len())
        .map(|i| after.keys.get(i).cloned().flatten())
        .collect();
    if keys
        .iter()
        .zip(&values)
        .all(|(k, v)| k.not_null && k.descending == id_descending && v.is_some())
    {
        let mut left = Vec::new();
        let mut right = Vec::new();
        for (k, v) in keys.iter().zip(values) {
            let p = sql.bind(v.unwrap_or_default());
            left.push(k.expr.clone());
            right.push(format!("{p}::text::{}", k.t.unwrap_or("text")));
        }
        return format!(
            "(({}, id) {id_beyond} ({}, {id}))",
            left.join(", "),
            right.join(", ")
        );
    }
    let mut alternatives = Vec::new();
    let mut equal_before: Vec<String> = Vec::new();
    for (k, value) in keys.iter().zip(values) {
        let expr = &k.expr;
        let cast = k.t.unwrap_or("text");
        let (beyond, equal) = match (&value, k.descending) {
            // Ascending, nulls first: past a null is any value; past a value, a greater one.
            (None, false) => (format!("{expr} IS NOT NULL"), format!("{expr} IS NULL")),
            (Some(v), false) => {
                let p = sql.bind(v.clone());
                (
                    format!("{expr} > {p}::text::{cast}"),
                    format!("{expr} = {p}::text::{cast}"),
                )
            }
            // Descending, nulls last: past a null is nothing; past a value, a smaller one or null.
            (None, true) => ("false".to_owned(), format!("{expr} IS NULL")),
            (Some(v), true) => {
                let p = sql.bind(v.clone());
                (
                    format!("({expr} < {p}::text::{cast} OR {expr} IS NULL)"),
                    format!("{expr} = {p}::text::{cast}"),
                )
            }
        };
        let mut parts = equal_before.clone();
        parts.push(beyond);
        alternatives.push(format!("({})", parts.join(" AND ")));
        equal_before.push(equal);
    }
    let mut parts = equal_before;
    parts.push(format!("id {id_beyond} {id}"));
    alternatives.push(format!("({})", parts.join(" AND ")));
    format!("({})", alternatives.join(" OR "))
}
