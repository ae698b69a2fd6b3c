"""The app's touch-up helpers (app_support): canvas drawing -> hint layers -> new alpha.

AppTest cannot drive the drawable canvas, so what happens between the canvas's RGBA
drawing and the touched-up result is tested here directly.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from app_support import (
    BRUSHES,
    STROKE_MIN_ALPHA,
    canvas_size,
    canvas_strokes,
    export_file,
    hints_key,
    split_strokes,
    touched_up,
)
from segmentation import SegmentationResult

RED, GREEN = (255, 48, 48), (48, 220, 96)  # the brushes' colours (BRUSHES)


def _drawing(height: int = 30, width: int = 40) -> np.ndarray:
    """A transparent canvas with a red block (remove) left and a green one (keep) right."""
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[5:15, 2:12] = (*RED, 153)
    rgba[5:15, 25:35] = (*GREEN, 153)
    return rgba


def _state(rgba: np.ndarray) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return {"drawing": {"raw": {"objects": []}, "data": url}, "backgroundFit": None}


def test_brush_colours_are_the_ones_split_strokes_tells_apart() -> None:
    assert list(BRUSHES) == ["Remove", "Keep"]
    assert "255, 48, 48" in BRUSHES["Remove"] and "48, 220, 96" in BRUSHES["Keep"]


def test_split_strokes_separates_the_brushes() -> None:
    keep, remove = split_strokes(_drawing())
    assert keep is not None and remove is not None
    assert keep.shape == remove.shape == (30, 40)
    assert keep[5:15, 25:35].all() and keep.sum() == 100
    assert remove[5:15, 2:12].all() and remove.sum() == 100
    assert not (keep & remove).any()


def test_split_strokes_ignores_faint_fringes_and_reports_unused_brushes() -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[2:4, 2:4] = (*RED, 200)
    rgba[6:8, 6:8] = (*GREEN, STROKE_MIN_ALPHA - 1)  # an anti-aliased edge, not paint
    keep, remove = split_strokes(rgba)
    assert keep is None
    assert remove is not None and remove.sum() == 4


@pytest.mark.parametrize(
    "data", [None, np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10), np.uint8)]
)
def test_split_strokes_of_nothing_is_nothing(data: np.ndarray | None) -> None:
    assert split_strokes(data) == (None, None)


def test_canvas_strokes_reads_the_canvas_state() -> None:
    drawing = _drawing()
    np.testing.assert_array_equal(canvas_strokes(_state(drawing)), drawing)


@pytest.mark.parametrize(
    "state",
    [
        None,
        {},
        {"drawing": None},
        {"drawing": {"raw": {}, "data": None}},
        {"drawing": {"data": "data:image/png;base64,bm90IGEgcG5n"}},  # "not a png"
    ],
)
def test_canvas_strokes_of_an_unusable_state_is_none(state: object) -> None:
    assert canvas_strokes(state) is None


def test_hints_key_changes_with_the_strokes_and_brush() -> None:
    keep, remove = split_strokes(_drawing())
    assert hints_key(None, None) == ""
    key = hints_key(keep, remove)
    assert key and key == hints_key(keep.copy(), remove.copy())
    assert key != hints_key(remove, keep)  # same pixels, other brushes
    assert hints_key(keep, None) != hints_key(None, keep)
    moved = np.roll(remove, 1, axis=1)
    assert key != hints_key(keep, moved)


def test_canvas_size_keeps_the_aspect_ratio() -> None:
    assert canvas_size(3000, 4000, max_side=400) == (300, 400)
    assert canvas_size(4000, 3000, max_side=400) == (400, 300)
    assert canvas_size(100, 50, max_side=400) == (100, 50)  # never enlarged


def _two_blocks() -> SegmentationResult:
    """A photo of a blue and a yellow block on grey that the 'network' keeps both of."""
    photo = np.full((120, 160, 3), 128, np.uint8)
    photo[20:100, 10:70] = (30, 60, 200)
    photo[20:100, 90:150] = (230, 210, 40)
    mask = np.zeros((120, 160), np.float32)
    mask[20:100, 10:70] = 1
    mask[20:100, 90:150] = 1
    return SegmentationResult(photo, mask)


def test_touched_up_without_strokes_is_the_same_result() -> None:
    result = _two_blocks()
    assert touched_up(result, None, None) is result


def test_a_small_preview_stroke_removes_its_whole_region_at_full_size() -> None:
    result = _two_blocks()
    # Drawn on a canvas a quarter of the photo's size: a dab on the yellow block only.
    canvas = np.zeros((30, 40, 4), np.uint8)
    canvas[14:16, 29:31] = (*RED, 153)
    keep, remove = split_strokes(canvas)
    touched = touched_up(result, keep, remove)
    assert touched.mask.shape == (120, 160)
    assert touched.mask[30:90, 100:140].max() < 0.5, "the yellow block stays"
    assert touched.mask[30:90, 20:60].min() > 0.5, "the blue block went too"

    png = Image.open(io.BytesIO(export_file("mask", result.original, touched.mask, None)))
    exported = np.asarray(png)
    assert exported.shape == (120, 160)
    assert exported[60, 120] < 128 and exported[60, 40] > 128
