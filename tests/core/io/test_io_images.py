"""Raster readers on real photos (scikit-image's bundled images), and their errors."""

import io
import struct
import zlib

import numpy as np
import pytest
import simplejpeg
import tifffile
from PIL import Image as PILImage
from PIL import ImageFile
from skimage import data

from fovea.core.io import DEFAULT_LIMITS, Limits, decode_frames, decode_image, image_from_array
from fovea.core.io import images as images_module
from fovea.errors import InputError, LimitExceeded

CHELSEA = data.chelsea()  # 300 x 451 RGB
ASTRONAUT = data.astronaut()  # 512 x 512 RGB


def encode(pixels, fmt, **options):
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


def tiff(array, **options):
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP", "GIF"])
def test_lossless_formats_decode_exactly(fmt):
    pixels = data.camera() if fmt == "GIF" else CHELSEA  # GIF is 8-bit palette: exact for grayscale
    options = {"lossless": True} if fmt == "WEBP" else {}
    image = decode_image(encode(pixels, fmt, **options), name=f"cat.{fmt.lower()}")
    assert image.pixels.dtype == np.uint8 and image.pixels.flags.c_contiguous
    expected = pixels if pixels.ndim == 3 else np.dstack([pixels] * 3)
    np.testing.assert_array_equal(image.pixels, expected)
    assert image.original_size == pixels.shape[:2] and image.name == f"cat.{fmt.lower()}"


def test_jpeg_decodes_close_to_the_original():
    image = decode_image(encode(CHELSEA, "JPEG", quality=95), name="cat.jpg")
    assert image.pixels.shape == (300, 451, 3) and image.original_size == (300, 451)
    assert np.abs(image.pixels.astype(int) - CHELSEA).mean() < 3
    gray = decode_image(encode(data.camera(), "JPEG", quality=95))
    assert gray.pixels.shape == (512, 512, 3)
    assert (gray.pixels[:, :, 0] == gray.pixels[:, :, 2]).all()
    assert np.abs(gray.pixels[:, :, 0].astype(int) - data.camera()).mean() < 3


def test_jpeg_reduced_scale_keeps_original_size_and_respects_min_size():
    big = encode(np.asarray(PILImage.fromarray(ASTRONAUT).resize((2048, 2048))), "JPEG", quality=90)
    image = decode_image(big, min_size=(300, 300))
    assert image.pixels.shape == (512, 512, 3)  # 1/4 scale: the smallest DCT scale still >= 300
    assert image.original_size == (2048, 2048) and image.scale == (4.0, 4.0)
    assert np.abs(image.pixels.astype(int) - ASTRONAUT).mean() < 8  # it is the astronaut, smaller
    assert decode_image(big, min_size=(513, 100)).pixels.shape == (768, 768, 3)  # 3/8: 1/4 would be too small
    assert decode_image(big, min_size=(4000, 4000)).pixels.shape == (2048, 2048, 3)  # never upscaled
    assert decode_image(big).pixels.shape == (2048, 2048, 3)


def test_cmyk_jpeg_falls_back_to_pillow_with_the_same_reduced_scale():
    red = np.zeros((256, 384, 3), np.uint8)
    red[..., 0] = 200
    buffer = io.BytesIO()
    PILImage.fromarray(red).convert("CMYK").save(buffer, "JPEG", quality=95)
    cmyk = buffer.getvalue()
    assert simplejpeg.decode_jpeg_header(cmyk)[2] == "CMYK"
    image = decode_image(cmyk)
    assert image.pixels.shape == (256, 384, 3)
    assert np.abs(image.pixels.astype(int) - red).max() <= 3
    small = decode_image(cmyk, min_size=(100, 100))
    assert small.pixels.shape == (128, 192, 3) and small.original_size == (256, 384)
    assert decode_image(cmyk, min_size=(0, 150)).pixels.shape == (128, 192, 3)  # only the width matters


