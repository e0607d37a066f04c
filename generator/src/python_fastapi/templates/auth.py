"""Accounts, JWT access tokens and rotating refresh tokens.

POST /api/auth/register (unless registration is closed: ALLOW_REGISTRATION), /login (rate
limited per address and per client), /refresh (a refresh token is spent once: the answer is a new
pair of the same family; presenting a spent one revokes the whole family), /logout (revokes the
family), GET /api/auth/me, and `require_user`, the dependency that answers 401 (with
`WWW-Authenticate: Bearer`) on every protected route without a valid token. Passwords are hashed
with argon2id (OWASP's parameters: 19 MiB, t=2, p=1); refresh tokens are stored as SHA-256 hashes.
Admins are made with the app's CLI (`python -m app.cli grant-admin EMAIL`).
"""

import collections
import datetime as dt
import hashlib
import math
import re
import secrets
import threading
import time
import uuid
from typing import Annotated, Any, cast

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import errors
from app.crud import Actor
from app.database import get_session, utcnow
from app.system_models import AuthUser, RefreshToken

ROUTER = APIRouter(prefix="/api/auth", tags=["auth"])

_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified when the e-mail address is unknown, so timing does not tell which accounts exist.
_DUMMY_HASH = _HASHER.hash("not the password of anybody")
_BEARER = HTTPBearer(auto_error=False)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LIMITER_KEYS_MAX = 10_000


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def normalise_email(value: str) -> str:
    value = value.strip().lower()
    if not _EMAIL.match(value) or len(value) > 254:
        raise ValueError("must be an e-mail address")
    return value


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, Field(max_length=254)]
    password: Annotated[str, Field(min_length=10, max_length=128)]

    @field_validator("email")
    @classmethod
    def _normalise_email(cls, value: str) -> str:
        return normalise_email(value)


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, Field(max_length=254)]
    password: Annotated[str, Field(max_length=128)]


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: Annotated[str, Field(min_length=1, max_length=512)]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    is_admin: bool
    created_at: dt.datetime


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


class RateLimiter:
    """At most `attempts` calls per key in any `window` seconds (a sliding window, in memory:
    per process, which is what a single-process deployment needs)."""

    def __init__(self, attempts: int, window: float) -> None:
        self.attempts = attempts
        self.window = window
        self._calls: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, *keys: str) -> int:
        """0 when every key may go on (and the call is counted), else seconds to wait."""
        now = time.monotonic()
        with self._lock:
            if len(self._calls) > _LIMITER_KEYS_MAX:
                # Forget keys whose calls have all left the window, so made-up addresses cannot
                # grow the table without bound.
                for stale in [
                    k
                    for k, calls in self._calls.items()
                    if not calls or calls[-1] <= now - self.window
                ]:
                    del self._calls[stale]
            wait = 0.0
            for key in keys:
                calls = self._calls.setdefault(key, collections.deque())
                while calls and calls[0] <= now - self.window:
                    calls.popleft()
                if len(calls) >= self.attempts:
                    wait = max(wait, calls[0] + self.window - now)
            if wait > 0:
                return max(1, math.ceil(wait))
            for key in keys:
                self._calls[key].append(now)
            return 0


def limiter(request: Request) -> RateLimiter:
    state = request.app.state
    if getattr(state, "login_limiter", None) is None:
        settings = state.settings
        state.login_limiter = RateLimiter(
            settings.login_max_attempts, settings.login_window_seconds
        )
    found: RateLimiter = state.login_limiter
    return found


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _issue(session: Session, request: Request, user: AuthUser, family: uuid.UUID) -> TokenPair:
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
    access = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    refresh = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family,
            token_hash=_token_hash(refresh),
            expires_at=now + dt.timedelta(days=settings.refresh_expires_days),
        )
    )
    session.commit()
    return TokenPair(
        access_token=access, refresh_token=refresh, expires_in=int(lifetime.total_seconds())
    )


def _revoke_family(session: Session, family: uuid.UUID) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    session.commit()


_AUTH_ERRORS = errors.responses(400, 401, 422)


@ROUTER.post(
    "/register",
    status_code=201,
    response_model=UserOut,
    operation_id="register",
    responses=errors.responses(400, 403, 409, 422),
)
def register(
    body: Registration, request: Request, session: Session = Depends(get_session)
) -> AuthUser:
    if not request.app.state.settings.allow_registration:
        raise HTTPException(
            status_code=403, detail="registration is closed; an admin creates accounts"
        )
    if session.scalar(select(AuthUser.id).where(AuthUser.email == body.email)) is not None:
        raise HTTPException(status_code=409, detail="this e-mail address is already registered")
    user = AuthUser(email=body.email, password_hash=hash_password(body.password))
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise HTTPException(
            status_code=409, detail="this e-mail address is already registered"
        ) from None
    session.refresh(user)
    return user


@ROUTER.post(
    "/login",
    response_model=TokenPair,
    operation_id="login",
    responses=errors.responses(400, 401, 422, 429),
)
def login(body: Login, request: Request, session: Session = Depends(get_session)) -> TokenPair:
    email = body.email.strip().lower()
    client = request.client.host if request.client else "unknown"
    wait = limiter(request).retry_after(f"email:{email}", f"client:{client}")
    if wait:
        raise HTTPException(
            status_code=429,
            detail="too many login attempts; try again later",
            headers={"Retry-After": str(wait)},
        )
    user = session.scalar(select(AuthUser).where(AuthUser.email == email))
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY_HASH, body.password)
        verified = user is not None
    except (VerificationError, InvalidHashError):
        verified = False
    if not verified or user is None:
        raise _unauthorized("wrong e-mail address or password")
    return _issue(session, request, user, uuid.uuid4())


@ROUTER.post("/refresh", response_model=TokenPair, operation_id="refresh", responses=_AUTH_ERRORS)
def refresh(
    body: RefreshRequest, request: Request, session: Session = Depends(get_session)
) -> TokenPair:
    stored = session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == _token_hash(body.refresh_token))
    )
    if stored is None or stored.revoked_at is not None or stored.expires_at <= utcnow():
        raise _unauthorized("the refresh token is invalid, expired or revoked")
    if stored.spent_at is not None:
        # A spent token presented again: it was stolen or replayed. End the whole family.
        _revoke_family(session, stored.family_id)
        raise _unauthorized(
            "the refresh token was used already; every token of its family is revoked"
        )
    spent = cast(
        CursorResult[Any],
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == stored.id, RefreshToken.spent_at.is_(None))
            .values(spent_at=utcnow())
        ),
    )
    if spent.rowcount != 1:
        session.rollback()
        _revoke_family(session, stored.family_id)
        raise _unauthorized(
            "the refresh token was used already; every token of its family is revoked"
        )
    user = session.get(AuthUser, stored.user_id)
    if user is None:
        session.rollback()
        raise _unauthorized("the token's account no longer exists")
    return _issue(session, request, user, stored.family_id)


@ROUTER.post("/logout", status_code=204, operation_id="logout", responses=_AUTH_ERRORS)
def logout(body: RefreshRequest, session: Session = Depends(get_session)) -> Response:
    stored = session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == _token_hash(body.refresh_token))
    )
    if stored is not None:
        _revoke_family(session, stored.family_id)
    return Response(status_code=204)


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


def require_actor(user: AuthUser = Depends(require_user)) -> Actor:
    """The caller of an entity route."""
    return Actor(id=user.id, is_admin=user.is_admin)


@ROUTER.get("/me", response_model=UserOut, operation_id="me", responses=errors.responses(401))
def me(user: AuthUser = Depends(require_user)) -> AuthUser:
    return user
