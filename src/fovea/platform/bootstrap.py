"""First start: create FOVEA_HOME, migrate the database, seed the catalog and the administrator."""

from __future__ import annotations

import secrets
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import make_url, select

from fovea.paths import keep_private, make_private_file
from fovea.platform.auth import now
from fovea.platform.catalog import seed_tasks
from fovea.platform.config import PlatformSettings
from fovea.platform.db import Database
from fovea.platform.models import User
from fovea.platform.properties import seed_properties
from fovea.platform.security import hash_password

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the schema to the newest revision (`fovea db upgrade` does the same)."""
    command.upgrade(alembic_config(url), "head")


def _private_sqlite_files(url: str) -> None:
    """The SQLite database and its WAL files hold password hashes and tokens' hashes: 0600, even if made earlier."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return
    for suffix in ("", "-wal", "-shm"):
        make_private_file(Path(f"{parsed.database}{suffix}"))


def bootstrap(settings: PlatformSettings) -> tuple[Database, str | None]:
    """Ready the home and database; returns the database and the admin password if it was generated now."""
    keep_private(settings.home, settings.storage_dir)
    upgrade(settings.db_url)
    _private_sqlite_files(settings.db_url)
    db = Database(settings.db_url)
    generated = None
    with db.transaction() as session:
        seed_tasks(session)
        seed_properties(session)
        if session.scalar(select(User).where(User.username == settings.admin_username)) is None:
            password = settings.admin_password
            if password is None:
                password = generated = secrets.token_urlsafe(12)
            session.add(
                User(
                    username=settings.admin_username,
                    email="",
                    password_hash=hash_password(password),
                    is_staff=True,
                    date_joined=now(),
                )
            )
    return db, generated


def seed_demo(settings: PlatformSettings, db: Database, zoo: Path) -> None:
    """Offer the demo zoo's models, weights and Digits dataset as the public catalog."""
    from fovea.platform.demo_catalog import seed_demo_catalog

    with db.transaction() as session:
        admin = session.scalar(select(User).where(User.username == settings.admin_username))
        seed_demo_catalog(session, admin, zoo, settings.storage_dir)
