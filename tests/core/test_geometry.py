"""Each resize mode and its inverse, against coordinates worked out by hand."""

import numpy as np
import pytest

from fovea.core.geometry import resize_image, resize_volume

ORIGINAL = np.zeros((480, 640, 3), np.uint8)  # height 480, width 640
BOX = np.array([[100, 50, 300, 200]], np.float32)  # x1, y1, x2, y2 in the original

# Where BOX lands in a 320x320 network input, by hand:
# stretch: x * 320/640, y * 320/480
# letterbox: ratio 0.5 -> 240x320, 40 px of padding on top
# center_crop (crop_pct 1): shorter side 480 -> 320 (ratio 2/3), crop the central 480x480 (x0 = 80)
EXPECTED_NETWORK = {
    "stretch": [50, 50 * 2 / 3, 150, 200 * 2 / 3],
    "letterbox": [50, 40 + 25, 150, 40 + 100],
    "center_crop": [20 * 2 / 3, 50 * 2 / 3, 220 * 2 / 3, 200 * 2 / 3],
}


@pytest.mark.parametrize("mode", EXPECTED_NETWORK)
def test_box_maps_to_network_and_back(mode):
    resized, geometry = resize_image(ORIGINAL, (320, 320), mode, crop_pct=1.0)
    assert resized.shape == (320, 320, 3)
    corners = BOX.reshape(2, 2)
    np.testing.assert_allclose(geometry.to_network(corners).ravel(), EXPECTED_NETWORK[mode], atol=1e-4)
    back = geometry.to_original_boxes(np.array([EXPECTED_NETWORK[mode]], np.float32))
    np.testing.assert_allclose(back, BOX, atol=1e-3)


def test_letterbox_pads_with_pad_value_and_keeps_content():
    image = np.full((100, 200, 3), 255, np.uint8)
    resized, geometry = resize_image(image, (64, 64), "letterbox", pad_value=114)
    assert geometry.offset == (16.0, 0.0)
    assert (resized[:16] == 114).all() and (resized[-16:] == 114).all()
    assert (resized[16:48] == 255).all()


def test_boxes_are_clipped_to_the_original_image():
    _, geometry = resize_image(ORIGINAL, (320, 320), "letterbox")
    back = geometry.to_original_boxes(np.array([[-10, 0, 400, 400]], np.float32))
    np.testing.assert_allclose(back, [[0, 0, 640, 480]])


@pytest.mark.parametrize("mode", ["stretch", "letterbox", "center_crop"])
def test_mask_inverse_puts_pixels_back(mode):
    original = np.zeros((480, 640), np.uint8)
    original[50:200, 100:300] = 1
    resized, geometry = resize_image(original[:, :, None], (320, 320), mode, crop_pct=1.0)
    back = geometry.to_original_map(resized.reshape(320, 320), nearest=True)
    assert back.shape == (480, 640)
    disagree = back != original
    if mode == "center_crop":  # the network never sees outside the crop
        disagree[:, :80] = disagree[:, 560:] = False
    # Only pixels along the rectangle's edges may differ (one network pixel is up to 2 original pixels).
    edge = np.zeros_like(original, bool)
    edge[47:53, 97:303] = edge[197:203, 97:303] = edge[47:203, 97:103] = edge[47:203, 297:303] = True
    assert not (disagree & ~edge).any()


def test_center_crop_hides_the_sides():
    original = np.ones((480, 640), np.uint8)
    resized, geometry = resize_image(original[:, :, None], (320, 320), "center_crop", crop_pct=1.0)
    back = geometry.to_original_map(resized.reshape(320, 320), nearest=True)
    assert back[:, :79].max() == 0 and back[:, 561:].max() == 0 and back[:, 100:540].min() == 1


def test_reduced_decode_rescales_to_the_true_original():
    _, geometry = resize_image(np.zeros((240, 320, 3), np.uint8), (320, 320), "stretch")
    full = geometry.rescaled(2.0, 2.0, (480, 640))
    np.testing.assert_allclose(
        full.to_original_boxes(np.array([[160, 160, 320, 320]], np.float32)), [[320, 240, 640, 480]]
    )


def test_resize_volume_nearest_and_linear():
    volume = np.zeros((4, 8, 8), np.float32)
    volume[2:] = 1
    up = resize_volume(volume, (8, 16, 16), nearest=True)
    assert up.shape == (8, 16, 16)
    assert up[:4].max() == 0 and up[4:].min() == 1
    smooth = resize_volume(volume, (8, 16, 16))
    assert 0 < smooth[3, 0, 0] < 1 or 0 < smooth[4, 0, 0] < 1
