"""The touch-up brush in a real browser: one Remove stroke on the canvas reaches the mask.

AppTest cannot drive a custom component, so this is the only test of the canvas itself:
the mouse paints on the example's "Touch up" tab where the person is, and the mask
downloaded afterwards must be transparent there and differ from the one before.

Uses test_browser.py's server, browser and conventions (trained weights when present,
else the tiny model). SAVE_SCREENSHOTS=1 refreshes screenshots/app-touchup.png.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests import test_browser
from tests.test_browser import (
    EXAMPLE,
    RESULT_TIMEOUT_MS,
    SAVE,
    SCREENSHOTS,
    _assert_no_traceback,
    _download,
    _key,
    _wait_idle,
)

pytestmark = pytest.mark.browser
server, model_path, browser, page = (
    test_browser.server,
    test_browser.model_path,
    test_browser.browser,
    test_browser.page,
)
#: Radius of the painted stroke in canvas pixels (the brush is twice that wide).
STROKE = 12


def _mask(path: Path) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("L"))


def _dab_point(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) as fractions of the photo: the point deepest inside the kept region, so a
    stroke there lies on kept pixels whatever the model."""
    inside = (mask >= 128).astype(np.uint8)
    if not inside.any():
        pytest.skip("the model kept nothing, so there is nothing to remove")
    depth = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return x / mask.shape[1], y / mask.shape[0]


def test_a_remove_stroke_changes_the_downloaded_mask(page, tmp_path: Path) -> None:
    key = _key(0, EXAMPLE.read_bytes())
    page.locator(f".st-key-mask-{key}").wait_for(timeout=RESULT_TIMEOUT_MS)
    _wait_idle(page)
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    before = _mask(_download(page, f".st-key-mask-{key}", tmp_path / "before"))
    fx, fy = _dab_point(before)

    card = page.locator(".st-key-photo-0")
    card.get_by_role("tab", name="Touch up").click()
    canvas = card.locator("canvas").last
    canvas.wait_for(state="visible")
    result = card.locator("[data-testid=stImage]", has_text="Touched up").locator("img")
    shown = result.get_attribute("src")
    page.wait_for_timeout(1000)  # let the canvas attach its mouse handlers
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 50
    # "Remove" is the default brush; one short horizontal stroke through the point.
    x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
    page.mouse.move(x - 10, y)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x - 10 + 2 * step, y)
    page.mouse.up()
    # The canvas sends its drawing, Streamlit reruns and shows the touched-up preview.
    expect(result).not_to_have_attribute("src", shown or "", timeout=RESULT_TIMEOUT_MS)
    _wait_idle(page)
    _assert_no_traceback(page)

    after = _mask(_download(page, f".st-key-mask-{key}", tmp_path / "after"))
    assert after.shape == before.shape
    height, width = before.shape
    cx, cy = round(fx * width), round(fy * height)
    reach = max(2, round(0.3 * STROKE * width / box["width"]))
    dabbed = np.s_[max(0, cy - reach) : cy + reach, max(0, cx - reach) : cx + reach]
    assert before[dabbed].mean() >= 128
    assert after[dabbed].max() < 128, "the removed stroke is still kept"
    assert np.abs(after.astype(int) - before.astype(int)).sum() > 0

    if SAVE:
        SCREENSHOTS.mkdir(exist_ok=True)
        card.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        card.screenshot(path=str(SCREENSHOTS / "app-touchup.png"))
