"""Checks an uploaded ONNX file must pass before anything is stored (backend-api.md §6, "ONNX validation").

Validation must not cost more memory than the upload itself (DESIGN §7, budgets before work): ONNX Runtime
loads the graph without optimisations, so no constant is folded (a `ConstantOfShape` fed a constant shape
would otherwise be materialised), and constants whose shapes are written in the graph are summed by static
inspection and refused over `MAX_CONSTANT_BYTES`, as a deployed session would allocate them.

Validation runs in a short-lived child process: parsing and checking hold the GIL for most of a second on a large
model (a worker thread would still stall the server's event loop), and the child's address space is capped
(FOVEA_ONNX_CHECK_MEMORY_BYTES, 2 GiB by default) and its time limited (FOVEA_ONNX_CHECK_TIMEOUT_S, 120 s), so a
hostile graph costs the server neither memory nor a crash. Over the memory cap: LimitExceeded (413).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from typing import Any

from fovea.core.card import CARD_KEY, ModelCard
from fovea.core.predictions import Task
from fovea.errors import CardError, LimitExceeded
from fovea.platform.errors import InputError

# Task ids of the seeded catalog -> the core's task names.
TASKS_BY_ID = {1: Task.CLASSIFICATION, 2: Task.SEGMENTATION, 3: Task.DETECTION, 4: Task.MULTILABEL, 5: Task.REGRESSION}
# What the graph's constant-shaped tensors (ConstantOfShape fed a constant shape) may take together.
MAX_CONSTANT_BYTES = 256 * 1024 * 1024
# The child's address space: Python with onnx and ONNX Runtime imported maps about 600 MiB before any model.
DEFAULT_MEMORY_BYTES = 2 * 1024**3
DEFAULT_TIMEOUT_S = 120.0
# Run in the child: `-c` rather than `-m`, so the module is imported once under its own name.
CHILD = "from fovea.platform.onnx_check import serve_child; serve_child()"


def malformed(reason: str) -> InputError:
    return InputError(f"ONNX file is malformed: {reason}")


def validate_onnx(
    data: bytes, task_id: int, classes: list[str] | None, layer_to_remove: str | None
) -> ModelCard | None:
    """The file's model card (None without one), checked in a child process; InputError "ONNX file is malformed:
    ..." otherwise, LimitExceeded when checking it needs more than the memory cap."""
    memory = int(os.environ.get("FOVEA_ONNX_CHECK_MEMORY_BYTES", DEFAULT_MEMORY_BYTES))
    timeout = float(os.environ.get("FOVEA_ONNX_CHECK_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    header = json.dumps({"task_id": task_id, "classes": classes, "layer": layer_to_remove, "memory": memory})
    try:
        child = subprocess.run(
            [sys.executable, "-c", CHILD], input=header.encode() + b"\n" + data, capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:  # run() has killed it
        raise malformed(f"checking it took over {timeout:g} s") from None
    if child.returncode < 0:  # killed by a signal: an allocation C++ could not survive, or a crash
        name = signal.Signals(-child.returncode).name
        raise LimitExceeded(
            f"ONNX file could not be checked within {memory} bytes of memory (the check ended by {name})"
        )
    try:
        outcome = json.loads(child.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):  # the child's traceback stays in the server's log, never in the answer
        sys.stderr.write(child.stderr.decode(errors="replace"))
        raise malformed("the check failed unexpectedly") from None
    if outcome.get("over_memory"):
        raise LimitExceeded(f"ONNX file needs more than {memory} bytes of memory to be checked")
    if "error" in outcome:
        raise InputError(outcome["error"])
    return ModelCard.from_json(outcome["card"], "the uploaded file") if outcome["card"] is not None else None


def serve_child() -> None:
    """The child's side: cap the address space, check the model on stdin, print one JSON line with the outcome."""
    import resource

    header, data = sys.stdin.buffer.read().split(b"\n", 1)
    request = json.loads(header)
    resource.setrlimit(resource.RLIMIT_AS, (request["memory"], request["memory"]))
    try:
        card = check_onnx(data, request["task_id"], request["classes"], request["layer"])
        outcome: dict[str, Any] = {"card": card.to_json() if card else None}
    except InputError as exc:
        outcome = {"error": str(exc)}
    except MemoryError:
        outcome = {"over_memory": True}
    print(json.dumps(outcome), flush=True)


def check_onnx(data: bytes, task_id: int, classes: list[str] | None, layer_to_remove: str | None) -> ModelCard | None:
    """`validate_onnx`'s checks, in this process."""
    import onnx
    import onnxruntime as ort

    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf and checker raise many types
        if _out_of_memory(exc):
            raise MemoryError from None
        raise malformed(str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "not an ONNX model") from None
    _check_constants(model)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # no constant folding
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # each thread's arena counts in the cap
    try:
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        if _out_of_memory(exc):
            raise MemoryError from None
        raise malformed(f"ONNX Runtime cannot load it ({str(exc).strip().splitlines()[0][:200]})") from None
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise malformed("the graph has no input")
    tensor = inputs[0].type.tensor_type
    float_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}
    if tensor.elem_type not in float_types or len(tensor.shape.dim) not in (4, 5):
        raise malformed("the first input must be a float tensor of rank 4 (N,C,H,W) or 5 (N,C,D,H,W)")
    if layer_to_remove is not None and layer_to_remove not in {node.name for node in model.graph.node}:
        raise malformed(f"layer_to_remove {layer_to_remove!r} is not a node of the graph")
    card = _card(model, task_id, classes)
    names = classes or (list(card.class_names) if card else None)
    task = TASKS_BY_ID.get(task_id)
    if names and task in (Task.CLASSIFICATION, Task.MULTILABEL) and model.graph.output:
        dims = model.graph.output[0].type.tensor_type.shape.dim
        last = dims[-1].dim_value if dims and dims[-1].HasField("dim_value") else None
        if last and last != len(names):
            raise malformed(f"the first output has {last} classes, but {len(names)} class names are given")
    return card


def _out_of_memory(exc: Exception) -> bool:
    """Whether a library's error is an allocation refused under the address-space cap: C++ libraries report it as
    text (std::bad_alloc, ONNX Runtime's allocators, protobuf's serializer that the checker calls)."""
    text = str(exc).lower()
    signs = ("bad_alloc", "failed to allocate", "alloc failed", "failed to serialize proto")
    return isinstance(exc, MemoryError) or any(sign in text for sign in signs)


def _check_constants(model: Any) -> None:
    """Refuse external tensor data (a path read from the server's disk) and oversized constant shapes."""
    from onnx import TensorProto, helper, numpy_helper

    constants = {t.name: t for t in model.graph.initializer}
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            raise malformed(f"initializer {tensor.name!r} refers to external data; upload a self-contained file")
    for node in model.graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None and node.output:
                constants[node.output[0]] = value
    total = 0
    for node in model.graph.node:
        if node.op_type != "ConstantOfShape" or not node.input or node.input[0] not in constants:
            continue  # a shape computed at run time is bounded by the input, which the session limits
        try:
            shape = numpy_helper.to_array(constants[node.input[0]]).reshape(-1)
        except Exception as exc:
            raise malformed(f"ConstantOfShape {node.name!r} has an unreadable shape ({exc})") from None
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        item = helper.tensor_dtype_to_np_dtype(value.data_type).itemsize if value is not None else 4
        total += math.prod(max(int(d), 0) for d in shape) * item
        if total > MAX_CONSTANT_BYTES:
            raise malformed(f"its constant tensors (ConstantOfShape outputs) take over {MAX_CONSTANT_BYTES} bytes")


def _card(model, task_id: int, classes: list[str] | None) -> ModelCard | None:
    text = next((p.value for p in model.metadata_props if p.key == CARD_KEY), None)
    if text is None:
        return None
    try:
        card = ModelCard.from_json(text, "the uploaded file")
    except CardError as exc:
        raise malformed(str(exc)) from None
    if TASKS_BY_ID.get(task_id) != card.task:
        raise malformed(f"its model card is for {card.task}, not the model's task")
    if classes and list(card.class_names) != classes:
        raise malformed("its model card's classes differ from `classes`")
    return card
