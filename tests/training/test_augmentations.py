"""ECVL augmentation strings: parsing, validation messages, and what the albumentations pipeline does to real data."""

from __future__ import annotations

import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest

pytest.importorskip("albumentations")
from skimage import data

from fovea.training.augment_grammar import BORDER_NAMES, INTERP_NAMES
from fovea.training.augmentations import (
    BORDER,
    INTERP,
    Augmentation,
    AugmentationError,
    Container,
    build_pipeline,
    parse_augmentations,
)

MEAN = np.array([0.6681, 0.5301, 0.5247], np.float32)
STD = np.array([0.1337, 0.1480, 0.1595], np.float32)

# The seed's three strings, as the JSON body carries them (real line breaks once decoded).
TRAINING = (
    'SequentialAugmentationContainer\n    AugResizeDim dims=(224,224) interp="cubic"\n    AugMirror p=0.5\n'
    "    AugFlip p=0.5\n    AugRotate angle=[-180,180]\n    AugAdditivePoissonNoise lambda=[0,10]\n"
    "    AugGammaContrast gamma=[0.5,1.5]\n    AugGaussianBlur sigma=[0.0,0.8]\n"
    "    AugCoarseDropout p=[0,0.03] drop_size=[0.0,0.05] per_channel=0.25\n    AugToFloat32 divisor=255\n"
    "    AugNormalize mean=(0.6681, 0.5301, 0.5247) std=(0.1337, 0.1480, 0.1595)\nend"
)
VALIDATION = (
    'SequentialAugmentationContainer\n    AugResizeDim dims=(224,224) interp="cubic"\n    AugToFloat32 divisor=255\n'
    "    AugNormalize mean=(0.6681, 0.5301, 0.5247) std=(0.1337, 0.1480, 0.1595)\nend"
)
TEST = VALIDATION

# Every augmentation of the table, to check the whole mapping builds and runs without albumentations warnings.
EVERYTHING = """SequentialAugmentationContainer
    AugRotate angle=[-10,10] center=(10,20) scale=1.2 interp="cubic" gt_interp="linear"
    AugRotate angle=[-10,10]
    AugResizeDim dims=(200,150) interp="area"
    AugResizeScale scale=(1.5,1.25) interp="lanczos4"
    AugFlip p=0.5
    AugMirror
    AugTranspose p=0.5
    AugGaussianBlur sigma=[0.5,1.5]
    AugAdditiveLaplaceNoise std_dev=[0,12]
    AugAdditivePoissonNoise lambda=[0,10]
    AugGammaContrast gamma=[0.5,1.5]
    AugBrightness beta=[-20,40]
    AugCoarseDropout p=[0,0.03] drop_size=[0.0,0.05] per_channel=0.25
    AugGridDistortion num_steps=[5,10] distort_limit=[-0.2,0.2] interp="nearest" border_type="wrap"
    AugElasticTransform alpha=[34,60] sigma=[4,6] border_type="constant" border_value=7
    AugOpticalDistortion distort_limit=[-0.2,0.2] shift_limit=[-5,5] border_type="reflect"
    AugOpticalDistortion distort_limit=[-0.2,0.2] shift_limit=[0,0] border_type="replicate"
    AugSalt p=[0,0.1] per_channel=0.5
    AugPepper p=[0,0.1] per_channel=0
    AugSaltAndPepper p=[0,0.1] per_channel=0
    AugSaltAndPepper p=[0,0.1] per_channel=1
    OneOfAugmentationContainer p=0.7
        AugCenterCrop
        AugCenterCrop size=(100,50)
        AugRandomCrop size=(500,40) border_type="reflect101"
        SequentialAugmentationContainer
        end
    end
    AugScaleFromTo old_min=0 old_max=200 new_min=0 new_max=255
    AugScaleTo new_min=0 new_max=255
    AugDivBy255
    AugToFloat32 divisor=2 divisor_gt=1
    AugNormalize mean=0.5 std=0.2
end"""


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    image = data.chelsea()  # a real 300x451 RGB photo
    assert image.shape == (300, 451, 3) and image.dtype == np.uint8
    return image


@pytest.fixture(scope="module")
def classes() -> np.ndarray:
    """A 300x451 three-class index map with regions (not noise), like a segmentation ground truth."""
    mask = np.zeros((300, 451), np.uint8)
    mask[50:150, 60:200] = 1
    mask[180:290, 250:440] = 2
    return mask


