"""The DeepHealth dataset YAML: strict reading (reference §1) and a writer that round-trips."""

import pytest

from fovea.datasets import Sample, load_dataset_yaml, parse_dataset_yaml, write_dataset_yaml
from fovea.errors import InputError

EXAMPLE = """%YAML:1.2
name: skin lesions (sample)
classes: [MEL, NV, BCC]
images:
  - location: images/ISIC_0000000.jpg
    label: NV
  - location: images/ISIC_0000001.jpg
    label: 0
  - images/ISIC_0000002.jpg                 # unlabelled, test only
  - location: [planes/a.png, planes/b.png]
    label: [MEL, 2]
split:
  training: [0]
  validation: [1]
  test: [2, 3]
"""


def test_the_reference_example_parses_with_its_opencv_header():
    spec = parse_dataset_yaml(EXAMPLE)
    assert spec.name == "skin lesions (sample)" and spec.classes == ["MEL", "NV", "BCC"]
    assert [s.label for s in spec.samples] == [1, 0, None, [0, 2]]
    assert spec.samples[3].location == ["planes/a.png", "planes/b.png"]
    assert (spec.ids("training"), spec.ids("validation"), spec.ids("test")) == ([0], [1], [2, 3])


def test_numbers_are_indexes_and_quoted_numbers_are_names():
    spec = parse_dataset_yaml(
        "classes: [1, 0]\nimages:\n- {location: a.png, label: 1}\n- {location: b.png, label: '1'}"
    )
    assert spec.classes == ["1", "0"] and [s.label for s in spec.samples] == [1, 0]


def test_without_split_training_and_test_are_everything():
    spec = parse_dataset_yaml("images: [a.png, b.png]")
    assert (spec.ids("training"), spec.ids("validation"), spec.ids("test")) == ([0, 1], [], [0, 1])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("classes: [a, b]\nimages:\n- &x {location: a.png}\n- *x", "aliases"),
        ("images: !!python/object:os.system [a.png]", "does not parse"),
        ("classes: [a, null]\nimages: [a.png]", r"classes\[1\]"),
        ("classes: [a, a]\nimages: [a.png]", "unique"),
        ("classes: [a, b]\nimages:\n- {location: a.png, label: 2}", r"images\[0\].label: class index 2 out of range"),
        ("classes: [a, b]\nimages:\n- {location: a.png, label: c}", "unknown class 'c'"),
        ("classes: [a, b]\nimages:\n- {location: a.png, label: 1.0}", "not a class index or name"),
        ("classes: [a, b]\nimages:\n- {location: a.png, label: true}", "not a class index or name"),
        ("images: [a.png, b.png]\nsplit: {test: [0, 2]}", r"split.test\[1\]: index 2 out of range \(2 images\)"),
        ("images: [a.png, b.png]\nsplit: {test: [0, true]}", r"split.test\[1\]"),
        ("images: [a.png, b.png]\nsplit: {test: [1, 1]}", "repeats"),
        ("images: [a.png, ./a.png]", "repeats images"),
        ("images: [../a.png]", "outside the dataset folder"),
        ("images: ['a\\\\b.png']", "backslash"),
        ("images: []", "non-empty"),
        ("images:\n- {location: a.png, values: [1]}", "1 values for 0 features"),
    ],
)
def test_invalid_datasets_are_refused_with_the_place(text, problem):
    with pytest.raises(InputError, match=problem):
        parse_dataset_yaml(text)


def test_segmentation_labels_are_mask_paths():
    spec = parse_dataset_yaml("images:\n- {location: a.png, label: masks/a.png}", segmentation=True)
    assert spec.samples[0].label == "masks/a.png"
    with pytest.raises(InputError, match="unknown class"):
        parse_dataset_yaml("images:\n- {location: a.png, label: masks/a.png}")


def test_written_yaml_reads_back(tmp_path):
    images = [Sample("img/a.png", 1), Sample("img/b.png", [0, 1]), "img/c.png", Sample(["p/1.png", "p/2.png"], 0)]
    split = {"training": [0, 1], "validation": [], "test": [2, 3]}
    path = write_dataset_yaml(tmp_path / "d.yml", "demo", ["x", "y"], images, split, "two classes")
    spec = load_dataset_yaml(path)
    assert (spec.name, spec.description, spec.classes) == ("demo", "two classes", ["x", "y"])
    assert [(s.location, s.label) for s in spec.samples] == [
        ("img/a.png", 1),
        ("img/b.png", [0, 1]),
        ("img/c.png", None),
        (["p/1.png", "p/2.png"], 0),
    ]
    assert spec.split == split
    assert "training: [0, 1]" in path.read_text()  # split ids stay on one line


def test_the_writer_refuses_what_the_reader_would_refuse(tmp_path):
    with pytest.raises(InputError, match="out of range"):
        write_dataset_yaml(tmp_path / "d.yml", "bad", ["x"], [Sample("a.png", 3)])
    assert list(tmp_path.iterdir()) == []
