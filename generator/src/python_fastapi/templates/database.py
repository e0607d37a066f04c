"""The database: engine, sessions and the declarative base.

SQLite by default; PostgreSQL when DATABASE_URL names one (postgres://, postgresql:// or
postgresql+psycopg:// all select the psycopg 3 driver).
"""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session


class Base(DeclarativeBase):
    """The base of every table (app/models.py and app/system_models.py)."""


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """A timezone-aware timestamp, stored in UTC on every database.

    SQLite keeps no offset, so values are converted to UTC before they are stored and read back
    as UTC; PostgreSQL stores them as `timestamp with time zone`.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; give a timezone")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        stored: dt.datetime = value
        if stored.tzinfo is None:
            return stored.replace(tzinfo=dt.UTC)
        return stored.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def normalise_url(url: str) -> str:
    """The URL with the psycopg 3 driver selected for PostgreSQL."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, schema: str | None = None) -> Engine:
    """An engine for `url`; `schema` (PostgreSQL only) becomes the connections' search_path."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _enable_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
            # SQLite enforces foreign keys only when asked, per connection.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
    return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def get_session(request: Request) -> Iterator[Session]:
    """One session per request (FastAPI caches it, so every dependency shares it)."""
    session = request.app.state.sessionmaker()
    try:
        yield session
    finally:
        session.close()
