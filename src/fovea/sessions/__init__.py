"""Sessions: deployed weights answering requests, with dynamic batching and asynchronous jobs."""

from fovea.sessions.batcher import BatchStats, Closed, DynamicBatcher, Overloaded
from fovea.sessions.requests import AsyncRequest, InMemoryRequestStore, RequestStore, Stopped

__all__ = [
    "AsyncRequest",
    "BatchStats",
    "Closed",
    "DynamicBatcher",
    "InMemoryRequestStore",
    "Overloaded",
    "RequestStore",
    "Stopped",
]
