//! `tests/test_crud_<entity>.py` of the generated suite: every route of one entity, every rule of
//! its schema (through the API and, for CHECK constraints, against the database directly), the
//! list syntax, PUT and PATCH, and the database's last word on references.

use std::fmt::Write as _;

use domain::crud_schema::{DECIMAL_PRECISION_MAX, FieldDef, FieldKind};
use serde_json::Value;

use super::app::{checks, default_as_json};
use super::plan::{Plan, python_string_expr};
use super::{Lit, imports, py_value, wrap};
use crate::escape::python_str;

/// One `pytest.param(...)` item of a list, laid out as `ruff format` lays it out.
fn param(values: &[String], id: &str) -> String {
    let mut args = values.to_vec();
    args.push(format!("id={}", python_str(id)));
    super::py_call(4, "pytest.param", &args, ",")
}

/// A Python value that breaks the CHECK constraint `suffix` of `def` (see `app::checks`) but
/// fits its column, or `None` when no such value exists.
fn check_violation(def: &FieldDef, suffix: &str) -> Option<String> {
    let run = |n: u64| python_string_expr(&"x".repeat(n as usize));
    match (&def.kind, suffix) {
        (FieldKind::String { min_length, .. }, "min_length") => {
            min_length.map(|m| run(u64::from(m.saturating_sub(1))))
        }
        (FieldKind::String { max_length, .. }, "max_length") => {
            Some(run(u64::from(*max_length) + 1))
        }
        (FieldKind::Text { max_length }, "max_length") => max_length
            .filter(|m| *m <= 1_000_000)
            .map(|m| run(u64::from(m) + 1)),
        (FieldKind::Integer { min, .. }, "min") => {
            min.and_then(|m| m.checked_sub(1)).map(|v| v.to_string())
        }
        (FieldKind::Integer { max, .. }, "max") => {
            max.and_then(|m| m.checked_add(1)).map(|v| v.to_string())
        }
        (
            FieldKind::Decimal {
                precision,
                scale,
                min,
                max,
            },
            "min" | "max",
        ) => {
            let bound = if suffix == "min" { min } else { max }.as_ref()?;
            let step = if suffix == "min" { -1.0 } else { 1.0 };
            let whole = i32::from(*precision) - i32::from(*scale);
            let value = bound.as_f64()? + step;
            // The value must fit numeric(p, s), or PostgreSQL refuses it before the CHECK.
            if whole >= i32::from(DECIMAL_PRECISION_MAX) || value.abs() >= 10f64.powi(whole) {
                return None;
            }
            let op = if suffix == "min" { "-" } else { "+" };
            Some(format!(
                "decimal.Decimal({}) {op} 1",
                python_str(&bound.to_string())
            ))
        }
        (FieldKind::Float { min, .. }, "min") => {
            let m = (*min)?;
            let below = m - m.abs() * 0.5 - 1.0;
            (below.is_finite() && below < m).then(|| format!("{below:?}"))
        }
        (FieldKind::Float { max, .. }, "max") => {
            let m = (*max)?;
            let above = m + m.abs() * 0.5 + 1.0;
            (above.is_finite() && above > m).then(|| format!("{above:?}"))
        }
        (FieldKind::Enum { values }, "values") => {
            let longest = values.iter().map(String::len).max().unwrap_or(1);
            (1..=longest)
                .flat_map(|n| ['x', 'q', 'z', 'y'].map(|c| c.to_string().repeat(n)))
                .find(|candidate| !values.contains(candidate))
                .map(|v| python_str(&v))
        }
        _ => None,
    }
}

