"""Helpers of the generated tests: rows made from the sampled data, and value comparisons."""

import datetime as dt
import decimal
import uuid
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from pydantic import AwareDatetime, TypeAdapter

from tests import data

MISSING = object()
"""Stands for "leave the field out of the body"."""

_DATETIME = TypeAdapter(AwareDatetime)


def same(kind: str, left: Any, right: Any) -> bool:
    """Whether two JSON values denote the same value of a field of `kind`."""
    if left is None or right is None:
        return left is None and right is None
    if kind == "decimal":
        return decimal.Decimal(str(left)) == decimal.Decimal(str(right))
    if kind == "float":
        return float(left) == float(right)
    if kind == "datetime":
        return _DATETIME.validate_python(left) == _DATETIME.validate_python(right)
    if kind in ("uuid", "reference"):
        return uuid.UUID(str(left)) == uuid.UUID(str(right))
    return bool(left == right)


def instant(text: str) -> dt.datetime:
    """An RFC 3339 timestamp of a response as an aware datetime."""
    return _DATETIME.validate_python(text)


def query_value(value: Any) -> str:
    """A JSON value as a query parameter."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def assert_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem document with `status`; its body."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["title"], body
    return body


def assert_invalid(response: httpx2.Response, field: str, types: tuple[str, ...]) -> None:
    """A 422 problem whose errors name `field`, with one of `types` (any type when empty)."""
    errors = assert_problem(response, 422)["errors"]
    named = [error for error in errors if error["field"] == f"/{field}"]
    assert named, f"no error names {field}: {errors}"
    if types:
        found = [error["type"] for error in named]
        assert set(found) & set(types), f"expected one of {types} for {field}, got {found}"


class Api:
    """A test client and a factory of rows that satisfy every constraint.

    Each entity's rows come from `data.ENTITIES[...]["rows"]`, one after the other, so rows made
    in one test never collide on a unique constraint. Required references get a parent: a shared
    one, or a fresh one per row when the reference is part of a unique constraint.
    """

    def __init__(self, client: TestClient, used: dict[str, int] | None = None) -> None:
        self.client = client
        # Shared by every account's Api in one test, so their rows never collide either.
        self._used: dict[str, int] = {} if used is None else used
        self._shared: dict[str, dict[str, Any]] = {}

    def payload(self, entity: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        spec = data.ENTITIES[entity]
        used = self._used.get(entity, 0)
        if used >= spec["capacity"]:
            pytest.skip(
                f"{entity} can hold only {spec['capacity']} rows of the sampled values "
                "without breaking a unique constraint"
            )
        self._used[entity] = used + 1
        row = dict(spec["rows"][used])
        overrides = overrides or {}
        for field, target, fresh in spec["required_references"]:
            if field not in overrides:
                parent = self.create(target) if fresh else self.shared(target)
                row[field] = parent["id"]
        row.update(overrides)
        return row

    def create(self, entity: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = self.payload(entity, overrides)
        response = self.client.post(data.ENTITIES[entity]["path"], json=payload)
        assert response.status_code == 201, f"creating {entity}: {response.text}"
        created: dict[str, Any] = response.json()
        return created

    def shared(self, entity: str) -> dict[str, Any]:
        """One row of `entity` that this test's rows may all reference."""
        if entity not in self._shared:
            self._shared[entity] = self.create(entity)
        return self._shared[entity]

    def optional_references(
        self, entity: str, fields: list[str], fresh: bool = False
    ) -> dict[str, Any]:
        """Parents for the optional references among `fields`: the shared ones, or new ones."""
        return {
            field: (self.create(target) if fresh else self.shared(target))["id"]
            for field, target in data.ENTITIES[entity]["optional_references"]
            if field in fields
        }
