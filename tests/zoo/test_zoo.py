"""The demo zoo's real models on real photos and data."""

import time

import numpy as np
import pytest

import fovea
from fovea.datasets import load_dataset_yaml
from fovea.zoo import build_zoo, list_zoo
from fovea.zoo.digits import load_split

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CUP_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(scope="module")
def imagenet(zoo_dir):
    return fovea.load(zoo_dir / "efficientnet-lite0-imagenet.onnx")


def test_chelsea_is_a_cat(imagenet, zoo_dir):
    prediction = imagenet.predict(zoo_dir / "samples" / "chelsea.jpg")
    assert prediction.labels[0] in CAT_CLASSES, prediction.names
    assert prediction.scores[:3].sum() > 0.8  # the top three are all cats, together confident
    assert "cat" in " ".join(prediction.names[:3])


def test_coffee_is_a_cup_or_espresso(imagenet, zoo_dir):
    prediction = imagenet.predict(zoo_dir / "samples" / "coffee.png")
    assert prediction.labels[0] in CUP_CLASSES, prediction.names
    assert prediction.scores[0] > 0.5


def test_the_card_travels_inside_the_onnx_file(imagenet):
    card = imagenet.card
    assert len(card.classes) == 1000 and card.class_names[281] == "tabby"
    assert card.input.resize == "center_crop" and card.provenance.trained_on == "ImageNet-1k"
    assert len(set(card.class_names)) == 1000


def test_batch_predictions_equal_single_predictions(imagenet, zoo_dir):
    paths = [zoo_dir / "samples" / f"{name}.jpg" for name in ("chelsea", "coffee", "astronaut", "rocket")]
    batch = imagenet.predict_batch(paths * 3, batch_size=4)
    singles = [imagenet.predict(p) for p in paths]
    for i, prediction in enumerate(batch):
        np.testing.assert_allclose(prediction.probabilities, singles[i % 4].probabilities, atol=1e-4)


def test_digits_model_scores_on_the_test_split(zoo_dir):
    paths, labels = load_split(zoo_dir / "digits" / "digits.yml", "test")
    model = fovea.load(zoo_dir / "digits-lenet.onnx")
    predictions = model.predict_batch(paths)
    accuracy = np.mean([p.labels[0] == label for p, label in zip(predictions, labels, strict=True)])
    assert accuracy >= 0.95


def test_digits_dataset_yaml(zoo_dir):
    spec = load_dataset_yaml(zoo_dir / "digits" / "digits.yml")
    assert spec.name == "Digits" and spec.classes == [str(d) for d in range(10)]
    assert len(spec.samples) == 1797
    splits = [set(spec.ids(s)) for s in ("training", "validation", "test")]
    assert sum(len(s) for s in splits) == 1797
    assert not (splits[0] & splits[1]) and not (splits[0] & splits[2]) and not (splits[1] & splits[2])
    assert all((zoo_dir / "digits" / str(spec.samples[i].location)).is_file() for i in (0, 1796))


def test_zoo_lists_what_is_built_and_rebuilding_is_a_no_op(zoo_dir):
    entries = {e.name: e for e in list_zoo(zoo_dir)}
    assert entries["efficientnet-lite0-imagenet"].built and entries["digits-lenet"].built
    start = time.perf_counter()
    build_zoo(zoo_dir)
    assert time.perf_counter() - start < 1.0


def test_list_zoo_on_an_empty_folder(tmp_path):
    assert not any(e.built for e in list_zoo(tmp_path))
