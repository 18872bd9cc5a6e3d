"""ONNX validation stays within a memory budget: a small upload cannot make it allocate a large tensor."""

import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fovea.errors import LimitExceeded
from fovea.platform.errors import InputError
from fovea.platform.onnx_check import check_onnx, validate_onnx
from tests.platform.conftest import bearer, login


def constant_of_shape_model(elements: int, *, from_initializer: bool = False) -> bytes:
    """A valid classifier-shaped graph whose ConstantOfShape makes `elements` float32 values from a constant."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [elements])
    feeds = [] if from_initializer else [helper.make_node("Constant", [], ["shape"], value=shape, name="shape")]
    nodes = [
        *feeds,
        helper.make_node(
            "ConstantOfShape", ["shape"], ["big"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])
        ),
        helper.make_node("ReduceSum", ["big"], ["total"], keepdims=1),
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[2, 3], keepdims=0),
        helper.make_node("Add", ["mean", "total"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "bomb",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[shape] if from_initializer else [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_small_constant_of_shape_is_accepted():
    assert validate_onnx(constant_of_shape_model(1000), 1, ["a", "b", "c"], None) is None


@pytest.mark.parametrize("from_initializer", [False, True])
def test_constant_of_shape_over_budget_is_refused(from_initializer):
    data = constant_of_shape_model(2**28, from_initializer=from_initializer)  # 1 GiB of float32
    assert len(data) < 1000
    with pytest.raises(InputError, match="ONNX file is malformed: its constant tensors"):
        validate_onnx(data, 1, None, None)


MEASURE = textwrap.dedent(
    """
    import resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3))  # a check that misses fails, not the machine
    from fovea.platform.errors import InputError
    from fovea.platform.onnx_check import check_onnx
    import onnxruntime  # imported before the baseline: its own size is not what is measured

    data = open(sys.argv[1], "rb").read()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    try:
        check_onnx(data, 1, None, None)
        outcome = "accepted"
    except (InputError, MemoryError) as exc:
        outcome = str(exc) or type(exc).__name__
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"{grown_mib:.1f} {time.monotonic() - started:.2f} {outcome}")
    """
)


def test_refusing_a_constant_bomb_keeps_peak_memory_low(tmp_path):
    """Peak RSS of a fresh process, around the checks only (tracemalloc does not see ONNX Runtime's memory)."""
    bomb = tmp_path / "bomb.onnx"
    bomb.write_bytes(constant_of_shape_model(2**28))
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(bomb)], capture_output=True, text=True, timeout=120, check=True
    )
    grown_mib, seconds, outcome = result.stdout.split(" ", 2)
    assert "constant tensors" in outcome
    assert float(grown_mib) < 64, f"validation grew peak RSS by {grown_mib} MiB"
    assert float(seconds) < 5


