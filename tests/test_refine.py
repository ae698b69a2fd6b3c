"""Guided upsampling follows real edges; foreground estimation removes colour fringes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segmentation.refine import (
    estimate_foreground,
    guided_upsample,
    sharpen_probability,
    upsample_bilinear,
)
from train.metrics import boundary_f1

FIGURE, GROUND = (205, 120, 90), (60, 110, 170)


def scene(height: int = 480, width: int = 640, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A figure with square corners and 6 px strands (detail a 48 px map cannot hold)."""
    truth = np.zeros((height, width), np.uint8)
    cv2.rectangle(truth, (200, 150), (440, 480), 1, -1)
    cv2.circle(truth, (320, 100), 60, 1, -1)
    for i in range(5):
        cv2.rectangle(truth, (150 + 14 * i, 60), (156 + 14 * i, 150), 1, -1)
    rng = np.random.default_rng(seed)
    rgb = np.where(truth[:, :, None] > 0, FIGURE, GROUND).astype(np.float32)
    rgb += rng.normal(0, 6, rgb.shape)
    return truth.astype(bool), np.clip(rgb, 0, 255).astype(np.uint8)


def network_like(truth: np.ndarray, size: int = 48, sigma: float = 0.7) -> np.ndarray:
    """What a perfect but low-resolution network would say: squashed, area-averaged, soft."""
    small = cv2.resize(truth.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (0, 0), sigma)


def test_guided_beats_bilinear_on_a_sharp_figure() -> None:
    truth, rgb = scene()
    prob = network_like(truth)
    bilinear = upsample_bilinear(prob, truth.shape)
    guided = guided_upsample(prob, rgb)
    f1_bilinear = boundary_f1(truth, bilinear > 0.5)
    f1_guided = boundary_f1(truth, guided > 0.5)
    assert f1_guided > f1_bilinear + 0.1, (f1_bilinear, f1_guided)  # measured 0.78 -> 0.96
    assert np.abs(guided - truth).mean() < np.abs(bilinear - truth).mean()


def test_guided_output_shape_range_and_dtype() -> None:
    truth, rgb = scene(301, 457)
    out = guided_upsample(network_like(truth), rgb)
    assert out.shape == (301, 457)
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_flat_probability_stays_exactly_flat(value: float) -> None:
    """Inside the person and in the background the fast path must give exactly 1 and 0."""
    _, rgb = scene()
    out = guided_upsample(np.full((64, 64), value, np.float32), rgb)
    assert (out == value).all()


def textbook_coefficients(guide: np.ndarray, p: np.ndarray, r: int, eps: float):
    """He et al.'s colour guided filter, straight from the paper: box-averaged A and b."""
    h, w = p.shape

    def box(x):
        return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(p)
    cov = box(guide * p[:, :, None]) - mean_i * mean_p[:, :, None]
    sigma = np.empty((h, w, 3, 3))
    for i in range(3):
        for j in range(3):
            sigma[:, :, i, j] = box(guide[:, :, i] * guide[:, :, j])
            sigma[:, :, i, j] -= mean_i[:, :, i] * mean_i[:, :, j]
    a = np.linalg.solve(sigma + eps * np.eye(3), cov[..., None])[..., 0]
    b = mean_p - (a * mean_i).sum(axis=2)
    return box(a), box(b)


def test_tiled_fast_path_matches_the_textbook_filter() -> None:
    """At full resolution (factor 1) the tiled implementation is the plain guided filter.

    The photo (500 px) is twice the map (250 px), so with work_scale 2 the working grid
    is the photo itself and the window radius is round(0.5 * 500 / 250) = 1; tiles of 128 px
    with flat regions skipped must agree everywhere, tile seams included.
    """
    truth, rgb = scene(300, 500, seed=3)
    prob = network_like(truth, size=250, sigma=2.0)
    ours = guided_upsample(prob, rgb, radius=0.5, eps=1e-4, work_scale=2.0)
    guide = rgb.astype(np.float64) / 255
    p = cv2.resize(prob.astype(np.float64), (500, 300), interpolation=cv2.INTER_LINEAR)
    a, b = textbook_coefficients(guide, p, r=1, eps=1e-4)
    reference = np.clip((a * guide).sum(axis=2) + b, 0, 1)
    np.testing.assert_allclose(ours, reference, atol=2e-3)


