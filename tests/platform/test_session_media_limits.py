"""A deployed session reads the videos and images its ids name under its byte limit, never whole."""

import pytest

from fovea.errors import LimitExceeded
from fovea.platform.auth import now
from fovea.platform.media import SessionMedia
from fovea.platform.models import Video
from fovea.platform.storage import videos_dir


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_sessions_video_is_read_under_its_byte_limit(backend):
    db, storage = backend.app.app.state.db, backend.settings.storage_dir
    folder = videos_dir(storage)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "huge.mp4").open("wb") as file:  # sparse: no disk space, but 64 MiB of memory if read whole
        file.truncate(64 * 1024**2 + 1)
    with db.transaction() as session:  # as `POST videos` leaves it, with a file that grew (or was replaced) since
        video = Video(user_id=1, name="huge.mp4", filename="huge.mp4", created=now())
        session.add(video)
        session.flush()
        video_id = video.id
    with pytest.raises(LimitExceeded, match="over the limit"):
        SessionMedia(db, storage, 1, None).video(video_id)
