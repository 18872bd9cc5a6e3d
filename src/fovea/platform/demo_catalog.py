"""The demo catalog a fresh server offers: the zoo's models, weights and the Digits dataset, public.

Built from the demo zoo (`fovea zoo build`), which comes from installed packages; nothing is downloaded.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import onnx
from sqlalchemy import select
from sqlalchemy.orm import Session

from fovea.core.card import load_card
from fovea.paths import atomic_path
from fovea.platform.models import OWN, AllowedProperty, ArchModel, Dataset, DatasetMember, User, Weights, WeightsMember
from fovea.platform.weights import file_path

DEMO = [
    # (model family, zoo file, weights name, trained on the Digits dataset?)
    ("EfficientNet-Lite0", "efficientnet-lite0-imagenet.onnx", "EfficientNet-Lite0_ImageNet", False),
    ("LeNet", "digits-lenet.onnx", "LeNet_Digits", True),
]


def _last_gemm(path: Path) -> str | None:
    """The classifier layer a fine-tuning cuts at (`layer_to_remove`)."""
    nodes = [
        n.name for n in onnx.load(str(path), load_external_data=False).graph.node if n.op_type in ("Gemm", "MatMul")
    ]
    return nodes[-1] if nodes else None


def seed_demo_catalog(db: Session, admin: User, zoo: Path, storage: Path) -> None:
    """Register what the zoo holds, once (idempotent: skips what is already there)."""
    digits = _seed_digits(db, admin, zoo / "digits", storage) if (zoo / "digits" / "digits.yml").exists() else None
    for family, filename, weights_name, on_digits in DEMO:
        source = zoo / filename
        if not source.exists():
            continue
        card = load_card(source)
        model = db.scalar(select(ArchModel).where(ArchModel.name_key == family.lower(), ArchModel.task_id == 1))
        if model is None:
            model = ArchModel(name=family, name_key=family.lower(), task_id=1)
            db.add(model)
            db.flush()
        _input_size_rows(db, model, card.input.size[-2:])
        if db.scalar(select(Weights).where(Weights.name == weights_name, Weights.model_id == model.id)):
            continue
        weights = Weights(
            name=weights_name,
            model_id=model.id,
            dataset_id=digits.id if on_digits and digits else None,
            public=True,
            layer_to_remove=_last_gemm(source),
            classes=",".join(card.class_names),
            card=card.to_json(),
            members=[WeightsMember(user_id=admin.id, permission=OWN)],
        )
        db.add(weights)
        db.flush()
        with atomic_path(file_path(storage, weights.id)) as tmp:
            shutil.copyfile(source, tmp)


def _seed_digits(db: Session, admin: User, source: Path, storage: Path) -> Dataset:
    existing = db.scalar(select(Dataset).where(Dataset.name == "Digits", Dataset.public))
    if existing is not None:
        return existing
    folder = storage / "datasets" / uuid.uuid4().hex
    shutil.copytree(source, folder)
    classes = ",".join(str(d) for d in range(10))
    dataset = Dataset(
        name="Digits",
        path=str((folder / "digits.yml").relative_to(storage)),
        task_id=1,
        public=True,
        ctype="GRAY",
        classes=classes,
        members=[DatasetMember(user_id=admin.id, permission=OWN)],
    )
    db.add(dataset)
    db.flush()
    return dataset


def _input_size_rows(db: Session, model: ArchModel, size: tuple[int, ...]) -> None:
    """Input height (property 6) and Input width (7) default to the weights' input size."""
    for property_id, value in ((6, size[0]), (7, size[1])):
        exists = select(AllowedProperty).where(
            AllowedProperty.model_id == model.id,
            AllowedProperty.property_id == property_id,
            AllowedProperty.dataset_id.is_(None),
        )
        if db.scalar(exists) is None:
            db.add(AllowedProperty(property_id=property_id, model_id=model.id, default_value=str(value)))
