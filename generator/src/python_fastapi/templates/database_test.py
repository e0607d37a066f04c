"""Scratch databases for the generated suite, and Alembic run on them."""

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from app.database import make_engine, normalise_url

ROOT = Path(__file__).resolve().parents[1]
VERSION_TABLE = "_alembic_version"


@contextlib.contextmanager
def scratch_engine(directory: Path) -> Iterator[sa.Engine]:
    """An engine on an empty database, dropped afterwards: a SQLite file in `directory` or, when
    DATABASE_URL names a PostgreSQL database, a new schema in that database."""
    url = os.environ.get("DATABASE_URL", "")
    if url and not normalise_url(url).startswith("sqlite"):
        schema = f"test_{uuid.uuid4().hex[:16]}"
        admin = make_engine(url)
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine = make_engine(url, schema=schema)
        try:
            yield engine
        finally:
            engine.dispose()
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    else:
        engine = make_engine(f"sqlite:///{directory / 'test.db'}")
        try:
            yield engine
        finally:
            engine.dispose()


def _config(connection: sa.Connection) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    with engine.begin() as connection:
        command.upgrade(_config(connection), revision)


def downgrade(engine: sa.Engine, revision: str = "base") -> None:
    with engine.begin() as connection:
        command.downgrade(_config(connection), revision)
