"""Database tables. Names follow the back-end API's vocabulary (reference/backend-api.md)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from fovea.platform.db import Base
from fovea.platform.enums import ProcessState

OWN, VIEW = "OWN", "VIEW"
# SQLite hands a deleted row's id to the next insert unless the table is AUTOINCREMENT; every table whose ids name
# stored files, cached models or URLs has it, so a deleted object's id never names a new one (PostgreSQL's
# sequences never go back). Migration 0010 rebuilds the existing tables so.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


def _now() -> datetime:
    """Naive UTC to the second, as `auth.now` (which imports this module)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


class User(Base):
    __tablename__ = "users"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    first_name: Mapped[str] = mapped_column(String(150), default="")
    last_name: Mapped[str] = mapped_column(String(150), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    date_joined: Mapped[datetime] = mapped_column(DateTime)


class Token(Base):
    """An access/refresh pair; only SHA-256 hashes of the random strings are stored."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    access_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_hash: Mapped[str] = mapped_column(String(64), unique=True)
    access_expires: Mapped[datetime] = mapped_column(DateTime)
    refresh_expires: Mapped[datetime] = mapped_column(DateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    user: Mapped[User] = relationship()


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class ArchModel(Base):
    """An architecture family (`models` in the API: ResNet50, EfficientNet-Lite0, ...)."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name_key", "task_id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    name_key: Mapped[str] = mapped_column(String(255))  # lower-cased name: unique per task, case-insensitively
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    members: Mapped[list[ProjectMember]] = relationship(
        cascade="all, delete-orphan", order_by="ProjectMember.user_id", lazy="selectin"
    )


class Membership:
    """A user's access to a shared project, weights or dataset: one row per user, OWN or VIEW (sharing.py).

    Each shared table's member table adds its own key to the shared object, first in its primary key.
    """

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    permission: Mapped[str] = mapped_column(String(4))

    @declared_attr
    def user(cls) -> Mapped[User]:
        return relationship(User, lazy="joined")


class ProjectMember(Membership, Base):
    __tablename__ = "project_members"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)


class Property(Base):
    """A training/inference hyperparameter (seeded, read-only; ids are stable)."""

    __tablename__ = "properties"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(10))
    default: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    values: Mapped[str | None] = mapped_column(String(1000), nullable=True)


class Weights(Base):
    """One trained artifact of a model: an ONNX file in storage plus its model card."""

    __tablename__ = "weights"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    dataset_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # a foreign key once datasets exist
    pretrained_on: Mapped[int | None] = mapped_column(ForeignKey("weights.id", ondelete="SET NULL"), nullable=True)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    process_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    layer_to_remove: Mapped[str | None] = mapped_column(String(255), nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    classes: Mapped[str | None] = mapped_column(Text, nullable=True)
    card: Mapped[str | None] = mapped_column(Text, nullable=True)  # the model card JSON, mirrored from the file
    members: Mapped[list[WeightsMember]] = relationship(
        cascade="all, delete-orphan", order_by="WeightsMember.user_id", lazy="selectin"
    )


class WeightsMember(Membership, Base):
    __tablename__ = "weights_members"

    weights_id: Mapped[int] = mapped_column(ForeignKey("weights.id", ondelete="CASCADE"), primary_key=True)


class Dataset(Base):
    """A DeepHealth dataset stored under FOVEA_HOME/storage (path: its YAML, relative to the storage root)."""

    __tablename__ = "datasets"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(1000))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    ctype: Mapped[str] = mapped_column(String(5), default="RGB")
    ctype_gt: Mapped[str | None] = mapped_column(String(5), nullable=True)
    classes: Mapped[str | None] = mapped_column(Text, nullable=True)
    single_image: Mapped[bool] = mapped_column(Boolean, default=False)  # made by inferenceSingle; never listed
    members: Mapped[list[DatasetMember]] = relationship(
        cascade="all, delete-orphan", order_by="DatasetMember.user_id", lazy="selectin"
    )


class DatasetMember(Membership, Base):
    __tablename__ = "dataset_members"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)