def run(text: str, image: np.ndarray, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    pipeline = build_pipeline(text)
    return pipeline(image=image, mask=mask) if mask is not None else pipeline(image=image)


def error(text: str) -> str:
    with pytest.raises(AugmentationError) as info:
        parse_augmentations(text)
    return str(info.value)


# ------------------------------------------------------------------------------------------------ the seed


def test_seed_training_string_runs_on_a_real_photo(cat: np.ndarray, classes: np.ndarray) -> None:
    pipeline = build_pipeline(TRAINING)
    for _ in range(5):
        out = pipeline(image=cat, mask=classes)
        assert out["image"].shape == (224, 224, 3) and out["image"].dtype == np.float32
        assert out["mask"].shape == (224, 224)
        assert set(np.unique(out["mask"])) <= {0, 1, 2}
        # Normalised data: 0..255 becomes (0..1 - mean) / std, so values stay within those bounds (plus noise).
        assert out["image"].min() >= (0 - MEAN.max()) / STD.min() - 1e-4
        assert out["image"].max() <= (1 - MEAN.min()) / STD.min() + 1e-4


@pytest.mark.parametrize("text", [VALIDATION, TEST])
def test_seed_validation_and_test_strings_compute_resize_scale_normalise(text: str, cat: np.ndarray) -> None:
    out = run(text, cat)["image"]
    resized = cv2.resize(cat, (224, 224), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    expected = (resized / 255 - MEAN) / STD
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_seed_normalisation_on_a_constant_image() -> None:
    out = run(VALIDATION, np.full((300, 451, 3), 200, np.uint8))["image"]
    np.testing.assert_allclose(out[0, 0], (200 / 255 - MEAN) / STD, rtol=1e-5)
    np.testing.assert_allclose(out, np.broadcast_to(out[0, 0], out.shape), atol=1e-5)


def test_seed_training_string_parses_into_the_expected_tree() -> None:
    node = parse_augmentations(TRAINING)
    assert isinstance(node, Container) and node.kind == "SequentialAugmentationContainer" and node.line == 1
    names = [child.name for child in node.children]
    assert names == [
        "AugResizeDim", "AugMirror", "AugFlip", "AugRotate", "AugAdditivePoissonNoise", "AugGammaContrast",
        "AugGaussianBlur", "AugCoarseDropout", "AugToFloat32", "AugNormalize",
    ]  # fmt: skip
    resize, rotate, normalize = node.children[0], node.children[3], node.children[9]
    assert resize == Augmentation("AugResizeDim", {"dims": (224, 224), "interp": "cubic", "gt_interp": "nearest"}, 2)
    assert rotate.params["angle"] == (-180, 180) and rotate.params["scale"] == 1 and rotate.line == 5
    assert normalize.params["std"] == (0.1337, 0.1480, 0.1595)


def test_every_augmentation_builds_and_runs_without_library_warnings(cat: np.ndarray, classes: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline = build_pipeline(EVERYTHING)
        for _ in range(10):
            out = pipeline(image=cat, mask=classes)
            assert out["image"].dtype == np.float32
            assert out["image"].shape[:2] == out["mask"].shape
            assert set(np.unique(out["mask"])) <= {0, 1, 2}


# ---------------------------------------------------------------------------------------------- the grammar


@pytest.mark.parametrize("text", [None, "", "   ", "\n\n  \t\n", "\\n"])
def test_blank_is_the_identity(text: str | None, cat: np.ndarray, classes: np.ndarray) -> None:
    assert parse_augmentations(text) is None
    out = run(text, cat, classes)
    assert out["image"].dtype == np.uint8
    np.testing.assert_array_equal(out["image"], cat)
    np.testing.assert_array_equal(out["mask"], classes)


@pytest.mark.parametrize(
    "text",
    [
        "SequentialAugmentationContainer\\n    AugMirror p=1\\nend",  # the stored-default two-character form
        "SequentialAugmentationContainer\r\n    AugMirror p=1\r\nend\r\n",
        "SequentialAugmentationContainer\r    AugMirror p=1\rend",
        "\n\n   SequentialAugmentationContainer\n\n AugMirror   p =  1\n   end  \n\n",
        "AugMirror p=1",  # a single top-level augmentation behaves like a one-child sequence
        "SequentialAugmentationContainer\nSequentialAugmentationContainer\nAugMirror p=1\nend\nend",
    ],
)
def test_line_breaks_indentation_and_nesting_are_free(text: str, cat: np.ndarray) -> None:
    assert leaves(parse_augmentations(text)) == [("AugMirror", {"p": 1.0})]
    np.testing.assert_array_equal(run(text, cat)["image"], cat[:, ::-1])


def leaves(node: Container | Augmentation) -> list[tuple[str, dict]]:
    """The augmentations of a parsed tree in application order, without containers or line numbers."""
    if isinstance(node, Augmentation):
        return [(node.name, node.params)]
    return [leaf for child in node.children for leaf in leaves(child)]


def test_spaces_inside_brackets_and_exponents() -> None:
    node = parse_augmentations("AugNormalize mean=( 0.5 , 1e-1 ,-2 ) std = (1, 2.5E+1, .5)")
    assert node == Augmentation("AugNormalize", {"mean": (0.5, 0.1, -2), "std": (1, 25, 0.5)}, 1)
    node = parse_augmentations("AugBrightness beta=[ -5 , 5 ]")
    assert node.params == {"beta": (-5, 5)}


def test_nested_one_of_keeps_its_p_and_line_numbers() -> None:
    node = parse_augmentations(
        "SequentialAugmentationContainer\n  OneOfAugmentationContainer p=0.25\n    AugFlip\n    AugMirror p=1\n"
        "  end\nend"
    )
    inner = node.children[0]
    assert isinstance(inner, Container) and inner.kind == "OneOfAugmentationContainer"
    assert inner.p == 0.25 and inner.line == 2
    assert [(c.name, c.params["p"], c.line) for c in inner.children] == [("AugFlip", 0.5, 3), ("AugMirror", 1, 4)]


# ---------------------------------------------------------------------------------------------- validation


def test_the_reference_message_form() -> None:
    text = "SequentialAugmentationContainer\n  AugMirror p=0.5\n  AugFlip p=0.5\n  AugRotate angle=30\nend"
    assert error(text) == "line 4: AugRotate: parameter 'angle' must be a range [min,max]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # 1. unknown names, with a suggestion when close
        ("AugFlipp p=0.5", "line 1: AugFlipp: unknown augmentation (did you mean 'AugFlip'?)"),
        ("SequentialAugmentationContainer\n augflip\nend", "line 2: augflip: unknown augmentation"),
        ("SequentalAugmentationContainer\nend", "did you mean 'SequentialAugmentationContainer'?"),
        ("AugZoom factor=2", "line 1: AugZoom: unknown augmentation"),
        # 2. unknown, repeated, missing parameters
        ("AugMirror q=0.5", "line 1: AugMirror: unknown parameter 'q'"),
        ('AugRotate angle=[0,1] intrep="cubic"', "unknown parameter 'intrep' (did you mean 'interp'?)"),
        ("AugMirror p=0.5 p=0.2", "line 1: AugMirror: parameter 'p' is given twice"),
        (
            "SequentialAugmentationContainer\n\n  AugRotate\nend",
            "line 3: AugRotate: missing required parameter 'angle'",
        ),
        ("AugCoarseDropout p=[0,0.1] drop_size=[0,0.1]", "missing required parameter 'per_channel'"),
        ("AugScaleFromTo old_min=0 old_max=1 new_min=0", "missing required parameter 'new_max'"),
        (
            "OneOfAugmentationContainer\n AugFlip\nend",
            "line 1: OneOfAugmentationContainer: missing required parameter 'p'",
        ),
        # 3. wrong kinds
        ("AugResizeDim dims=[224,224]", "line 1: AugResizeDim: parameter 'dims' must be a vector"),
        ("AugFlip p=[0,1]", "parameter 'p' must be a number"),
        ("AugResizeDim dims=(2,2) interp=1", "parameter 'interp' must be a string"),
        ("AugResizeDim dims=(2,2) interp=cubic", "parameter 'interp': 'cubic' is not a number (strings go in double"),
        ("AugNormalize mean=[0,1] std=1", "parameter 'mean' must be a number or a vector"),
        ("AugNormalize mean=0.5 std=(0.2,0.2,0.2)", "'mean' and 'std' must both be numbers or both be vectors"),
        # 4. malformed values
        ("AugRotate angle=[10,-10]", "line 1: AugRotate: parameter 'angle': range min 10 > max -10"),
        ("AugRotate angle=[1,2,3]", "parameter 'angle': a range needs exactly two numbers"),
        ("AugRotate angle=[1]", "parameter 'angle': a range needs exactly two numbers"),
        ("AugRotate angle=[-10,10", "parameter 'angle': unterminated '['"),
        ("AugResizeDim dims=( )", "parameter 'dims': empty vector"),
        ("AugResizeDim dims=(2,,2)", "parameter 'dims': '' is not a number"),
        ('AugResizeDim dims=(2,2) interp="cubic', "parameter 'interp': unterminated string"),
        ("AugFlip p=nan", "parameter 'p' must be finite"),
        ("AugBrightness beta=[0,1e999]", "parameter 'beta' must be finite"),
        ("AugFlip p=", "parameter 'p' has no value"),
        ("AugFlip 0.5", "expected name=value, found '0.5'"),
        ("AugFlip p=0.5x", "'0.5x' is not a number"),
        ('AugResizeDim dims=(2,2)interp="cubic"', "unexpected 'interp=\"cubic\"' after the value"),
        # 5. out of domain
        ("AugFlip p=1.5", "line 1: AugFlip: parameter 'p' must be between 0 and 1"),
        ("AugMirror p=-0.1", "parameter 'p' must be between 0 and 1"),
        ("OneOfAugmentationContainer p=2\n AugFlip\nend", "line 1: OneOfAugmentationContainer: parameter 'p' must be"),
        ("AugCoarseDropout p=[0,1.2] drop_size=[0,0.1] per_channel=0", "parameter 'p' must be between 0 and 1"),
        ("AugCoarseDropout p=[0,1] drop_size=[0,2] per_channel=0", "parameter 'drop_size' must be between 0 and 1"),
        ("AugSalt p=[0,0.1] per_channel=3", "parameter 'per_channel' must be between 0 and 1"),
        ("AugGaussianBlur sigma=[-1,1]", "parameter 'sigma' must have min >= 0 and max > 0"),
        ("AugGaussianBlur sigma=[0,0]", "parameter 'sigma' must have min >= 0 and max > 0"),
        ("AugAdditivePoissonNoise lambda=[0,0]", "parameter 'lambda' must have min >= 0 and max > 0"),
        ("AugAdditiveLaplaceNoise std_dev=[-1,2]", "parameter 'std_dev' must have min >= 0"),
        ("AugElasticTransform alpha=[0,0] sigma=[1,2]", "parameter 'alpha' must have min >= 0 and max > 0"),
        ("AugGammaContrast gamma=[0,1]", "parameter 'gamma' must have min > 0"),
        ("AugGridDistortion num_steps=[0,5] distort_limit=[-0.1,0.1]", "parameter 'num_steps' must have min >= 1"),
        ("AugResizeDim dims=(224,0)", "parameter 'dims' must be 2 (or 3, for volumes) positive integers"),
        ("AugResizeDim dims=(224.5,224)", "parameter 'dims' must be 2 (or 3, for volumes) positive integers"),
        ("AugResizeDim dims=(224)", "parameter 'dims' must be 2 (or 3, for volumes) positive integers"),
        ("AugRandomCrop size=(1,2,3,4)", "parameter 'size' must be 2 (or 3, for volumes) positive integers"),
        ("AugResizeScale scale=(0.5,0)", "parameter 'scale' entries must be > 0"),
        ("AugRotate angle=[0,1] scale=0", "parameter 'scale' must be > 0"),
        ("AugRotate angle=[0,1] center=(1,2,3)", "parameter 'center' must have 2 entries"),
        ("AugNormalize mean=(0.5,0.5) std=(0.2,0.2,0.2)", "'mean' and 'std' must have the same length (2 != 3)"),
        ("AugNormalize mean=(1,1,1,1,1) std=(1,1,1,1,1)", "parameter 'mean' must have at most 4 entries"),
        ("AugNormalize mean=0.5 std=0", "line 1: AugNormalize: parameter 'std' must be > 0"),
        ("AugNormalize mean=(0,0) std=(1,-1)", "parameter 'std' must be > 0"),
        ("AugToFloat32 divisor=0", "line 1: AugToFloat32: parameter 'divisor' must not be 0"),
        ("AugScaleFromTo old_min=1 old_max=1 new_min=0 new_max=1", "parameter 'old_min' must be < 'old_max'"),
        ("AugScaleTo new_min=1 new_max=0", "parameter 'new_min' must be <= 'new_max'"),
        ('AugResizeDim dims=(2,2) interp="bilinear"', "parameter 'interp' must be one of 'linear', 'nearest'"),
        ('AugRotate angle=[0,1] gt_interp="Linear"', "parameter 'gt_interp' must be one of"),
        ('AugRandomCrop size=(2,2) border_type="transparent"', "parameter 'border_type' cannot be 'transparent'"),
        ('AugElasticTransform alpha=[1,2] sigma=[1,2] border_type="mirror"', "parameter 'border_type' must be one of"),
        # 6. grammar
        ("SequentialAugmentationContainer\n  AugFlip\n", "line 1: SequentialAugmentationContainer: missing 'end'"),
        (
            "SequentialAugmentationContainer\n OneOfAugmentationContainer p=1\n  AugFlip\nend",
            "line 1: SequentialAugmentationContainer: missing 'end'",
        ),
        ("AugFlip\nend", "line 2: end: 'end' without an open container"),
        ("SequentialAugmentationContainer\nend\nend", "line 3: end: 'end' without an open container"),
        ("SequentialAugmentationContainer\nend extra\n", "line 2: end: unexpected 'extra' after 'end'"),
        ("SequentialAugmentationContainer\nend\nAugFlip", "line 3: AugFlip: text after the end of the augmentation"),
        ("AugFlip\nAugMirror", "line 2: AugMirror: text after the end of the augmentation string"),
        ("SequentialAugmentationContainer p=0.5\nend", "line 1: SequentialAugmentationContainer: takes no parameters"),
        ("OneOfAugmentationContainer p=0.5 q=1\nend", "line 1: OneOfAugmentationContainer: unknown parameter 'q'"),
        ("AugDivBy255 divisor=2", "line 1: AugDivBy255: takes no parameters"),
        # limits albumentations enforces, and volumes: refused at request time too
        ("AugGridDistortion num_steps=[5,6] distort_limit=[-2,2]", "parameter 'distort_limit' must be within [-1,1]"),
        ("AugResizeDim dims=(64,64,16)", "line 1: AugResizeDim: volumes are not supported"),
    ],
)
def test_validation_messages(text: str, message: str) -> None:
    got = error(text)
    assert got.startswith(message) if message.startswith("line ") else message in got, got


def test_build_pipeline_validates_too() -> None:
    with pytest.raises(AugmentationError, match=r"^line 1: AugFlipp: unknown augmentation \(did you mean 'AugFlip'"):
        build_pipeline("AugFlipp p=1")


def test_the_error_is_a_value_error() -> None:
    assert issubclass(AugmentationError, ValueError)


def test_the_grammar_accepts_exactly_the_names_the_builder_maps() -> None:
    assert tuple(INTERP) == INTERP_NAMES and tuple(BORDER) == BORDER_NAMES


# A serving-only install: albumentations (the `train` extra) cannot be imported.
WITHOUT_ALBUMENTATIONS = """
import sys
sys.modules["albumentations"] = None  # `import albumentations` now raises ImportError
try:
    import fovea.training.augmentations
except ImportError:
    pass
else:
    raise SystemExit("albumentations is still importable")

from fovea.platform.allowed_properties import check_value
from fovea.platform.errors import InputError
from fovea.platform.models import Property
from fovea.training.augment_grammar import Container, parse

tree = parse(sys.argv[1])
assert isinstance(tree, Container) and [child.name for child in tree.children][:2] == ["AugResizeDim", "AugMirror"]
prop = Property(name="Training augmentations", type="string")
assert check_value(prop, sys.argv[1]) == sys.argv[1]
try:
    check_value(prop, "AugFlipp p=1")
except InputError as exc:
    print(exc)
"""


def test_parsing_and_the_platform_check_need_no_albumentations() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_ALBUMENTATIONS, TRAINING], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "Invalid value for property 'Training augmentations': line 1: AugFlipp: unknown augmentation "
        "(did you mean 'AugFlip'?)"
    )


