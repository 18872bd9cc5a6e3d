"""Dataset files are found inside the dataset folder when they are read, and read no further than the size limit."""

import cv2
import numpy as np
import pytest

from fovea.core.io import Limits
from fovea.core.predictions import Task
from fovea.datasets import load_dataset_yaml, parse_dataset_yaml
from fovea.datasets.files import dataset_file, location_problem, read_dataset_file
from fovea.errors import InputError, LimitExceeded


@pytest.mark.parametrize(
    ("location", "problem"),
    [
        ("images/a.png", None),
        ("img/../img/a.png", None),  # the reference's example: normalised, it stays inside
        ("http://../../etc/secret.png", "is a URL"),
        ("https://example.org/a.png", "is a URL"),
        ("http:/../../a.png", "is a URL"),
        ("file:a.png", "is a URL"),
        ("C:/a.png", "is a URL or a drive"),
        ("/etc/passwd", "is an absolute path"),
        ("~/a.png", "is an absolute path"),
        ("../a.png", "leaves the dataset folder"),
        ("a/../../a.png", "leaves the dataset folder"),
    ],
)
def test_location_problems(location, problem):
    found = location_problem(location)
    assert found is None if problem is None else problem in found


@pytest.fixture
def dataset(tmp_path):
    """A dataset folder holding one PNG, and a secret PNG beside it (outside)."""
    root = tmp_path / "dataset"
    (root / "images").mkdir(parents=True)
    png = cv2.imencode(".png", np.full((6, 5, 3), 90, np.uint8))[1].tobytes()
    (root / "images" / "a.png").write_bytes(png)
    (tmp_path / "secret.png").write_bytes(png)
    return root


def test_a_file_inside_is_found_and_read(dataset):
    assert dataset_file(dataset, "images/../images/a.png", "images[0]") == (dataset / "images" / "a.png").resolve()
    assert read_dataset_file(dataset, "images/a.png", "images[0]").startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("link_to", "message"),
    [
        ("../../secret.png", "leaves the dataset folder"),
        ("/dev/zero", "leaves the dataset folder"),
        ("b.png", "cannot be resolved"),  # a link to itself
        (".", "does not exist"),
    ],
)
def test_links_are_followed_then_checked(dataset, link_to, message):
    (dataset / "images" / "b.png").symlink_to(link_to)
    with pytest.raises(InputError, match=rf"images\[1\]: 'images/b.png' {message}"):
        read_dataset_file(dataset, "images/b.png", "images[1]")


def test_a_linked_folder_cannot_lead_outside_either(dataset):
    (dataset / "up").symlink_to(dataset.parent)
    with pytest.raises(InputError, match="leaves the dataset folder"):
        dataset_file(dataset, "up/secret.png", "images[0]")


def test_folders_and_missing_files_are_refused(dataset):
    with pytest.raises(InputError, match="does not exist as a regular file"):
        dataset_file(dataset, "images", "images[0]")  # a folder
    with pytest.raises(InputError, match="does not exist as a regular file"):
        dataset_file(dataset, "images/missing.png", "images[0]")


def test_reads_stop_at_the_size_limit(dataset):
    (dataset / "images" / "big.png").write_bytes(b"\x89PNG" + b"\0" * 5000)
    with pytest.raises(LimitExceeded, match="over the limit of 1000"):
        read_dataset_file(dataset, "images/big.png", "images[0]", Limits(max_bytes=1000))
    (dataset / "d.yml").write_text("images: [images/a.png]\n" + "#" * 5000)
    with pytest.raises(LimitExceeded, match="over the limit of 1000"):
        load_dataset_yaml(dataset / "d.yml", limits=Limits(max_bytes=1000))
    assert load_dataset_yaml(dataset / "d.yml").samples[0].location == "images/a.png"


def test_training_reads_only_files_inside_the_dataset(dataset):
    from fovea.training.data import SplitData

    spec = parse_dataset_yaml(
        "classes: [a, b]\nimages:\n  - {location: images/a.png, label: 0}\n  - {location: images/b.png, label: 1}\n"
    )
    (dataset / "images" / "b.png").symlink_to("../../secret.png")
    data = SplitData(spec, dataset, [0, 1], Task.CLASSIFICATION, (4, 4), False, lambda image: {"image": image})
    image, label = data[0]
    assert tuple(image.shape) == (3, 4, 4) and int(label) == 0
    with pytest.raises(InputError, match=r"images\[1\]: 'images/b.png' leaves the dataset folder"):
        data[1]
