"""The back-end app on a fresh database: SQLite in a temp folder, and PostgreSQL on the local server."""

from __future__ import annotations

import io
import os
import stat
import uuid
import zipfile

import psycopg
import pytest
from fastapi.testclient import TestClient

from fovea.platform.bootstrap import bootstrap
from fovea.platform.config import PlatformSettings
from fovea.server.backend.app import create_backend_app

PG_ADMIN = os.environ.get("FOVEA_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")
ADMIN_PASSWORD = "admin-secret-42"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """A TestClient on a freshly bootstrapped platform, once per database engine."""
    database_url = None
    created = None
    if request.param == "postgresql":
        created = f"fovea_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{created}"')
        database_url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{created}"
    settings = PlatformSettings(home=tmp_path / "home", database_url=database_url, admin_password=ADMIN_PASSWORD)
    db, _ = bootstrap(settings)
    try:
        with TestClient(create_backend_app(settings, db)) as client:
            client.settings = settings
            yield client
    finally:
        db.dispose()
        if created:
            with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE "{created}" WITH (FORCE)')


def login(client, username="admin", password=ADMIN_PASSWORD):
    response = client.post(
        "/backend/auth/token/",
        data={"grant_type": "password", "username": username, "password": password, "client_id": "fovea"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def bearer(tokens):
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def register(client, username, password="a-long-passphrase-9"):
    response = client.post(
        "/backend/auth/user/", json={"username": username, "email": f"{username}@example.org", "password": password}
    )
    assert response.status_code == 201, response.text
    return bearer(login(client, username, password))


def zip_of(files: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def digits_zip(zoo_dir):
    """The zoo's Digits dataset (1797 PNGs + YAML) inside one top-level folder, as users zip it."""
    root = zoo_dir / "digits"
    files = {f"digits/{p.relative_to(root)}": p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return zip_of(files)