# ------------------------------------------------------------------------------------------------ geometry


def test_mirror_flip_transpose_move_image_and_mask(cat: np.ndarray, classes: np.ndarray) -> None:
    out = run("AugMirror p=1", cat, classes)
    np.testing.assert_array_equal(out["image"], cat[:, ::-1])
    np.testing.assert_array_equal(out["mask"], classes[:, ::-1])
    out = run("AugFlip p=1", cat, classes)
    np.testing.assert_array_equal(out["image"], cat[::-1])
    np.testing.assert_array_equal(out["mask"], classes[::-1])
    out = run("AugTranspose p=1", cat, classes)
    np.testing.assert_array_equal(out["image"], cat.transpose(1, 0, 2))
    np.testing.assert_array_equal(out["mask"], classes.T)
    out = run("AugMirror p=0", cat, classes)
    np.testing.assert_array_equal(out["image"], cat)


@pytest.mark.parametrize("text", ["AugRotate angle=[90,90]", "AugRotate angle=[90,90] center=(10,10)"])
def test_rotate_turns_clockwise(text: str) -> None:
    image = np.zeros((21, 21, 3), np.uint8)
    image[0:3, 18:21] = 255  # bright square at the top right
    mask = np.zeros((21, 21), np.uint8)
    mask[0:3, 18:21] = 2
    out = run(text, image, mask)
    ys, xs = np.nonzero(out["image"][:, :, 0] > 128)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (18, 20, 18, 20)  # now at the bottom right
    np.testing.assert_array_equal(out["mask"], np.where(out["image"][:, :, 0] > 128, 2, 0))


