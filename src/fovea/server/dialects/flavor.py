"""FLaVor's inference protocol: `GET /ping` and `POST /invocations` with AiCOCO in and out
(reference/aicoco-invocations-protocol.md).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData

from fovea.core.card import ModelCard
from fovea.core.formats import to_aicoco
from fovea.core.io import read_dicom_series, read_input, sniff
from fovea.core.predictions import Prediction
from fovea.errors import InputError
from fovea.server.errors import dialect_route
from fovea.server.uploads import parse_json, read_files, read_form
from fovea.sessions.session import ModelSession


def render_error(status: int, message: str, detail: Any, headers: dict[str, str]) -> Response:
    return JSONResponse({"error": message, "detail": detail}, status, headers=headers)


router = APIRouter(route_class=dialect_route(render_error))


@router.get("/ping")
async def ping(request: Request) -> Response:
    if request.app.state.session.running:
        return Response(status_code=204)
    return render_error(503, "the model is loading", None, {"Retry-After": "1"})


@router.post("/invocations")
async def invocations(request: Request) -> Response:
    return await _invoke(request)


async def _invoke(request: Request) -> Response:
    session: ModelSession = request.app.state.session
    form = await read_form(request, session.limits)
    if form.get("tables") is not None:
        raise InputError("tabular requests (`tables`) are not supported")
    files = await read_files(form)
    fields = json_fields(form)
    entries = validate_images(fields.get("images"))
    if not files:
        raise InputError("`files` is required: upload at least one file")
    settings = fields.get("settings", {})
    if not isinstance(settings, dict):
        raise InputError("`settings` must be a JSON object")
    settings = session.settings(settings)  # bad settings fail before anything is decoded
    uploads = match_files(files, entries)
    if session.card.input.dims == 3:
        prediction, ordered = await _volume(session, uploads, entries, settings)
        predictions = [prediction]
    else:
        ordered = sorted(entries, key=lambda e: e["index"])
        predictions = await asyncio.gather(
            *(session.predict_upload(uploads[e["file_name"]], e["file_name"], settings) for e in ordered)
        )
    body = await session.offload(_aicoco_json, predictions, ordered, session.card)
    return Response(body, media_type="application/json")


def _aicoco_json(predictions: list[Prediction], entries: list[dict[str, Any]], card: ModelCard) -> bytes:
    """The response body, built and encoded in one step (off the loop when a model's answers are costly).

    orjson writes a 1000-class answer (~100 KB, every category listed) in a tenth of json's time. It writes NaN as
    null where json refuses it, but none reaches here: client JSON with NaN is a 400 and a non-finite regression
    value fails in `to_aicoco`. An echoed integer past 64 bits, which orjson refuses, goes through json."""
    document = to_aicoco(predictions, entries, card)
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:
        return json.dumps(document, ensure_ascii=False, allow_nan=False).encode()


async def _volume(
    session: ModelSession, uploads: dict[str, bytes], entries: list[dict[str, Any]], settings: dict[str, Any]
) -> tuple[Prediction, list]:
    kinds = {name: sniff(data, name) for name, data in uploads.items()}
    if set(kinds.values()) == {"dicom"}:
        names = list(uploads)
        volume = await asyncio.to_thread(
            read_dicom_series, [uploads[n] for n in names], names=names, limits=session.limits
        )
        by_name = {e["file_name"]: e for e in entries}
        if len(entries) != len(names):
            raise InputError("a DICOM series needs exactly one `images` entry per slice file")
        ordered = [by_name[name] for name in volume.slice_names]
    elif len(uploads) == 1 and next(iter(kinds.values())) == "nifti":
        [(name, data)] = uploads.items()
        volume = await asyncio.to_thread(read_input, data, name=name, limits=session.limits)
        ordered = sorted(entries, key=lambda e: e["index"])
        if [e["index"] for e in ordered] != list(range(volume.size[0])):
            raise InputError(
                f"{name} has {volume.size[0]} slices: send one entry per slice with index 0..{volume.size[0] - 1}"
            )
    else:
        raise InputError("a 3-D model takes one DICOM series or one NIfTI volume per request")
    return await session.predict_volume(volume, settings), ordered


def json_fields(form: FormData) -> dict[str, Any]:
    """Every text part parsed as JSON, the last one winning if repeated: FLaVor hands each to the model
    (`metadata` ...), so one that is not JSON is a 400 here, as in FLaVor, whether or not Fovea reads it."""
    return {
        name: parse_json(value, f"form field {name!r}") for name, value in form.multi_items() if isinstance(value, str)
    }


def match_files(files: list[tuple[str, bytes]], entries: list[dict[str, Any]]) -> dict[str, bytes]:
    """Uploads by exact file name; every upload named by an entry and every entry by an upload."""
    uploads: dict[str, bytes] = {}
    for name, data in files:
        if not name:
            raise InputError("every `files` part needs a filename")
        if name in uploads:
            raise InputError(f"two uploaded files are named {name!r}")
        uploads[name] = data
    named = {e["file_name"] for e in entries}
    missing = sorted(named - set(uploads))
    unreferenced = sorted(set(uploads) - named)
    if missing or unreferenced:
        raise InputError(
            "uploaded files do not match images[].file_name",
            {"missing_files": missing, "unreferenced_files": unreferenced},
        )
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry["file_name"]] = counts.get(entry["file_name"], 0) + 1
    shared = [n for n, c in counts.items() if c > 1 and sniff(uploads[n], n) != "nifti"]
    if shared:
        raise InputError(f"several images entries name {shared[0]!r}; only a NIfTI volume may be shared")
    return uploads


def validate_images(value: Any) -> list[dict[str, Any]]:
    """AiCOCO image entries checked as FLaVor does (ids unique strings, index coerced to int)."""
    if value is None:
        raise InputError("`images` is required: a JSON array of AiCOCO image entries")
    if not isinstance(value, list) or not value:
        raise InputError(
            "`images` must be a non-empty JSON array",
            [{"loc": ["images"], "msg": "Input should be a valid list"}],
        )
    problems: list[dict[str, Any]] = []
    entries = []
    for i, raw in enumerate(value):
        if not isinstance(raw, dict):
            problems.append({"loc": ["images", i], "msg": "Input should be an object"})
            continue
        entry = dict(raw)
        for key in ("id", "index", "file_name", "category_ids", "regressions"):
            if key not in entry:
                problems.append({"loc": ["images", i, key], "msg": "Field required"})
        if not isinstance(entry.get("id", ""), str):
            problems.append({"loc": ["images", i, "id"], "msg": "Input should be a valid string"})
        if not isinstance(entry.get("file_name", ""), str):
            problems.append({"loc": ["images", i, "file_name"], "msg": "Input should be a valid string"})
        index = _as_int(entry.get("index", 0))
        if index is None:
            problems.append({"loc": ["images", i, "index"], "msg": "Input should be a valid integer"})
        else:
            entry["index"] = index
        problems += _check_lists(entry, i)
        entries.append(entry)
    ids = [e.get("id") for e in entries]
    if len(set(ids)) != len(ids):
        problems.append({"loc": ["images"], "msg": "image ids must be unique"})
    if problems:
        raise InputError("invalid `images`", problems)
    return entries


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _check_lists(entry: dict[str, Any], i: int) -> list[dict[str, Any]]:
    problems = []
    categories = entry.get("category_ids")
    if categories is not None and not (isinstance(categories, list) and all(isinstance(c, str) for c in categories)):
        problems.append({"loc": ["images", i, "category_ids"], "msg": "Input should be a list of strings or null"})
    regressions = entry.get("regressions")
    if regressions is not None:
        ok = isinstance(regressions, list) and all(
            isinstance(r, dict)
            and set(r) == {"regression_id", "value"}
            and isinstance(r["regression_id"], str)
            and isinstance(r["value"], (int, float))
            and not isinstance(r["value"], bool)
            for r in regressions
        )
        if not ok:
            problems.append(
                {
                    "loc": ["images", i, "regressions"],
                    "msg": "Input should be a list of {regression_id, value}",
                }
            )
    return problems
