"""The demo catalog's augmentation defaults compute the inputs its weights expect (backend-api.md §12).

EfficientNet-Lite0's card resizes the shorter side to 256 and crops the centre 224 x 224. Test and Validation
augmentation defaults that stretched the photo to 224 x 224 instead gave an inference process other scores than the
weights' own preprocessing for the same photo; the catalog's defaults now say the card's steps in the grammar.
"""

from __future__ import annotations

import numpy as np
import pytest

import fovea
from fovea.platform.demo_catalog import FAMILY_DEFAULTS
from fovea.training.tta import TestTimeAugmentation

TEST_AUGMENTATIONS, VALIDATION_AUGMENTATIONS = 10, 9


@pytest.mark.parametrize("photo", ["chelsea.jpg", "coffee.jpg", "astronaut.jpg"])
@pytest.mark.parametrize("prop", [TEST_AUGMENTATIONS, VALIDATION_AUGMENTATIONS])
def test_efficientnet_defaults_score_as_the_card_does(zoo_dir, photo, prop):
    model = fovea.load(zoo_dir / "efficientnet-lite0-imagenet.onnx")
    image = zoo_dir / "samples" / photo
    [card] = model.predict_batch([image])
    [augmented] = TestTimeAugmentation(model, FAMILY_DEFAULTS["EfficientNet-Lite0"][prop]).predict_batch([image])
    # Equal up to resampling (the grammar scales the square bilinearly, then crops; the card crops, then shrinks
    # by area), so probabilities within 0.05, not the top class: chelsea's tabby, tiger cat and Egyptian cat are
    # 0.002 apart. The stretch these defaults used to be was 0.47 off on chelsea.
    top = card.labels[:5]
    assert np.allclose(augmented.probabilities[top], card.probabilities[top], atol=0.05), (
        augmented.probabilities[top],
        card.probabilities[top],
    )
