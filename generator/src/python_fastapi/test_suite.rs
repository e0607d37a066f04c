//! The generated pytest suite's shared parts: fixtures, the sampled test data, the app-wide tests
//! (migration, health, OpenAPI) and the file-storage tests; entity modules live in `entity_suite`.

use std::fmt::Write as _;

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
         test starts from empty entity tables.\n\"\"\"\n\n",
    );
    if auth {
        out.push_str("import uuid\n\n");
    }
    out.push_str(
        "import pytest\n\
         import sqlalchemy as sa\n\
         from fastapi.testclient import TestClient\n",
    );
    // Imports in isort's order: the auth ones slot in among the others.
    if auth {
        out.push_str("from sqlalchemy.orm import Session\n");
    }
    out.push('\n');
    if auth {
        out.push_str("from app.cli import set_admin\n");
    }
    out.push_str(
        "from app.config import Settings\n\
         from app.main import create_app\n\
         from tests import data\n\
         from tests.database import scratch_engine, upgrade\n\
         from tests.support import Api\n",
    );
    if auth {
        out.push_str(
            "\n\
             PASSWORD = \"correct horse battery staple\"\n\
             SECRET = \"test-secret-that-is-long-enough-for-hs256\"\n",
        );
    }
    out.push_str(
        "\n\n@pytest.fixture(scope=\"session\")\n\
         def engine(tmp_path_factory):\n    \
         with scratch_engine(tmp_path_factory.mktemp(\"db\")) as engine:\n        \
         upgrade(engine)\n        \
         yield engine\n\n\n\
         @pytest.fixture(scope=\"session\")\n\
         def settings(tmp_path_factory) -> Settings:\n    \
         return Settings.from_env().replace(\n        app_env=\"test\",\n",
    );
    if auth {
        out.push_str(
            "        jwt_secret=SECRET,\n        allow_registration=True,\n        \
             # The suite logs in often from one client; tests/test_auth.py tests the limit itself.\n        \
             login_max_attempts=100_000,\n",
        );
    }
    if files {
        out.push_str(
            "        file_storage_dir=str(tmp_path_factory.mktemp(\"files\")),\n        \
             file_max_bytes=data.FILE_MAX_BYTES,\n",
        );
    }
    out.push_str(
        "    )\n\n\n@pytest.fixture(scope=\"session\")\n\
         def app(engine, settings):\n    \
         return create_app(settings=settings, engine=engine)\n",
    );
    if auth {
        out.push_str(
            "\n\ndef register(client, email: str, password: str = PASSWORD) -> dict:\n    \
             \"\"\"Registers `email` and logs in: the token pair.\"\"\"\n    \
             credentials = {\"email\": email, \"password\": password}\n    \
             response = client.post(\"/api/auth/register\", json=credentials)\n    \
             assert response.status_code == 201, response.text\n    \
             response = client.post(\"/api/auth/login\", json=credentials)\n    \
             assert response.status_code == 200, response.text\n    \
             return response.json()\n\n\n\
             @pytest.fixture(scope=\"session\")\n\
             def tokens(app, engine) -> dict[str, str]:\n    \
             \"\"\"Access tokens of three accounts that live for the whole run: the owner of the\n    \
             rows tests make, another account, and an admin (made with the app's CLI code).\"\"\"\n    \
             found = {}\n    \
             with TestClient(app) as client:\n        \
             for role in (\"owner\", \"other\", \"admin\"):\n            \
             email = f\"{role}-{uuid.uuid4().hex[:8]}@example.com\"\n            \
             found[role] = register(client, email)[\"access_token\"]\n            \
             if role == \"admin\":\n                \
             with Session(engine) as session:\n                    \
             assert set_admin(session, email, True)\n    \
             return found\n",
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
            "def _client(app, token: str) -> TestClient:\n    \
             return TestClient(app, headers={\"Authorization\": f\"Bearer {token}\"})\n\n\n\
             @pytest.fixture\n\
             def client(app, engine, tokens):\n    \
             \"\"\"The owner's client, on empty tables.\"\"\"\n    \
             _empty(engine)\n    \
             with _client(app, tokens[\"owner\"]) as client:\n        \
             yield client\n\n\n\
             @pytest.fixture\n\
             def clients(app, client, tokens) -> dict:\n    \
             \"\"\"A client per actor of the authorization table.\"\"\"\n    \
             with _client(app, tokens[\"other\"]) as other, _client(app, tokens[\"admin\"]) as admin:\n        \
             with TestClient(app) as anonymous:\n            \
             yield {\"owner\": client, \"other\": other, \"admin\": admin, \"anonymous\": anonymous}\n",
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
         def used() -> dict:\n    \
         \"\"\"How many sampled rows of each entity this test has used, over every account.\"\"\"\n    \
         return {}\n\n\n\
         @pytest.fixture\n\
         def api(client, used) -> Api:\n    \
         return Api(client, used)\n",
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
        let access = match entity.access {
            Some(access) => python_str(access.as_str()),
            None => "None".into(),
        };
        let _ = write!(
            out,
            "    {}: {{\n        \"path\": {},\n        \"table\": {},\n        \"access\": {access},\n        \"capacity\": {},\n        \"unknown_field\": {},\n        \"kinds\": {{\n",
            python_str(entity.name()),
            python_str(&entity.path()),
            python_str(entity.table()),
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
            "    \"/api/auth/register\",\n    \"/api/auth/login\",\n    \"/api/auth/refresh\",\n    \
             \"/api/auth/logout\",\n    \"/api/auth/me\",\n",
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
         import re\n\n\
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
    ) + OPENAPI_TESTS
}

const OPENAPI_TESTS: &str = r#"

def _operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_operation_has_a_clean_unique_id(anonymous):
    document = anonymous.get("/openapi.json").json()
    ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(ids) == len(set(ids)), ids
    verbose = re.compile(r".*_(get|post|put|patch|delete)$")
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", i) and not verbose.match(i) for i in ids), ids


def test_every_entity_route_documents_its_error_answers_as_problems(anonymous):
    document = anonymous.get("/openapi.json").json()
    assert "Problem" in document["components"]["schemas"]
    for entity in data.ENTITIES.values():
        for path in (entity["path"], entity["path"] + "/{id}"):
            for method, operation in document["paths"][path].items():
                responses = operation["responses"]
                expected = {"422"} | ({"401"} if entity["access"] else set())
                if path.endswith("{id}"):
                    expected |= {"404"}
                if method in ("put", "patch", "delete", "post"):
                    expected |= {"409"}
                assert expected <= set(responses), (path, method, sorted(responses))
                for status in expected:
                    content = responses[status]["content"]
                    assert "application/problem+json" in content, (path, method, status)


def test_every_api_operation_documents_its_errors_as_problems(anonymous):
    document = anonymous.get("/openapi.json").json()
    for path, method, operation in _operations(document):
        if not path.startswith("/api/"):
            continue
        errors = [status for status in operation["responses"] if status.startswith("4")]
        assert errors, (path, method)
        for status in errors:
            assert "application/problem+json" in operation["responses"][status]["content"], (
                path,
                method,
                status,
            )


def test_enums_are_enums_in_requests_and_responses(anonymous):
    schemas = anonymous.get("/openapi.json").json()["components"]["schemas"]
    for entity in data.ENTITIES.values():
        for field, kind in entity["kinds"].items():
            if kind != "enum":
                continue
            for schema in schemas.values():
                prop = schema.get("properties", {}).get(field)
                if prop is None or schema.get("title", "").lower().startswith(
                    ("filepage", "problem")
                ):
                    continue
                options = prop.get("anyOf", [prop])
                assert any("enum" in option for option in options), (
                    schema.get("title"),
                    field,
                    prop,
                )


def test_the_list_documents_its_filters(anonymous):
    document = anonymous.get("/openapi.json").json()
    for entity in data.ENTITIES.values():
        names = {p["name"] for p in document["paths"][entity["path"]]["get"]["parameters"]}
        assert {"limit", "offset", "sort", "created_at__gte", "id__in"} <= names, names
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


def test_a_content_type_the_bytes_contradict_is_415(client):
    elf = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256))
    assert _upload(client, elf, "image/png", "cat.png").status_code == 415
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    assert _upload(client, png, "text/plain", "notes.txt").status_code == 415
    assert client.get("/api/files").json()["total"] == 0


def test_a_body_declared_far_over_the_limit_is_413_before_it_is_read(client):
    body = b"x" * (data.FILE_MAX_BYTES + 128 * 1024)
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    response = client.post("/api/files", content=body, headers=headers)
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"


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
    credentials = {
        "email": f"other-{uuid.uuid4().hex[:8]}@example.com",
        "password": "another long password",
    }
    assert anonymous.post("/api/auth/register", json=credentials).status_code == 201
    token = anonymous.post("/api/auth/login", json=credentials).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert anonymous.get(f"/api/files/{file_id}", headers=headers).status_code == 404
    assert anonymous.get(f"/api/files/{file_id}/content", headers=headers).status_code == 404
    assert anonymous.delete(f"/api/files/{file_id}", headers=headers).status_code == 404
"#;
