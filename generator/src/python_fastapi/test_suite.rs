//! The generated pytest suite: fixtures, the sampled test data, and one module per entity that
//! exercises every route and refuses every value that breaks a rule of the schema.

use std::fmt::Write as _;

use domain::crud_schema::FieldKind;
use serde_json::Value;

use super::app::default_as_json;
use super::plan::{FILES_TABLE, Plan};
use super::py_value;
use crate::escape::python_str;

/// The upload limit the suite runs the app with, so the 413 test stays small.
const TEST_FILE_MAX_BYTES: u64 = 64 * 1024;

pub fn conftest(plan: &Plan<'_>) -> String {
    let auth = !plan.auth.is_empty();
    let files = !plan.files.is_empty();
    let mut out = String::from(
        "\"\"\"Fixtures of the generated suite.\n\n\
         Each run migrates a fresh database with Alembic: SQLite in a temporary directory or, when\n\
         DATABASE_URL names a PostgreSQL database, a new schema in it (dropped at the end). Every\n\
         test starts from empty entity tables.\n\"\"\"\n\n\
         import uuid\n\n\
         import pytest\n\
         import sqlalchemy as sa\n\
         from fastapi.testclient import TestClient\n\n\
         from app.config import Settings\n\
         from app.main import create_app\n\
         from tests import data\n\
         from tests.database import scratch_engine, upgrade\n\
         from tests.support import Api\n",
    );
    if auth {
        out.push_str("\nPASSWORD = \"correct horse battery staple\"\n");
    }
    out.push_str(
        "\n\n@pytest.fixture(scope=\"session\")\n\
         def engine(tmp_path_factory):\n    \
         with scratch_engine(tmp_path_factory.mktemp(\"db\")) as engine:\n        \
         upgrade(engine)\n        \
         yield engine\n\n\n\
         @pytest.fixture(scope=\"session\")\n\
         def app(engine, tmp_path_factory):\n    \
         settings = Settings.from_env().replace(\n",
    );
    if auth {
        out.push_str("        jwt_secret=\"test-secret-that-is-long-enough-for-hs256\",\n");
    }
    if files {
        out.push_str(
            "        file_storage_dir=str(tmp_path_factory.mktemp(\"files\")),\n        \
             file_max_bytes=data.FILE_MAX_BYTES,\n",
        );
    }
    out.push_str("    )\n    return create_app(settings=settings, engine=engine)\n");
    if auth {
        out.push_str(
            "\n\n@pytest.fixture(scope=\"session\")\n\
             def token(app) -> str:\n    \
             \"\"\"An access token of an account that lives for the whole run.\"\"\"\n    \
             credentials = {\"email\": f\"tester-{uuid.uuid4().hex[:8]}@example.com\", \"password\": PASSWORD}\n    \
             with TestClient(app) as client:\n        \
             response = client.post(\"/api/auth/register\", json=credentials)\n        \
             assert response.status_code == 201, response.text\n        \
             response = client.post(\"/api/auth/login\", json=credentials)\n        \
             assert response.status_code == 200, response.text\n        \
             return response.json()[\"access_token\"]\n",
        );
    }
    out.push_str(
        "\n\ndef _empty(engine) -> None:\n    \
         with engine.begin() as connection:\n        \
         for table, column in data.NULLABLE_REFERENCES:\n            \
         connection.execute(sa.text(f'UPDATE \"{table}\" SET \"{column}\" = NULL'))\n        \
         for table in data.DELETE_ORDER:\n            \
         connection.execute(sa.text(f'DELETE FROM \"{table}\"'))\n\n\n\
         @pytest.fixture\n\
         def anonymous(app, engine):\n    \
         \"\"\"A client without credentials, on empty tables.\"\"\"\n    \
         _empty(engine)\n    \
         with TestClient(app) as client:\n        \
         yield client\n\n\n",
    );
    if auth {
        out.push_str(
            "@pytest.fixture\n\
             def client(app, engine, token):\n    \
             \"\"\"A client with a valid bearer token, on empty tables.\"\"\"\n    \
             _empty(engine)\n    \
             with TestClient(app, headers={\"Authorization\": f\"Bearer {token}\"}) as client:\n        \
             yield client\n",
        );
    } else {
        out.push_str(
            "@pytest.fixture\n\
             def client(anonymous):\n    \
             \"\"\"A client on empty tables (the app has no auth feature).\"\"\"\n    \
             return anonymous\n",
        );
    }
    out.push_str(
        "\n\n@pytest.fixture\n\
         def api(client) -> Api:\n    \
         return Api(client)\n",
    );
    out
}

