"""Generated tests of the auth feature: /api/auth/register, /api/auth/login and /api/auth/me."""

import datetime as dt
import uuid

import jwt

PASSWORD = "a long enough password"


def _email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def _token(client, email: str) -> str:
    response = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def test_register_answers_201_with_the_account(anonymous):
    email = _email()
    response = anonymous.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == email
    assert "password" not in str(body) and "hash" not in str(body)
    uuid.UUID(body["id"])


def test_registering_an_address_twice_is_409_whatever_its_case(anonymous):
    email = _email()
    assert anonymous.post("/api/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
    again = {"email": email.upper(), "password": PASSWORD}
    assert anonymous.post("/api/auth/register", json=again).status_code == 409


def test_register_refuses_a_short_password_a_bad_address_and_unknown_fields(anonymous):
    for body in (
        {"email": _email(), "password": "short"},
        {"email": "not-an-address", "password": PASSWORD},
        {"email": _email()},
        {"email": _email(), "password": PASSWORD, "role": "admin"},
    ):
        response = anonymous.post("/api/auth/register", json=body)
        assert response.status_code == 422, (body, response.text)


def test_login_answers_a_bearer_token_that_opens_me(anonymous):
    email = _email()
    anonymous.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    response = anonymous.post("/api/auth/login", json={"email": email.upper(), "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    me = anonymous.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200, me.text
    assert me.json()["email"] == email


def test_a_wrong_password_or_an_unknown_address_is_401(anonymous):
    email = _email()
    anonymous.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    for body in (
        {"email": email, "password": PASSWORD + "!"},
        {"email": _email(), "password": PASSWORD},
    ):
        response = anonymous.post("/api/auth/login", json=body)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_missing_forged_or_expired_token_is_401(anonymous):
    email = _email()
    anonymous.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    good = jwt.decode(_token(anonymous, email), options={"verify_signature": False})
    settings = anonymous.app.state.settings
    now = dt.datetime.now(dt.timezone.utc)
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
        assert response.status_code == 401, (token, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