def test_gif_first_frame_and_all_frames():
    frames = [PILImage.fromarray(np.full((20, 30, 3), v, np.uint8)) for v in (0, 128, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    first = decode_image(buffer.getvalue())
    assert first.pixels.shape == (20, 30, 3) and first.pixels.max() == 0
    all_frames = decode_frames(buffer.getvalue(), name="anim.gif")
    assert [int(f.pixels.mean()) for f in all_frames] == [0, 128, 255]
    assert [f.name for f in all_frames] == ["anim.gif#0", "anim.gif#1", "anim.gif#2"]
    with pytest.raises(LimitExceeded, match="more than 2 frames"):
        decode_frames(buffer.getvalue(), name="anim.gif", limits=Limits(max_frames=2))


def test_sixteen_bit_tiff_is_range_scaled_and_multipage_tiff_gives_every_page():
    ramp = np.arange(0, 65536, 16, dtype=np.uint16).reshape(64, 64)
    pages = decode_frames(
        tiff(np.stack([ramp, ramp[::-1, ::-1], np.full_like(ramp, 7)]), photometric="minisblack"), name="stack.tif"
    )
    assert len(pages) == 3 and pages[2].name == "stack.tif#2"
    assert pages[0].pixels[0, 0, 0] == 0 and pages[0].pixels[-1, -1, 0] == 255
    assert pages[0].pixels[32, 0, 0] == round((32 * 64 * 16) * 255 / 65520)  # linear over the data's range
    assert pages[1].pixels[0, 0, 0] == 255
    assert pages[2].pixels.max() == 0  # a constant page
    single = decode_image(tiff(np.stack([ramp, ramp[::-1, ::-1]]), photometric="minisblack"))
    np.testing.assert_array_equal(single.pixels, pages[0].pixels)


def test_sixteen_bit_png_uses_its_own_range():
    values = np.linspace(1000, 5000, 40 * 50).reshape(40, 50).astype(np.uint16)
    buffer = io.BytesIO()
    PILImage.fromarray(values).save(buffer, "PNG")
    image = decode_image(buffer.getvalue())
    assert image.pixels[0, 0, 0] == 0 and image.pixels[-1, -1, 0] == 255
    np.testing.assert_array_equal(image.pixels[:, :, 0], np.rint((values - 1000.0) * 255 / 4000).astype(np.uint8))


def test_float_rgb_tiff_that_pillow_cannot_open_is_read_with_tifffile():
    values = np.linspace(-1.0, 1.0, 30 * 40 * 3, dtype=np.float32).reshape(30, 40, 3)
    encoded = tiff(values, photometric="rgb")
    with pytest.raises(PILImage.UnidentifiedImageError):
        PILImage.open(io.BytesIO(encoded))
    image = decode_image(encoded, name="float.tif")
    assert image.pixels.shape == (30, 40, 3)
    np.testing.assert_array_equal(image.pixels, np.rint((values + 1) * 127.5).astype(np.uint8))
    assert len(decode_frames(tiff(np.stack([values, values]), photometric="rgb"))) == 2


def test_grayscale_and_rgba_become_rgb():
    gray = decode_image(encode(data.camera(), "PNG"))
    assert gray.pixels.shape == (512, 512, 3)
    np.testing.assert_array_equal(gray.pixels[:, :, 1], data.camera())
    rgba = np.dstack([CHELSEA, np.full(CHELSEA.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(decode_image(encode(rgba, "PNG")).pixels, CHELSEA)  # alpha dropped
    palette = PILImage.fromarray(CHELSEA).quantize(16)
    buffer = io.BytesIO()
    palette.save(buffer, "PNG")
    np.testing.assert_array_equal(decode_image(buffer.getvalue()).pixels, np.asarray(palette.convert("RGB")))


def test_arrays_of_every_supported_layout_and_dtype():
    camera = data.camera()
    np.testing.assert_array_equal(image_from_array(camera).pixels[:, :, 2], camera)
    np.testing.assert_array_equal(image_from_array(camera[:, :, None]).pixels[:, :, 0], camera)
    rgba = np.dstack([CHELSEA, np.zeros(CHELSEA.shape[:2], np.uint8)])
    np.testing.assert_array_equal(image_from_array(rgba).pixels, CHELSEA)
    image = image_from_array(CHELSEA, name="cat")
    assert np.shares_memory(image.pixels, CHELSEA) and image.name == "cat"  # uint8 RGB: no copy
    flipped = image_from_array(CHELSEA[:, ::-1])
    assert flipped.pixels.flags.c_contiguous
    np.testing.assert_array_equal(flipped.pixels, CHELSEA[:, ::-1])

    u16 = np.array([[1000, 2000], [3000, 5000]], np.uint16)
    np.testing.assert_array_equal(image_from_array(u16).pixels[:, :, 0], [[0, 64], [128, 255]])
    i16 = np.array([[-1024, 0], [1024, 3072]], np.int16)  # CT-like, negative values
    np.testing.assert_array_equal(image_from_array(i16).pixels[:, :, 0], [[0, 64], [128, 255]])
    floats = np.array([[0.0, 0.25], [np.nan, 1.0]], np.float32)  # NaN counts as 0
    np.testing.assert_array_equal(image_from_array(floats).pixels[:, :, 0], [[0, 64], [0, 255]])
    np.testing.assert_array_equal(image_from_array(np.eye(2, dtype=bool)).pixels[:, :, 0], [[255, 0], [0, 255]])
    assert image_from_array(np.full((3, 3), 9.5)).pixels.max() == 0  # constant
    assert np.isnan(floats[1, 0])  # the caller's array is left alone


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 4, 2), np.uint8), "expected an HxW"),
        (np.zeros((2, 4, 4, 3), np.uint8), "expected an HxW"),
        (np.zeros((0, 4), np.uint8), "expected an HxW"),
        (np.zeros((4, 4), complex), "real numeric"),
        (np.array([["a", "b"]]), "real numeric"),
    ],
)
def test_unusable_arrays(array, message):
    with pytest.raises(InputError, match=message):
        image_from_array(array, name="arr")