def test_graph_is_not_optimised_at_validation(monkeypatch):
    """Even a constant the static check cannot size is not folded: ONNX Runtime runs no optimisation."""
    import onnxruntime as ort

    seen = []
    real = ort.InferenceSession

    def spy(data, options=None, **kwargs):
        seen.append(options.graph_optimization_level if options else None)
        return real(data, options, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    check_onnx(constant_of_shape_model(10), 1, None, None)
    assert seen == [ort.GraphOptimizationLevel.ORT_DISABLE_ALL]


def large_initializer_model(elements: int) -> bytes:
    """A valid classifier-shaped graph with one float32 initializer of `elements` values (a large, honest model)."""
    weights = numpy_helper.from_array(np.ones((elements,), np.float32), "w")
    nodes = [
        helper.make_node("ReduceSum", ["w"], ["total"], keepdims=1),
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[2, 3], keepdims=0),
        helper.make_node("Add", ["mean", "total"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "large",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[weights],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def test_validation_runs_outside_the_callers_process(monkeypatch):
    """Parsing and checking hold the GIL: none of it may happen in the server's process."""
    import onnx

    def refuse(*args, **kwargs):
        raise AssertionError("the ONNX file was parsed in the caller's process")

    monkeypatch.setattr(onnx, "load_from_string", refuse)
    assert validate_onnx(constant_of_shape_model(1000), 1, ["a", "b", "c"], None) is None
    with pytest.raises(InputError, match="ONNX file is malformed: "):
        validate_onnx(b"not a model", 1, None, None)


# Python with onnx and ONNX Runtime imported maps about 560 MiB: 700 MiB leaves too little for a 64 MiB initializer
# (parsed, checked and loaded by ONNX Runtime, each with its own copy), which the default cap checks fine.
SMALL_CAP = str(700 * 1024**2)
LARGE_ELEMENTS = 16 * 1024**2


def test_a_model_over_the_memory_cap_is_refused_as_over_limit(monkeypatch):
    data = large_initializer_model(LARGE_ELEMENTS)
    assert validate_onnx(data, 1, None, None) is None
    monkeypatch.setenv("FOVEA_ONNX_CHECK_MEMORY_BYTES", SMALL_CAP)
    with pytest.raises(LimitExceeded, match="bytes of memory"):
        validate_onnx(data, 1, None, None)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_upload_over_the_memory_cap_is_answered_413(backend, monkeypatch):
    monkeypatch.setenv("FOVEA_ONNX_CHECK_MEMORY_BYTES", SMALL_CAP)
    headers = bearer(login(backend))
    model_id = backend.post("/backend/models", json={"name": "m", "task_id": 1}, headers=headers).json()["id"]
    refused = backend.post(
        "/backend/weights",
        data={"name": "large", "model_id": str(model_id)},
        files={"onnx_data": ("m.onnx", large_initializer_model(LARGE_ELEMENTS))},
        headers=headers,
    )
    assert refused.status_code == 413, refused.text
    assert set(refused.json()) == {"error"} and "Traceback" not in refused.text
    assert backend.get(f"/backend/weights?model_id={model_id}&include_inactive=true", headers=headers).json() == []


# Expansions other than ConstantOfShape: each makes a large tensor from small constants, which a deployed session
# would fold (allocate) at creation. `n` scales the output: 16 is small and accepted, 2**13 or more is a bomb.
def _const(name, array):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(array), name), name=name)


def _expansion(kind, n):
    """(nodes making "big" from constants, opset) for one kind of expansion."""
    f32, i64 = np.float32, np.int64
    if kind == "expand":
        return [_const("d", np.ones((1, 1), f32)), _const("s", np.array([n, n], i64)), mk("Expand", ["d", "s"])], 13
    if kind == "expand_of_constant_of_shape":  # a tiny ConstantOfShape, then expanded: sized through the chain
        small = [_const("one", np.array([1], i64)), helper.make_node("ConstantOfShape", ["one"], ["d"])]
        return [*small, _const("s", np.array([n, n], i64)), mk("Expand", ["d", "s"])], 13
    if kind == "tile":
        return [_const("d", np.ones((1, 1), f32)), _const("r", np.array([n, n], i64)), mk("Tile", ["d", "r"])], 13
    if kind == "range":
        bounds = [_const("a", np.array(0, i64)), _const("b", np.array(n * n, i64)), _const("c", np.array(1, i64))]
        return [*bounds, mk("Range", ["a", "b", "c"])], 13
    if kind == "pad":
        return [_const("d", np.ones((1, 1), f32)), _const("p", np.array([0, 0, n, n], i64)), mk("Pad", ["d", "p"])], 13
    if kind == "resize":
        scales = _const("sc", np.array([1, 1, n, n], f32))
        return [_const("d", np.ones((1, 1, 1, 1), f32)), scales, mk("Resize", ["d", "", "sc"])], 13
    if kind == "upsample":
        scales = _const("sc", np.array([1, 1, n, n], f32))
        return [_const("d", np.ones((1, 1, 1, 1), f32)), scales, mk("Upsample", ["d", "sc"])], 9
    if kind == "shape_arithmetic":  # Shape of the (static) input, multiplied up, then ConstantOfShape
        factor = _const("k", np.array([1, 1, n // 8, n // 8], i64))
        nodes = [helper.make_node("Shape", ["x"], ["sx"]), factor, helper.make_node("Mul", ["sx", "k"], ["s"])]
        return [*nodes, helper.make_node("ConstantOfShape", ["s"], ["big"])], 13
    raise AssertionError(kind)


def mk(op, inputs):
    return helper.make_node(op, inputs, ["big"], name=f"the_{op.lower()}")


EXPANSIONS = ["expand", "expand_of_constant_of_shape", "tile", "range", "pad", "resize", "upsample", "shape_arithmetic"]


def expansion_model(kind: str, n: int) -> bytes:
    """A valid classifier-shaped graph whose output depends on the expansion (so nothing is dead code)."""
    nodes, opset = _expansion(kind, n)
    cast = helper.make_node("Cast", ["big"], ["bigf"], to=TensorProto.FLOAT)  # Range makes int64
    nodes += [
        cast,
        helper.make_node("ReduceSum", ["bigf"], ["total"], keepdims=0),
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[2, 3], keepdims=0),
        helper.make_node("Add", ["mean", "total"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        kind,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.mark.parametrize("kind", EXPANSIONS)
def test_small_expansions_of_constants_are_accepted(kind):
    assert check_onnx(expansion_model(kind, 16), 1, None, None) is None


@pytest.mark.parametrize("kind", EXPANSIONS)
def test_expansions_of_constants_over_budget_are_refused_as_over_limit(kind):
    data = expansion_model(kind, 2**14)  # 2**28 elements: 1 GiB of float32 (2 GiB of int64 for Range)
    assert len(data) < 2000
    with pytest.raises(LimitExceeded, match="ONNX file is malformed: its constant tensors"):  # not the memory cap's
        validate_onnx(data, 1, None, None)


@pytest.mark.parametrize("kind", ["constant_of_shape", *EXPANSIONS])
def test_expansion_bombs_are_refused_before_allocating(tmp_path, kind):
    """Refused by the static check (its message) with little memory: the child's memory cap is only a second line."""
    bomb = tmp_path / "bomb.onnx"
    bomb.write_bytes(constant_of_shape_model(2**28) if kind == "constant_of_shape" else expansion_model(kind, 2**14))
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(bomb)], capture_output=True, text=True, timeout=120, check=True
    )
    grown_mib, _, outcome = result.stdout.split(" ", 2)
    assert "constant tensors" in outcome
    assert float(grown_mib) < 64, f"validation grew peak RSS by {grown_mib} MiB"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_expansion_bomb_uploads_are_answered_413(backend):
    headers = bearer(login(backend))
    model_id = backend.post("/backend/models", json={"name": "m", "task_id": 1}, headers=headers).json()["id"]
    for kind in ["constant_of_shape", *EXPANSIONS]:
        data = constant_of_shape_model(2**28) if kind == "constant_of_shape" else expansion_model(kind, 2**14)
        refused = backend.post(
            "/backend/weights",
            data={"name": kind, "model_id": str(model_id)},
            files={"onnx_data": ("m.onnx", data)},
            headers=headers,
        )
        assert refused.status_code == 413, (kind, refused.text)
        assert "constant tensors" in refused.json()["error"], refused.text
    assert backend.get(f"/backend/weights?model_id={model_id}&include_inactive=true", headers=headers).json() == []
