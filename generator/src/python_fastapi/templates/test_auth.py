"""Generated tests of the auth feature: registration, login (rate limited), refresh tokens with
rotation, logout, /api/auth/me, closed registration and admins made with the app's CLI."""

import datetime as dt
import time
import uuid
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.cli import create_admin, set_admin
from app.config import Settings
from app.main import create_app
from tests.support import assert_problem

PASSWORD = "a long enough password"


def _email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def _pair(client: TestClient, email: str) -> dict[str, Any]:
    response = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair


def _registered(client: TestClient) -> str:
    email = _email()
    response = client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return email


def test_register_answers_201_with_the_account(anonymous: TestClient) -> None:
    email = _email()
    response = anonymous.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == email and body["is_admin"] is False
    assert "password" not in str(body) and "hash" not in str(body)
    uuid.UUID(body["id"])


def test_registering_an_address_twice_is_409_whatever_its_case(anonymous: TestClient) -> None:
    email = _registered(anonymous)
    again = {"email": email.upper(), "password": PASSWORD}
    assert_problem(anonymous.post("/api/auth/register", json=again), 409)


def test_register_refuses_a_short_password_a_bad_address_and_unknown_fields(
    anonymous: TestClient,
) -> None:
    for body in (
        {"email": _email(), "password": "short"},
        {"email": "not-an-address", "password": PASSWORD},
        {"email": _email()},
        {"email": _email(), "password": PASSWORD, "is_admin": True},
    ):
        assert_problem(anonymous.post("/api/auth/register", json=body), 422)


def test_a_refused_password_is_not_echoed(anonymous: TestClient) -> None:
    for body in (
        {"email": _email(), "password": "shortpw1"},
        {"email": _email(), "password": "p" * 129},
        {"email": _email(), "password": 1234567890123},
    ):
        response = anonymous.post("/api/auth/register", json=body)
        assert response.status_code == 422, response.text
        assert str(body["password"]) not in response.text
    response = anonymous.post("/api/auth/login", json={"email": "x", "password": "q" * 200})
    assert response.status_code == 422 and "q" * 129 not in response.text


def test_login_answers_a_token_pair_that_opens_me(anonymous: TestClient) -> None:
    email = _registered(anonymous)
    response = anonymous.post(
        "/api/auth/login", json={"email": email.upper(), "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0 and body["refresh_token"]
    me = anonymous.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200, me.text
    assert me.json()["email"] == email


def test_a_wrong_password_or_an_unknown_address_is_401(anonymous: TestClient) -> None:
    email = _registered(anonymous)
    for body in (
        {"email": email, "password": PASSWORD + "!"},
        {"email": _email(), "password": PASSWORD},
    ):
        response = anonymous.post("/api/auth/login", json=body)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_missing_forged_or_expired_token_is_401(anonymous: TestClient, app: FastAPI) -> None:
    email = _registered(anonymous)
    good = jwt.decode(_pair(anonymous, email)["access_token"], options={"verify_signature": False})
    settings = app.state.settings
    now = dt.datetime.now(dt.UTC)
    expired = dict(good, iat=now - dt.timedelta(hours=2), exp=now - dt.timedelta(hours=1))
    tokens = [
        None,
        "not-a-token",
        jwt.encode(good, "another-secret-that-is-long-enough-too", algorithm="HS256"),
        jwt.encode(expired, settings.jwt_secret, algorithm="HS256"),
        jwt.encode(dict(good, sub=str(uuid.uuid4())), settings.jwt_secret, algorithm="HS256"),
    ]
    for token in tokens:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = anonymous.get("/api/auth/me", headers=headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


def test_refresh_rotates_the_pair_and_a_spent_token_revokes_its_family(
    anonymous: TestClient,
) -> None:
    email = _registered(anonymous)
    first = _pair(anonymous, email)
    second = anonymous.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    me = anonymous.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {second['access_token']}"}
    )
    assert me.status_code == 200, me.text
    # The first token is spent: presenting it again is 401 and ends the family...
    assert_problem(
        anonymous.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]}), 401
    )
    # ...so the second one, never used, is refused too.
    assert_problem(
        anonymous.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]}), 401
    )
    # Another login starts a new family.
    third = _pair(anonymous, email)
    assert (
        anonymous.post(
            "/api/auth/refresh", json={"refresh_token": third["refresh_token"]}
        ).status_code
        == 200
    )


def test_logout_revokes_the_family(anonymous: TestClient) -> None:
    email = _registered(anonymous)
    pair = _pair(anonymous, email)
    response = anonymous.post("/api/auth/logout", json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 204, response.text
    assert_problem(
        anonymous.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401
    )
    assert_problem(anonymous.post("/api/auth/refresh", json={"refresh_token": "made-up"}), 401)


def test_login_is_rate_limited_per_address_with_retry_after(
    engine: sa.Engine, settings: Settings
) -> None:
    app = create_app(
        settings=settings.replace(login_max_attempts=3, login_window_seconds=60), engine=engine
    )
    with TestClient(app) as client:
        email = _registered(client)
        for _ in range(3):
            assert (
                client.post(
                    "/api/auth/login", json={"email": email, "password": "wrong password!"}
                ).status_code
                == 401
            )
        response = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert_problem(response, 429)
        assert int(response.headers["retry-after"]) >= 1


def test_closed_registration_is_403_and_an_admin_made_with_the_cli_signs_in(
    engine: sa.Engine, settings: Settings
) -> None:
    app = create_app(settings=settings.replace(allow_registration=False), engine=engine)
    with TestClient(app) as client:
        assert_problem(
            client.post("/api/auth/register", json={"email": _email(), "password": PASSWORD}), 403
        )
        email = _email()
        with Session(engine) as session:
            create_admin(session, email, PASSWORD)
        pair = _pair(client, email)
        me = client.get(
            "/api/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
        ).json()
        assert me["is_admin"] is True
        with Session(engine) as session:
            assert set_admin(session, email, False)
            assert not set_admin(session, _email(), True)
        me = client.get(
            "/api/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
        ).json()
        assert me["is_admin"] is False


@pytest.mark.parametrize("path", ["/api/auth/refresh", "/api/auth/logout"])
def test_refresh_and_logout_refuse_a_body_without_a_token(anonymous: TestClient, path: str) -> None:
    assert_problem(anonymous.post(path, json={}), 422)


def test_the_login_limiter_forgets_keys_whose_calls_left_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app import auth

    monkeypatch.setattr(auth, "_LIMITER_KEYS_MAX", 2)
    limiter = auth.RateLimiter(attempts=1, window=0.05)
    for n in range(5):
        assert limiter.retry_after(f"email:{n}@example.com") == 0
    assert limiter.retry_after("email:0@example.com") >= 1
    time.sleep(0.1)
    assert limiter.retry_after("client:somebody") == 0
    assert len(limiter._calls) <= 2
