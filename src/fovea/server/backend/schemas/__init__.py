"""The back-end's wire format: Pydantic request and response models, one module per area of the API.

Routers parse requests into these models and render service results through them, so `/docs` shows the real API
and the services never see raw JSON (reference/backend-api.md is the contract).
"""
