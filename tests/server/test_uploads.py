"""Uploads saved to disk a piece at a time (large videos for Supervisely's asynchronous video inference)."""

import asyncio
import io
import os

from starlette.datastructures import UploadFile

from fovea.server import uploads


class PieceCounting(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.largest_read = 0

    def read(self, size=-1):
        piece = super().read(size)
        self.largest_read = max(self.largest_read, len(piece))
        return piece


def test_save_upload_copies_a_piece_at_a_time_and_closes_the_part(monkeypatch):
    monkeypatch.setattr(uploads, "SAVE_PIECE", 4096)
    data = os.urandom(50_000)
    source = PieceCounting(data)
    part = UploadFile(source, filename="clip.mkv")
    path = asyncio.run(uploads.save_upload(part, suffix=".mkv"))
    try:
        assert path.suffix == ".mkv" and path.read_bytes() == data
        assert source.largest_read == 4096  # never the whole upload in memory at once
        assert source.closed
    finally:
        path.unlink()
