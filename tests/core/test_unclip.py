"""The segmentation decoder's card-declared `unclip`: each region of a mask grown by area * ratio / perimeter."""

import numpy as np
import pytest

from fovea.core.card import ModelCard
from fovea.core.tasks.segmentation import unclip


def test_a_line_core_grows_by_its_own_thickness_and_regions_stay_apart():
    mask = np.zeros((100, 200), bool)
    mask[20:26, 20:180] = True  # a thin line's core: 6 x 160, area / perimeter = 960 / 330, so 1.6 grows 5 px
    mask[80:82, 90:92] = True  # a speck: its contour (through pixel centres) is 4 long, 4 / 4 * 1.6 rounds to 2 px
    grown = unclip(mask, 1.6)
    rows, columns = np.nonzero(grown[:60])
    assert (rows.min(), rows.max(), columns.min(), columns.max()) == (15, 30, 15, 184)
    rows, columns = np.nonzero(grown[60:])
    assert (rows.min() + 60, rows.max() + 60, columns.min(), columns.max()) == (78, 83, 88, 93)  # apart from the line
    assert grown[79:83, 89:93].all() and not grown[78, 88]  # a disk: round corners
    assert np.array_equal(unclip(mask, 0.1), mask)  # under half a pixel: unchanged
    assert not unclip(np.zeros((5, 5), bool), 1.6).any()


def test_only_the_thresholded_decoder_takes_it():
    card = {"task": "segmentation", "classes": ["text"]}
    assert ModelCard(**card, decoder={"kind": "sigmoid_threshold", "unclip_ratio": 1.6}).decoder.unclip_ratio == 1.6
    assert ModelCard(**card, decoder={"kind": "argmax"}).decoder.unclip_ratio == 0  # off unless the card asks
    with pytest.raises(ValueError, match="sigmoid_threshold decoder only"):
        ModelCard(**card, decoder={"kind": "argmax", "unclip_ratio": 1.6})
    with pytest.raises(ValueError):
        ModelCard(**card, decoder={"kind": "sigmoid_threshold", "unclip_ratio": -1})