/// `tests/test_crud_<entity>.py`.
pub fn entity_tests(plan: &mut Plan<'_>, index: usize) -> String {
    let mut check_cases = String::new();
    let table = plan.entities[index].table();
    for f in 0..plan.entities[index].fields.len() {
        let def = plan.entities[index].fields[f].def;
        for (suffix, _) in checks(def) {
            let name = plan.names.constraint("ck", table, &[&def.name, suffix]);
            if let Some(value) = check_violation(def, suffix) {
                check_cases.push_str(&param(
                    &[python_str(&name), python_str(&def.name), value],
                    &name,
                ));
            }
        }
    }
    let plan = &*plan;
    let entity = &plan.entities[index];
    let mut out = format!(
        "ENTITY = {}\nPATH = {}\nSPEC = data.ENTITIES[ENTITY]\nKINDS = SPEC[\"kinds\"]\n",
        python_str(entity.name()),
        python_str(&entity.path()),
    );

    // The parametrised lists; a list left empty is not emitted, nor is its test.
    let mut invalid = String::new();
    let mut invalid_update = String::new();
    for field in &entity.fields {
        for case in &field.invalid {
            let value = case.python.clone().unwrap_or_else(|| "MISSING".into());
            let types: Vec<String> = case.types.iter().map(|t| python_str(t)).collect();
            let types = match types.len() {
                0 => "()".to_owned(),
                1 => format!("({},)", types[0]),
                _ => format!("({})", types.join(", ")),
            };
            let line = param(
                &[python_str(field.name()), value, types],
                &format!("{}-{}", field.name(), case.label),
            );
            invalid.push_str(&line);
            if case.on_update {
                invalid_update.push_str(&line);
            }
        }
    }
    let mut unique = String::new();
    for field in entity.fields.iter().filter(|f| f.def.unique) {
        unique.push_str(&param(
            &[format!("[{}]", python_str(field.name()))],
            field.name(),
        ));
    }
    for group in &entity.schema.unique {
        let names: Vec<String> = group.iter().map(|f| python_str(f)).collect();
        unique.push_str(&param(
            &[format!("[{}]", names.join(", "))],
            &group.join("+"),
        ));
    }
    let listed = |pred: &dyn Fn(&FieldKind) -> bool| -> Vec<String> {
        entity
            .fields
            .iter()
            .filter(|f| pred(&f.def.kind))
            .map(|f| python_str(f.name()))
            .collect()
    };
    let filters = listed(&|k| !matches!(k, FieldKind::Json));
    let ranged = listed(&|k| {
        matches!(
            k,
            FieldKind::Integer { .. }
                | FieldKind::Decimal { .. }
                | FieldKind::Float { .. }
                | FieldKind::Date
                | FieldKind::Datetime
        )
    });
    let text = listed(&|k| matches!(k, FieldKind::String { .. } | FieldKind::Text { .. }));
    let optional: Vec<String> = entity
        .fields
        .iter()
        .filter(|f| f.nullable() && f.target.is_none())
        .map(|f| python_str(f.name()))
        .collect();
    let mut defaults = String::new();
    for field in &entity.fields {
        if let Some(default) = &field.def.default {
            let expected: Value = default_as_json(field.def, default);
            defaults.push_str(&param(
                &[python_str(field.name()), py_value(&expected)],
                field.name(),
            ));
        }
    }
    let mut references = String::new();
    for field in &entity.fields {
        if let Some(t) = field.target {
            references.push_str(&param(
                &[
                    python_str(field.name()),
                    python_str(plan.entities[t].name()),
                ],
                field.name(),
            ));
        }
    }
    let list = |name: &str, doc: &str, body: &str, out: &mut String| {
        if !body.is_empty() {
            let _ = write!(out, "\n# {doc}\n{name} = [\n{body}]\n");
        }
    };
    let names = |name: &str, doc: &str, items: &[String], out: &mut String| {
        if !items.is_empty() {
            let items = items.iter().map(|item| Lit::atom(item.as_str())).collect();
            let _ = write!(
                out,
                "\n# {doc}\n{}",
                Lit::list(items).render(0, &format!("{name} = "), "")
            );
        }
    };
    list(
        "INVALID",
        "Values that break one rule each: (field, value, accepted error types; empty = any).",
        &invalid,
        &mut out,
    );
    list(
        "INVALID_ON_UPDATE",
        "The same, for a partial update (a missing field is fine there).",
        &invalid_update,
        &mut out,
    );
    list(
        "UNIQUE",
        "Unique fields and composite unique constraints.",
        &unique,
        &mut out,
    );
    list(
        "DEFAULTS",
        "Fields with a default, and that default as the API answers it.",
        &defaults,
        &mut out,
    );
    list(
        "REFERENCES",
        "Reference fields and the entity each points at.",
        &references,
        &mut out,
    );
    list(
        "CHECKS",
        "The table's CHECK constraints: (name, field, a value that breaks it but fits the column).",
        &check_cases,
        &mut out,
    );
    names(
        "FILTERS",
        "Fields the list filters on (every field but json ones).",
        &filters,
        &mut out,
    );
    names(
        "RANGED",
        "Fields the list compares with __gt, __gte, __lt and __lte.",
        &ranged,
        &mut out,
    );
    names(
        "TEXT",
        "Fields the list searches with __contains.",
        &text,
        &mut out,
    );
    names(
        "OPTIONAL",
        "Optional fields that are not references.",
        &optional,
        &mut out,
    );

    out.push_str(ENTITY_TESTS);
    let sections: [(&str, &str); 11] = [
        (&filters.join(""), FILTER_TESTS),
        (&ranged.join(""), RANGE_TEST),
        (&text.join(""), CONTAINS_TEST),
        (&optional.join(""), OPTIONAL_TESTS),
        (&invalid, INVALID_TEST),
        (&invalid_update, INVALID_UPDATE_TEST),
        (&unique, UNIQUE_TESTS),
        (&defaults, DEFAULT_TESTS),
        (&references, REFERENCE_TESTS),
        (&check_cases, CHECK_TEST),
        (if plan.auth.is_empty() { "" } else { "auth" }, AUTH_TESTS),
    ];
    for (present, tests) in sections {
        if !present.is_empty() {
            out.push_str(tests);
        }
    }
    let doc = wrap(
        &format!(
            "Generated tests of the `{}` entity: every route of {} and every rule of its schema.",
            entity.name(),
            entity.path()
        ),
        super::LINE_LENGTH - 3,
    );
    let imports = imports(&out, IMPORTS);
    format!(
        "\"\"\"{doc}\n\n\
         Values come from tests/data.py (valid rows) and from the lists below (one broken rule each),\n\
         all derived from the schema by the generator.\n\"\"\"\n\n{imports}\n{out}"
    )
}