/// `tests/data.py`: the sampled rows of every entity and what the fixtures need to know.
pub fn data(plan: &Plan<'_>) -> String {
    let mut out = String::from(
        "\"\"\"Test data the generator derived from the schema's constraints: for each entity, rows of\n\
         valid values, pairwise distinct on every unique constraint. Regenerate rather than edit.\n\
         \"\"\"\n\nENTITIES = {\n",
    );
    for entity in &plan.entities {
        let _ = write!(
            out,
            "    {}: {{\n        \"path\": {},\n        \"capacity\": {},\n        \"unknown_field\": {},\n        \"kinds\": {{\n",
            python_str(entity.name()),
            python_str(&entity.path()),
            entity.capacity,
            python_str(&entity.unknown_field)
        );
        for field in &entity.fields {
            let _ = writeln!(
                out,
                "            {}: {},",
                python_str(field.name()),
                python_str(field.def.kind.type_name())
            );
        }
        out.push_str("        },\n        \"rows\": [\n");
        for row in &entity.rows {
            let members: Vec<String> = row
                .iter()
                .map(|(k, v)| format!("{}: {}", python_str(k), py_value(v)))
                .collect();
            let _ = writeln!(out, "            {{{}}},", members.join(", "));
        }
        out.push_str("        ],\n        \"required_references\": [\n");
        for field in &entity.fields {
            if let (Some(t), true) = (field.target, field.def.required) {
                let _ = writeln!(
                    out,
                    "            ({}, {}, {}),",
                    python_str(field.name()),
                    python_str(plan.entities[t].name()),
                    if field.fresh_parent { "True" } else { "False" }
                );
            }
        }
        out.push_str("        ],\n        \"optional_references\": [\n");
        for field in &entity.fields {
            if let (Some(t), false) = (field.target, field.def.required) {
                let _ = writeln!(
                    out,
                    "            ({}, {}),",
                    python_str(field.name()),
                    python_str(plan.entities[t].name())
                );
            }
        }
        out.push_str("        ],\n    },\n");
    }
    out.push_str("}\n\n# Children before parents, so deleting every row never breaks a reference.\nDELETE_ORDER = [\n");
    for &i in plan.creation_order.iter().rev() {
        let _ = writeln!(out, "    {},", python_str(plan.entities[i].table()));
    }
    if !plan.files.is_empty() {
        let _ = writeln!(out, "    {},", python_str(FILES_TABLE));
    }
    out.push_str("]\n# Optional references are cleared first: they may form cycles.\nNULLABLE_REFERENCES = [\n");
    for entity in &plan.entities {
        for field in &entity.fields {
            if field.target.is_some() && field.nullable() {
                let _ = writeln!(
                    out,
                    "    ({}, {}),",
                    python_str(entity.table()),
                    python_str(field.name())
                );
            }
        }
    }
    out.push_str("]\n# Every route the app serves, as OpenAPI spells its path.\nPATHS = [\n    \"/health\",\n");
    if !plan.auth.is_empty() {
        out.push_str(
            "    \"/api/auth/register\",\n    \"/api/auth/login\",\n    \"/api/auth/me\",\n",
        );
    }
    if !plan.files.is_empty() {
        out.push_str(
            "    \"/api/files\",\n    \"/api/files/{file_id}\",\n    \"/api/files/{file_id}/content\",\n",
        );
    }
    for entity in &plan.entities {
        let _ = writeln!(
            out,
            "    {},\n    {},",
            python_str(&entity.path()),
            python_str(&format!("{}/{{id}}", entity.path()))
        );
    }
    out.push_str("]\n");
    if !plan.files.is_empty() {
        let _ = writeln!(out, "FILE_MAX_BYTES = {TEST_FILE_MAX_BYTES}");
    }
    out
}

