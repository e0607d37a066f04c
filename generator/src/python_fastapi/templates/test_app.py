"""Generated tests of the application as a whole: health, the OpenAPI document and the
migration."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient

from app import models, system_models  # noqa: F401  (registers the tables)
from app.database import Base
from tests import data
from tests.database import VERSION_TABLE, downgrade, scratch_engine, upgrade


def test_the_migration_creates_exactly_what_the_models_declare(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, Base.metadata) == []


def test_the_migration_downgrades_to_nothing_and_upgrades_again(tmp_path: Path) -> None:
    with scratch_engine(tmp_path) as engine:
        upgrade(engine)
        downgrade(engine)
        assert set(sa.inspect(engine).get_table_names()) <= {VERSION_TABLE}
        upgrade(engine)
        assert set(Base.metadata.tables) <= set(sa.inspect(engine).get_table_names())


def test_health_answers_200(anonymous: TestClient) -> None:
    response = anonymous.get("/health")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}


def test_openapi_lists_every_route(anonymous: TestClient) -> None:
    response = anonymous.get("/openapi.json")
    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    missing = [path for path in data.PATHS if path not in paths]
    assert not missing, f"not in the OpenAPI document: {missing}"


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_operation_has_a_clean_unique_id(anonymous: TestClient) -> None:
    document = anonymous.get("/openapi.json").json()
    ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(ids) == len(set(ids)), ids
    verbose = re.compile(r".*_(get|post|put|patch|delete)$")
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", i) and not verbose.match(i) for i in ids), ids


def test_every_entity_route_documents_its_error_answers_as_problems(anonymous: TestClient) -> None:
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


def test_every_api_operation_documents_its_errors_as_problems(anonymous: TestClient) -> None:
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


def test_enums_are_enums_in_requests_and_responses(anonymous: TestClient) -> None:
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


def test_the_list_documents_its_filters(anonymous: TestClient) -> None:
    document = anonymous.get("/openapi.json").json()
    for entity in data.ENTITIES.values():
        names = {p["name"] for p in document["paths"][entity["path"]]["get"]["parameters"]}
        assert {"limit", "offset", "sort", "created_at__gte", "id__in"} <= names, names
