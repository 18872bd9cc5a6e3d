"""A custom model (seed 004) served in every dialect, against the same model called in this process; one table.

    python -m benchmarks.custom [--requests 120] [--images 60] [--zoo DIR]

The model is the reference loop written as a `BaseInferenceModel`: Pillow decode and preprocessing from the upload's
path, one ONNX Runtime run, a one-hot of the best class through `AiCOCOClassificationOutputStrategy`. The in-process
reference calls it on files already on disk, one at a time; `fovea serve-model benchmarks.custom:ReferenceClassifier`
serves it (one worker thread: custom models need not be thread-safe) and is driven by 1 and 4 clients per dialect,
so the ratio is what serving adds: writing the upload, Fovea's own decode for limits and sizes (V2, Supervisely), the
HTTP round trip. Shared noisy machine: compare ratios within one run.

Target (issue 14): every dialect >= 0.8x the in-process calls with 4 clients (the clients keep the one worker busy);
1-client overhead reported in ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import fovea
from benchmarks.photos import make_photos
from benchmarks.reference import pillow_preprocess, session
from benchmarks.serving import calls, drive, process
from fovea import AiCOCOClassificationOutputStrategy, BaseInferenceModel
from fovea.zoo import build_zoo
from tests.servers import free_port

MODEL = "efficientnet-lite0-imagenet"
DIALECTS = ["FLaVor", "V2 binary", "V2 raw image", "supervisely image"]
ZOO_ENV = "FOVEA_BENCH_ZOO"


def _model_path() -> Path:
    return next(
        e.path for e in build_zoo(Path(os.environ[ZOO_ENV]) if ZOO_ENV in os.environ else None) if e.name == MODEL
    )


class ReferenceClassifier(BaseInferenceModel):
    """The DESIGN.md §6 reference loop as a user's custom model."""

    def __init__(self) -> None:
        path = _model_path()
        self.card = fovea.load(path).card
        self.session = session(path, None)
        self.input_name = self.session.get_inputs()[0].name
        super().__init__()
        self.formatter = AiCOCOClassificationOutputStrategy()

    def define_inference_network(self):
        return lambda x: self.session.run(None, {self.input_name: x})[0]

    def set_categories(self):
        return [{"name": name, "supercategory_name": None} for name in self.card.class_names]

    def set_regressions(self):
        return None

    def data_reader(self, files=None, **kwargs):
        return pillow_preprocess(Path(files[0]), self.card), None

    def postprocess(self, out):
        return np.eye(out.shape[-1], dtype=np.float32)[int(np.argmax(out))]

    def output_formatter(self, model_out, images, categories=None, **kwargs):
        return self.formatter(model_out=model_out, images=images, categories=categories)


def in_process(model: ReferenceClassifier, paths: list[Path], count: int) -> tuple[float, float]:
    """(calls per second, p50 seconds) of the model called directly on files, as `/invocations` would."""
    latencies = []
    started = time.perf_counter()
    for i in range(count):
        path = paths[i % len(paths)]
        entry = {"id": "0", "index": 0, "file_name": str(path), "category_ids": None, "regressions": None}
        t = time.perf_counter()
        model(images=[entry], files=[str(path)])
        latencies.append(time.perf_counter() - t)
    return count / (time.perf_counter() - started), statistics.median(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60, help="Distinct photos, sent round-robin.")
    parser.add_argument("--requests", type=int, default=120, help="Requests per run.")
    parser.add_argument("--zoo", type=Path, default=None)
    args = parser.parse_args()
    if args.zoo:
        os.environ[ZOO_ENV] = str(args.zoo)
    load_before = os.getloadavg()[0]
    paths = make_photos(Path(tempfile.gettempdir()) / "fovea-bench-photos", args.images)
    photos = [p.read_bytes() for p in paths]
    model = ReferenceClassifier()
    in_process(model, paths, 5)  # warm-up
    reference_before, reference_p50 = in_process(model, paths, args.requests)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    spec = "benchmarks.custom:ReferenceClassifier"  # not __name__: that is __main__ under `python -m`
    command = [sys.executable, "-m", "fovea.cli", "serve-model", spec, "--port", str(port)]
    rows = []
    with process(command, f"{base}/ping"):
        for dialect in DIALECTS:
            work = calls(dialect, photos, "ReferenceClassifier")
            drive(base, work, 5, 1)  # warm-up
            single = drive(base, work, args.requests // 2, 1)
            loaded = drive(base, work, args.requests, 4)
            rows.append((dialect, single, loaded))
    reference_after, _ = in_process(model, paths, args.requests)
    reference = (reference_before + reference_after) / 2

    print(
        f"load average before: {load_before:.1f}; in-process calls: {reference_before:.1f} then "
        f"{reference_after:.1f} calls/s, p50 {reference_p50 * 1000:.1f} ms"
    )
    print(f"{'dialect':<20} {'1 client p50':>13} {'overhead':>9} {'4 clients':>10} {'x in-process':>13}")
    for dialect, single, loaded in rows:
        overhead = (single.p50_s - reference_p50) * 1000
        print(
            f"{dialect:<20} {single.p50_s * 1000:>10.1f} ms {overhead:>+6.1f} ms {loaded.images_per_s:>7.1f}/s "
            f"{loaded.images_per_s / reference:>12.2f}x"
        )


if __name__ == "__main__":
    main()
