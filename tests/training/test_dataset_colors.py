"""Dataset colour types (`ctype`, `ctype_gt`) and multi-plane samples as training reads them (format §1.2, §1.5).

Every image is a real file written here; expected values are worked out by hand from the colour-space formulas
(OpenCV's 8-bit conventions, which ECVL used), not by calling the converter under test.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from fovea.core.predictions import Task
from fovea.datasets import parse_dataset_yaml
from fovea.datasets.deephealth import served_color
from fovea.errors import InputError
from fovea.training.data import SplitData, read_mask, read_plane

ORANGE = (200, 100, 50)


def identity(**arrays):
    return arrays


@pytest.fixture
def orange(tmp_path):
    path = tmp_path / "orange.png"
    Image.fromarray(np.full((4, 6, 3), ORANGE, np.uint8)).save(path)
    return path


@pytest.mark.parametrize(
    ("ctype", "expected"),
    [
        ("RGB", (200, 100, 50)),
        ("BGR", (50, 100, 200)),
        ("GRAY", (124,)),  # 0.299 R + 0.587 G + 0.114 B = 124.2
        ("HSV", (10, 191, 200)),  # hue 20 degrees, halved; S = 255 * (200 - 50) / 200; V = max
        ("YCBCR", (124, 86, 182)),  # Cb = 128 + 0.564 (B - Y), Cr = 128 + 0.713 (R - Y)
    ],
)
def test_each_colour_type_converts_the_decoded_rgb(orange, ctype, expected):
    pixels = read_plane(orange, ctype)
    assert pixels.shape == (4, 6, len(expected)) and pixels.dtype == np.uint8
    assert np.abs(pixels[2, 3].astype(int) - expected).max() <= 1, pixels[2, 3]


def test_rgba_keeps_the_alpha_channel_and_none_keeps_the_files_channels(tmp_path, orange):
    translucent = tmp_path / "translucent.png"
    Image.fromarray(np.full((4, 6, 4), (*ORANGE, 77), np.uint8), "RGBA").save(translucent)
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((4, 6), 90, np.uint8), "L").save(gray)

    assert tuple(read_plane(translucent, "RGBA")[1, 1]) == (*ORANGE, 77)
    assert tuple(read_plane(orange, "RGBA")[1, 1]) == (*ORANGE, 255)  # no alpha in the file: opaque
    assert read_plane(translucent, "NONE").shape[2] == 4
    assert read_plane(orange, "NONE").shape[2] == 3
    none = read_plane(gray, "NONE")
    assert none.shape == (4, 6, 1) and int(none[0, 0, 0]) == 90


def test_an_unknown_colour_type_is_refused(orange):
    with pytest.raises(InputError, match="colour type 'LAB' is not one of RGB, BGR, GRAY, HSV, YCBCR, RGBA, NONE"):
        read_plane(orange, "LAB")


def _planes(root, values, size=(5, 7)):
    names = []
    for i, value in enumerate(values):
        name = f"p{i}.png"
        Image.fromarray(np.full(size, value, np.uint8), "L").save(root / name)
        names.append(name)
    return names


def test_a_multi_plane_sample_stacks_its_planes_as_channels_in_order(tmp_path):
    names = _planes(tmp_path, (10, 200, 60))
    spec = parse_dataset_yaml(f"classes: [a, b]\nimages:\n  - {{location: [{', '.join(names)}], label: 1}}\n")
    data = SplitData(spec, tmp_path, [0], Task.CLASSIFICATION, (5, 7), False, identity, "GRAY")
    x, label = data[0]
    assert tuple(x.shape) == (3, 5, 7) and int(label) == 1
    assert [float(x[c, 2, 2]) for c in range(3)] == [10.0, 200.0, 60.0]

    rgb = SplitData(spec, tmp_path, [0], Task.CLASSIFICATION, (5, 7), False, identity, "RGB")[0][0]
    assert tuple(rgb.shape) == (9, 5, 7)  # three planes of three channels, plane after plane
    assert [float(rgb[c, 0, 0]) for c in (0, 3, 6)] == [10.0, 200.0, 60.0]


def test_planes_of_different_sizes_are_refused_by_name(tmp_path):
    names = _planes(tmp_path, (10, 200))
    Image.fromarray(np.zeros((6, 7), np.uint8), "L").save(tmp_path / names[1])
    spec = parse_dataset_yaml(f"classes: [a, b]\nimages:\n  - {{location: [{', '.join(names)}], label: 0}}\n")
    data = SplitData(spec, tmp_path, [0], Task.CLASSIFICATION, (5, 7), False, identity, "GRAY")
    with pytest.raises(InputError, match=r"images\[0\]: plane 'p1.png' is 7x6 but 'p0.png' is 7x5"):
        data[0]


def test_masks_are_read_as_ctype_gt(tmp_path):
    Image.fromarray(np.full((4, 4, 3), 60, np.uint8)).save(tmp_path / "image.png")
    mask = np.zeros((4, 4), np.uint8)
    mask[1:3, 1:3] = 2
    Image.fromarray(mask, "L").save(tmp_path / "mask.png")
    Image.fromarray(np.dstack([mask, mask * 0, mask * 0])).save(tmp_path / "red.png")
    spec = parse_dataset_yaml(
        "classes: [bg, a, b]\nimages:\n  - {location: image.png, label: mask.png}\n", segmentation=True
    )
    for ctype_gt in (None, "GRAY", "NONE"):
        data = SplitData(spec, tmp_path, [0], Task.SEGMENTATION, (4, 4), False, identity, "RGB", ctype_gt)
        _, target = data[0]
        assert target.tolist() == mask.tolist()
    with pytest.raises(InputError, match="ctype_gt RGB reads the mask as 3 channels"):
        SplitData(spec, tmp_path, [0], Task.SEGMENTATION, (4, 4), False, identity, "RGB", "RGB")[0]
    with pytest.raises(InputError, match="ctype_gt NONE reads the mask as 3 channels"):
        read_mask(tmp_path / "red.png", "NONE", "images[0].label")


def test_only_colours_a_model_card_can_serve_are_trained():
    colours = ("GRAY", "RGB", "BGR", "HSV", "YCBCR")
    assert [served_color(c) for c in colours] == list(colours)
    assert served_color("NONE", channels=1) == "GRAY"
    with pytest.raises(InputError, match="colour type RGBA trains a network that serving cannot feed"):
        served_color("RGBA")
    with pytest.raises(InputError, match=r"multi-plane samples \(3 planes stacked as channels\)"):
        served_color("GRAY", planes=3)


# What each colour type makes of an RGB file, computed here with OpenCV rather than by Fovea's own table.
READ_AS = {
    "BGR": lambda rgb: rgb[:, :, ::-1],
    "HSV": lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV),
    "YCBCR": lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[:, :, [0, 2, 1]],
}


@pytest.mark.parametrize("ctype", READ_AS)
def test_a_dataset_trains_in_its_colour_type_and_its_weights_are_served_in_it(tmp_path, ctype):
    """Training reads the dataset's colour type (its loss says so); the exported card says it too, so serving an RGB
    file gives the network what it trained on. The parent's logits are 5 x the mean of input channels 0 and 2, and a
    zero learning rate keeps them so: the reported loss is then a function of the channels the training read."""
    import onnxruntime as ort
    import torch
    from torch import nn

    from fovea.core.onnx_model import load
    from fovea.datasets import Sample, write_dataset_yaml
    from fovea.training.pipeline import TrainingJob

    pick = nn.Conv2d(3, 2, 1, bias=False)
    with torch.no_grad():
        pick.weight.copy_(torch.tensor([[5.0, 0, 0], [0, 0, 5.0]]).reshape(2, 3, 1, 1))
    net = nn.Sequential(pick, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    parent = tmp_path / "parent.onnx"
    torch.onnx.export(net.eval(), torch.zeros(1, 3, 8, 8), str(parent), input_names=["input"], dynamo=False,
                      dynamic_axes={"input": {0: "batch"}})  # fmt: skip
    samples, colours = [], [(230, 20, 60), (20, 60, 230), (230, 20, 140), (20, 140, 230)]
    for i, colour in enumerate(colours):
        Image.fromarray(np.full((8, 8, 3), colour, np.uint8)).save(tmp_path / f"{i}.png")
        samples.append(Sample(location=f"{i}.png", label=i % 2))
    write_dataset_yaml(tmp_path / "d.yml", "d", ["reddish", "bluish"], samples, {"training": [0, 1, 2, 3]})
    scaled = "SequentialAugmentationContainer\n    AugToFloat32 divisor=255\nend"
    settings = {"Input height": "8", "Input width": "8", "Epochs": "1", "Batch size": "4", "Learning rate": "0",
                "Loss function": "cross_entropy", "Metric": "accuracy", "Training augmentations": scaled,
                "Validation augmentations": scaled, "Test augmentations": scaled, "fine_tuning": "inherit"}  # fmt: skip
    out, lines = tmp_path / "trained.onnx", []
    job = TrainingJob("classification", settings, parent, "tiny", tmp_path / "d.yml", "d", False, out, ctype=ctype)
    job.run(report=lines.append, check_stop=lambda: None)

    read = READ_AS[ctype](np.array(colours, np.uint8)[None]).astype(float)[0] / 255
    logits = 5 * read[:, [0, 2]]
    expected_loss = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(4), [0, 1, 0, 1]])
    assert lines[-1].startswith("Train - epoch [1/1] - batch [1/1] - loss=")
    assert abs(float(lines[-1].split("loss=")[1].split(" ")[0]) - expected_loss) < 2e-3, (lines[-1], expected_loss)

    model = load(out)
    assert model.card.input.color == ctype
    served = model.predict(tmp_path / "0.png").probabilities
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    pixels = READ_AS[ctype](np.asarray(Image.open(tmp_path / "0.png"))).astype(np.float32) / 255
    [trained] = session.run(None, {session.get_inputs()[0].name: pixels.transpose(2, 0, 1)[None].copy()})
    np.testing.assert_allclose(served, np.exp(trained[0]) / np.exp(trained[0]).sum(), rtol=1e-4, atol=1e-6)


def test_launching_a_training_refuses_what_serving_could_not_feed():
    from types import SimpleNamespace

    from fovea.platform.trainings import check_channels

    weights = SimpleNamespace(name="w")
    check_channels(SimpleNamespace(name="d", ctype="BGR"), weights, [None, 3, 8, 8])
    check_channels(SimpleNamespace(name="d", ctype="NONE"), weights, [None, 1, 8, 8])  # settled on reading the files
    with pytest.raises(InputError, match=r"dataset 'd': multi-plane samples \(2 planes stacked as channels\)"):
        check_channels(SimpleNamespace(name="d", ctype="GRAY"), weights, [None, 2, 8, 8], planes=2)
    check_channels(SimpleNamespace(name="d", ctype="HSV"), weights, [None, 3, 8, 8])
    with pytest.raises(InputError, match="dataset 'd': colour type RGBA trains a network that serving cannot feed"):
        check_channels(SimpleNamespace(name="d", ctype="RGBA"), weights, [None, 4, 8, 8])