/// Every import a test module of an entity may need, in isort's sections; those it uses stay.
const IMPORTS: &[&[&str]] = &[
    &[
        "import decimal",
        "import importlib",
        "import time",
        "import uuid",
        "from typing import Any",
    ],
    &[
        "import httpx2",
        "import pytest",
        "import sqlalchemy as sa",
        "from fastapi.testclient import TestClient",
        "from sqlalchemy.exc import DataError, IntegrityError",
        "from sqlalchemy.orm import Session",
    ],
    &[
        "from app import crud, models  # noqa: F401  (models registers the tables)",
        "from app.database import Base",
        "from app.errors import ConflictError",
        "from tests import data",
        "from tests.support import MISSING, Api, assert_invalid, assert_problem, instant, query_value, same",
    ],
];

const ENTITY_TESTS: &str = r#"

def _assert_row(body: dict[str, Any], sent: dict[str, Any]) -> None:
    for field, value in sent.items():
        assert same(KINDS[field], body[field], value), (
            f"{field}: sent {value!r}, got {body[field]!r}"
        )


def _change(api: Api) -> dict[str, Any]:
    change = api.payload(ENTITY)
    if not change:
        change = api.optional_references(ENTITY, [f for f, _ in SPEC["optional_references"]])
    return change


def test_create_answers_201_with_the_stored_row_byte_for_byte_as_a_later_get(api: Api) -> None:
    payload = api.payload(ENTITY)
    response = api.client.post(PATH, json=payload)
    assert response.status_code == 201, response.text
    body = response.json()
    _assert_row(body, payload)
    uuid.UUID(body["id"])
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")
    assert response.headers["location"] == f"{PATH}/{body['id']}"
    assert api.client.get(f"{PATH}/{body['id']}").content == response.content


def test_get_answers_the_row(api: Api) -> None:
    row = api.create(ENTITY)
    response = api.client.get(f"{PATH}/{row['id']}")
    assert response.status_code == 200, response.text
    assert response.json() == row


def test_get_of_an_unknown_id_is_a_404_problem(api: Api) -> None:
    assert_problem(api.client.get(f"{PATH}/{uuid.uuid4()}"), 404)


def test_get_of_a_malformed_id_is_a_422_problem(api: Api) -> None:
    assert_problem(api.client.get(f"{PATH}/not-a-uuid"), 422)


