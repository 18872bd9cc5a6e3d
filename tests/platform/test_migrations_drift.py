"""The SQLAlchemy models and the Alembic migrations describe the same schema, on SQLite and on PostgreSQL.

A model changed without a migration (or a migration that does not match its model) would give a fresh database
other columns, types, indexes or constraints than the code expects; autogenerate then proposes a non-empty diff.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from fovea.platform import models  # noqa: F401 - registers the tables on Base.metadata
from fovea.platform.bootstrap import upgrade
from fovea.platform.db import Base
from tests.platform.conftest import PG_ADMIN


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A database migrated to the Alembic head, once per engine."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'drift.db'}"
        upgrade(url)
        yield url
        return
    name = f"fovea_drift_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_the_models_match_the_migrations_head(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], "models and migrations differ; add a migration (alembic revision --autogenerate):\n" + "\n".join(
        map(str, diff)
    )
