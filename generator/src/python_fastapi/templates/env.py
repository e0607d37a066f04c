"""Alembic's environment: migrates DATABASE_URL, or the connection a caller hands over in
`config.attributes["connection"]` (the test suite does, to migrate its scratch database)."""

from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from app import models, system_models  # noqa: F401  (importing them registers the tables)
from app.config import Settings
from app.database import Base, make_engine, normalise_url

# Underscored, so no entity's table (named by its plural) can take the name.
VERSION_TABLE = "_alembic_version"

config = context.config
if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=normalise_url(Settings.from_env().database_url),
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    run_on(config.attributes["connection"])
else:
    engine = make_engine(Settings.from_env().database_url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a changed table as a copy; with foreign keys enforced, dropping
            # the original of a referenced table fails. The pragma only works outside a
            # transaction, so before the first statement; the keys are checked at the end.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        run_on(connection)
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migrations left dangling references: {broken[:5]}")
        connection.commit()
    engine.dispose()
