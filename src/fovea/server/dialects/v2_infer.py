"""The V2 infer call: body decompression, inputs (tensor, encoded images, raw mode), outputs, statistics."""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import Request, Response

from fovea.core.geometry import Geometry
from fovea.core.onnx_model import Batch
from fovea.core.predictions import Prediction
from fovea.errors import InputError, LimitExceeded
from fovea.server.dialects.v2_codec import (
    DATATYPES,
    InferRequest,
    InputTensor,
    encode_infer_response,
    parse_infer_request,
)
from fovea.server.dialects.v2_model import IMAGE_INPUT, VERSION, batch_limit, raw_output_names, tensor_input
from fovea.server.dialects.v2_outputs import postprocessed, postprocessed_names
from fovea.server.dialects.v2_stats import V2Stats
from fovea.sessions.custom import AnySession, CustomSession
from fovea.sessions.session import ModelSession

# Bodies up to this size parse on the loop, faster than a thread hop; larger ones (and every compressed one, whose
# inflated size is unknown) are inflated, parsed and copied in a worker thread: tens of MiB take a good part of a
# second, during which the loop must keep answering health checks and other calls.
INLINE_PARSE_BYTES = 1 << 20


async def read_infer_request(request: Request, max_bytes: int) -> InferRequest:
    body = await request.body()
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding not in ("", "identity", "gzip", "deflate"):
        raise InputError(f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or identity")
    header_length = request.headers.get("inference-header-content-length")
    if encoding in ("", "identity"):
        if len(body) <= INLINE_PARSE_BYTES:
            return parse_infer_request(body, header_length, max_bytes=max_bytes)
        return await asyncio.to_thread(parse_infer_request, body, header_length, max_bytes=max_bytes)

    def inflate_and_parse() -> InferRequest:
        return parse_infer_request(inflate(body, encoding, max_bytes), header_length, max_bytes=max_bytes)

    return await asyncio.to_thread(inflate_and_parse)


# Inflated a piece at a time: one call to the whole size would join its pieces into one bytes object at the end,
# a copy of the whole body during which zlib holds the GIL (and the loop waits).
INFLATE_PIECE = 1 << 20


def inflate(body: bytes, encoding: str, max_bytes: int) -> bytearray:
    """The decompressed body, never expanded past the limit in memory (a gzip bomb stops there, 413).

    zlib lets go of the GIL while it inflates, so a worker thread running this leaves the loop free.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    data = bytearray()
    pending = body
    while not inflater.eof:
        try:
            piece = inflater.decompress(pending, INFLATE_PIECE)
        except zlib.error:
            raise InputError(f"the request body is not valid {encoding} data") from None
        pending = inflater.unconsumed_tail
        if not piece and not pending:
            raise InputError(f"the request body is truncated {encoding} data")
        data += piece
        if len(data) > max_bytes:
            raise LimitExceeded(f"the decompressed request body is over the limit of {max_bytes} bytes")
    return data


def _settings(session: AnySession, parameters: dict[str, Any]) -> dict[str, Any]:
    known = {k: v for k, v in parameters.items() if k in session.default_settings}
    if isinstance(known.get("classes"), str):
        known["classes"] = [c.strip() for c in known["classes"].split(",") if c.strip()]
    return session.settings(known)


async def run_infer(request: Request, session: AnySession, parsed: InferRequest, stats: V2Stats) -> Response:
    t0 = time.perf_counter()
    settings = _settings(session, parsed.parameters)
    images, tensor = _inputs(request, session, parsed)
    raw_names = raw_output_names(session)
    post = postprocessed_names(session.card.task, raw_names)
    requested = parsed.outputs
    if requested is not None:
        unknown = [o.name for o in requested if o.name not in raw_names and o.name not in post]
        if unknown:
            raise InputError(f"unknown output {unknown[0]!r}; outputs are {', '.join([*raw_names, *post])}")
    wanted = [o.name for o in requested] if requested is not None else list(raw_names or post)
    timing: dict[str, float] = {}
    predictions: list[Prediction] | None = None
    if isinstance(session, CustomSession):  # the model runs its own pipeline per image: predictions, no raw outputs
        assert images is not None  # a custom model takes encoded images only
        predictions = list(await asyncio.gather(*(_predict_image(session, d, name, settings) for d, name in images)))
        by_name: dict[str, np.ndarray] = {}
        n = len(predictions)
    else:
        outputs, batch = await _run_network(session, images, tensor, timing)
        by_name = dict(zip(raw_names, outputs, strict=True))
        n = len(batch.geometries)
        if any(name in post for name in wanted):  # segmentation masks: off the loop
            predictions = await session.batcher.postprocess(outputs, batch, settings)
    t1 = time.perf_counter()
    # Input time is what neither waited in the queue nor ran the network: parsing, decoding, preprocessing.
    t_input = max(0.0, t1 - t0 - timing.get("queue", 0.0) - timing.get("run", 0.0))
    results = []
    binary_default = bool(parsed.parameters.get("binary_data_output", False)) or parsed.raw is not None
    for name in wanted:
        array = by_name[name] if name in by_name else postprocessed(post[name], predictions, len(session.card.classes))
        choice = next((o.binary for o in requested or [] if o.name == name), None)
        results.append((name, array, binary_default if choice is None else choice))
    body, headers = encode_infer_response(session.name, VERSION, parsed.id, results)
    t_output = time.perf_counter() - t1
    stats.inference_count += n
    row = stats.batches.setdefault(int(timing.get("batch", n)), [0, 0, 0, 0])
    row[0] += 1
    row[1] += int(t_input * 1e9)
    row[2] += int(timing.get("run", 0) * 1e9)
    row[3] += int(t_output * 1e9)
    V2Stats.add(stats.queue, timing.get("queue", 0.0))
    V2Stats.add(stats.compute_input, t_input)
    V2Stats.add(stats.compute_infer, timing.get("run", 0.0))
    V2Stats.add(stats.compute_output, t_output)
    return await _respond(request, body, headers)


async def _run_network(
    session: ModelSession,
    images: list[tuple[bytes, str]] | None,
    tensor: np.ndarray | None,
    timing: dict[str, float],
) -> tuple[list[np.ndarray], Batch]:
    """The raw outputs, and the batch their rows came from, of encoded images or a ready tensor."""
    if images is not None:
        # Each image is decoded and preprocessed in a worker thread, then shares a run with whatever is queued.
        runs = await asyncio.gather(*(_run_image(session, data, name, timing) for data, name in images))
        outputs = [np.concatenate(column) for column in zip(*(out for _, out in runs), strict=True)]
        batch = Batch(
            np.concatenate([b.tensor for b, _ in runs]),
            [g for b, _ in runs for g in b.geometries],
            [name for b, _ in runs for name in b.names],
        )
        return outputs, batch
    assert tensor is not None
    outputs = await session.batcher.run(tensor, timing)
    size = tuple(session.card.input.size[-2:])
    identity = Geometry(size, size, (1.0, 1.0), (0.0, 0.0))
    return outputs, Batch(tensor, [identity] * len(tensor), [""] * len(tensor))


# Speed over ratio: float tensors gain little from higher levels, and this is on every compressed response.
COMPRESS_LEVEL = 1
_COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda body: gzip.compress(body, COMPRESS_LEVEL),
    "deflate": lambda body: zlib.compress(body, COMPRESS_LEVEL),  # zlib-wrapped, what tritonclient inflates
}


def response_encoding(accept_encoding: str) -> str | None:
    """`gzip` or `deflate` when `Accept-Encoding` names one with q > 0 (the higher q, gzip on a tie), else None.

    Only these two: tritonclient's infer path can undo nothing else (open-inference-protocol.md §2).
    """
    best: tuple[float, int, str] | None = None
    for item in accept_encoding.lower().split(","):
        token, *params = (part.strip() for part in item.split(";"))
        if token not in _COMPRESSORS:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        rank = (q, token == "gzip", token)
        if q > 0 and (best is None or rank > best):
            best = rank
    return best[2] if best else None


async def _respond(request: Request, body: bytes, headers: dict[str, str]) -> Response:
    """The infer response, compressed as the client's `Accept-Encoding` asks, like Triton's HTTP server.

    `Inference-Header-Content-Length` keeps counting the uncompressed JSON: clients inflate first, then split.
    """
    encoding = response_encoding(request.headers.get("accept-encoding", ""))
    if encoding is not None:
        body = await asyncio.to_thread(_COMPRESSORS[encoding], body)
        headers = {**headers, "Content-Encoding": encoding, "Vary": "Accept-Encoding"}
    media_type = headers.pop("Content-Type")
    return Response(body, media_type=media_type, headers=headers)


async def _run_image(
    session: ModelSession, data: bytes, name: str, timing: dict[str, float]
) -> tuple[Batch, list[np.ndarray]]:
    try:
        return await session.run_upload(data, name, timing)
    except InputError as exc:
        raise _naming(exc, name) from None


async def _predict_image(session: CustomSession, data: bytes, name: str, settings: dict[str, Any]) -> Prediction:
    try:
        return await session.predict_upload(data, name, settings)
    except InputError as exc:
        raise _naming(exc, name) from None


def _naming(exc: InputError, name: str) -> InputError:
    """The error with which element of the request it was, for a many-image request; a limit stays a limit (413)."""
    kind = LimitExceeded if isinstance(exc, LimitExceeded) else InputError
    return kind(f"{name}: {exc}", exc.detail)


def _inputs(
    request: Request, session: AnySession, parsed: InferRequest
) -> tuple[list[tuple[bytes, str]] | None, np.ndarray | None]:
    """Either encoded images (from `image_bytes` or a raw image body) with their names, or a ready tensor."""
    if isinstance(session, CustomSession):
        return _encoded_input(session, parsed), None
    tensor_name = session.model.input_name
    if parsed.raw is not None:
        return _raw_input(request, session, parsed.raw)
    by_name: dict[str, InputTensor] = {}
    for tensor in parsed.inputs:
        if tensor.name not in (tensor_name, IMAGE_INPUT):
            raise InputError(f"unknown input {tensor.name!r}; send {tensor_name!r} or {IMAGE_INPUT!r}")
        if tensor.name in by_name:
            raise InputError(f"input {tensor.name!r} is given twice")
        by_name[tensor.name] = tensor
    if len(by_name) != 1:
        raise InputError(f"send exactly one of {tensor_name!r} (a preprocessed tensor) and {IMAGE_INPUT!r}")
    if IMAGE_INPUT in by_name:
        return _encoded_images(session, by_name[IMAGE_INPUT]), None
    return None, _check_tensor(session, by_name[tensor_name])


def _encoded_input(session: CustomSession, parsed: InferRequest) -> list[tuple[bytes, str]]:
    """A custom model's input: `image_bytes`, or a raw body holding one encoded image."""
    if parsed.raw is not None:
        return [_encoded_body(parsed.raw)]
    names = [tensor.name for tensor in parsed.inputs]
    if names != [IMAGE_INPUT]:
        raise InputError(f"send one input, {IMAGE_INPUT!r} (encoded images): this model takes no tensor")
    return _encoded_images(session, parsed.inputs[0])


def _encoded_images(session: AnySession, encoded: InputTensor) -> list[tuple[bytes, str]]:
    if (
        encoded.datatype != "BYTES"
        or encoded.array.ndim not in (1, 2)
        or (encoded.array.ndim == 2 and encoded.array.shape[1] != 1)
    ):
        raise InputError(f"{IMAGE_INPUT} must be BYTES of shape [N] or [N, 1]")
    elements = list(encoded.array.ravel())
    _check_batch(session, len(elements))
    return [(bytes(d), f"{IMAGE_INPUT}[{i}]") for i, d in enumerate(elements)]


def _check_batch(session: AnySession, n: int) -> None:
    limit = batch_limit(session) or session.model.fixed_batch_size
    if n < 1 or n > limit:
        raise InputError(f"batch size {n} is outside 1..{limit}")


def _check_tensor(session: ModelSession, tensor: InputTensor) -> np.ndarray:
    expected = tensor_input(session)
    if tensor.datatype != expected["datatype"]:
        raise InputError(f"input {tensor.name}: datatype {tensor.datatype}, expected {expected['datatype']}")
    if len(tensor.shape) != len(expected["shape"]) or tensor.shape[1:] != expected["shape"][1:]:
        raise InputError(f"input {tensor.name}: shape {tensor.shape}, expected {expected['shape']}")
    _check_batch(session, tensor.shape[0])
    return np.ascontiguousarray(tensor.array, DATATYPES[tensor.datatype].newbyteorder("="))


def _raw_input(
    request: Request, session: ModelSession, raw: bytes
) -> tuple[list[tuple[bytes, str]] | None, np.ndarray | None]:
    """Raw mode (§8.4): a batch-1 tensor when the size says so, else one encoded image (4-byte prefix optional)."""
    expected = tensor_input(session)
    dtype = DATATYPES[expected["datatype"]]
    shape = [1, *expected["shape"][1:]]
    if (
        not request.headers.get("content-type", "").startswith("image/")
        and len(raw) == int(np.prod(shape)) * dtype.itemsize
    ):
        return None, np.frombuffer(raw, dtype).reshape(shape).copy()
    return [_encoded_body(raw)], None


def _encoded_body(raw: bytes) -> tuple[bytes, str]:
    """One encoded image sent as the raw body, its 4-byte little-endian length prefix optional."""
    if len(raw) > 4 and int.from_bytes(raw[:4], "little") == len(raw) - 4:
        raw = raw[4:]
    return raw, "body"
