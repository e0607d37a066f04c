"""Fixtures of the generated suite.

Each run migrates a fresh database with Alembic: SQLite in a temporary directory or, when
DATABASE_URL names a PostgreSQL database, a new schema in it (dropped at the end). Every
test starts from empty entity tables.
"""

# auth:begin
import uuid
# auth:end
from collections.abc import Iterator
# auth:begin
from typing import Any
# auth:end

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
# auth:begin
from sqlalchemy.orm import Session
# auth:end

# auth:begin
from app.cli import set_admin
# auth:end
from app.config import Settings
from app.main import create_app
from tests import data
from tests.database import scratch_engine, upgrade
from tests.support import Api
# auth:begin

PASSWORD = "correct horse battery staple"
SECRET = "test-secret-that-is-long-enough-for-hs256"
# auth:end


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    with scratch_engine(tmp_path_factory.mktemp("db")) as engine:
        upgrade(engine)
        yield engine


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings.from_env().replace(
        app_env="test",
        # auth:begin
        jwt_secret=SECRET,
        allow_registration=True,
        # The suite logs in often from one client; tests/test_auth.py tests the limit itself.
        login_max_attempts=100_000,
        # auth:end
        # files:begin
        file_storage_dir=str(tmp_path_factory.mktemp("files")),
        file_max_bytes=data.FILE_MAX_BYTES,
        # files:end
    )


@pytest.fixture(scope="session")
def app(engine: sa.Engine, settings: Settings) -> FastAPI:
    return create_app(settings=settings, engine=engine)
# auth:begin


def register(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """Registers `email` and logs in: the token pair."""
    credentials = {"email": email, "password": password}
    response = client.post("/api/auth/register", json=credentials)
    assert response.status_code == 201, response.text
    response = client.post("/api/auth/login", json=credentials)
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair


@pytest.fixture(scope="session")
def tokens(app: FastAPI, engine: sa.Engine) -> dict[str, str]:
    """Access tokens of three accounts that live for the whole run: the owner of the
    rows tests make, another account, and an admin (made with the app's CLI code)."""
    found = {}
    with TestClient(app) as client:
        for role in ("owner", "other", "admin"):
            email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
            found[role] = register(client, email)["access_token"]
            if role == "admin":
                with Session(engine) as session:
                    assert set_admin(session, email, True)
    return found
# auth:end


def _empty(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        for table, column in data.NULLABLE_REFERENCES:
            connection.execute(sa.text(f'UPDATE "{table}" SET "{column}" = NULL'))
        for table in data.DELETE_ORDER:
            connection.execute(sa.text(f'DELETE FROM "{table}"'))


@pytest.fixture
def anonymous(app: FastAPI, engine: sa.Engine) -> Iterator[TestClient]:
    """A client without credentials, on empty tables."""
    _empty(engine)
    with TestClient(app) as client:
        yield client
# auth:begin


def _client(app: FastAPI, token: str) -> TestClient:
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def client(app: FastAPI, engine: sa.Engine, tokens: dict[str, str]) -> Iterator[TestClient]:
    """The owner's client, on empty tables."""
    _empty(engine)
    with _client(app, tokens["owner"]) as client:
        yield client


@pytest.fixture
def clients(
    app: FastAPI, client: TestClient, tokens: dict[str, str]
) -> Iterator[dict[str, TestClient]]:
    """A client per actor of the authorization table."""
    with _client(app, tokens["other"]) as other, _client(app, tokens["admin"]) as admin:
        with TestClient(app) as anonymous:
            yield {"owner": client, "other": other, "admin": admin, "anonymous": anonymous}
# auth:end
# noauth:begin


@pytest.fixture
def client(anonymous: TestClient) -> TestClient:
    """A client on empty tables (the app has no auth feature)."""
    return anonymous
# noauth:end


@pytest.fixture
def used() -> dict[str, int]:
    """How many sampled rows of each entity this test has used, over every account."""
    return {}


@pytest.fixture
def api(client: TestClient, used: dict[str, int]) -> Api:
    return Api(client, used)