def test_rotate_about_a_corner_and_the_scale() -> None:
    image = np.zeros((41, 41), np.float32)
    image[0, 5] = 1.0  # on the top edge, 5 px right of the top-left corner
    out = run('AugRotate angle=[90,90] center=(0,0) scale=3 interp="nearest"', image)["image"]
    # Clockwise about (0, 0) in image coordinates (y down): (x=5, y=0) goes to (x=0, y=15) at scale 3. The pixel's
    # square [4.5, 5.5] x [-0.5, 0.5] becomes rows [13.5, 16.5] x columns [-1.5, 1.5]: an odd scale puts no pixel
    # centre on its border, so nearest sampling has no tie to break (OpenCV releases break ties differently).
    np.testing.assert_array_equal(np.argwhere(out), [[r, c] for r in (14, 15, 16) for c in (0, 1)])


def test_rotate_fills_uncovered_pixels_with_zero(cat: np.ndarray) -> None:
    out = run("AugRotate angle=[45,45]", cat)["image"]
    assert out.shape == cat.shape
    assert (out[0, 0] == 0).all() and (out[-1, -1] == 0).all()
    assert out[150, 225].any()


def test_rotate_samples_a_new_angle_per_application(cat: np.ndarray) -> None:
    pipeline = build_pipeline("AugRotate angle=[-180,180]")
    outs = [pipeline(image=cat)["image"] for _ in range(3)]
    assert not np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[1], outs[2])


