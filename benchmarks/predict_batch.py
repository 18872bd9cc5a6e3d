"""`predict_batch` throughput on ~1000 px JPEGs against the reference loop and the machine's limit.

    python benchmarks/predict_batch.py [--images 200] [--zoo DIR]

Prints img/s and ratios measured in this one process (the machine is shared and noisy; compare ratios).
Target (DESIGN.md §6): predict_batch >= 1.4x the reference, aiming at 90% of the limit.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import fovea
from benchmarks.photos import make_photos
from benchmarks.reference import limit, per_item, reference_loop
from fovea.zoo import build_zoo

MODEL = "efficientnet-lite0-imagenet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--zoo", type=Path, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    entry = next(e for e in build_zoo(args.zoo) if e.name == MODEL)
    photos = make_photos(Path(tempfile.gettempdir()) / "fovea-bench-photos", args.images)
    model = fovea.load(entry.path)
    model.predict_batch(photos[:16], batch_size=args.batch_size)  # warm-up: sessions, thread pools

    ref = reference_loop(photos, entry.path, model.card)
    lim, t_pre, t_model = limit(photos, entry.path, model.card)
    start = time.perf_counter()
    predictions = model.predict_batch(photos, batch_size=args.batch_size)
    ours = len(photos) / (time.perf_counter() - start)
    ref_again = reference_loop(photos, entry.path, model.card)  # bracket: the machine may drift
    ref = (ref + ref_again) / 2

    # The same limit with Fovea's own decode (libjpeg-turbo at reduced DCT scale) in place of Pillow's.
    t_fovea_pre = per_item(lambda p: model.preprocess([model.read(p)]), photos[:60])
    own_limit = lim * (t_pre + t_model) / (t_fovea_pre + t_model)

    assert len(predictions) == len(photos)
    print(f"images: {len(photos)} JPEG, ~1000 px; model {MODEL}; batch size {args.batch_size}")
    print(f"single-thread: preprocess {t_pre * 1e3:.1f} ms/img, model {t_model * 1e3:.1f} ms/img")
    print(f"reference loop   {ref:7.1f} img/s   1.00x")
    print(f"limit            {lim:7.1f} img/s   {lim / ref:.2f}x")
    print(f"predict_batch    {ours:7.1f} img/s   {ours / ref:.2f}x   ({ours / lim:.0%} of the limit)")
    print(f"  Fovea's single-thread decode+preprocess: {t_fovea_pre * 1e3:.1f} ms/img; limit with it")
    share = ours / own_limit
    print(f"  {own_limit:.1f} img/s ({own_limit / ref:.2f}x): predict_batch reaches {share:.0%} of that")


if __name__ == "__main__":
    main()
