"""An inference process over 1,000 ~1000 px JPEGs against the reference loop, reading files and writing outputs.

    python -m benchmarks.process_inference [--images 1000] [--zoo DIR]

The job runs in this process exactly as a worker runs it (database, storage, progress lines, outputs file).
Target (DESIGN.md §6): >= 1.3x the reference loop on the same images.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.photos import make_photos
from benchmarks.reference import reference_loop
from fovea.core.card import load_card
from fovea.datasets import write_dataset_yaml
from fovea.jobs.inference import run_inference
from fovea.platform.auth import now
from fovea.platform.bootstrap import bootstrap, seed_demo
from fovea.platform.config import PlatformSettings
from fovea.platform.models import OWN, Dataset, DatasetMember, Process, Project, ProjectMember, User, Weights
from fovea.zoo import build_zoo

MODEL = "efficientnet-lite0-imagenet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--zoo", type=Path, default=None)
    args = parser.parse_args()

    zoo_entry = next(e for e in build_zoo(args.zoo) if e.name == MODEL)
    photos = make_photos(Path(tempfile.gettempdir()) / "fovea-bench-photos-1000", args.images)
    home = Path(tempfile.mkdtemp(prefix="fovea-bench-home-"))
    settings = PlatformSettings(home=home, admin_password="bench-admin-1")
    db, _ = bootstrap(settings)
    seed_demo(settings, db, zoo_entry.path.parent)
    folder = settings.storage_dir / "datasets" / uuid.uuid4().hex
    (folder / "images").mkdir(parents=True)
    for photo in photos:
        shutil.copyfile(photo, folder / "images" / photo.name)
    write_dataset_yaml(folder / "photos.yml", "photos", [], [f"images/{p.name}" for p in photos])
    with db.transaction() as session:
        admin = session.query(User).filter_by(username="admin").one()
        weights = session.query(Weights).filter_by(name="EfficientNet-Lite0_ImageNet").one()
        dataset = Dataset(
            name="photos",
            path=str((folder / "photos.yml").relative_to(settings.storage_dir)),
            task_id=1,
            members=[DatasetMember(user_id=admin.id, permission=OWN)],
        )
        project = Project(name="bench", task_id=1, members=[ProjectMember(user_id=admin.id, permission=OWN)])
        session.add_all([dataset, project])
        session.flush()
        process_id = str(uuid.uuid4())
        session.add(
            Process(
                id=process_id,
                process_type="testing",
                project_id=project.id,
                user_id=admin.id,
                weights_id=weights.id,
                dataset_id=dataset.id,
                settings='{"Batch size": 8}',
                created=now(),
                updated=now(),
            )
        )

    ref = reference_loop(photos, zoo_entry.path, load_card(zoo_entry.path))
    start = time.perf_counter()
    run_inference(process_id, settings.db_url, str(settings.storage_dir))
    ours = len(photos) / (time.perf_counter() - start)
    with db.transaction() as session:
        state = session.get(Process, process_id).state
    assert state == "finished", state
    print(f"{len(photos)} JPEGs of ~1000 px, {MODEL}, batch size 8, SQLite")
    print(f"reference loop      {ref:7.1f} img/s   1.00x")
    print(f"inference process   {ours:7.1f} img/s   {ours / ref:.2f}x   (reading files, progress lines, outputs)")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
