"""The back-end REST API under /backend/ (reference/backend-api.md)."""
