"""Training throughput of Fovea's training loop against a plain PyTorch loop, in the same process.

    python -m benchmarks.training [--zoo DIR] [--epochs 3] [--rounds 2]

Both loops train the same network (the catalog's pretraining converted by onnx2torch and re-headed), on the same
data through the same augmentation pipelines, with the same batch size and optimiser, and both score the validation
split after every epoch (that is the job's work, not overhead). Fovea's loop adds what a training process does: a
stop check against a real SQLite database before every batch, the running loss and metric, progress lines, and the
parity-checked ONNX export of each checkpoint. Runs alternate
(reference, Fovea, reference, ...) so machine noise hits both alike. Target (DESIGN.md §6): >= 0.9x.
Workloads: LeNet on Digits (tiny: per-batch overheads dominate) and EfficientNet-Lite0 on lfw faces (224 px).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from fovea.core.predictions import Task
from fovea.datasets import Sample, load_dataset_yaml, write_dataset_yaml
from fovea.platform.demo_catalog import FAMILY_DEFAULTS, head_layer
from fovea.training.augmentations import build_pipeline
from fovea.training.data import SplitData, num_outputs
from fovea.training.networks import load_network
from fovea.training.pipeline import TrainingJob
from fovea.zoo import build_zoo


def faces_dataset(root: Path) -> Path:
    from skimage import data

    (root / "images").mkdir(parents=True, exist_ok=True)
    samples = []
    for i, pixels in enumerate(data.lfw_subset()):
        location = f"images/{i:03d}.png"
        Image.fromarray((pixels * 255).round().astype(np.uint8)).convert("RGB").save(root / location)
        samples.append(Sample(location=location, label=0 if i < 100 else 1))
    order = np.random.default_rng(0).permutation(len(samples)).tolist()
    split = {"training": sorted(order[:140]), "validation": sorted(order[140:170]), "test": sorted(order[170:])}
    return write_dataset_yaml(root / "faces.yml", "Faces", ["face", "non_face"], samples, split)


def settings(family: str, epochs: int, batch: int, lr: str, size: int, parent: Path) -> dict[str, str]:
    defaults = FAMILY_DEFAULTS[family]
    return {
        "Epochs": str(epochs), "Batch size": str(batch), "Learning rate": lr, "Loss function": "cross_entropy",
        "Metric": "accuracy", "Input height": str(size), "Input width": str(size),
        "Training augmentations": defaults[8], "Validation augmentations": defaults[9],
        "Test augmentations": defaults[10],
        "fine_tuning": "new head", "cut_at": head_layer(parent),
    }  # fmt: skip


def plain_loop(job: TrainingJob) -> None:
    """The reference: DataLoader, forward, loss, backward, step; then the validation split's loss; nothing else."""
    s, task = job.settings, Task(job.task)
    spec = load_dataset_yaml(job.yaml_path)
    size = (int(s["Input height"]), int(s["Input width"]))
    data = SplitData(spec, job.yaml_path.parent, spec.ids("training"), task, size, job.gray,
                     build_pipeline(s["Training augmentations"]))  # fmt: skip
    sample = SplitData(spec, job.yaml_path.parent, spec.ids("training"), task, size, job.gray,
                       build_pipeline(s["Test augmentations"]))[0][0].unsqueeze(0).numpy()  # fmt: skip
    torch.manual_seed(0)
    net = load_network(job.parent_file, task, num_outputs(spec, task), layer_to_remove=s["cut_at"], sample=sample)
    optimizer = torch.optim.Adam(net.parameters(), lr=float(s["Learning rate"]))
    loader = DataLoader(data, int(s["Batch size"]), shuffle=True, generator=torch.Generator().manual_seed(0))
    validation = DataLoader(
        SplitData(spec, job.yaml_path.parent, spec.ids("validation"), task, size, job.gray,
                  build_pipeline(s["Validation augmentations"])), int(s["Batch size"]),
    )  # fmt: skip
    for _ in range(int(s["Epochs"])):
        net.train()
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            sum(float(torch.nn.functional.cross_entropy(net(x), y)) for x, y in validation)


def fovea_loop(job: TrainingJob, db_path: Path) -> None:
    import sqlite3

    connection = sqlite3.connect(db_path)
    connection.execute("CREATE TABLE IF NOT EXISTS processes (id TEXT, state TEXT)")

    def check_stop() -> None:  # what the job does before every batch: read the process's state
        connection.execute("SELECT state FROM processes WHERE id = ?", ("bench",)).fetchone()

    lines: list[str] = []
    try:
        job.run(report=lines.append, check_stop=check_stop)
    finally:
        connection.close()


def measure(name: str, job: TrainingJob, rounds: int, db_path: Path) -> None:
    """Best-of-`rounds` img/s of both loops: training images x epochs over each run's wall time.

    A first, untimed reference run warms both up (the first conversion pays one-time imports and caches). The
    image count is read once, outside the timed runs: parsing the dataset YAML again after each Fovea run (a quarter
    to half a second for Digits' 1797 entries) is the benchmark's bookkeeping, not Fovea's training.
    """
    spec = load_dataset_yaml(job.yaml_path)
    epochs, size = int(job.settings["Epochs"]), f"{job.settings['Input width']}x{job.settings['Input height']}"
    images = len(spec.ids("training")) * epochs
    plain_loop(job)  # the untimed warm-up
    times: dict[str, list[float]] = {"reference": [], "fovea": []}
    for _ in range(rounds):
        for label, run in (("reference", lambda: plain_loop(job)), ("fovea", lambda: fovea_loop(job, db_path))):
            start = time.perf_counter()
            run()
            times[label].append(time.perf_counter() - start)
    reference, fovea = (images / min(times[k]) for k in ("reference", "fovea"))
    name = f"{name} ({images // epochs} training images x {epochs} epochs, {size})"
    print(f"{name}: reference {reference:.1f} img/s, Fovea {fovea:.1f} img/s = {fovea / reference:.2f}x "
          f"(best of {rounds}; both validate each epoch, Fovea also exports each checkpoint)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    zoo = next(e for e in build_zoo(args.zoo) if e.name == "digits").path.parent.parent
    work = Path(tempfile.mkdtemp(prefix="fovea-bench-training-"))
    db_path = work / "state.db"
    digits = TrainingJob(
        task="classification", settings=settings("LeNet", args.epochs, 32, "0.002", 8, zoo / "lenet-random.onnx"),
        parent_file=zoo / "lenet-random.onnx", parent_name="LeNet_RandomInit",
        yaml_path=zoo / "digits" / "digits.yml", dataset_name="Digits", gray=True, out=work / "digits.onnx",
    )  # fmt: skip
    measure("LeNet on Digits", digits, args.rounds, db_path)
    imagenet = zoo / "efficientnet-lite0-imagenet.onnx"
    faces = TrainingJob(
        task="classification", settings=settings("EfficientNet-Lite0", 1, 16, "0.0005", 224, imagenet),
        parent_file=imagenet, parent_name="EfficientNet-Lite0_ImageNet",
        yaml_path=faces_dataset(work / "faces"), dataset_name="Faces", gray=False, out=work / "faces.onnx",
    )  # fmt: skip
    measure("EfficientNet-Lite0 on lfw faces", faces, args.rounds, db_path)


if __name__ == "__main__":
    main()
