"""Generated tests of the settings: secrets fail closed.

Production (the default APP_ENV, compared ignoring case) refuses to start without a JWT_SECRET,
with a placeholder or with one shorter than 32 bytes; development without one signs with a random
key of its own. No secret is built into the app.
"""

import json
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app import cli, config, logs
from app.config import Settings
from app.main import create_app

GOOD = "k7Gm2vQ9xR4tL8pZ1wN6yB3cF5hJ0sDa"


def test_the_default_environment_is_production() -> None:
    assert Settings().app_env == "production"


def test_an_unknown_environment_is_refused() -> None:
    with pytest.raises(RuntimeError, match="APP_ENV"):
        Settings(app_env="prod", jwt_secret=GOOD).checked()


def test_the_secret_is_not_in_the_settings_repr() -> None:
    assert GOOD not in repr(Settings(jwt_secret=GOOD))


def test_logging_settings_are_checked() -> None:
    assert Settings().log_level in config.LOG_LEVELS
    with pytest.raises(RuntimeError, match="LOG_LEVEL"):
        Settings(app_env="test", jwt_secret=GOOD, log_level="LOUD").checked()
    with pytest.raises(RuntimeError, match="LOG_FORMAT"):
        Settings(app_env="test", jwt_secret=GOOD, log_format="xml").checked()


def test_cors_and_logging_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", " https://a.example , https://b.example,")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    settings = Settings.from_env()
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")
    assert Settings().cors_origins == ()


def test_cors_answers_the_allowed_origins_only(settings: Settings, engine: sa.Engine) -> None:
    app = create_app(settings=settings.replace(cors_origins=("https://a.example",)), engine=engine)
    with TestClient(app) as client:
        preflight = {"Origin": "https://a.example", "Access-Control-Request-Method": "GET"}
        allowed = client.options("/health", headers=preflight)
        assert allowed.headers.get("access-control-allow-origin") == "https://a.example"
        other = client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    with TestClient(create_app(settings=settings, engine=engine)) as client:
        response = client.get("/health", headers={"Origin": "https://a.example"})
        assert "access-control-allow-origin" not in response.headers


def test_the_json_log_format_writes_one_object_per_line() -> None:
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    entry = json.loads(logs.JsonFormatter().format(record))
    assert (entry["message"], entry["level"], entry["logger"]) == ("hello world", "INFO", "app")


def test_the_cli_migrates_a_database_as_a_step_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    assert cli.main(["migrate"]) == 0
    engine = sa.create_engine(url)
    try:
        assert "_alembic_version" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


# The app's signing key (only with an auth feature).
@pytest.mark.parametrize("env", ["production", "Production", "PRODUCTION", " production "])
@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("", id="unset"),
        pytest.param(config.PLACEHOLDERS[0], id="the-env-example-placeholder"),
        pytest.param("change-me-please-to-something-long-enough", id="change-me"),
        pytest.param("x" * 31, id="31-bytes"),
    ],
)
def test_production_refuses_a_weak_secret(env: str, secret: str) -> None:
    with pytest.raises(RuntimeError, match="JWT_SECRET"):
        Settings(app_env=env, jwt_secret=secret).checked()


def test_production_accepts_a_random_secret_of_32_bytes() -> None:
    settings = Settings(app_env="Production", jwt_secret=GOOD).checked()
    assert (settings.app_env, settings.jwt_secret) == ("production", GOOD)


def test_development_without_a_secret_signs_with_a_random_one() -> None:
    first = Settings(app_env="Development").checked()
    second = Settings(app_env="development").checked()
    assert len(first.jwt_secret.encode()) >= 32
    assert first.jwt_secret != second.jwt_secret


def test_development_refuses_a_weak_secret_it_was_given() -> None:
    with pytest.raises(RuntimeError):
        Settings(app_env="development", jwt_secret="short").checked()