pub fn test_app(_plan: &Plan<'_>) -> String {
    String::from(
        "\"\"\"Generated tests of the application as a whole: health, the OpenAPI document and the\n\
         migration.\"\"\"\n\n\
         import sqlalchemy as sa\n\
         from alembic.autogenerate import compare_metadata\n\
         from alembic.migration import MigrationContext\n\n\
         from app import models, system_models  # noqa: F401  (registers the tables)\n\
         from app.database import Base\n\
         from tests import data\n\
         from tests.database import VERSION_TABLE, downgrade, scratch_engine, upgrade\n\n\n\
         def test_the_migration_creates_exactly_what_the_models_declare(engine):\n    \
         with engine.connect() as connection:\n        \
         context = MigrationContext.configure(connection, opts={\"version_table\": VERSION_TABLE})\n        \
         assert compare_metadata(context, Base.metadata) == []\n\n\n\
         def test_the_migration_downgrades_to_nothing_and_upgrades_again(tmp_path):\n    \
         with scratch_engine(tmp_path) as engine:\n        \
         upgrade(engine)\n        \
         downgrade(engine)\n        \
         assert set(sa.inspect(engine).get_table_names()) <= {VERSION_TABLE}\n        \
         upgrade(engine)\n        \
         assert set(Base.metadata.tables) <= set(sa.inspect(engine).get_table_names())\n\n\n\
         def test_health_answers_200(anonymous):\n    \
         response = anonymous.get(\"/health\")\n    \
         assert response.status_code == 200, response.text\n    \
         assert response.json() == {\"status\": \"ok\"}\n\n\n\
         def test_openapi_lists_every_route(anonymous):\n    \
         response = anonymous.get(\"/openapi.json\")\n    \
         assert response.status_code == 200, response.text\n    \
         paths = response.json()[\"paths\"]\n    \
         missing = [path for path in data.PATHS if path not in paths]\n    \
         assert not missing, f\"not in the OpenAPI document: {missing}\"\n",
    )
}

fn param(values: &[String], id: &str) -> String {
    format!(
        "    pytest.param({}, id={}),\n",
        values.join(", "),
        python_str(id)
    )
}