def test_list_pages_with_limit_and_offset(api: Api) -> None:
    first = api.create(ENTITY)
    second = api.create(ENTITY)
    response = api.client.get(PATH, params={"limit": 1})
    assert response.status_code == 200, response.text
    page = response.json()
    assert (page["total"], page["limit"], page["offset"]) == (2, 1, 0)
    assert [item["id"] for item in page["items"]] == [first["id"]]
    page = api.client.get(PATH, params={"limit": 1, "offset": 1}).json()
    assert [item["id"] for item in page["items"]] == [second["id"]]
    page = api.client.get(PATH, params={"offset": 2}).json()
    assert page["items"] == [] and page["total"] == 2


def test_list_refuses_a_limit_outside_1_to_200_and_a_negative_offset(api: Api) -> None:
    for params in ({"limit": 0}, {"limit": 201}, {"limit": -1}, {"offset": -1}, {"limit": "x"}):
        assert_problem(api.client.get(PATH, params=params), 422)
    assert api.client.get(PATH, params={"limit": 200}).status_code == 200


def test_list_refuses_an_unknown_filter_operator_or_sort_field(api: Api) -> None:
    for params in (
        {SPEC["unknown_field"]: "1"},
        {"id__near": str(uuid.uuid4())},
        {"sort": SPEC["unknown_field"]},
        {"id": "not-a-uuid"},
        {"created_at__is_null": "maybe"},
    ):
        body = assert_problem(api.client.get(PATH, params=params), 422)
        assert body["errors"][0]["in"] == "query", body


def test_list_sorts_by_created_at_both_ways(api: Api) -> None:
    rows = [api.create(ENTITY), api.create(ENTITY)]
    ids = [row["id"] for row in rows]
    ascending = api.client.get(PATH, params={"sort": "created_at,id"}).json()["items"]
    descending = api.client.get(PATH, params={"sort": "-created_at,-id"}).json()["items"]
    assert [item["id"] for item in ascending] == ids
    assert [item["id"] for item in descending] == ids[::-1]


def test_patch_changes_the_given_fields_and_moves_updated_at(api: Api) -> None:
    row = api.create(ENTITY)
    change = _change(api)
    time.sleep(0.01)
    response = api.client.patch(f"{PATH}/{row['id']}", json=change)
    assert response.status_code == 200, response.text
    body = response.json()
    _assert_row(body, change)
    assert (body["id"], body["created_at"]) == (row["id"], row["created_at"])
    assert instant(body["updated_at"]) > instant(row["updated_at"]), "updated_at did not move"
    assert api.client.get(f"{PATH}/{row['id']}").content == response.content


def test_put_replaces_the_row_and_moves_updated_at(api: Api) -> None:
    row = api.create(ENTITY)
    replacement = api.payload(ENTITY)
    time.sleep(0.01)
    response = api.client.put(f"{PATH}/{row['id']}", json=replacement)
    assert response.status_code == 200, response.text
    body = response.json()
    _assert_row(body, replacement)
    assert instant(body["updated_at"]) > instant(row["updated_at"]), "updated_at did not move"
    assert api.client.get(f"{PATH}/{row['id']}").content == response.content


def test_patch_with_an_empty_body_is_422(api: Api) -> None:
    row = api.create(ENTITY)
    assert_problem(api.client.patch(f"{PATH}/{row['id']}", json={}), 422)


def test_put_and_patch_of_an_unknown_id_are_404(api: Api) -> None:
    change = _change(api)
    assert_problem(api.client.patch(f"{PATH}/{uuid.uuid4()}", json=change), 404)
    assert_problem(api.client.put(f"{PATH}/{uuid.uuid4()}", json=api.payload(ENTITY)), 404)


def test_delete_answers_204_and_the_row_is_gone(api: Api) -> None:
    row = api.create(ENTITY)
    response = api.client.delete(f"{PATH}/{row['id']}")
    assert response.status_code == 204, response.text
    assert api.client.get(f"{PATH}/{row['id']}").status_code == 404
    assert api.client.delete(f"{PATH}/{row['id']}").status_code == 404


