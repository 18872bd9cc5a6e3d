"""Open Inference Protocol bodies: JSON tensors and Triton's binary tensor extension, both directions.

Pure functions over bytes and numpy arrays (reference/open-inference-protocol.md §5-9), no HTTP framework.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fovea.errors import InputError, LimitExceeded

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(bool),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
_BY_KIND = {(dt.kind, dt.itemsize): name for name, dt in DATATYPES.items() if name != "BYTES"}
MAX_DEPTH = 100
_INT64_MAX = 2**63 - 1


def datatype_of(array: np.ndarray) -> str:
    if array.dtype == object or array.dtype.kind in "SU":
        return "BYTES"
    try:
        return _BY_KIND[(array.dtype.kind, array.dtype.itemsize)]
    except KeyError:
        raise InputError(f"no V2 datatype for numpy {array.dtype}") from None


@dataclass(slots=True)
class InputTensor:
    name: str
    datatype: str
    shape: list[int]
    array: np.ndarray  # BYTES: an object array of `bytes`
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RequestedOutput:
    name: str
    binary: bool | None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class InferRequest:
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: list[InputTensor] = field(default_factory=list)
    outputs: list[RequestedOutput] | None = None
    raw: bytes | None = None  # raw mode (header length 0): the whole body is one input


def _depth_ok(text: bytes | bytearray) -> bool:
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return False
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return True


def parse_infer_request(body: bytes | bytearray, header_length: str | None, *, max_bytes: int) -> InferRequest:
    """Parse an infer body; InputError (400) or LimitExceeded (413) name the offending tensor."""
    if header_length is None:
        header, binary = body, None
    else:
        if not header_length.strip().isdigit() or int(header_length) > len(body):
            raise InputError(f"Inference-Header-Content-Length {header_length!r} does not fit the body")
        size = int(header_length)
        if size == 0:
            return InferRequest(raw=bytes(body))  # an inflated body is a bytearray; bytes are not copied
        header, binary = body[:size], memoryview(body)[size:]
    if not _depth_ok(header):
        raise InputError(f"request JSON nests deeper than {MAX_DEPTH} levels")
    try:
        doc = json.loads(header)
    except ValueError:
        raise InputError("request body is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise InputError("request must be a JSON object with an `inputs` array")
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InputError("`parameters` must be an object")
    for key in ("sequence_id", "sequence_start", "sequence_end"):
        if key in parameters:
            raise InputError(f"parameter {key!r} is not supported (no sequence batching)")
    request = InferRequest(id=doc.get("id"), parameters=parameters)
    offset = 0
    for raw_input in doc["inputs"]:
        tensor, used = _input(raw_input, binary, offset, max_bytes)
        request.inputs.append(tensor)
        offset += used
    if binary is not None and offset != len(binary):
        raise InputError(f"{len(binary) - offset} bytes are left over after the last binary input")
    if doc.get("outputs") is not None:
        request.outputs = _outputs(doc["outputs"])
    return request


def _input(raw: Any, binary: memoryview | None, offset: int, max_bytes: int) -> tuple[InputTensor, int]:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise InputError("every input needs a `name`")
    name = raw["name"]
    datatype = raw.get("datatype")
    if datatype not in DATATYPES:
        raise InputError(f"input {name}: unsupported datatype {datatype!r}")
    shape = raw.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InputError(f"input {name}: shape must be a list of non-negative integers")
    count = math.prod(shape)
    if count > _INT64_MAX:
        raise InputError(f"input {name}: shape is too large")
    dtype = DATATYPES[datatype]
    if datatype != "BYTES" and count * dtype.itemsize > max_bytes:
        raise LimitExceeded(f"input {name}: {count * dtype.itemsize} bytes is over the limit of {max_bytes}")
    parameters = raw.get("parameters") or {}
    has_data, size = "data" in raw, parameters.get("binary_data_size")
    if has_data == (size is not None):
        raise InputError(f"input {name}: give exactly one of `data` and `parameters.binary_data_size`")
    if size is not None:
        if binary is None:
            raise InputError(f"input {name}: binary_data_size without an Inference-Header-Content-Length header")
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise InputError(f"input {name}: binary_data_size runs past the end of the body")
        array = _from_binary(binary[offset : offset + size], dtype, shape, name)
        return InputTensor(name, datatype, shape, array, parameters), size
    return InputTensor(name, datatype, shape, _from_json(raw["data"], dtype, shape, name), parameters), 0


def _from_binary(data: memoryview, dtype: np.dtype, shape: list[int], name: str) -> np.ndarray:
    if dtype.kind == "O":
        elements = decode_bytes_tensor(data, name)
        if len(elements) != math.prod(shape):
            raise InputError(f"input {name}: {len(elements)} BYTES elements for shape {shape}")
        return _objects(elements, shape)
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise InputError(f"input {name}: binary_data_size is {len(data)} bytes, shape {shape} needs {expected}")
    return np.frombuffer(data, dtype).reshape(shape).copy()  # one copy: the body is not kept


def _objects(items: list[bytes], shape: list[int]) -> np.ndarray:
    """An object array of bytes (np.array would turn them into a fixed-width bytes dtype)."""
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array.reshape(shape)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _from_json(data: Any, dtype: np.dtype, shape: list[int], name: str) -> np.ndarray:
    flat = _flatten(data)
    if len(flat) != math.prod(shape):
        raise InputError(f"input {name}: {len(flat)} elements in `data` for shape {shape}")
    if dtype.kind == "O":
        if not all(isinstance(v, str) for v in flat):
            raise InputError(f"input {name}: BYTES data must be strings")
        return _objects([v.encode() for v in flat], shape)
    if dtype.kind == "b":
        if not all(isinstance(v, bool) for v in flat):
            raise InputError(f"input {name}: BOOL data must be true or false")
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not all(isinstance(v, int) and not isinstance(v, bool) and info.min <= v <= info.max for v in flat):
            raise InputError(f"input {name}: data must be integers within the {dtype.name} range")
    elif not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        raise InputError(f"input {name}: data must be numbers")
    return np.array(flat, dtype=dtype).reshape(shape)


def _outputs(raw: Any) -> list[RequestedOutput]:
    if not isinstance(raw, list):
        raise InputError("`outputs` must be an array")
    outputs, seen = [], set()
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InputError("every requested output needs a `name`")
        name = item["name"]
        if name in seen:
            raise InputError(f"output {name} is requested twice")
        seen.add(name)
        parameters = item.get("parameters") or {}
        if "classification" in parameters:
            raise InputError("the classification extension is not supported; request `scores`/`labels` instead")
        binary = parameters.get("binary_data")
        outputs.append(RequestedOutput(name, None if binary is None else bool(binary), parameters))
    return outputs


def decode_bytes_tensor(data: bytes | memoryview, name: str = "tensor") -> list[bytes]:
    """Elements of a BYTES tensor: each a 4-byte little-endian length, then that many bytes."""
    elements, offset = [], 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise InputError(f"input {name}: truncated BYTES element length")
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise InputError(f"input {name}: BYTES element runs past the end of its data")
        elements.append(bytes(data[offset : offset + length]))
        offset += length
    return elements


def encode_bytes_tensor(elements: Any) -> bytes:
    parts = []
    for element in np.asarray(elements, dtype=object).ravel():
        value = element.encode() if isinstance(element, str) else bytes(element)
        parts += [struct.pack("<I", len(value)), value]
    return b"".join(parts)


def _json_safe(array: np.ndarray) -> list[Any] | None:
    """Flat JSON data, or None when JSON cannot carry it (NaN/Inf, non-UTF-8 BYTES)."""
    if array.dtype.kind == "O":
        try:
            return [bytes(v).decode("utf-8") if not isinstance(v, str) else v for v in array.ravel()]
        except UnicodeDecodeError:
            return None
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        return None
    return array.ravel().tolist()


def encode_infer_response(
    model_name: str, model_version: str, request_id: str | None, outputs: list[tuple[str, np.ndarray, bool]]
) -> tuple[bytes, dict[str, str]]:
    """Body and headers; binary outputs follow the JSON header in output order."""
    entries, blobs = [], []
    for name, array, binary in outputs:
        datatype = datatype_of(array)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        data = None if binary else _json_safe(array)
        if data is None:
            blob = (
                encode_bytes_tensor(array)
                if datatype == "BYTES"
                else np.ascontiguousarray(array, DATATYPES[datatype]).tobytes()
            )
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = data
        entries.append(entry)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": entries}
    if request_id is not None:
        doc["id"] = request_id
    header = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return header, {"Content-Type": "application/json"}
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))}
    return header + b"".join(blobs), headers
