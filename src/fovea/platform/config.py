"""Platform settings from the environment (FOVEA_*), with embedded defaults for a single machine."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fovea.paths import fovea_home


class PlatformSettings(BaseSettings):
    """Everything `fovea serve` needs; each field can be set as FOVEA_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="FOVEA_", extra="ignore")

    home: Path = Field(default_factory=fovea_home, description="Folder for the database, storage and the zoo.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; SQLite in FOVEA_HOME when unset.")
    admin_username: str = "admin"
    admin_password: str | None = Field(None, description="Password of the first admin; generated and printed if unset.")
    oauth_client_id: str = Field("fovea", description="The public OAuth client id that token requests must name.")
    registration_open: bool = True
    access_token_ttl_s: int = 36_000
    refresh_token_ttl_s: int = 30 * 24 * 3600
    workers: int = Field(1, ge=1, description="Worker processes of the local executor.")
    executor: str = Field("local", pattern="^(local|celery)$", description="Where processes run: local or celery.")
    broker_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker (Redis or RabbitMQ).")
    allow_url_hosts: list[str] = Field(
        default_factory=list, description="Private hosts or networks image URLs may point at (URL guard allowlist)."
    )
    stale_after_s: int = Field(
        600, ge=1, description="A running process with no progress line for this long has lost its worker: failed."
    )
    max_body_bytes: int = Field(64 * 1024**2, ge=1, description="Largest request body on every route but uploads.")
    max_upload_bytes: int = Field(
        2 * 1024**3, ge=1, description="Largest request body of the dataset zip and weights uploads."
    )

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'fovea.db'}"

    @property
    def storage_dir(self) -> Path:
        return self.home / "storage"