class Process(Base):
    """A training or inference job; its state lives here so any worker and any replica can read it."""

    __tablename__ = "processes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # UUID4
    process_type: Mapped[str] = mapped_column(String(10))  # a ProcessType: "training" | "testing"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    weights_id: Mapped[int | None] = mapped_column(ForeignKey("weights.id", ondelete="SET NULL"), nullable=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True)
    state: Mapped[str] = mapped_column(String(10), default=ProcessState.PENDING)
    # Which server's own worker pool runs it ("local@<host>"); None under Celery. A server starting up fails only
    # the processes its own pool left behind (LocalExecutor.fail_orphans), never another replica's or a worker's.
    runner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    settings: Mapped[str] = mapped_column(Text, default="{}")  # resolved hyperparameters, JSON
    image_name: Mapped[str | None] = mapped_column(String(2000), nullable=True)  # inferenceSingle's row name
    created: Mapped[datetime] = mapped_column(DateTime)
    updated: Mapped[datetime] = mapped_column(DateTime)


class Training(Base):
    """A training process's record: the weights it produces and, in TrainingSetting, the values it ran with."""

    __tablename__ = "trainings"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    process_id: Mapped[str] = mapped_column(ForeignKey("processes.id", ondelete="CASCADE"), unique=True)
    weights_id: Mapped[int | None] = mapped_column(ForeignKey("weights.id", ondelete="SET NULL"), nullable=True)
    process: Mapped[Process] = relationship(lazy="joined")
    settings: Mapped[list[TrainingSetting]] = relationship(
        cascade="all, delete-orphan", order_by="TrainingSetting.id", lazy="selectin"
    )


class TrainingSetting(Base):
    __tablename__ = "training_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    training_id: Mapped[int] = mapped_column(ForeignKey("trainings.id", ondelete="CASCADE"), index=True)
    property_id: Mapped[int] = mapped_column(ForeignKey("properties.id"))
    value: Mapped[str] = mapped_column(Text)


class ProgressLine(Base):
    __tablename__ = "progress_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    process_id: Mapped[str] = mapped_column(ForeignKey("processes.id", ondelete="CASCADE"), index=True)
    line: Mapped[str] = mapped_column(Text)


class DeployedSession(Base):
    """A deployed weights reachable at /net/{token}/; only a hash of the token is stored."""

    __tablename__ = "sessions"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    nonce: Mapped[str] = mapped_column(String(64))  # with the server secret, re-derives the token for its owner
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    weights_id: Mapped[int] = mapped_column(ForeignKey("weights.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[str] = mapped_column(Text, default="{}")
    # The dataset whose image ids (`datasets/{id}/images`) the Supervisely dialect's image ids name.
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime)


class Video(Base):
    """A video a user uploaded (`POST videos`) for sessions to run on by id (`videoId`)."""

    __tablename__ = "videos"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    filename: Mapped[str] = mapped_column(String(64))  # in storage/videos
    created: Mapped[datetime] = mapped_column(DateTime)


class AllowedProperty(Base):
    """A model's (and optionally a dataset's) default and allowed values for a property."""

    __tablename__ = "allowed_properties"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    property_id: Mapped[int] = mapped_column(ForeignKey("properties.id"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), nullable=True)
    allowed_value: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    default_value: Mapped[str | None] = mapped_column(String(1000), nullable=True)


class WeightsDownload(Base):
    """A weights registered by `onnx_url`: fetched and validated by a worker (`weightsStatus`)."""

    __tablename__ = "weights_downloads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # UUID4: the process_id clients poll
    weights_id: Mapped[int | None] = mapped_column(ForeignKey("weights.id", ondelete="SET NULL"), nullable=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    task_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(10), default=ProcessState.PENDING)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # As Process.runner: the server whose own pool runs it ("local@<host>"), None under Celery.
    runner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Last change of state; a download running for longer than FOVEA_STALE_AFTER_S lost its worker (fail_stale).
    # None only on rows older than migration 0010.
    updated: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, default=_now)
