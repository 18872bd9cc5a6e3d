"""Raster readers on real photos (scikit-image's bundled images), and their errors."""

import io

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage
from skimage import data

from fovea.core.io import Limits, decode_frames, decode_image, image_from_array, read_input
from fovea.errors import InputError, LimitExceeded

CHELSEA = data.chelsea()  # 300 x 451 RGB


def encode(pixels, fmt, **options):
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_lossless_formats_decode_exactly(fmt):
    options = {"lossless": True} if fmt == "WEBP" else {}
    image = decode_image(encode(CHELSEA, fmt, **options), name=f"cat.{fmt.lower()}")
    assert image.pixels.shape == (300, 451, 3) and image.pixels.dtype == np.uint8
    np.testing.assert_array_equal(image.pixels, CHELSEA)
    assert image.original_size == (300, 451)


def test_jpeg_decodes_close_to_the_original():
    image = decode_image(encode(CHELSEA, "JPEG", quality=95))
    assert image.pixels.shape == (300, 451, 3)
    assert np.abs(image.pixels.astype(int) - CHELSEA).mean() < 3


def test_jpeg_reduced_scale_keeps_original_size_and_respects_min_size():
    big = np.asarray(PILImage.fromarray(CHELSEA).resize((1804, 1200)))
    image = decode_image(encode(big, "JPEG"), min_size=(256, 256))
    h, w = image.pixels.shape[:2]
    assert image.original_size == (1200, 1804)
    assert 256 <= h < 600 and 256 <= w < 900  # decoded at 1/4 scale, not at full size
    assert image.scale == pytest.approx((1200 / h, 1804 / w))


def test_gif_first_frame_and_all_frames():
    frames = [PILImage.fromarray(np.full((20, 30, 3), v, np.uint8)) for v in (0, 128, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    first = decode_image(buffer.getvalue())
    assert first.pixels.shape == (20, 30, 3) and first.pixels.max() == 0
    all_frames = decode_frames(buffer.getvalue(), name="anim.gif")
    assert [int(f.pixels.mean()) for f in all_frames] == [0, 128, 255]
    assert all_frames[1].name == "anim.gif#1"


def test_sixteen_bit_and_multipage_tiff():
    ramp = np.arange(0, 65536, 16, dtype=np.uint16).reshape(64, 64)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.stack([ramp, ramp[::-1, ::-1]]))
    pages = decode_frames(buffer.getvalue())
    assert len(pages) == 2
    assert pages[0].pixels[0, 0, 0] == 0 and pages[0].pixels[-1, -1, 0] == 255
    assert pages[1].pixels[0, 0, 0] == 255
    single = decode_image(buffer.getvalue())
    np.testing.assert_array_equal(single.pixels, pages[0].pixels)


def test_grayscale_and_rgba_become_rgb():
    gray = decode_image(encode(data.camera(), "PNG"))
    assert gray.pixels.shape == (512, 512, 3)
    np.testing.assert_array_equal(gray.pixels[:, :, 0], data.camera())
    rgba = np.dstack([CHELSEA, np.full(CHELSEA.shape[:2], 7, np.uint8)])
    image = decode_image(encode(rgba, "PNG"))
    np.testing.assert_array_equal(image.pixels, CHELSEA)


def test_arrays_of_any_dtype():
    assert image_from_array(data.camera()).pixels.shape == (512, 512, 3)
    floats = image_from_array(np.linspace(-1, 1, 100, dtype=np.float32).reshape(10, 10))
    assert floats.pixels.min() == 0 and floats.pixels.max() == 255
    with pytest.raises(InputError, match="expected an HxW"):
        image_from_array(np.zeros((4, 4, 2)))


def test_read_input_from_a_path_names_the_image(tmp_path):
    path = tmp_path / "chelsea.png"
    path.write_bytes(encode(CHELSEA, "PNG"))
    image = read_input(path)
    assert image.name == "chelsea.png"
    with pytest.raises(InputError, match="file not found"):
        read_input(tmp_path / "missing.png")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "is empty"),
        (b"hello, this is a text file\n" * 20, "unsupported or unrecognised"),
        (np.random.default_rng(0).bytes(5000), "unsupported or unrecognised"),
        (encode(CHELSEA, "PNG")[:2000], "corrupt or truncated"),
        (encode(CHELSEA, "JPEG")[:1500] + b"\x00" * 10, None),
        (b"\xff\xd8\xff\xe0garbage", "corrupt JPEG"),
    ],
)
def test_bad_inputs_give_clear_errors(payload, message):
    if message is None:
        # A truncated JPEG: libjpeg-turbo may pad it grey or refuse; either way no traceback of our own.
        try:
            decode_image(payload, name="cut.jpg")
        except InputError as exc:
            assert "cut.jpg" in str(exc)
        return
    with pytest.raises(InputError, match=message):
        decode_image(payload, name="x")


def test_byte_limit():
    with pytest.raises(LimitExceeded, match="over the limit of 1000"):
        decode_image(encode(CHELSEA, "PNG"), limits=Limits(max_bytes=1000))


def test_decompression_bomb_is_refused_before_decoding():
    bomb = encode(np.zeros((3000, 4000), np.uint8), "PNG")  # 12 Mpx of zeros, tiny file
    assert len(bomb) < 100_000
    with pytest.raises(LimitExceeded, match="4000x3000 pixels"):
        decode_image(bomb, limits=Limits(max_pixels=1_000_000))
    jpeg_bomb = encode(np.zeros((3000, 4000, 3), np.uint8), "JPEG")
    with pytest.raises(LimitExceeded, match="4000x3000"):
        decode_image(jpeg_bomb, limits=Limits(max_pixels=1_000_000))