def test_fast_guided_filter_matches_a_plain_implementation() -> None:
    """Coefficients on a 4x smaller grid, bilinearly upsampled and applied per pixel.

    512x384 photo, 64 px map, work_scale 2: the grid is 128x96 (factor 512 / 128 = 4) with
    radius 1. Tiles must line up with the grid, and those near the outline must
    include every pixel whose interpolation touches a non-flat grid cell.
    """
    truth, rgb = scene(384, 512, seed=4)
    prob = network_like(truth, size=64, sigma=0.7)
    ours = guided_upsample(prob, rgb, radius=0.5, eps=1e-4, work_scale=2.0)
    guide = cv2.resize(rgb, (128, 96), interpolation=cv2.INTER_AREA).astype(np.float64) / 255
    p = cv2.resize(prob.astype(np.float64), (128, 96), interpolation=cv2.INTER_LINEAR)
    a, b = textbook_coefficients(guide, p, r=1, eps=1e-4)
    a_full = cv2.resize(a, (512, 384), interpolation=cv2.INTER_LINEAR)
    b_full = cv2.resize(b, (512, 384), interpolation=cv2.INTER_LINEAR)
    reference = np.clip((a_full * rgb / 255).sum(axis=2) + b_full, 0, 1)
    np.testing.assert_allclose(ours, reference, atol=1e-3)  # measured max 1.1e-4


def test_upsample_bilinear() -> None:
    prob = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    out = upsample_bilinear(prob, (30, 41))
    assert out.shape == (30, 41) and out.dtype == np.float32
    assert out[0, 0] == 0.0 and out[0, -1] == 1.0
    assert 0.0 < out[15, 20] < 1.0


def test_sharpen_probability() -> None:
    out = sharpen_probability(np.array([0.0, 0.25, 0.5, 0.6, 0.75, 0.97, 1.0]))
    np.testing.assert_allclose(out, [0, 0, 0.5, 0.7, 1, 1, 1], atol=1e-6)