def test_resize_dim_is_width_height(cat: np.ndarray, classes: np.ndarray) -> None:
    out = run("AugResizeDim dims=(320,240)", cat, classes)
    assert out["image"].shape == (240, 320, 3) and out["image"].dtype == np.uint8
    assert out["mask"].shape == (240, 320)
    assert set(np.unique(out["mask"])) == {0, 1, 2}  # nearest neighbour: no blended classes
    expected = cv2.resize(cat, (320, 240), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out["image"], expected)


def test_resize_scale_rounds_width_and_height(cat: np.ndarray, classes: np.ndarray) -> None:
    out = run("AugResizeScale scale=(0.5,2)", cat, classes)
    assert out["image"].shape == (600, 226, 3)  # round(451 * 0.5) = 226, 300 * 2 = 600
    assert out["mask"].shape == (600, 226) and set(np.unique(out["mask"])) == {0, 1, 2}


def test_center_crops(cat: np.ndarray, classes: np.ndarray) -> None:
    out = run("AugCenterCrop", cat, classes)
    np.testing.assert_array_equal(out["image"], cat[:, 75:375])
    np.testing.assert_array_equal(out["mask"], classes[:, 75:375])
    out = run("AugCenterCrop size=(100,50)", cat, classes)
    np.testing.assert_array_equal(out["image"], cat[125:175, 175:275])
    out = run("AugCenterCrop size=(460,300)", cat, classes)  # larger than the image: padded with 0
    assert out["image"].shape == (300, 460, 3)
    assert (out["image"][:, :4] == 0).all() and (out["image"][:, -5:] == 0).all()
    np.testing.assert_array_equal(out["image"][:, 4:455], cat)


