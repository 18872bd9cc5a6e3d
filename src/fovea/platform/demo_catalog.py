"""The demo catalog a fresh server offers: the zoo's models, weights and the Digits dataset, public.

Built from the demo zoo (`fovea zoo build`), which comes from installed packages; nothing is downloaded.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import onnx
from sqlalchemy import select
from sqlalchemy.orm import Session

from fovea.core.card import load_card
from fovea.paths import atomic_path
from fovea.platform.enums import TaskId
from fovea.platform.models import OWN, AllowedProperty, ArchModel, Dataset, DatasetMember, User, Weights, WeightsMember
from fovea.platform.storage import new_dataset_dir, weights_file


@dataclass(frozen=True, slots=True)
class DemoWeights:
    family: str  # the model (architecture family) it belongs to
    task_id: TaskId
    filename: str  # in the zoo
    name: str
    on_digits: bool = False  # trained on the Digits dataset
    random_init: bool = False  # a starting point for training from scratch: no classes of its own
    cuttable: bool = True  # False: pretrained end to end, its last convolution is no head to replace


DEMO = [
    DemoWeights(
        "EfficientNet-Lite0", TaskId.CLASSIFICATION, "efficientnet-lite0-imagenet.onnx", "EfficientNet-Lite0_ImageNet"
    ),
    DemoWeights("LeNet", TaskId.CLASSIFICATION, "digits-lenet.onnx", "LeNet_Digits", on_digits=True),
    DemoWeights("LeNet", TaskId.CLASSIFICATION, "lenet-random.onnx", "LeNet_RandomInit", random_init=True),
    DemoWeights("U-Net", TaskId.SEGMENTATION, "unet-random.onnx", "U-Net_RandomInit", random_init=True),
    DemoWeights(
        "RetinaFace", TaskId.DETECTION, "retinaface-mobilenet-widerface.onnx", "RetinaFace_WIDERFace", cuttable=False
    ),
    DemoWeights("DBNet", TaskId.SEGMENTATION, "ppocrv6-det-text.onnx", "DBNet_PP-OCRv6-Text", cuttable=False),
]


def _pipeline(*steps: str) -> str:
    return "\n".join(["SequentialAugmentationContainer", *(f"    {step}" for step in steps), "end"])


# Hyperparameter defaults per model family (allowedProperties rows with no dataset), by property id; the
# augmentation defaults compute the inputs the family's weights expect. Input height/width come from the weights.
_EFFICIENTNET_INPUT = ("AugToFloat32 divisor=255", "AugNormalize mean=(0.5, 0.5, 0.5) std=(0.5, 0.5, 0.5)")
# The card's geometry (shorter side to 256, the centre 224 x 224) in the grammar, which has no aspect-keeping resize:
# the largest centred square, scaled to 256 x 256, is the same region at the same scale. Training draws its crop.
_EFFICIENTNET_FRAME = ("AugCenterCrop", "AugResizeDim dims=(256,256)")
_GRAY_INPUT = ("AugToFloat32 divisor=255", "AugNormalize mean=0.5 std=0.5")
FAMILY_DEFAULTS: dict[str, dict[int, str]] = {
    "EfficientNet-Lite0": {
        1: "0.0001", 3: "5", 4: "16",
        8: _pipeline(*_EFFICIENTNET_FRAME, "AugRandomCrop size=(224,224)", "AugMirror p=0.5", *_EFFICIENTNET_INPUT),
        9: _pipeline(*_EFFICIENTNET_FRAME, "AugCenterCrop size=(224,224)", *_EFFICIENTNET_INPUT),
        10: _pipeline(*_EFFICIENTNET_FRAME, "AugCenterCrop size=(224,224)", *_EFFICIENTNET_INPUT),
    },
    "LeNet": {
        1: "0.002", 3: "10", 4: "32",
        8: _pipeline(*_GRAY_INPUT), 9: _pipeline(*_GRAY_INPUT), 10: _pipeline(*_GRAY_INPUT),
    },
    "U-Net": {
        1: "0.003", 2: "binary_cross_entropy", 3: "10", 4: "16", 5: "dice",
        8: _pipeline("AugMirror p=0.5", "AugFlip p=0.5", *_GRAY_INPUT),
        9: _pipeline(*_GRAY_INPUT),
        10: _pipeline(*_GRAY_INPUT),
    },
}  # fmt: skip


def head_layer(path: Path) -> str | None:
    """The head a fine-tuning cuts at (`layer_to_remove`): the last dense layer, or a final convolution."""
    nodes = [
        n for n in onnx.load(str(path), load_external_data=False).graph.node if n.op_type in ("Gemm", "MatMul", "Conv")
    ]
    return nodes[-1].name if nodes else None


def seed_demo_catalog(db: Session, admin: User, zoo: Path, storage: Path) -> None:
    """Register what the zoo holds, once (idempotent: skips what is already there)."""
    digits = _seed_digits(db, admin, zoo / "digits", storage) if (zoo / "digits" / "digits.yml").exists() else None
    for demo in DEMO:
        source = zoo / demo.filename
        if not source.exists():
            continue
        card = load_card(source)
        key = demo.family.lower()
        model = db.scalar(select(ArchModel).where(ArchModel.name_key == key, ArchModel.task_id == demo.task_id))
        if model is None:
            model = ArchModel(name=demo.family, name_key=key, task_id=demo.task_id)
            db.add(model)
            db.flush()
        size = card.input.size[-2:]
        _default_rows(db, model, {6: str(size[0]), 7: str(size[1]), **FAMILY_DEFAULTS.get(demo.family, {})})
        if db.scalar(select(Weights).where(Weights.name == demo.name, Weights.model_id == model.id)):
            continue
        weights = Weights(
            name=demo.name,
            model_id=model.id,
            dataset_id=digits.id if demo.on_digits and digits else None,
            public=True,
            layer_to_remove=head_layer(source) if demo.cuttable else None,
            classes=None if demo.random_init else ",".join(card.class_names),
            card=card.to_json(),
            members=[WeightsMember(user_id=admin.id, permission=OWN)],
        )
        db.add(weights)
        db.flush()
        with atomic_path(weights_file(storage, weights.id)) as tmp:
            shutil.copyfile(source, tmp)


def _seed_digits(db: Session, admin: User, source: Path, storage: Path) -> Dataset:
    existing = db.scalar(select(Dataset).where(Dataset.name == "Digits", Dataset.public))
    if existing is not None:
        return existing
    folder = new_dataset_dir(storage)
    shutil.copytree(source, folder)
    classes = ",".join(str(d) for d in range(10))
    dataset = Dataset(
        name="Digits",
        path=str((folder / "digits.yml").relative_to(storage)),
        task_id=TaskId.CLASSIFICATION,
        public=True,
        ctype="GRAY",
        classes=classes,
        members=[DatasetMember(user_id=admin.id, permission=OWN)],
    )
    db.add(dataset)
    db.flush()
    return dataset


def _default_rows(db: Session, model: ArchModel, defaults: dict[int, str]) -> None:
    """allowedProperties rows (model, no dataset) holding the family's defaults, unless a row exists already."""
    for property_id, value in defaults.items():
        exists = select(AllowedProperty).where(
            AllowedProperty.model_id == model.id,
            AllowedProperty.property_id == property_id,
            AllowedProperty.dataset_id.is_(None),
        )
        if db.scalar(exists) is None:
            db.add(AllowedProperty(property_id=property_id, model_id=model.id, default_value=value))
