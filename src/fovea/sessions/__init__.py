"""Sessions: deployed weights answering requests, with dynamic batching and asynchronous jobs."""