def test_guided_rejects_bad_shapes() -> None:
    _, rgb = scene(64, 64)
    with pytest.raises(ValueError, match="uint8"):
        guided_upsample(np.zeros((8, 8)), rgb.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(h, w\)"):
        guided_upsample(np.zeros((8, 8, 1)), rgb)


# --- foreground estimation ------------------------------------------------------------

RED, GREEN = np.array([230, 20, 20], np.float32), np.array([20, 220, 30], np.float32)


def red_on_green(height: int, width: int, ramp: float, centre=None) -> tuple:
    """A red disc photographed on green with a soft edge ``ramp`` pixels wide."""
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    cy, cx = centre if centre is not None else (height / 2, width / 2)
    distance = np.hypot(yy - cy, xx - cx) - min(height, width) / 3
    alpha = np.clip(0.5 - distance / ramp, 0, 1).astype(np.float32)
    rgb = np.rint(alpha[:, :, None] * RED + (1 - alpha[:, :, None]) * GREEN).astype(np.uint8)
    return rgb, alpha


def on_white(colors: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return alpha[:, :, None] * colors.astype(np.float32) + (1 - alpha[:, :, None]) * 255


@pytest.mark.parametrize(("height", "width", "ramp"), [(300, 400, 4), (1201, 1603, 12)])
def test_estimated_foreground_has_no_green_fringe(height: int, width: int, ramp: float) -> None:
    rgb, alpha = red_on_green(height, width, ramp)
    expected = on_white(np.broadcast_to(RED, rgb.shape), alpha)
    edge = (alpha > 0.02) & (alpha < 0.98)
    naive = on_white(rgb, alpha)
    fixed = on_white(estimate_foreground(rgb, alpha), alpha)
    # Precondition: composited as photographed, the edge turns visibly green.
    assert (naive[:, :, 1] - expected[:, :, 1])[edge].max() > 40
    assert np.abs(fixed - expected)[edge].max() < 10
    assert (fixed[:, :, 1] - expected[:, :, 1])[edge].max() < 8


def test_foreground_keeps_opaque_pixels_and_accepts_uint8_alpha() -> None:
    rgb, alpha = red_on_green(200, 260, 6, centre=(20, 250))  # edge crosses the border
    alpha8 = np.rint(alpha * 255).astype(np.uint8)
    from_float = estimate_foreground(rgb, alpha8.astype(np.float32) / 255)
    from_uint8 = estimate_foreground(rgb, alpha8)
    np.testing.assert_array_equal(from_float, from_uint8)
    solid = (alpha8 == 0) | (alpha8 == 255)
    np.testing.assert_array_equal(from_uint8[solid], rgb[solid])
    assert not np.array_equal(from_uint8[~solid], rgb[~solid])


def test_soft_pixels_in_the_last_odd_row_are_handled() -> None:
    """3073 rows: the 2x-shrunk grid drops the last row, whose soft pixels still count."""
    height, width = 3073, 600
    alpha = np.zeros((height, width), np.float32)
    alpha[:, :300] = 1  # red person on the left, green wall on the right
    alpha[-1, 260:300] = 0.5  # a soft edge only in the very last row
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[:, :300] = RED.astype(np.uint8)
    rgb[:, 300:] = GREEN.astype(np.uint8)
    rgb[-1, 260:300] = np.rint((RED + GREEN) / 2).astype(np.uint8)
    fg = estimate_foreground(rgb, alpha)
    np.testing.assert_allclose(fg[-1, 260:300].mean(axis=0), RED, atol=15)  # unmixed


def test_foreground_without_soft_pixels_is_the_image() -> None:
    rgb, alpha = red_on_green(50, 70, 4)
    hard = (alpha > 0.5).astype(np.float32)
    out = estimate_foreground(rgb, hard)
    np.testing.assert_array_equal(out, rgb)
    assert out is not rgb


def test_foreground_rejects_mismatched_alpha() -> None:
    rgb, alpha = red_on_green(50, 70, 4)
    with pytest.raises(ValueError, match="shape"):
        estimate_foreground(rgb, alpha[:-1])


@pytest.mark.parametrize("size", [(257, 8), (8, 257), (301, 13), (129, 200)])
def test_guided_upsample_stays_in_range_past_the_last_whole_cell(size: tuple[int, int]) -> None:
    """Rows and columns beyond the shrunk grid's last whole cell are clipped like the rest.

    Found by hypothesis: an 8x257 photo got mask values down to -0.47 in its last row.
    """
    rng = np.random.default_rng(0)
    for _ in range(5):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        prob = rng.random((64, 64)).astype(np.float32)
        mask = guided_upsample(prob, image)
        assert mask.shape == size
        assert 0.0 <= mask.min() and mask.max() <= 1.0


def test_chunks_batches_and_threads_do_not_change_the_foreground(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Soft pixels are solved in chunks and tiles blurred in batches, on several threads
    or on one: the same pixels."""
    import segmentation.refine as refine

    rgb = cv2.resize(scene(480, 640, seed=3)[1], (1600, 1200), interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(3).integers(0, 40, rgb.shape, dtype=np.uint8)
    rgb = cv2.add(rgb, noise)  # grain: many soft pixels after the guided filter
    prob = cv2.GaussianBlur(np.random.default_rng(4).random((48, 64), np.float32), (0, 0), 3)
    alpha = guided_upsample(np.clip((prob - prob.mean()) * 20 + 0.5, 0, 1), rgb)
    soft = (alpha > 0.5 / 255) & (alpha < 254.5 / 255)
    assert soft.sum() > 20000  # enough soft pixels for several chunks
    monkeypatch.setattr(refine, "_THREADS", 1)
    whole = estimate_foreground(rgb, alpha)
    monkeypatch.setattr(refine, "_SOLVE_CHUNK", 5000)
    monkeypatch.setattr(refine, "_TILE_BATCH", 3)
    np.testing.assert_array_equal(estimate_foreground(rgb, alpha), whole)
    monkeypatch.setattr(refine, "_THREADS", 3)
    monkeypatch.setattr(refine, "_SOLVE_MIN_PER_THREAD", 1000)
    np.testing.assert_array_equal(estimate_foreground(rgb, alpha), whole)


@pytest.mark.parametrize(
    ("side", "map_side", "factor"),
    [(448, 448, 1), (854, 448, 2), (1152, 448, 2), (1344, 448, 2), (1345, 448, 3), (4000, 448, 6)],
)
def test_fitting_grid_is_the_finest_at_most_work_scale_times_the_map(
    monkeypatch: pytest.MonkeyPatch, side: int, map_side: int, factor: int
) -> None:
    """The photo shrinks by the smallest whole factor that brings it to <= 1.5x the map:
    rounding instead fitted 1152 px photos at full resolution, 4x the work."""
    import segmentation.refine as refine

    factors: list[int] = []
    shrink = refine._shrink
    monkeypatch.setattr(refine, "_shrink", lambda x, f: factors.append(f) or shrink(x, f))
    rgb = np.zeros((side * 3 // 4, side, 3), np.uint8)
    guided_upsample(np.zeros((map_side * 3 // 4, map_side), np.float32), rgb, work_scale=1.5)
    assert factors == [factor]
