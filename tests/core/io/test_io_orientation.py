"""EXIF orientation: a phone's sideways-stored JPEG decodes upright, on every decoding path."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

import fovea
from fovea.core.card import ModelCard
from fovea.core.io import decode_frames, decode_image, read_input
from tests.core.graphs import bright_pixels_segmenter

# Stored 240 wide x 160 high with a bright block in its top-left corner; blocks of 16 px survive JPEG intact.
STORED = np.zeros((160, 240, 3), np.uint8)
STORED[:48, :96] = (255, 255, 255)
STORED[100:, 200:, 1] = 255


def encoded(fmt: str, orientation: int, mode: str = "RGB", quality: int = 95) -> bytes:
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    options = {"quality": quality} if fmt == "JPEG" else {}
    PILImage.fromarray(STORED).convert(mode).save(buffer, fmt, exif=exif.tobytes(), **options)
    return buffer.getvalue()


def upright(data: bytes) -> np.ndarray:
    """What a viewer shows: Pillow's own EXIF transpose."""
    return np.asarray(ImageOps.exif_transpose(PILImage.open(io.BytesIO(data))).convert("RGB"))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_decodes_upright(orientation):
    data = encoded("JPEG", orientation)
    image = decode_image(data, name="phone.jpg")
    expected = upright(data)
    assert image.pixels.shape == expected.shape
    assert image.original_size == expected.shape[:2]
    assert np.abs(image.pixels.astype(int) - expected).mean() < 2  # two JPEG decoders, same pixels


def test_orientation_6_turns_the_image_clockwise():
    image = decode_image(encoded("JPEG", 6), name="phone.jpg")
    assert image.original_size == (240, 160)
    turned = np.rot90(STORED, -1)  # a quarter turn clockwise: the top-left block ends top-right
    assert np.abs(image.pixels.astype(int) - turned).mean() < 2


def test_reduced_dct_decode_is_upright_and_at_least_min_size():
    image = decode_image(encoded("JPEG", 6), name="phone.jpg", min_size=(120, 80))  # upright (h, w)
    assert image.pixels.shape == (120, 80, 3)  # half scale
    assert image.original_size == (240, 160)
    assert image.scale == (2.0, 2.0)
    half = np.asarray(PILImage.fromarray(upright(encoded("JPEG", 6))).resize((80, 120), PILImage.BOX))
    assert np.abs(image.pixels.astype(int) - half).mean() < 4


def test_cmyk_jpeg_through_pillow_is_upright_too():
    data = encoded("JPEG", 8, mode="CMYK")
    image = decode_image(data, name="cmyk.jpg")
    assert image.original_size == (240, 160)
    assert np.abs(image.pixels.astype(int) - upright(data)).mean() < 2


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP"])
def test_other_formats_with_exif_are_upright(fmt):
    data = encoded(fmt, 6)
    assert decode_image(data, name=f"x.{fmt.lower()}").original_size == (240, 160)
    assert decode_frames(data, name=f"x.{fmt.lower()}")[0].pixels.shape == (240, 160, 3)


def test_prediction_is_in_the_upright_frame(tmp_path):
    """A segmenter that marks bright-red pixels: the mask is upright and the size of the upright image."""
    card = ModelCard(
        task="segmentation",
        classes=["background", "bright"],
        input={"size": (64, 64), "resize": "stretch", "crop_pct": 1.0},
        decoder={"kind": "argmax", "background_index": 0},
    )
    model = fovea.load(bright_pixels_segmenter(tmp_path / "seg.onnx", card))
    prediction = model.predict(read_input(encoded("JPEG", 6), name="phone.jpg"))
    mask = prediction.masks[0]
    assert mask.shape == (240, 160)
    # The white block (stored top-left, 48x96) is upright at the top-right, 96 high and 48 wide.
    assert mask[8:88, 120:152].all()
    assert not mask[:, :100].any()
