"""Checks an uploaded ONNX file must pass before anything is stored (backend-api.md §6, "ONNX validation").

Validation must not cost more memory than the upload itself (DESIGN §7, budgets before work): ONNX Runtime
loads the graph without optimisations, so no constant is folded (a `ConstantOfShape` fed a constant shape
would otherwise be materialised), and the tensors that ops such as `ConstantOfShape`, `Expand`, `Tile`, `Range`,
`Pad` and `Resize` would make from constants are sized by shape inference and refused together over
`MAX_CONSTANT_BYTES` (LimitExceeded, 413), as a deployed session would allocate them when folding constants.

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
from fovea.platform.enums import TASKS_BY_ID
from fovea.platform.errors import InputError

# What the graph's constant-derived expansions (see EXPANDING) may allocate together when a deployed session folds
# them.
MAX_CONSTANT_BYTES = 256 * 1024 * 1024
# Ops that can turn a few bytes of constants into a large tensor. When all their inputs are constant, ONNX Runtime
# folds them while creating an optimised session, so their outputs are budgeted before any session is made.
EXPANDING = frozenset({"ConstantOfShape", "Expand", "Tile", "Range", "Pad", "Resize", "Upsample"})
# Constants up to this many elements keep their values for shape inference (shapes, scales, pads, repeats).
SMALL_CONSTANT = 4096
# Shape arithmetic is evaluated on tensors up to this many elements (shapes have a few).
SHAPE_VALUES = 64
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
    if "over_limit" in outcome:
        raise LimitExceeded(outcome["over_limit"])
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
    except LimitExceeded as exc:
        outcome = {"over_limit": str(exc)}
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
    """Refuse external tensor data (a path read from the server's disk), and expansions of constants (EXPANDING)
    whose outputs take over MAX_CONSTANT_BYTES together (LimitExceeded: 413).

    A node's outputs are constant when all its inputs are: initializers, `Constant` nodes, other constant outputs,
    or `Shape` of a tensor whose shape is static. Output sizes come from ONNX shape inference, run once more after
    small shape arithmetic (`Shape` -> `Mul` -> `ConstantOfShape`) was evaluated here; an expansion fed by a graph
    input is bounded by that input, which the serving limits cap, and is not counted.
    """
    from onnx import TensorProto

    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            raise malformed(f"initializer {tensor.name!r} refers to external data; upload a self-contained file")
    values = _small_constants(model)
    shapes = _inferred_shapes(model, values)
    if _evaluate_shape_arithmetic(model, shapes, values):
        shapes = _inferred_shapes(model, values)
    constant = {t.name for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        inputs = [name for name in node.input if name]  # "" is an omitted optional input
        if node.op_type == "Shape":
            is_constant = bool(inputs) and _static(shapes.get(inputs[0]))
        else:
            is_constant = node.op_type == "Constant" or (bool(inputs) and all(name in constant for name in inputs))
        if not is_constant:
            continue
        constant.update(node.output)
        if node.op_type in EXPANDING and node.output:
            total += _expansion_bytes(node, shapes, values)
            if total > MAX_CONSTANT_BYTES:
                raise LimitExceeded(
                    f"ONNX file is malformed: its constant tensors (expanded by {node.op_type} {node.name!r} and "
                    f"earlier ones) take over {MAX_CONSTANT_BYTES} bytes"
                )


Shape = tuple[tuple[int | None, ...] | None, int]  # (dims, None where unknown; or no shape at all), element type


def _static(shape: Shape | None) -> bool:
    return shape is not None and shape[0] is not None and all(d is not None for d in shape[0])


def _inferred_shapes(model: Any, values: dict[str, Any]) -> dict[str, Shape]:
    """Every named value's inferred shape and element type.

    Inferred on a copy of the graph where the values known here (small constants, evaluated shape arithmetic) are
    initializers, and large constants only declare their type and shape (a copy of the weights would double the
    check's memory). No data propagation: ONNX would materialise a hostile `Range` while propagating it.
    """
    import onnx
    from onnx import helper, numpy_helper, shape_inference

    view = onnx.ModelProto(ir_version=model.ir_version)
    view.opset_import.extend(model.opset_import)
    view.functions.extend(model.functions)
    graph = view.graph
    graph.input.extend(model.graph.input)
    graph.output.extend(model.graph.output)
    declared = {value.name for value in model.graph.input}
    for tensor in model.graph.initializer:
        if tensor.name not in values and tensor.name not in declared:
            graph.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    graph.initializer.extend(numpy_helper.from_array(array, name) for name, array in values.items())
    for node in model.graph.node:
        if node.output and all(name in values for name in node.output if name):
            continue  # its outputs are initializers of the copy
        value = next((a.t for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is not None and node.output:  # a large constant
            graph.input.append(helper.make_tensor_value_info(node.output[0], value.data_type, list(value.dims)))
        else:
            graph.node.append(node)
    try:
        inferred = shape_inference.infer_shapes(view, strict_mode=False, data_prop=False)
    except Exception as exc:  # onnx raises several types
        if _out_of_memory(exc):
            raise MemoryError from None
        raise malformed(f"its shapes cannot be inferred ({str(exc).strip().splitlines()[0][:200]})") from None
    shapes: dict[str, Shape] = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
        shapes[value.name] = (dims if tensor.HasField("shape") else None, tensor.elem_type)
    for tensor in inferred.graph.initializer:
        shapes[tensor.name] = (tuple(tensor.dims), tensor.data_type)
    return shapes


def _evaluate_shape_arithmetic(model: Any, shapes: dict[str, Shape], values: dict[str, Any]) -> bool:
    """Add to `values` the small tensors that shape arithmetic computes from constants and static shapes (what a
    deployed session would fold); True when any was added. Anything unusual is left unevaluated."""
    import numpy as np
    from onnx import helper

    def attribute(node: Any, name: str, default: Any = None) -> Any:
        found = next((a for a in node.attribute if a.name == name), None)
        return helper.get_attribute_value(found) if found is not None else default

    added = False
    for node in model.graph.node:
        if len(node.output) != 1 or node.output[0] in values:
            continue
        args = [values.get(name) for name in node.input if name]
        try:
            op = node.op_type
            if op == "Shape" and node.input and _static(shapes.get(node.input[0])):
                dims = shapes[node.input[0]][0] or ()
                result = np.array(dims, np.int64)[attribute(node, "start", 0) : attribute(node, "end", None)]
            elif not args or any(arg is None or arg.size > SHAPE_VALUES for arg in args):
                continue  # not constant, or not shape arithmetic (whose results are small, however combined)
            elif op in ("Add", "Sub", "Mul"):
                result = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}[op](args[0], args[1])
            elif op == "Div":
                integer = args[0].dtype.kind in "iu"
                result = np.trunc(args[0] / args[1]).astype(args[0].dtype) if integer else args[0] / args[1]
            elif op == "Concat":
                result = np.concatenate(args, axis=attribute(node, "axis"))
            elif op == "Gather":
                result = np.take(args[0], args[1], axis=attribute(node, "axis", 0))
            elif op in ("Unsqueeze", "Squeeze"):
                axes = attribute(node, "axes") or (args[1].tolist() if len(args) > 1 else None)
                if op == "Unsqueeze":
                    result = args[0].reshape(_unsqueezed(args[0].shape, axes))
                else:
                    result = np.squeeze(args[0], axis=tuple(axes) if axes is not None else None)
            elif op == "Cast":
                result = args[0].astype(helper.tensor_dtype_to_np_dtype(attribute(node, "to")))
            elif op == "Identity":
                result = args[0]
            else:
                continue
        except Exception:  # whatever numpy refuses stays unknown, as it would without evaluation
            continue
        if result.size <= SMALL_CONSTANT:
            values[node.output[0]] = np.asarray(result)
            added = True
    return added


def _unsqueezed(shape: tuple[int, ...], axes: list[int]) -> tuple[int, ...]:
    rank = len(shape) + len(axes)
    axes = sorted(a % rank for a in axes)
    dims = list(shape)
    for axis in axes:
        dims.insert(axis, 1)
    return tuple(dims)


def _small_constants(model: Any) -> dict[str, Any]:
    """The values of the small initializers and `Constant` nodes, as arrays."""
    from onnx import numpy_helper

    tensors = [(t.name, t) for t in model.graph.initializer]
    for node in model.graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is not None and node.output:
            tensors.append((node.output[0], value))
    values = {}
    for name, tensor in tensors:
        if math.prod(tensor.dims) <= SMALL_CONSTANT:
            try:
                values[name] = numpy_helper.to_array(tensor)
            except Exception as exc:
                raise malformed(f"constant {name!r} is unreadable ({exc})") from None
    return values


def _expansion_bytes(node: Any, shapes: dict[str, Shape], values: dict[str, Any]) -> int:
    """The bytes of an expanding node's output: its inferred shape, or for what inference leaves unsized,
    computed from the constant inputs (`ConstantOfShape`'s shape, `Range`'s bounds)."""
    from onnx import helper

    dims, element = shapes.get(node.output[0], (None, 0))
    if dims is None or None in dims:
        dims = None
        try:
            if node.op_type == "ConstantOfShape" and node.input[0] in values:
                dims = tuple(int(d) for d in values[node.input[0]].reshape(-1))
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                element = value.data_type if value is not None else 1  # float32 by default
            elif node.op_type == "Range" and all(name in values for name in node.input[:3]):
                start, limit, delta = (values[name].reshape(-1)[0].item() for name in node.input[:3])
                dims = (max(math.ceil((limit - start) / delta), 0),) if delta else (0,)
                element = shapes.get(node.input[0], (None, 1))[1]
        except (ValueError, IndexError, OverflowError, ZeroDivisionError) as exc:
            raise malformed(f"{node.op_type} {node.name!r} has unreadable constant inputs ({exc})") from None
    if dims is None:
        return 0  # not sizable from its constants: left to the memory cap of the check and of the session
    try:
        itemsize = helper.tensor_dtype_to_np_dtype(element).itemsize if element else 4
    except (KeyError, ValueError, TypeError):
        itemsize = 8
    return math.prod(max(int(d), 0) for d in dims) * max(itemsize, 1)


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
