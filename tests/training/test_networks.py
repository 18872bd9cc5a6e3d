"""The training layer's parts: cutting a pretraining and re-heading it, losses and metrics, the loop, the card."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fovea.core.predictions import Task
from fovea.platform.demo_catalog import head_layer
from fovea.training.losses import loss_function, metric_function
from fovea.training.networks import FINAL_LAYER, NetworkError, cut_graph, load_network
from fovea.training.pipeline import TrainingJob
from fovea.training.trainer import Hyperparameters, Trainer

DIGIT = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)


def run_onnx(model_or_path, x):
    source = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_cut_graph_ends_at_the_tensor_that_fed_the_removed_layer(zoo_dir):
    path = zoo_dir / "digits-lenet.onnx"
    model = onnx.load(str(path))
    layer = head_layer(path)
    cut = cut_graph(model, layer)
    assert layer not in [node.name for node in cut.graph.node]
    assert run_onnx(cut, DIGIT).shape == (2, 64)  # the hidden dense layer's activations feed the classifier
    with pytest.raises(NetworkError, match="no node named 'nope'"):
        cut_graph(model, "nope")


def test_whole_network_matches_onnx_runtime_and_a_new_head_fits_the_classes(zoo_dir):
    path = zoo_dir / "digits-lenet.onnx"
    whole = load_network(path, Task.CLASSIFICATION, 10, layer_to_remove=None, sample=DIGIT).eval()
    with torch.no_grad():
        np.testing.assert_allclose(whole(torch.from_numpy(DIGIT)).numpy(), run_onnx(path, DIGIT), atol=1e-5)
    headed = load_network(path, Task.CLASSIFICATION, 3, layer_to_remove=head_layer(path), sample=DIGIT)
    assert isinstance(getattr(headed, FINAL_LAYER), torch.nn.Linear) and headed(torch.from_numpy(DIGIT)).shape == (2, 3)


def test_a_segmentation_head_replaces_the_last_convolution(zoo_dir):
    path = zoo_dir / "unet-random.onnx"
    x = np.zeros((1, 1, 64, 64), np.float32)
    headed = load_network(path, Task.SEGMENTATION, 4, layer_to_remove=head_layer(path), sample=x)
    head = getattr(headed, FINAL_LAYER)
    assert isinstance(head, torch.nn.Conv2d) and head.kernel_size == (1, 1) and head.out_channels == 4
    assert headed(torch.from_numpy(x)).shape == (1, 4, 64, 64)


def test_losses_and_metrics_on_known_values():
    logits = torch.tensor([[4.0, -4.0], [-4.0, 4.0], [4.0, -4.0]])
    target = torch.tensor([0, 1, 1])
    assert metric_function("accuracy", Task.CLASSIFICATION)(logits, target) == pytest.approx(2 / 3)
    assert loss_function("cross_entropy", Task.CLASSIFICATION)(logits, target) > loss_function(
        "cross_entropy", Task.CLASSIFICATION
    )(logits, torch.tensor([0, 1, 0]))
    mask = torch.zeros(1, 8, 8, dtype=torch.long)
    mask[0, 2:6, 2:6] = 1
    perfect = (mask.float() * 20 - 10).unsqueeze(1)  # one-channel logits: foreground exactly on the mask
    assert metric_function("dice", Task.SEGMENTATION)(perfect, mask) == pytest.approx(1.0)
    assert metric_function("dice", Task.SEGMENTATION)(-perfect, mask) == pytest.approx(0.0, abs=1e-3)
    assert loss_function("dice", Task.SEGMENTATION)(perfect, mask) < 0.01
    values = torch.tensor([[2.0], [4.0]])
    assert metric_function("mean_absolute_error", Task.REGRESSION)(values, torch.tensor([[1.0], [4.0]])) == 0.5
    assert metric_function("mean_relative_error", Task.REGRESSION)(values, torch.tensor([[1.0], [4.0]])) == 0.5


def test_the_loop_keeps_the_last_partial_batch_and_stops_between_batches():
    data = torch.utils.data.TensorDataset(torch.randn(10, 4), torch.randint(0, 2, (10,)))
    lines, checkpoints = [], []
    hp = Hyperparameters(epochs=2, batch_size=4, learning_rate=0.01, loss="cross_entropy", metric="accuracy")

    def trainer(check_stop):
        return Trainer(torch.nn.Linear(4, 2), Task.CLASSIFICATION, hp, report=lines.append, check_stop=check_stop,
                       checkpoint=lambda net, result: checkpoints.append(result.epoch))  # fmt: skip

    history = trainer(lambda: None).fit(data, data)
    assert [h.epoch for h in history] == [1, 2] and checkpoints[0] == 1
    assert "Train - epoch [2/2] - batch [3/3] - loss=" in "\n".join(lines)  # 10 images in batches of 4: 3 batches
    assert lines[-1].startswith("Validation - epoch [2/2] - batch [3/3] - loss=")

    class Stop(Exception):
        pass

    calls = []

    def stop_after_two():
        calls.append(1)
        if len(calls) > 2:
            raise Stop

    lines.clear()
    with pytest.raises(Stop):
        trainer(stop_after_two).fit(data, None)
    assert len(calls) == 3  # two batches ran, the third never started


def test_the_card_reproduces_the_test_pipeline_as_serving_preprocessing():
    def normalize(image, mask=None):  # what "AugToFloat32 divisor=255, AugNormalize mean=0.5 std=0.25" computes
        return {"image": (image.astype(np.float32) / 255 - 0.5) / 0.25}

    job = TrainingJob("classification", {}, None, "parent", None, "set", gray=True, out=None)
    spec = type("Spec", (), {"classes": ["a", "b"], "features": []})()
    card = job.card(spec, Task.CLASSIFICATION, normalize, 1, (8, 8))
    pixels = np.array([0.0, 100.0, 255.0])
    served = (pixels * card.input.scale - card.input.mean[0]) / card.input.std[0]
    np.testing.assert_allclose(served, normalize(pixels)["image"], rtol=1e-5)
    assert card.input.color == "GRAY" and card.input.size == (8, 8) and card.class_names == ("a", "b")
