"""Videos uploaded for sessions on the wire."""

from __future__ import annotations

from pydantic import BaseModel

from fovea.platform.models import Video


class VideoItem(BaseModel):
    id: int
    name: str
    created: str  # ISO 8601

    @classmethod
    def of(cls, video: Video) -> VideoItem:
        return cls(id=video.id, name=video.name, created=video.created.isoformat())


class VideoUpload(BaseModel):
    """`POST videos` (multipart)."""

    video_data: bytes
