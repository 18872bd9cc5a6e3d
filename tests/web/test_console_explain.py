"""The Try page's "Explain" button in headless Chromium against a real `fovea serve`: Grad-CAM drawn for a classifier.

The button is offered for classification weights only; on a cat placed in one corner of a white page the overlay
it shows is warm on the cat and cool on the empty corner opposite.
"""

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.training.test_explain import _cat_in_a_corner
from tests.web.conftest import log_in, screenshot, visit

pytestmark = pytest.mark.slow

# Red minus blue, averaged over a quadrant of the shown overlay (JET: warm where the evidence is, blue elsewhere).
REDNESS = """([x, y]) => {
  const img = document.querySelector("img.explanation");
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  const data = context.getImageData(x, y, 180, 180).data;
  let sum = 0;
  for (let i = 0; i < data.length; i += 4) sum += data[i] - data[i + 2];
  return sum / (data.length / 4);
}"""


def test_explain_draws_the_heat_map_of_a_classifier(page, zoo_dir, tmp_path):
    picture = tmp_path / "cat-bottom-left.png"
    Image.fromarray(_cat_in_a_corner(zoo_dir, (1, 0))).save(picture)
    log_in(page)
    visit(page, "#/try", "Try it")
    explain = page.get_by_role("button", name="Explain")
    page.get_by_label("Weights").select_option(label="DBNet_PP-OCRv6-Text (DBNet)")
    expect(explain).to_be_hidden()  # Grad-CAM explains class scores, not masks
    page.get_by_label("Weights").select_option(label="EfficientNet-Lite0_ImageNet (EfficientNet-Lite0)")
    expect(explain).to_be_visible()
    explain.click()
    expect(page.get_by_role("alert")).to_contain_text("Choose an image file")  # nothing sent without an image
    page.get_by_label("Image file").set_input_files(picture)
    explain.click()
    overlay = page.get_by_role("img", name="Grad-CAM heat map of EfficientNet-Lite0_ImageNet", exact=False)
    expect(overlay).to_be_visible(timeout=120_000)
    assert page.evaluate("() => document.querySelector('img.explanation').naturalWidth") == 512
    cat, empty = page.evaluate(REDNESS, [50, 310]), page.evaluate(REDNESS, [310, 50])
    assert cat > empty + 40, (cat, empty)
    screenshot(page, "try-explain")