def test_bad_bytes_give_one_line_errors_naming_the_input():
    png, jpeg = encode(CHELSEA, "PNG"), encode(CHELSEA, "JPEG")
    cases = [
        (b"", "x.png is empty"),
        (b"hello, this is a text file\n" * 20, "x.png: unrecognised image format"),
        (np.random.default_rng(0).bytes(5000), "x.png: unrecognised image format"),
        (png[:2000], "x.png: corrupt or truncated image"),
        (png[:30], "x.png: corrupt or truncated"),
        (jpeg[: len(jpeg) // 2], "x.png: corrupt or truncated image"),
        (b"\xff\xd8\xff\xe0garbage", "x.png: corrupt JPEG"),
        (b"\0" * 128 + b"DICM" + b"\0" * 200, "x.png is a DICOM file, not a 2-D raster image"),
    ]
    for payload, message in cases:
        with pytest.raises(InputError) as caught:
            decode_image(payload, name="x.png")
        assert str(caught.value).startswith(message), (message, str(caught.value))
        assert "\n" not in str(caught.value)


def test_byte_limit():
    with pytest.raises(LimitExceeded, match=r"cat.png is \d+ bytes, over the limit of 1000"):
        decode_image(encode(CHELSEA, "PNG"), name="cat.png", limits=Limits(max_bytes=1000))


def test_decompression_bombs_are_refused_from_the_header(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    monkeypatch.setattr(images_module.simplejpeg, "decode_jpeg", never)
    bomb = encode(np.zeros((3000, 4000), np.uint8), "PNG")  # 12 Mpx of zeros in a tiny file
    assert len(bomb) < 100_000
    with pytest.raises(LimitExceeded, match="4000x3000 pixels, over the limit of 1000000 pixels"):
        decode_image(bomb, name="bomb.png", limits=Limits(max_pixels=1_000_000))
    with pytest.raises(LimitExceeded, match="4000x3000"):
        decode_frames(bomb, limits=Limits(max_pixels=1_000_000))
    jpeg_bomb = encode(np.zeros((3000, 4000, 3), np.uint8), "JPEG")
    with pytest.raises(LimitExceeded, match="4000x3000"):
        decode_image(jpeg_bomb, limits=Limits(max_pixels=1_000_000))


def png_claiming(width, height):
    """A real PNG whose IHDR (CRC fixed up) claims width x height: what a crafted bomb looks like."""
    png = bytearray(encode(np.zeros((8, 8), np.uint8), "PNG"))
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def test_pillows_global_guard_holds_whatever_the_callers_limit(monkeypatch):
    assert DEFAULT_LIMITS.max_pixels == PILImage.MAX_IMAGE_PIXELS
    huge = Limits(max_pixels=10**12)
    with pytest.raises(LimitExceeded, match="over Pillow's decompression-bomb limit"):
        decode_image(png_claiming(30000, 30000), name="bomb.png", limits=huge)  # 900 Mpx: Pillow refuses
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1_000_000)
    with (
        pytest.warns(PILImage.DecompressionBombWarning),
        pytest.raises(LimitExceeded, match="over Pillow's decompression-bomb limit of 1000000"),
    ):
        decode_image(png_claiming(1200, 1000), limits=huge)  # Pillow only warns here; it is refused anyway
