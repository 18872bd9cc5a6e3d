"""What a user imports on their laptop: HTTP clients only (httpx), nothing from the server."""

from fovea.client.session import AsyncInference, Session

__all__ = ["AsyncInference", "Session"]
