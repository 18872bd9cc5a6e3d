"""Shapes shared by several areas of the API, and the OpenAPI helpers for routes that parse their own bodies."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, WithJsonSchema

from fovea.platform.errors import InputError

Permission = Literal["OWN", "VIEW"]


class Member(BaseModel):
    """One entry of a shared resource's `users`: who, and with which permission."""

    username: str
    permission: Permission


def members(rows: Any) -> list[Member]:
    """The `users` list of a project, dataset or weights, from its membership rows."""
    return [Member(username=m.user.username, permission=m.permission) for m in rows]


class Problem(BaseModel):
    """The error body (backend-api.md §1.1): a message, and at times structured `detail`: per-field messages, a
    dataset's problems, or the request's validation errors."""

    error: str
    detail: dict[str, Any] | list[dict[str, Any]] | None = None


Body = TypeVar("Body", bound=BaseModel)
Fields = TypeVar("Fields")


def as_fields(body: BaseModel, target: type[Fields]) -> Fields:
    """`body` as a service's dataclass `target`: the fields they share, as sent, and `sent` (the fields the body
    held, for partial updates) when `target` has one."""
    names = {field.name for field in dataclasses.fields(target)}
    values: dict[str, Any] = {name: getattr(body, name) for name in names & type(body).model_fields.keys()}
    if "sent" in names:
        values["sent"] = frozenset(body.model_fields_set)
    return target(**values)


def standalone(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its definitions (`$defs`) inlined: it stands alone in the OpenAPI document, whose own
    definitions it cannot name."""
    definitions: dict[str, Any] = {}

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            definitions.update(node.pop("$defs", {}))
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    collect(schema)
    return inline(schema)


def checked_later(shape: Any) -> WithJsonSchema:
    """A body field published as `shape` but taken as sent: the service checks it at its step of the documented
    order, with its own message (a schema error here would answer a different 400 first)."""
    return WithJsonSchema(standalone(TypeAdapter(shape).json_schema()))


def required(*names: str) -> ConfigDict:
    """`model_config` publishing the `checked_later` fields `names` as required: they parse as None when absent, and
    the service answers that with its own message."""
    return ConfigDict(json_schema_extra={"required": list(names)})


def parse_body(model: type[Body], body: dict[str, Any]) -> Body:
    """The strictly parsed JSON object (deps.JsonBody) as `model`: only its integer ids can fail here, answered as
    backend-api.md §1.1 names a missing or malformed field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        key = str(exc.errors()[0]["loc"][0])
        detail = {"fields": {key: ["This field is required."]}}
        raise InputError(f"{key} is required and must be an integer", detail) from None


def json_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting `model` as a route's JSON body, for routes that parse bodies strictly themselves
    (deps.JsonBody) rather than through FastAPI."""
    content = {"application/json": {"schema": standalone(model.model_json_schema())}}
    return {"requestBody": {"required": True, "content": content}}


def form_body_schema(model: type[BaseModel], media_type: str = "multipart/form-data") -> dict[str, Any]:
    """`openapi_extra` documenting a form (an upload) whose fields `model` describes."""
    schema = json_body_schema(model)["requestBody"]["content"]["application/json"]["schema"]
    return {"requestBody": {"required": True, "content": {media_type: {"schema": schema}}}}


def binary(media_type: str) -> dict[int | str, dict[str, Any]]:
    """`responses` documenting a route whose 200 is a file of `media_type` (a mask, a thumbnail, an overlay)."""
    return {200: {"content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}}


def bad_requests_are_400(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI `document` as the app answers: FastAPI lists a 422 for each operation with parameters, but invalid
    input is a 400 with the error body. Each operation that reads parameters or a body lists that 400 instead (a 400
    of its own, as the OAuth routes', stays), and none lists a 422."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):  # the 422's body
        schemas.pop(unused, None)
    schemas["Problem"] = Problem.model_json_schema()
    problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    bad_request = {"description": "Malformed or invalid input", "content": problem}
    for item in document.get("paths", {}).values():
        for operation in item.values():
            operation["responses"].pop("422", None)
            if operation.get("parameters") or operation.get("requestBody"):
                operation["responses"].setdefault("400", bad_request)
    return document