def test_random_crop_pads_then_crops(cat: np.ndarray, classes: np.ndarray) -> None:
    out = run("AugRandomCrop size=(100,80)", cat, classes)
    assert out["image"].shape == (80, 100, 3) and out["mask"].shape == (80, 100)
    out = run("AugRandomCrop size=(451,320) border_value=7", cat, classes)
    assert out["image"].shape == (320, 451, 3)
    assert (out["image"][:10] == 7).all() and (out["image"][-10:] == 7).all()
    assert (out["mask"][:10] == 0).all()
    np.testing.assert_array_equal(out["image"][10:310], cat)


@pytest.mark.parametrize(
    "text",
    [
        "AugRotate angle=[-30,30]",
        "AugRotate angle=[-30,30] center=(40,60) scale=0.8",
        "AugGridDistortion num_steps=[3,8] distort_limit=[-0.3,0.3]",
        "AugElasticTransform alpha=[30,60] sigma=[4,6]",
        "AugOpticalDistortion distort_limit=[-0.5,0.5] shift_limit=[-20,20]",
        "AugOpticalDistortion distort_limit=[-0.5,0.5] shift_limit=[0,0]",
        "AugRandomCrop size=(200,120)",
        "AugResizeScale scale=(0.7,1.3)",
    ],
)
def test_geometric_steps_move_the_mask_with_the_same_draw(text: str, classes: np.ndarray) -> None:
    # The image is the mask times 100: with nearest interpolation and a zero border both must come out alike.
    image = np.repeat(classes[:, :, None] * 100, 3, axis=2).astype(np.uint8)
    extra = ' interp="nearest"' if "Crop" not in text else ""
    if "Distortion" in text or "Elastic" in text:
        extra += ' border_type="constant"'
    pipeline = build_pipeline(text + extra)
    moved = 0
    for _ in range(5):
        out = pipeline(image=image, mask=classes)
        np.testing.assert_array_equal(out["image"][:, :, 0], out["mask"].astype(np.uint8) * 100)
        assert set(np.unique(out["mask"])) <= {0, 1, 2}
        moved += out["mask"].shape != classes.shape or not np.array_equal(out["mask"], classes)
    assert moved >= 4


# --------------------------------------------------------------------------------------------- value-only


@pytest.mark.parametrize(
    "text",
    [
        "AugGaussianBlur sigma=[1,2]",
        "AugAdditiveLaplaceNoise std_dev=[5,10]",
        "AugAdditivePoissonNoise lambda=[2,10]",
        "AugGammaContrast gamma=[0.5,1.5]",
        "AugBrightness beta=[10,50]",
        "AugCoarseDropout p=[0.3,0.5] drop_size=[0.05,0.1] per_channel=0.5",
        "AugSalt p=[0.1,0.2] per_channel=0.5",
        "AugPepper p=[0.1,0.2] per_channel=0",
        "AugSaltAndPepper p=[0.1,0.2] per_channel=0",
        "AugSaltAndPepper p=[0.1,0.2] per_channel=1",
        "AugNormalize mean=(100,110,120) std=(50,60,70)",
        "AugToFloat32 divisor=255 divisor_gt=255",
        "AugDivBy255",
        "AugScaleTo new_min=0 new_max=1",
        "AugScaleFromTo old_min=50 old_max=200 new_min=-1 new_max=1",
    ],
)
def test_value_only_steps_change_the_image_not_the_mask(text: str, cat: np.ndarray, classes: np.ndarray) -> None:
    out = run(text, cat, classes)
    assert out["image"].shape == cat.shape
    assert not np.array_equal(out["image"], cat)
    np.testing.assert_array_equal(out["mask"], classes)
    assert out["mask"].dtype == classes.dtype


