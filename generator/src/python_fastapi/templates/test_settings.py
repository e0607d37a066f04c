"""Generated tests of the settings: secrets fail closed.

Production (the default APP_ENV, compared ignoring case) refuses to start without a JWT_SECRET,
with a placeholder or with one shorter than 32 bytes; development without one signs with a random
key of its own. No secret is built into the app.
"""

import pytest

from app import config
from app.config import Settings

GOOD = "k7Gm2vQ9xR4tL8pZ1wN6yB3cF5hJ0sDa"


def test_the_default_environment_is_production():
    assert Settings().app_env == "production"


def test_an_unknown_environment_is_refused():
    with pytest.raises(RuntimeError, match="APP_ENV"):
        Settings(app_env="prod", jwt_secret=GOOD).checked()


def test_the_secret_is_not_in_the_settings_repr():
    assert GOOD not in repr(Settings(jwt_secret=GOOD))


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
def test_production_refuses_a_weak_secret(env, secret):
    with pytest.raises(RuntimeError, match="JWT_SECRET"):
        Settings(app_env=env, jwt_secret=secret).checked()


def test_production_accepts_a_random_secret_of_32_bytes():
    settings = Settings(app_env="Production", jwt_secret=GOOD).checked()
    assert (settings.app_env, settings.jwt_secret) == ("production", GOOD)


def test_development_without_a_secret_signs_with_a_random_one():
    first = Settings(app_env="Development").checked()
    second = Settings(app_env="development").checked()
    assert len(first.jwt_secret.encode()) >= 32
    assert first.jwt_secret != second.jwt_secret


def test_development_refuses_a_weak_secret_it_was_given():
    with pytest.raises(RuntimeError):
        Settings(app_env="development", jwt_secret="short").checked()
