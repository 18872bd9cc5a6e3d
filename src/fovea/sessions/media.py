"""Media by id for `fovea serve-model --media DIR`: a folder's files, numbered in sorted name order.

The platform resolves ids against its own stored images and videos; a folder gives single-model mode the
same id-based flows (`inference_image_id`, `inference_video_id_async`, ...) for local work and tests.
"""

from __future__ import annotations

from pathlib import Path

from fovea.core.io.limits import DEFAULT_LIMITS, Limits, read_file
from fovea.core.io.video import VIDEO_SUFFIXES
from fovea.errors import NotFound


class MediaFolder:
    def __init__(self, folder: Path, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits  # the session's: no file is read past its byte limit
        if not folder.is_dir():
            raise ValueError(f"media folder not found: {folder}")
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        self.images = [p for p in files if p.suffix.lower() not in VIDEO_SUFFIXES]
        self.videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]

    @staticmethod
    def _get(files: list[Path], media_id: object, kind: str, limits: Limits) -> tuple[bytes, str]:
        if not isinstance(media_id, int) or isinstance(media_id, bool) or not 0 <= media_id < len(files):
            raise NotFound(f"{kind} {media_id!r} is not known to this session")
        return read_file(files[media_id], limits), files[media_id].name

    def image(self, image_id: int) -> tuple[bytes, str]:
        return self._get(self.images, image_id, "image", self.limits)

    def video(self, video_id: int) -> tuple[bytes, str]:
        return self._get(self.videos, video_id, "video", self.limits)