def test_to_float32_and_div_by_255(cat: np.ndarray) -> None:
    out = run("AugToFloat32 divisor=255", cat)["image"]
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out, cat / 255, rtol=1e-6)
    np.testing.assert_allclose(run("AugDivBy255", cat)["image"], cat / 255, rtol=1e-6)
    out = run("AugToFloat32", cat)["image"]  # divisor 1: a plain conversion, no rescaling
    assert out.dtype == np.float32 and out.max() == cat.max()
    halved = run("AugToFloat32 divisor=2", cat.astype(np.float32))["image"]  # float input is divided too
    np.testing.assert_allclose(halved, cat / 2)


def test_normalize_uses_current_values_without_rescaling() -> None:
    image = np.full((4, 5, 3), (0.2, 0.5, 0.8), np.float32)
    out = run("AugNormalize mean=(0.1, 0.2, 0.3) std=(0.5, 0.25, 0.1)", image)["image"]
    np.testing.assert_allclose(out[2, 3], [0.2, 1.2, 5.0], rtol=1e-5)
    out = run("AugNormalize mean=100 std=50", np.full((4, 5, 3), 200, np.uint8))["image"]
    np.testing.assert_allclose(out, 2.0)


def test_poisson_noise_saturates_uint8_and_not_float() -> None:
    image = np.full((50, 60, 3), 250, np.uint8)
    out = run("AugAdditivePoissonNoise lambda=[10,10]", image)["image"]
    assert out.dtype == np.uint8 and out.min() >= 250 and out.max() == 255
    assert (out == 255).mean() > 0.9  # Poisson(10) >= 5 almost always
    out = run("AugAdditivePoissonNoise lambda=[10,10]", image.astype(np.float32))["image"]
    assert out.dtype == np.float32 and out.max() > 260
    assert np.array_equal(out, np.round(out)) and abs(out.mean() - 260) < 0.5  # integers, mean lambda


def test_laplace_noise() -> None:
    image = np.full((100, 100, 3), 128, np.uint8)
    out = run("AugAdditiveLaplaceNoise std_dev=[10,10]", image)["image"]
    assert out.dtype == np.uint8 and abs(out.astype(float).mean() - 128) < 1
    assert 12 < out.astype(float).std() < 16  # Laplace(b=10) has standard deviation 10 * sqrt(2)
    out = run("AugAdditiveLaplaceNoise std_dev=[200,200]", image)["image"]
    assert out.min() == 0 and out.max() == 255  # saturates
    out = run("AugAdditiveLaplaceNoise std_dev=[200,200]", image.astype(np.float32))["image"]
    assert out.dtype == np.float32 and out.max() > 400 and out.min() < -150  # float data is not clipped


def test_brightness_adds_beta() -> None:
    image = np.array([[[100, 230, 0]]], np.uint8)
    np.testing.assert_array_equal(run("AugBrightness beta=[50,50]", image)["image"], [[[150, 255, 50]]])
    np.testing.assert_array_equal(run("AugBrightness beta=[-50,-50]", image)["image"], [[[50, 180, 0]]])
    out = run("AugBrightness beta=[50,50]", np.array([[[0.5, 300.0, -1.0]]], np.float32))["image"]
    np.testing.assert_allclose(out, [[[50.5, 350.0, 49.0]]])


def test_gamma_contrast_on_uint8_and_float() -> None:
    image = np.array([[[0, 128, 255]]], np.uint8)
    out = run("AugGammaContrast gamma=[2,2]", image)["image"]
    assert out.dtype == np.uint8
    np.testing.assert_allclose(out, [[[0, 64, 255]]], atol=1)  # 255 * (128/255)^2 = 64.25
    out = run("AugGammaContrast gamma=[2,2]", image.astype(np.float32))["image"]
    np.testing.assert_allclose(out, [[[0, 64.25098, 255]]], rtol=1e-5)


def test_gaussian_blur_uses_ecvl_kernel_size() -> None:
    impulse = np.zeros((15, 15), np.float32)
    impulse[7, 7] = 1
    out = run("AugGaussianBlur sigma=[0.8,0.8]", impulse)["image"]  # sigma 0.8: a 3x3 kernel
    assert np.count_nonzero(out) == 9 and np.count_nonzero(out[6:9, 6:9]) == 9
    np.testing.assert_allclose(out.sum(), 1, rtol=1e-5)
    out = run("AugGaussianBlur sigma=[2,2]", impulse)["image"]  # sigma 2: int(((2-0.8)/0.3+1)/0.5+1) = 11
    assert np.count_nonzero(out[7]) == 11
    cat = data.chelsea()
    out = run("AugGaussianBlur sigma=[1,1]", cat)["image"]
    assert out.dtype == np.uint8 and np.abs(out.astype(int) - cat).mean() > 1