def test_create_refuses_an_unknown_field(api: Api) -> None:
    payload = api.payload(ENTITY)
    payload[SPEC["unknown_field"]] = 1
    response = api.client.post(PATH, json=payload)
    assert_invalid(response, SPEC["unknown_field"], ("extra_forbidden",))


def test_a_body_that_is_not_json_is_a_400_problem(api: Api) -> None:
    response = api.client.post(
        PATH, content=b'{"not": json', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400)


def test_a_refused_value_is_not_echoed(api: Api) -> None:
    payload = api.payload(ENTITY)
    payload[SPEC["unknown_field"]] = "an-echo-canary-1234567890"
    response = api.client.post(PATH, json=payload)
    assert response.status_code == 422, response.text
    assert "an-echo-canary" not in response.text
"#;

const FILTER_TESTS: &str = r#"

@pytest.mark.parametrize("field", FILTERS)
def test_list_filters_by_equality_ne_and_in(api: Api, field: str) -> None:
    first = api.create(ENTITY, api.optional_references(ENTITY, [field]))
    second = api.create(ENTITY, api.optional_references(ENTITY, [field], fresh=True))

    def ids(params: dict[str, Any]) -> list[str]:
        response = api.client.get(PATH, params=dict(params, limit=200))
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    differ = not same(KINDS[field], second[field], first[field])
    equal = ids({field: query_value(first[field])})
    assert first["id"] in equal and (second["id"] not in equal) == differ
    others = ids({f"{field}__ne": query_value(first[field])})
    assert first["id"] not in others and (second["id"] in others) == differ
    both = ids({f"{field}__in": f"{query_value(first[field])},{query_value(second[field])}"})
    assert {first["id"], second["id"]} <= set(both)


@pytest.mark.parametrize("field", FILTERS)
def test_list_sorts_by_the_field_both_ways(api: Api, field: str) -> None:
    rows = [
        api.create(ENTITY, api.optional_references(ENTITY, [field], fresh=True)) for _ in range(2)
    ]
    ids = [row["id"] for row in rows]

    def order(sort: str) -> list[str]:
        response = api.client.get(PATH, params={"sort": sort, "limit": 200})
        assert response.status_code == 200, response.text
        return [i["id"] for i in response.json()["items"] if i["id"] in ids]

    ascending, descending = order(field), order(f"-{field}")
    assert sorted(ascending) == sorted(ids)
    if not same(KINDS[field], rows[0][field], rows[1][field]):
        assert ascending == descending[::-1]
"#;

const RANGE_TEST: &str = r#"

@pytest.mark.parametrize("field", RANGED)
def test_list_filters_by_ranges(api: Api, field: str) -> None:
    rows = [api.create(ENTITY) for _ in range(2)]
    if same(KINDS[field], rows[0][field], rows[1][field]) or rows[0][field] is None:
        pytest.skip("the sampled rows share this field's value")
    ordered = sorted(
        rows,
        key=lambda r: (
            decimal.Decimal(str(r[field]))
            if KINDS[field] in ("integer", "decimal", "float")
            else instant(r[field])
            if KINDS[field] == "datetime"
            else r[field]
        ),
    )
    low, high = ordered

    def ids(operator: str, row: dict[str, Any]) -> set[str]:
        response = api.client.get(PATH, params={f"{field}__{operator}": query_value(row[field])})
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    assert ids("gt", low) == {high["id"]}
    assert ids("gte", low) == {low["id"], high["id"]}
    assert ids("lt", high) == {low["id"]}
    assert ids("lte", high) == {low["id"], high["id"]}
"#;

const CONTAINS_TEST: &str = r#"

