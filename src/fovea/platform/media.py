"""Media that sessions reach by id: the images of a session's dataset, and the videos a user uploaded.

The Supervisely dialect's `image_id` / `batch_ids` name images of the dataset a session was deployed with (the ids
`datasets/{id}/images` lists), and `videoId` names a video its owner uploaded with `POST videos`; each lookup
checks, at request time, that the session's owner can still see what the id names.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from fovea.core.io import DEFAULT_LIMITS, Limits, probe_video
from fovea.core.io.limits import read_file
from fovea.core.io.video import VIDEO_SUFFIXES
from fovea.datasets.files import read_dataset_file
from fovea.platform.auth import now
from fovea.platform.datasets import first_plane, get_dataset, spec_of, yaml_path
from fovea.platform.db import Database
from fovea.platform.errors import InputError, NotFound
from fovea.platform.models import User, Video
from fovea.platform.storage import videos_dir


def create_video(database: Database, user: User, name: str, data: bytes, storage: Path) -> Video:
    """Store a video in a transaction of its own; the file goes again if the commit fails."""
    path = None
    try:
        with database.transaction() as db:
            video, path = _create_video(db, db.merge(user), name, data, storage)
    except Exception:
        if path is not None:
            path.unlink(missing_ok=True)
        raise
    return video


def _create_video(db: Session, user: User, name: str, data: bytes, storage: Path) -> tuple[Video, Path]:
    """Check the bytes are a readable video, then store them; returns the row and the file."""
    suffix = Path(name).suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise InputError(f"video_data must be a video file ({', '.join(sorted(VIDEO_SUFFIXES))}), not {name!r}")
    info = probe_video(data, name=name)  # InputError for anything PyAV cannot read
    if info.frames_count < 1:
        raise InputError(f"{name} has no frames")
    path = videos_dir(storage) / f"{uuid.uuid4().hex}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    video = Video(user_id=user.id, name=Path(name).name[:255], filename=path.name, created=now())
    db.add(video)
    db.flush()
    return video, path


def list_videos(db: Session, user: User) -> list[Video]:
    return list(db.scalars(select(Video).where(Video.user_id == user.id).order_by(Video.id)))


def delete_video(database: Database, user: User, video_id: int, storage: Path) -> None:
    """Delete the row, then the file once the row is gone for good."""
    with database.transaction() as db:
        video = db.get(Video, video_id)
        if video is None or video.user_id != user.id:
            raise NotFound(f"video {video_id} not found")
        db.delete(video)
    (videos_dir(storage) / video.filename).unlink(missing_ok=True)


class SessionMedia:
    """The id resolvers of one deployed session, seen as its owner sees them."""

    def __init__(
        self, db: Database, storage: Path, owner_id: int, dataset_id: int | None, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self.db, self.storage, self.owner_id, self.dataset_id = db, storage, owner_id, dataset_id
        self.limits = limits  # the session's: no stored file is read past its byte limit

    def image(self, image_id: int) -> tuple[bytes, str]:
        if self.dataset_id is None:
            raise NotFound("this session has no dataset: deploy it with `dataset_id` to predict on image ids")
        with self.db.transaction() as session:
            try:
                dataset = get_dataset(session, session.get(User, self.owner_id), self.dataset_id)
            except NotFound:
                raise NotFound(f"the dataset of this session ({self.dataset_id}) is gone") from None
            spec, root = spec_of(dataset, self.storage), yaml_path(dataset, self.storage).parent
        if not isinstance(image_id, int) or isinstance(image_id, bool) or not 0 <= image_id < len(spec.samples):
            raise NotFound(f"image {image_id!r} is not in dataset {self.dataset_id}")
        location = first_plane(spec.samples[image_id].location)
        return read_dataset_file(root, location, f"images[{image_id}]", self.limits), Path(location).name

    def video(self, video_id: int) -> tuple[bytes, str]:
        with self.db.transaction() as session:
            video = session.get(Video, video_id) if isinstance(video_id, int) else None
            if video is None or video.user_id != self.owner_id:
                raise NotFound(f"video {video_id!r} is not known to this session")
            path, name = videos_dir(self.storage) / video.filename, video.name
        return read_file(path, self.limits, name=name), name
