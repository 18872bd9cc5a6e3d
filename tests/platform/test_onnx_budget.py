"""ONNX validation stays within a memory budget: a small upload cannot make it allocate a large tensor."""

import subprocess
import sys
import textwrap

import onnx
import pytest
from onnx import TensorProto, helper

from fovea.platform.errors import InputError
from fovea.platform.onnx_check import validate_onnx


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
    from fovea.platform.errors import InputError
    from fovea.platform.onnx_check import validate_onnx
    import onnxruntime  # imported before the baseline: its own size is not what is measured

    data = open(sys.argv[1], "rb").read()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    try:
        validate_onnx(data, 1, None, None)
        outcome = "accepted"
    except InputError as exc:
        outcome = str(exc)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"{grown_mib:.1f} {time.monotonic() - started:.2f} {outcome}")
    """
)


def test_refusing_a_constant_bomb_keeps_peak_memory_low(tmp_path):
    """Peak RSS of a fresh process, around validation only (tracemalloc does not see ONNX Runtime's memory)."""
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
    validate_onnx(constant_of_shape_model(10), 1, None, None)
    assert seen == [ort.GraphOptimizationLevel.ORT_DISABLE_ALL]
