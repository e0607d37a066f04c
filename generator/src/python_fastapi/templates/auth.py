"""Accounts and JWT access tokens.

POST /api/auth/register and POST /api/auth/login, GET /api/auth/me, and `require_user`, the
dependency that answers 401 (with `WWW-Authenticate: Bearer`) on every protected route without a
valid token. Passwords are hashed with argon2id (OWASP's parameters: 19 MiB, t=2, p=1).
"""

import datetime as dt
import re
import uuid
from typing import Annotated

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.database import get_session, utcnow
from app.system_models import AuthUser

ROUTER = APIRouter(prefix="/api/auth", tags=["auth"])

_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified when the e-mail address is unknown, so timing does not tell which accounts exist.
_DUMMY_HASH = _HASHER.hash("not the password of anybody")
_BEARER = HTTPBearer(auto_error=False)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, Field(max_length=254)]
    password: Annotated[str, Field(min_length=10, max_length=128)]

    @field_validator("email")
    @classmethod
    def _normalise_email(cls, value: str) -> str:
        value = value.strip().lower()
        if not _EMAIL.match(value):
            raise ValueError("must be an e-mail address")
        return value


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, Field(max_length=254)]
    password: Annotated[str, Field(max_length=128)]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    created_at: dt.datetime


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


@ROUTER.post("/register", status_code=201, response_model=UserOut)
def register(body: Registration, session: Session = Depends(get_session)):
    if session.scalar(select(AuthUser.id).where(AuthUser.email == body.email)) is not None:
        raise HTTPException(status_code=409, detail="this e-mail address is already registered")
    user = AuthUser(email=body.email, password_hash=_HASHER.hash(body.password))
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise HTTPException(
            status_code=409, detail="this e-mail address is already registered"
        ) from None
    return user


@ROUTER.post("/login", response_model=Token)
def login(body: Login, request: Request, session: Session = Depends(get_session)):
    email = body.email.strip().lower()
    user = session.scalar(select(AuthUser).where(AuthUser.email == email))
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY_HASH, body.password)
        verified = user is not None
    except (VerificationError, InvalidHashError):
        verified = False
    if not verified:
        raise _unauthorized("wrong e-mail address or password")
    settings = request.app.state.settings
    now = utcnow()
    lifetime = dt.timedelta(minutes=settings.jwt_expires_minutes)
    claims = {
        "sub": str(user.id),
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    return Token(access_token=token, expires_in=int(lifetime.total_seconds()))


def require_user(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_BEARER),
    session: Session = Depends(get_session),
) -> AuthUser:
    if credentials is None:
        raise _unauthorized("a bearer token is required")
    settings = request.app.state.settings
    try:
        claims = jwt.decode(
            credentials.credentials,
            settings.jwt_secret,
            algorithms=["HS256"],
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "iss", "sub", "jti"]},
        )
        user_id = uuid.UUID(claims["sub"])
    except (jwt.PyJWTError, ValueError):
        raise _unauthorized("the token is invalid or expired") from None
    user = session.get(AuthUser, user_id)
    if user is None:
        raise _unauthorized("the token's account no longer exists")
    return user


@ROUTER.get("/me", response_model=UserOut)
def me(user: AuthUser = Depends(require_user)):
    return user
