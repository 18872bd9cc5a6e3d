"""Model cards: validation, embedding in ONNX, side-car files, clear errors."""

import json

import numpy as np
import onnx
import pytest

import fovea
from fovea.core.card import CARD_KEY, ModelCard, load_card
from fovea.errors import CardError, InputError
from tests.core.graphs import constant_outputs

CARD = {
    "name": "pets",
    "task": "classification",
    "classes": ["cat", {"name": "dog", "color": "#ff0000", "supercategory": "animal"}],
    "input": {"size": [32, 32], "resize": "letterbox", "mean": [0.5], "std": [0.25]},
    "decoder": {"kind": "softmax"},
    "settings": {"top_k": 1},
}


def test_card_parses_names_colours_and_defaults():
    card = ModelCard.model_validate(CARD)
    assert card.class_names == ("cat", "dog")
    assert card.colors[1] == (255, 0, 0)
    assert card.classes[1].supercategory == "animal"
    assert card.default_settings == {"top_k": 1}
    assert ModelCard.from_json(card.to_json()) == card


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "segmentation"}, "does not fit task segmentation"),
        ({"classes": []}, "needs `classes`"),
        ({"classes": ["a", "a"]}, "unique"),
        ({"settings": {"conf_thres": 0.3}}, "unknown settings"),
        ({"input": {"size": [32, 32], "std": [0, 1, 1]}}, "std values must not be zero"),
        ({"input": {"size": [8, 32, 32]}}, "needs a 2-value size"),
        ({"decoder": {"kind": "magic"}}, "decoder.kind"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_cards_say_what_is_wrong(change, message):
    with pytest.raises(CardError, match=message):
        ModelCard.from_data({**CARD, **change})


def test_card_is_embedded_in_the_onnx_file(tmp_path):
    card = ModelCard.model_validate(CARD)
    path = constant_outputs(tmp_path / "m.onnx", card, {"logits": np.array([[0.0, 1.0]], np.float32)})
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props[CARD_KEY])["name"] == "pets"
    assert load_card(path) == card
    model = fovea.load(path)
    assert model.card == card
    assert model.predict(np.zeros((10, 10, 3), np.uint8)).names == ["dog"]


def strip_card(path):
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_side_car_card_describes_a_plain_onnx_file(tmp_path, suffix):
    card = ModelCard.model_validate(CARD)
    path = constant_outputs(tmp_path / "plain.onnx", card, {"logits": np.array([[2.0, 1.0]], np.float32)})
    strip_card(path)
    with pytest.raises(CardError, match=r"no embedded model card .* no side-car card \(plain.yaml"):
        fovea.load(path)
    side_car = tmp_path / f"plain{suffix}"
    side_car.write_text(json.dumps(CARD))  # JSON is valid YAML too
    assert fovea.load(path).predict(np.zeros((10, 10, 3), np.uint8)).names == ["cat"]


def test_side_car_errors_are_clear(tmp_path):
    card = ModelCard.model_validate(CARD)
    path = constant_outputs(tmp_path / "plain.onnx", card, {"logits": np.array([[2.0, 1.0]], np.float32)})
    strip_card(path)
    (tmp_path / "plain.yaml").write_text("task: [unclosed")
    with pytest.raises(CardError, match="not valid YAML"):
        fovea.load(path)
    (tmp_path / "plain.yaml").write_text("task: classification\n")
    with pytest.raises(CardError, match="decoder: Field required"):
        fovea.load(path)


def test_card_that_does_not_match_the_graph_is_refused(tmp_path):
    card = ModelCard.model_validate({**CARD, "decoder": {"kind": "softmax", "outputs": ["probs"]}})
    path = constant_outputs(tmp_path / "m.onnx", card, {"logits": np.array([[0.0, 1.0]], np.float32)})
    with pytest.raises(CardError, match=r"card outputs \['probs'\] are not outputs"):
        fovea.load(path)
    wrong_classes = ModelCard.model_validate({**CARD, "classes": ["a", "b", "c"]})
    path = constant_outputs(tmp_path / "n.onnx", wrong_classes, {"logits": np.array([[0.0, 1.0]], np.float32)})
    with pytest.raises(ValueError, match="gives 2 scores but its card names 3 classes"):
        fovea.load(path).predict(np.zeros((10, 10, 3), np.uint8))


def test_malformed_or_missing_onnx_files(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(InputError, match="ONNX file is malformed"):
        fovea.load(bad)
    with pytest.raises(InputError, match="model file not found"):
        fovea.load(tmp_path / "missing.onnx")
