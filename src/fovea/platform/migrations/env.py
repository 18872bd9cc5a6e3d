"""Alembic environment: the URL comes from the caller (`fovea.platform.bootstrap.upgrade`), never a global."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from fovea.platform import models  # noqa: F401 - registers the tables on Base.metadata
from fovea.platform.db import Base

config = context.config


def run() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = engine_from_config(
            {"sqlalchemy.url": config.get_main_option("sqlalchemy.url")}, poolclass=pool.NullPool
        )
        with engine.connect() as connection:
            _migrate(connection)
    else:
        _migrate(connectable)


def _migrate(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run()
