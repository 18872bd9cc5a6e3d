"""The demo zoo's real models on real photos and data.

Inference here uses ONNX Runtime, numpy, Pillow and the card embedded in each file, with a preprocessing
written in this test, so these checks hold the zoo to its cards independently of Fovea's serving code.
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image
from skimage import data
from sklearn.datasets import load_digits

from fovea.core.card import InputSpec, load_card
from fovea.datasets import load_dataset_yaml
from fovea.zoo import build_zoo, list_zoo
from fovea.zoo.digits import load_split

pytestmark = pytest.mark.slow  # the session's zoo build trains a network (~15 s in all)

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CUP_CLASSES = [967, 968, 504]  # espresso, cup, coffee mug


def preprocess(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """One (1, C, H, W) float32 tensor from an HxW(xC) uint8 image, as the card's input spec says."""
    image = Image.fromarray(pixels).convert("L" if spec.color == "GRAY" else "RGB")
    height, width = spec.size
    if spec.resize == "center_crop":
        shorter = round(min(height, width) / spec.crop_pct)
        factor = shorter / min(image.size)
        image = image.resize((round(image.width * factor), round(image.height * factor)), Image.BILINEAR)
        left, top = (image.width - width) // 2, (image.height - height) // 2
        image = image.crop((left, top, left + width, top + height))
    elif spec.resize == "stretch":
        image = image.resize((width, height), Image.BILINEAR)
    else:
        raise NotImplementedError(spec.resize)
    x = np.asarray(image, np.float32).reshape(height, width, -1)
    if spec.color == "BGR":
        x = x[:, :, ::-1]
    x = (x * spec.scale - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class Classifier:
    def __init__(self, path):
        self.card = load_card(path)
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def probabilities(self, images: list[np.ndarray]) -> np.ndarray:
        x = np.concatenate([preprocess(image, self.card.input) for image in images])
        (logits,) = self.session.run(list(self.card.decoder.outputs), {self.card.input.name: x})
        return softmax(logits)


@pytest.fixture(scope="module")
def imagenet(zoo_dir):
    return Classifier(zoo_dir / "efficientnet-lite0-imagenet.onnx")


@pytest.fixture(scope="module")
def digits_model(zoo_dir):
    return Classifier(zoo_dir / "digits-lenet.onnx")


def test_chelsea_is_a_cat(imagenet):
    p = imagenet.probabilities([data.chelsea()])[0]
    top = int(p.argmax())
    assert top in CAT_CLASSES, (top, imagenet.card.class_names[top])
    assert p[list(CAT_CLASSES)].sum() > 0.85  # measured 0.92: the cat classes share the mass


def test_coffee_is_an_espresso_or_a_cup(imagenet):
    p = imagenet.probabilities([data.coffee()])[0]
    top = int(p.argmax())
    assert top in CUP_CLASSES, (top, imagenet.card.class_names[top])
    assert p[top] > 0.9  # measured 0.96 (espresso)


def test_a_batch_gives_what_single_images_give(imagenet):
    photos = [data.chelsea(), data.coffee(), data.astronaut()]
    batch = imagenet.probabilities(photos)
    singles = np.concatenate([imagenet.probabilities([photo]) for photo in photos])
    np.testing.assert_allclose(batch, singles, atol=1e-5)


def test_the_imagenet_card_describes_its_graph(imagenet, zoo_dir):
    card = imagenet.card
    assert len(card.classes) == 1000 and len(set(card.class_names)) == 1000
    assert card.class_names[281] == "tabby" and card.class_names[967] == "espresso"
    assert card.task == "classification" and card.decoder.kind == "softmax"
    assert (card.input.color, card.input.resize, card.input.crop_pct) == ("RGB", "center_crop", 0.875)
    assert card.provenance.architecture == "efficientnet_lite0" and card.provenance.trained_on == "ImageNet-1k"
    assert "Apache" in card.provenance.license
    graph = onnx.load(str(zoo_dir / "efficientnet-lite0-imagenet.onnx"), load_external_data=False).graph
    assert [i.name for i in graph.input] == [card.input.name]
    assert [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == ["batch", 3, 224, 224]
    assert tuple(o.name for o in graph.output) == card.decoder.outputs == ("logits",)


def test_digits_model_scores_on_the_test_split(digits_model, zoo_dir):
    paths, labels = load_split(zoo_dir / "digits" / "digits.yml", "test")
    images = [np.asarray(Image.open(p)) for p in paths]
    predicted = digits_model.probabilities(images).argmax(1)
    assert len(labels) == 269
    assert np.mean(predicted == labels) >= 0.95  # measured 1.0


def test_the_digits_card_fits_the_pngs(digits_model, zoo_dir):
    spec = digits_model.card.input
    assert (spec.color, spec.size, spec.resize, spec.scale) == ("GRAY", (8, 8), "stretch", 1 / 255)
    png = Image.open(zoo_dir / "digits" / "images" / "digit_0000.png")
    assert (png.mode, png.size) == ("L", (8, 8))
    assert digits_model.card.class_names == tuple(str(d) for d in range(10))


def test_fovea_load_serves_the_digits_pngs(digits_model, zoo_dir):
    import fovea

    paths, labels = load_split(zoo_dir / "digits" / "digits.yml", "test")
    served = fovea.load(zoo_dir / "digits-lenet.onnx")
    predictions = served.predict_batch(paths[:40])
    ours = digits_model.probabilities([np.asarray(Image.open(p)) for p in paths[:40]])
    for prediction, probabilities in zip(predictions, ours, strict=True):
        np.testing.assert_allclose(prediction.probabilities, probabilities, atol=1e-5)
    assert np.mean([p.labels[0] for p in predictions] == labels[:40]) >= 0.95


def test_the_digits_dataset_yaml(zoo_dir):
    spec = load_dataset_yaml(zoo_dir / "digits" / "digits.yml")
    assert spec.name == "Digits" and spec.classes == [str(d) for d in range(10)]
    assert len(spec.samples) == 1797
    splits = {name: set(spec.ids(name)) for name in ("training", "validation", "test")}
    assert {name: len(ids) for name, ids in splits.items()} == {"training": 1258, "validation": 270, "test": 269}
    assert set.union(*splits.values()) == set(range(1797))
    assert not (splits["training"] & splits["validation"] or splits["training"] & splits["test"])
    assert not splits["validation"] & splits["test"]
    truth = load_digits()
    assert [s.label for s in spec.samples] == truth.target.tolist()
    for i in (0, 900, 1796):
        pixels = np.asarray(Image.open(zoo_dir / "digits" / spec.samples[i].location))
        np.testing.assert_array_equal(pixels, np.round(truth.images[i] * 255 / 16).astype(np.uint8))


def test_list_zoo_reports_what_is_built(zoo_dir, tmp_path):
    entries = {e.name: e for e in list_zoo(zoo_dir)}
    imagenet, digits = entries["efficientnet-lite0-imagenet"], entries["digits-lenet"]
    assert imagenet.built and digits.built and entries["digits"].built and entries["samples"].built
    assert (imagenet.task, imagenet.num_classes, digits.num_classes) == ("classification", 1000, 10)
    assert imagenet.size_bytes == imagenet.path.stat().st_size > 15_000_000  # float32 EfficientNet-Lite0
    assert entries["digits"].size_bytes > 1797 * 70  # the PNGs count
    empty = list_zoo(tmp_path)
    assert not any(e.built for e in empty) and all(e.size_bytes == 0 for e in empty)


def test_building_again_is_a_no_op(zoo_dir, monkeypatch):
    from fovea.zoo import digits, efficientnet, retinaface, samples, textdet, unet

    def rebuilt(path):
        raise AssertionError(f"{path.name} was built again")

    builders = [(module, "build") for module in (samples, efficientnet, unet, retinaface, textdet)]
    builders.append((digits, "build_dataset"))
    for module, name in [*builders, (digits, "build_model"), (digits, "build_random")]:
        monkeypatch.setattr(module, name, rebuilt)  # a no-op builds nothing: no time bound needed to tell
    before = {e.name: e.path.stat().st_mtime_ns for e in list_zoo(zoo_dir)}
    messages = []
    build_zoo(zoo_dir, progress=messages.append)
    assert messages == []
    assert {e.name: e.path.stat().st_mtime_ns for e in list_zoo(zoo_dir)} == before


def test_digits_training_is_deterministic(zoo_dir):
    import torch

    from fovea.zoo.digits import train

    runs = [train(zoo_dir / "digits" / "digits.yml", epochs=3) for _ in range(2)]
    (first, result1), (second, result2) = runs
    assert result1.test_accuracy == result2.test_accuracy
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