def test_coarse_dropout_zeroes_whole_tiles() -> None:
    image = np.full((100, 200, 3), 9, np.uint8)
    out = run("AugCoarseDropout p=[1,1] drop_size=[0.1,0.1] per_channel=0", image)["image"]
    assert (out == 0).all()
    out = run("AugCoarseDropout p=[0,0] drop_size=[0.1,0.1] per_channel=0", image)["image"]
    assert (out == 9).all()
    out = run("AugCoarseDropout p=[0.5,0.5] drop_size=[0.1,0.1] per_channel=0", image)["image"]
    tiles = out[:, :, 0].reshape(10, 10, 10, 20)  # 20x10 px tiles: each is all dropped or all kept
    per_tile = tiles.min(axis=(1, 3)) == tiles.max(axis=(1, 3))
    assert per_tile.all() and 0.25 < (out[:, :, 0] == 0).mean() < 0.75
    assert np.array_equal(out[:, :, 0], out[:, :, 2])  # channels decided together
    out = run("AugCoarseDropout p=[1,1] drop_size=[0.1,0.1] per_channel=1", image)["image"]
    assert 0.2 < (out == 0).mean() < 0.45  # each channel with probability p / 3
    assert not np.array_equal(out[:, :, 0] == 0, out[:, :, 1] == 0)


def test_salt_and_pepper() -> None:
    image = np.full((60, 80, 3), 100, np.uint8)
    assert (run("AugSalt p=[1,1] per_channel=0", image)["image"] == 255).all()
    assert (run("AugPepper p=[1,1] per_channel=1", image)["image"] == 0).all()
    out = run("AugSalt p=[0.2,0.2] per_channel=0", image)["image"]
    assert set(np.unique(out)) == {100, 255} and 0.15 < (out == 255).mean() < 0.25
    assert np.array_equal(out[:, :, 0], out[:, :, 1])  # whole pixels
    for per_channel in ("0", "1"):
        out = run(f"AugSaltAndPepper p=[1,1] per_channel={per_channel}", image)["image"]
        assert set(np.unique(out)) == {0, 255} and 0.4 < (out == 255).mean() < 0.6
    out = run("AugPepper p=[1,1] per_channel=0", image.astype(np.float32))["image"]
    assert out.dtype == np.float32 and (out == 0).all()


def test_scale_to_and_scale_from_to() -> None:
    image = np.array([[[10, 20, 30]], [[40, 50, 110]]], np.uint8)
    out = run("AugScaleTo new_min=0 new_max=1", image)["image"]
    assert out.dtype == np.float32 and out.min() == 0 and out.max() == 1
    np.testing.assert_allclose(out[0, 0], [0, 0.1, 0.2])
    np.testing.assert_array_equal(run("AugScaleTo new_min=-3 new_max=5", np.full((3, 3), 7.0))["image"], -3)
    out = run("AugScaleFromTo old_min=20 old_max=40 new_min=0 new_max=10", image)["image"]
    np.testing.assert_allclose(out[:, 0], [[0, 0, 5], [10, 10, 10]])


# ---------------------------------------------------------------------------------------------- containers


def test_one_of_with_p0_never_applies(cat: np.ndarray) -> None:
    pipeline = build_pipeline("OneOfAugmentationContainer p=0\n  AugMirror p=1\n  AugFlip p=1\nend")
    for _ in range(30):
        np.testing.assert_array_equal(pipeline(image=cat)["image"], cat)


def test_one_of_with_p1_applies_exactly_one_uniformly_chosen_child(cat: np.ndarray, classes: np.ndarray) -> None:
    pipeline = build_pipeline("OneOfAugmentationContainer p=1\n  AugMirror p=1\n  AugFlip p=1\nend")
    seen = {"mirror": 0, "flip": 0}
    for _ in range(200):
        out = pipeline(image=cat, mask=classes)
        if np.array_equal(out["image"], cat[:, ::-1]):
            seen["mirror"] += 1
            np.testing.assert_array_equal(out["mask"], classes[:, ::-1])
        else:
            np.testing.assert_array_equal(out["image"], cat[::-1])
            seen["flip"] += 1
    assert 60 < seen["mirror"] < 140 and seen["mirror"] + seen["flip"] == 200


def test_one_of_keeps_each_childs_own_p(cat: np.ndarray) -> None:
    # A bare OneOf would weight the choice by p (picking the Mirror always) and force it; the child's p=0 must win.
    pipeline = build_pipeline("OneOfAugmentationContainer p=1\n  AugMirror p=0\n  AugBrightness beta=[0,0]\nend")
    for _ in range(30):
        np.testing.assert_array_equal(pipeline(image=cat)["image"], cat)


def test_sequence_applies_children_in_order() -> None:
    image = np.full((4, 4, 3), 100, np.uint8)
    out = run("SequentialAugmentationContainer\n AugToFloat32 divisor=100\n AugBrightness beta=[1,1]\nend", image)
    np.testing.assert_allclose(out["image"], 2.0)  # 100 / 100 + 1, not (100 + 1) / 100