@pytest.mark.parametrize("field", TEXT)
def test_list_filters_by_contains_case_sensitively(api: Api, field: str) -> None:
    row = api.create(ENTITY)
    value = row[field]
    if not value:
        pytest.skip("the sampled value is empty")
    middle = value[len(value) // 3 : len(value) // 3 + max(1, len(value) // 3)]
    response = api.client.get(PATH, params={f"{field}__contains": middle})
    assert response.status_code == 200, response.text
    assert row["id"] in [item["id"] for item in response.json()["items"]]
    absent = "\u00a7never-in-a-sample\u00a7"
    assert api.client.get(PATH, params={f"{field}__contains": absent}).json()["total"] == 0
"#;

const OPTIONAL_TESTS: &str = r#"

@pytest.mark.parametrize("field", OPTIONAL)
def test_patch_with_null_clears_an_optional_field(api: Api, field: str) -> None:
    row = api.create(ENTITY)
    response = api.client.patch(f"{PATH}/{row['id']}", json={field: None})
    assert response.status_code == 200, response.text
    assert response.json()[field] is None


@pytest.mark.parametrize("field", OPTIONAL)
def test_is_null_filters_an_optional_field(api: Api, field: str) -> None:
    row = api.create(ENTITY)
    cleared = api.create(ENTITY)
    api.client.patch(f"{PATH}/{cleared['id']}", json={field: None})
    nulls = api.client.get(PATH, params={f"{field}__is_null": "true"}).json()["items"]
    assert cleared["id"] in [item["id"] for item in nulls]
    if row[field] is not None:
        values = api.client.get(PATH, params={f"{field}__is_null": "false"}).json()["items"]
        assert [item["id"] for item in values] == [row["id"]]


@pytest.mark.parametrize("field", OPTIONAL)
def test_put_without_an_optional_field_clears_it(api: Api, field: str) -> None:
    row = api.create(ENTITY)
    replacement = api.payload(ENTITY)
    replacement.pop(field, None)
    response = api.client.put(f"{PATH}/{row['id']}", json=replacement)
    assert response.status_code == 200, response.text
    assert response.json()[field] is None
"#;

const INVALID_TEST: &str = r#"

@pytest.mark.parametrize("field, value, types", INVALID)
def test_create_refuses(api: Api, field: str, value: Any, types: tuple[str, ...]) -> None:
    payload = api.payload(ENTITY)
    if value is MISSING:
        payload.pop(field, None)
    else:
        payload[field] = value
    assert_invalid(api.client.post(PATH, json=payload), field, types)
    assert api.client.get(PATH).json()["total"] == 0
"#;

const INVALID_UPDATE_TEST: &str = r#"

@pytest.mark.parametrize("field, value, types", INVALID_ON_UPDATE)
def test_patch_refuses(api: Api, field: str, value: Any, types: tuple[str, ...]) -> None:
    row = api.create(ENTITY)
    assert_invalid(api.client.patch(f"{PATH}/{row['id']}", json={field: value}), field, types)
    assert api.client.get(f"{PATH}/{row['id']}").json() == row
"#;

const UNIQUE_TESTS: &str = r#"

def _conflict(response: httpx2.Response, fields: list[str], other_row: dict[str, Any]) -> None:
    body = assert_problem(response, 409)
    assert sorted(e["field"] for e in body["errors"]) == sorted(f"/{f}" for f in fields)
    # Nothing of the other row: not its id, not its other values.
    assert other_row["id"] not in response.text


@pytest.mark.parametrize("fields", UNIQUE)
def test_create_refuses_a_duplicate_with_409(api: Api, fields: list[str]) -> None:
    first = api.create(ENTITY, api.optional_references(ENTITY, fields))
    payload = api.payload(ENTITY, {field: first[field] for field in fields})
    _conflict(api.client.post(PATH, json=payload), fields, first)


@pytest.mark.parametrize("fields", UNIQUE)
def test_patch_refuses_a_duplicate_with_409(api: Api, fields: list[str]) -> None:
    first = api.create(ENTITY, api.optional_references(ENTITY, fields))
    second = api.create(ENTITY, api.optional_references(ENTITY, fields, fresh=True))
    change = {field: first[field] for field in fields}
    _conflict(api.client.patch(f"{PATH}/{second['id']}", json=change), fields, first)
"#;

const DEFAULT_TESTS: &str = r#"

@pytest.mark.parametrize("field, expected", DEFAULTS)
def test_an_omitted_field_takes_its_default(api: Api, field: str, expected: Any) -> None:
    payload = api.payload(ENTITY)
    payload.pop(field, None)
    response = api.client.post(PATH, json=payload)
    assert response.status_code == 201, response.text
    assert same(KINDS[field], response.json()[field], expected)


@pytest.mark.parametrize("field, expected", DEFAULTS)
def test_an_explicit_null_for_a_defaulted_field_is_refused(
    api: Api, field: str, expected: Any
) -> None:
    payload = dict(api.payload(ENTITY), **{field: None})
    assert_invalid(api.client.post(PATH, json=payload), field, ())


@pytest.mark.parametrize("field, expected", DEFAULTS)
def test_the_database_fills_in_the_default_and_refuses_null(
    api: Api, engine: sa.Engine, field: str, expected: Any
) -> None:
    # The row is stored again without the field, straight into the table: the database's own
    # default fills it in, and the API answers it as the default.
    row = api.create(ENTITY)
    table = Base.metadata.tables[SPEC["table"]]
    key = table.c.id == uuid.UUID(row["id"])
    with engine.begin() as connection:
        stored = dict(connection.execute(sa.select(table).where(key)).mappings().one())
        connection.execute(table.delete().where(key))
        del stored[field]
        connection.execute(table.insert().values(stored))
    answered = api.client.get(f"{PATH}/{row['id']}").json()[field]
    assert same(KINDS[field], answered, expected), f"the database stored {answered!r}"
    with pytest.raises(IntegrityError):
        with engine.begin() as connection:
            connection.execute(table.update().where(key).values({field: None}))
"#;

const REFERENCE_TESTS: &str = r#"

@pytest.mark.parametrize("field, target", REFERENCES)
def test_a_referenced_row_cannot_be_deleted(api: Api, field: str, target: str) -> None:
    parent = api.create(target)
    child = api.create(ENTITY, {field: parent["id"]})
    assert child[field] == parent["id"]
    parent_path = f"{data.ENTITIES[target]['path']}/{parent['id']}"
    assert_problem(api.client.delete(parent_path), 409)
    assert api.client.delete(f"{PATH}/{child['id']}").status_code == 204
    assert api.client.delete(parent_path).status_code == 204


@pytest.mark.parametrize("field, target", REFERENCES)
def test_a_delete_racing_an_insert_of_a_referrer_is_409_on_every_database(
    api: Api, engine: sa.Engine, field: str, target: str
) -> None:
    # The race: the delete's check found no referrer, then one was inserted. The database
    # refuses the delete, and the answer is the same 409 as the check's.
    parent = api.create(target)
    api.create(ENTITY, {field: parent["id"]})
    spec = importlib.import_module(f"app.routers.{target}")._SPEC
    with Session(engine) as session:
        row = session.get(spec.model, uuid.UUID(parent["id"]))
        session.delete(row)
        with pytest.raises(ConflictError):
            crud.commit(session, spec, deleting=True)
    assert api.client.get(f"{data.ENTITIES[target]['path']}/{parent['id']}").status_code == 200
"#;

const CHECK_TEST: &str = r#"

@pytest.mark.parametrize("constraint, field, value", CHECKS)
def test_the_database_enforces_the_check(
    api: Api, engine: sa.Engine, constraint: str, field: str, value: Any
) -> None:
    row = api.create(ENTITY)
    table = Base.metadata.tables[SPEC["table"]]
    statement = table.update().where(table.c.id == uuid.UUID(row["id"])).values({field: value})
    # PostgreSQL's column types refuse some values (a varchar's length) before the CHECK does;
    # SQLite has only the CHECK.
    refused = (IntegrityError,) if engine.dialect.name == "sqlite" else (IntegrityError, DataError)
    with pytest.raises(refused) as caught:
        with engine.begin() as connection:
            connection.execute(statement)
    if isinstance(caught.value, IntegrityError):
        assert constraint in str(caught.value.orig), caught.value
    assert api.client.get(f"{PATH}/{row['id']}").json() == row
"#;

const AUTH_TESTS: &str = r#"

@pytest.mark.parametrize(
    "method, suffix",
    [
        ("GET", ""),
        ("POST", ""),
        ("GET", "/{id}"),
        ("PUT", "/{id}"),
        ("PATCH", "/{id}"),
        ("DELETE", "/{id}"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token"])
def test_every_route_needs_a_valid_token(
    anonymous: TestClient, method: str, suffix: str, authorization: str | None
) -> None:
    path = PATH + suffix.replace("{id}", str(uuid.uuid4()))
    headers = {"Authorization": authorization} if authorization else {}
    body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
    response = anonymous.request(method, path, json=body, headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
"#;