/// `tests/test_crud_<entity>.py`.
pub fn entity_tests(plan: &Plan<'_>, index: usize) -> String {
    let entity = &plan.entities[index];
    let mut out = format!(
        "\"\"\"Generated tests of the `{name}` entity: every route of {path} and every rule of its schema.\n\n\
         Values come from tests/data.py (valid rows) and from the lists below (one broken rule each),\n\
         all derived from the schema by the generator.\n\"\"\"\n\n\
         import uuid\n\n\
         import pytest\n\n\
         from tests import data\n\
         from tests.support import MISSING, assert_invalid, instant, query_value, same\n\n\
         ENTITY = {entity_lit}\n\
         PATH = {path_lit}\n\
         SPEC = data.ENTITIES[ENTITY]\n\
         KINDS = SPEC[\"kinds\"]\n",
        name = entity.name(),
        path = entity.path(),
        entity_lit = python_str(entity.name()),
        path_lit = python_str(&entity.path()),
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
    let filters: Vec<String> = entity
        .fields
        .iter()
        .filter(|f| !matches!(f.def.kind, FieldKind::Json))
        .map(|f| python_str(f.name()))
        .collect();
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
    if !filters.is_empty() {
        let _ = write!(
            out,
            "\n# Fields the list filters on (every field but json ones).\nFILTERS = [{}]\n",
            filters.join(", ")
        );
    }
    if !optional.is_empty() {
        let _ = write!(
            out,
            "\n# Optional fields that are not references.\nOPTIONAL = [{}]\n",
            optional.join(", ")
        );
    }

    out.push_str(ENTITY_TESTS);
    if !filters.is_empty() {
        out.push_str(FILTER_TEST);
    }
    if !optional.is_empty() {
        out.push_str(OPTIONAL_TEST);
    }
    if !invalid.is_empty() {
        out.push_str(INVALID_TEST);
    }
    if !invalid_update.is_empty() {
        out.push_str(INVALID_UPDATE_TEST);
    }
    if !unique.is_empty() {
        out.push_str(UNIQUE_TESTS);
    }
    if !defaults.is_empty() {
        out.push_str(DEFAULT_TEST);
    }
    if !references.is_empty() {
        out.push_str(REFERENCE_TEST);
    }
    if !plan.auth.is_empty() {
        out.push_str(AUTH_TESTS);
    }
    out
}

const ENTITY_TESTS: &str = r#"

def _assert_row(body, sent):
    for field, value in sent.items():
        assert same(KINDS[field], body[field], value), f"{field}: sent {value!r}, got {body[field]!r}"


def test_create_answers_201_with_the_row_and_its_location(api):
    payload = api.payload(ENTITY)
    response = api.client.post(PATH, json=payload)
    assert response.status_code == 201, response.text
    body = response.json()
    _assert_row(body, payload)
    uuid.UUID(body["id"])
    assert body["created_at"] and body["updated_at"]
    assert response.headers["location"] == f"{PATH}/{body['id']}"


def test_get_answers_the_row(api):
    row = api.create(ENTITY)
    response = api.client.get(f"{PATH}/{row['id']}")
    assert response.status_code == 200, response.text
    assert response.json() == row


def test_get_of_an_unknown_id_is_404(api):
    response = api.client.get(f"{PATH}/{uuid.uuid4()}")
    assert response.status_code == 404, response.text


def test_get_of_a_malformed_id_is_422(api):
    response = api.client.get(f"{PATH}/not-a-uuid")
    assert response.status_code == 422, response.text


def test_list_pages_with_limit_and_offset(api):
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


def test_list_refuses_a_limit_outside_1_to_200_and_a_negative_offset(api):
    for params in ({"limit": 0}, {"limit": 201}, {"limit": -1}, {"offset": -1}):
        response = api.client.get(PATH, params=params)
        assert response.status_code == 422, (params, response.text)
    assert api.client.get(PATH, params={"limit": 200}).status_code == 200


def test_update_changes_the_given_fields(api):
    row = api.create(ENTITY)
    change = api.payload(ENTITY)
    if not change:
        change = api.optional_references(ENTITY, [f for f, _ in SPEC["optional_references"]])
    response = api.client.put(f"{PATH}/{row['id']}", json=change)
    assert response.status_code == 200, response.text
    body = response.json()
    _assert_row(body, change)
    assert (body["id"], body["created_at"]) == (row["id"], row["created_at"])
    assert instant(body["updated_at"]) >= instant(row["updated_at"])
    assert api.client.get(f"{PATH}/{row['id']}").json() == body


def test_update_with_an_empty_body_is_422(api):
    row = api.create(ENTITY)
    response = api.client.put(f"{PATH}/{row['id']}", json={})
    assert response.status_code == 422, response.text


def test_update_of_an_unknown_id_is_404(api):
    change = api.payload(ENTITY)
    if not change:
        change = api.optional_references(ENTITY, [f for f, _ in SPEC["optional_references"]])
    response = api.client.put(f"{PATH}/{uuid.uuid4()}", json=change)
    assert response.status_code == 404, response.text


def test_delete_answers_204_and_the_row_is_gone(api):
    row = api.create(ENTITY)
    response = api.client.delete(f"{PATH}/{row['id']}")
    assert response.status_code == 204, response.text
    assert api.client.get(f"{PATH}/{row['id']}").status_code == 404
    assert api.client.delete(f"{PATH}/{row['id']}").status_code == 404


def test_create_refuses_an_unknown_field(api):
    payload = api.payload(ENTITY)
    payload[SPEC["unknown_field"]] = 1
    response = api.client.post(PATH, json=payload)
    assert_invalid(response, SPEC["unknown_field"], ("extra_forbidden",))
"#;

const FILTER_TEST: &str = r#"

@pytest.mark.parametrize("field", FILTERS)
def test_list_filters_by_equality(api, field):
    first = api.create(ENTITY, api.optional_references(ENTITY, [field]))
    second = api.create(ENTITY, api.optional_references(ENTITY, [field], fresh=True))
    response = api.client.get(PATH, params={field: query_value(first[field]), "limit": 200})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    ids = [item["id"] for item in items]
    assert first["id"] in ids
    assert all(same(KINDS[field], item[field], first[field]) for item in items), items
    if not same(KINDS[field], second[field], first[field]):
        assert second["id"] not in ids
"#;

const OPTIONAL_TEST: &str = r#"

@pytest.mark.parametrize("field", OPTIONAL)
def test_update_with_null_clears_an_optional_field(api, field):
    row = api.create(ENTITY)
    response = api.client.put(f"{PATH}/{row['id']}", json={field: None})
    assert response.status_code == 200, response.text
    assert response.json()[field] is None
"#;

const INVALID_TEST: &str = r#"

@pytest.mark.parametrize("field, value, types", INVALID)
def test_create_refuses(api, field, value, types):
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
def test_update_refuses(api, field, value, types):
    row = api.create(ENTITY)
    assert_invalid(api.client.put(f"{PATH}/{row['id']}", json={field: value}), field, types)
    assert api.client.get(f"{PATH}/{row['id']}").json() == row
"#;

const UNIQUE_TESTS: &str = r#"

@pytest.mark.parametrize("fields", UNIQUE)
def test_create_refuses_a_duplicate_with_409(api, fields):
    first = api.create(ENTITY, api.optional_references(ENTITY, fields))
    payload = api.payload(ENTITY, {field: first[field] for field in fields})
    response = api.client.post(PATH, json=payload)
    assert response.status_code == 409, response.text
    assert sorted(response.json()["fields"]) == sorted(fields)


@pytest.mark.parametrize("fields", UNIQUE)
def test_update_refuses_a_duplicate_with_409(api, fields):
    first = api.create(ENTITY, api.optional_references(ENTITY, fields))
    second = api.create(ENTITY, api.optional_references(ENTITY, fields, fresh=True))
    change = {field: first[field] for field in fields}
    response = api.client.put(f"{PATH}/{second['id']}", json=change)
    assert response.status_code == 409, response.text
    assert sorted(response.json()["fields"]) == sorted(fields)
"#;

const DEFAULT_TEST: &str = r#"

@pytest.mark.parametrize("field, expected", DEFAULTS)
def test_an_omitted_field_takes_its_default(api, field, expected):
    payload = api.payload(ENTITY)
    payload.pop(field, None)
    response = api.client.post(PATH, json=payload)
    assert response.status_code == 201, response.text
    assert same(KINDS[field], response.json()[field], expected)
"#;

const REFERENCE_TEST: &str = r#"

@pytest.mark.parametrize("field, target", REFERENCES)
def test_a_referenced_row_cannot_be_deleted(api, field, target):
    parent = api.create(target)
    child = api.create(ENTITY, {field: parent["id"]})
    assert child[field] == parent["id"]
    parent_path = f"{data.ENTITIES[target]['path']}/{parent['id']}"
    response = api.client.delete(parent_path)
    assert response.status_code == 409, response.text
    assert api.client.delete(f"{PATH}/{child['id']}").status_code == 204
    assert api.client.delete(parent_path).status_code == 204
"#;

const AUTH_TESTS: &str = r#"

@pytest.mark.parametrize(
    "method, suffix",
    [("GET", ""), ("POST", ""), ("GET", "/{id}"), ("PUT", "/{id}"), ("DELETE", "/{id}")],
)
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token"])
def test_every_route_needs_a_valid_token(anonymous, method, suffix, authorization):
    path = PATH + suffix.replace("{id}", str(uuid.uuid4()))
    headers = {"Authorization": authorization} if authorization else {}
    body = {} if method in ("POST", "PUT") else None
    response = anonymous.request(method, path, json=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
"#;

/// `tests/test_files.py`.
pub fn test_files(plan: &Plan<'_>) -> String {
    let mut out = String::from(TEST_FILES);
    if !plan.auth.is_empty() {
        out.push_str(TEST_FILES_AUTH);
    }
    out
}

const TEST_FILES: &str = r#""""Generated tests of file storage: upload, list, metadata, download and delete under /api/files."""

import hashlib
import uuid

from tests import data

CONTENT = b"hello, files\n"


def _upload(client, content=CONTENT, content_type="text/plain", name="hello.txt"):
    return client.post("/api/files", files={"file": (name, content, content_type)})


def test_upload_answers_201_with_the_metadata(client):
    response = _upload(client)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["filename"] == "hello.txt"
    assert body["content_type"] == "text/plain"
    assert body["size_bytes"] == len(CONTENT)
    assert body["sha256"] == hashlib.sha256(CONTENT).hexdigest()
    uuid.UUID(body["id"])


def test_download_answers_the_bytes_as_an_attachment(client):
    file_id = _upload(client).json()["id"]
    response = client.get(f"/api/files/{file_id}/content")
    assert response.status_code == 200, response.text
    assert response.content == CONTENT
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["x-content-type-options"] == "nosniff"


def test_metadata_and_list_show_the_file(client):
    uploaded = _upload(client).json()
    response = client.get(f"/api/files/{uploaded['id']}")
    assert response.status_code == 200, response.text
    assert response.json() == uploaded
    page = client.get("/api/files").json()
    assert page["total"] == 1 and [item["id"] for item in page["items"]] == [uploaded["id"]]
    assert client.get("/api/files", params={"limit": 0}).status_code == 422


def test_delete_answers_204_and_the_file_is_gone(client):
    file_id = _upload(client).json()["id"]
    assert client.delete(f"/api/files/{file_id}").status_code == 204
    assert client.get(f"/api/files/{file_id}").status_code == 404
    assert client.get(f"/api/files/{file_id}/content").status_code == 404
    assert client.delete(f"/api/files/{file_id}").status_code == 404


def test_an_unknown_file_is_404(client):
    assert client.get(f"/api/files/{uuid.uuid4()}").status_code == 404
    assert client.get(f"/api/files/{uuid.uuid4()}/content").status_code == 404


def test_a_file_of_exactly_the_limit_is_accepted_and_one_byte_more_is_413(client):
    exact = _upload(client, b"x" * data.FILE_MAX_BYTES)
    assert exact.status_code == 201, exact.text
    response = _upload(client, b"x" * (data.FILE_MAX_BYTES + 1))
    assert response.status_code == 413, response.text
    assert client.get("/api/files").json()["total"] == 1


def test_a_content_type_outside_the_allowed_list_is_415(client):
    response = _upload(client, b"<script></script>", "text/html", "page.html")
    assert response.status_code == 415, response.text


def test_a_path_in_the_filename_is_dropped(client):
    response = _upload(client, name="../../etc/passwd")
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == "passwd"


def test_an_upload_without_a_file_is_422(client):
    response = client.post("/api/files", data={"other": "x"})
    assert response.status_code == 422, response.text
"#;

const TEST_FILES_AUTH: &str = r#"

def test_file_routes_need_a_token(anonymous):
    assert _upload(anonymous).status_code == 401
    assert anonymous.get("/api/files").status_code == 401
    assert anonymous.get(f"/api/files/{uuid.uuid4()}").status_code == 401
    assert anonymous.get(f"/api/files/{uuid.uuid4()}/content").status_code == 401
    assert anonymous.delete(f"/api/files/{uuid.uuid4()}").status_code == 401


def test_another_account_cannot_see_a_file(client, anonymous):
    file_id = _upload(client).json()["id"]
    credentials = {"email": f"other-{uuid.uuid4().hex[:8]}@example.com", "password": "another long password"}
    assert anonymous.post("/api/auth/register", json=credentials).status_code == 201
    token = anonymous.post("/api/auth/login", json=credentials).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert anonymous.get(f"/api/files/{file_id}", headers=headers).status_code == 404
    assert anonymous.get(f"/api/files/{file_id}/content", headers=headers).status_code == 404
    assert anonymous.delete(f"/api/files/{file_id}", headers=headers).status_code == 404
"#;
