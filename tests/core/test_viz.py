"""Drawing on a real photo: boxes in class colours, tinted masks, nothing else touched."""

import numpy as np
from PIL import Image
from skimage import data

from fovea.core.predictions import Prediction
from fovea.core.viz import draw, draw_slice, save_image

RED, BLUE = (255, 0, 0), (0, 0, 255)
PHOTO = data.chelsea()  # 300 x 451


def test_box_edges_take_the_class_colour_and_the_rest_is_untouched():
    prediction = Prediction(
        task="detection",
        size=PHOTO.shape[:2],
        class_names=("cat", "dog"),
        boxes=np.array([[100, 120, 300, 280]], np.float32),
        labels=np.array([0]),
        scores=np.array([0.9], np.float32),
    )
    drawn = draw(PHOTO, prediction, [RED, BLUE], legend=False)
    assert tuple(drawn[200, 100]) == RED and tuple(drawn[279, 200]) == RED  # left and bottom edges
    untouched = np.ones(PHOTO.shape[:2], bool)
    untouched[95:285, 95:305] = False
    untouched[:130, 90:300] = False  # the label above the box
    np.testing.assert_array_equal(drawn[untouched], PHOTO[untouched])
    assert (data.chelsea() == PHOTO).all(), "drawing must not modify its input"


def test_mask_overlay_tints_only_masked_pixels():
    mask = np.zeros(PHOTO.shape[:2], bool)
    mask[150:250, 200:350] = True
    prediction = Prediction(
        task="segmentation",
        size=PHOTO.shape[:2],
        class_names=("background", "cat"),
        labels=np.array([1]),
        scores=np.array([0.9], np.float32),
        masks=mask[None],
    )
    drawn = draw(PHOTO, prediction, [RED, BLUE], legend=False)
    inside = drawn[160:240, 210:340].astype(int)
    original = PHOTO[160:240, 210:340].astype(int)
    assert (inside[..., 2] > original[..., 2]).mean() > 0.95  # pulled towards blue
    far = np.ones_like(mask)
    far[145:255, 195:355] = False
    np.testing.assert_array_equal(drawn[far], PHOTO[far])


def test_legend_and_volume_slices(tmp_path):
    masks = np.zeros((1, 3, 40, 60), bool)
    masks[0, 1, 10:30, 10:50] = True
    volume = Prediction(
        task="segmentation",
        size=(3, 40, 60),
        class_names=("bg", "organ"),
        labels=np.array([1]),
        scores=np.array([1.0]),
        masks=masks,
    )
    gray = np.full((40, 60, 3), 100, np.uint8)
    assert (draw_slice(gray, volume, 0, [RED, BLUE]) == gray).all()
    assert (draw_slice(gray, volume, 1, [RED, BLUE]) != gray).any()
    for suffix in ("png", "jpg"):
        path = save_image(
            tmp_path / f"out.{suffix}",
            draw(
                PHOTO,
                volume.__class__(
                    task="classification",
                    size=(300, 451),
                    class_names=("cat",),
                    labels=np.array([0]),
                    scores=np.array([0.97]),
                ),
                [RED],
            ),
        )
        assert np.asarray(Image.open(path)).shape == PHOTO.shape
