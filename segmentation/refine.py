"""From the network's small, blurry probability map to a full-resolution alpha matte.

The network sees a 256x256 squashed copy of the photo, so one of its pixels covers
about 16x12 pixels of a 12 MP photo; upsampling it bilinearly gives soft, blobby
edges that ignore the real outline. :func:`guided_upsample` is the Fast Guided Filter
(He & Sun 2015, arXiv:1505.00996) with the photo as guide: within each window the
mask is modelled as a linear function of the colour, ``q = A·I + b``, fitted at low
resolution and applied at full resolution, so the outline snaps to colour edges
(hair, sleeves) at the cost of a few box filters.

:func:`estimate_foreground` removes the old background's colour from semi-transparent
edge pixels (Forte & Pitié 2021, "Approximate Fast Foreground Colour Estimation"),
so a cutout placed on a new background shows no halo.

Both only do full-resolution work where it matters: away from the outline the mask is
flat, so tiles there take a cheap path. All functions are pure and use OpenCV on
float32; nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, TypeVar

import cv2
import numpy as np

__all__ = [
    "GUIDED_WORK_SCALE",
    "estimate_foreground",
    "guided_upsample",
    "sharpen_probability",
    "upsample_bilinear",
]

T = TypeVar("T")

#: Defaults of :func:`guided_upsample`, tuned on 80 validation photos of the training
#: set (~450 px) with a simulated network output: the true mask squashed to 32..128 px,
#: blurred, then sharpened by PROBABILITY_GAIN. Small windows and a small eps won;
#: windows of 2+ map pixels smeared the outline in cluttered photos. Boundary F1
#: (3 px) against bilinear upsampling: map at 1/14 of the photo (like 256 px for
#: 12 MP) 0.78 -> 0.82, at 1/7 0.903 -> 0.912, at 1/3.5 equal (0.977).
#: The fitting grid (GUIDED_WORK_SCALE) was retuned with the 448 px network on 150 of
#: those photos and the network's map shrunk 1.9x to 8.9x (as for 854 px to 12 MP
#: photos): at most 1.5x the map scored best or within 0.001 of it at every ratio
#: (boundary F1 at 1 px 0.595 -> 0.607 at 1.9x, 0.581 against 0.546 for a
#: full-resolution fit at 8.9x), and the parkour clip's 854 px frames went
#: 0.902 / 0.865 -> 0.906 / 0.868 (IoU / BF1) from 2.0, at a quarter of the fitting cost.
GUIDED_RADIUS = 0.5
GUIDED_EPS = 1e-4
GUIDED_WORK_SCALE = 1.5
#: Gain of :func:`sharpen_probability`: 0.25 -> 0, 0.75 -> 1.
PROBABILITY_GAIN = 2.0


def sharpen_probability(prob: np.ndarray, gain: float = PROBABILITY_GAIN) -> np.ndarray:
    """Stretch probabilities around 0.5 into an alpha matte: ``clip((p - 0.5) * gain + 0.5)``.

    A network is rarely sure: 0.97 inside a person would make the cutout 3 %
    transparent and 0.03 outside would keep a ghost of the background. A gain of 2
    makes both exact, and halves the width of the blurry ramp at the outline.
    """
    p = np.asarray(prob, dtype=np.float32)
    out = (p - 0.5) * np.float32(gain) + np.float32(0.5)
    return np.clip(out, 0.0, 1.0, out=out)


def upsample_bilinear(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Stretch an (h, w) probability map to ``size = (H, W)``; the no-refinement baseline."""
    h, w = size
    p = np.asarray(prob, dtype=np.float32)
    out = cv2.resize(p, (int(w), int(h)), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0, out=out)


def guided_upsample(
    prob: np.ndarray,
    image: np.ndarray,
    *,
    radius: float = GUIDED_RADIUS,
    eps: float = GUIDED_EPS,
    work_scale: float = GUIDED_WORK_SCALE,
) -> np.ndarray:
    """Upsample ``prob`` to the size of ``image`` following the photo's edges.

    Args:
        prob: (h, w) probabilities in [0, 1] covering the whole photo (any aspect:
            the network's square output of a squashed photo is fine).
        image: (H, W, 3) uint8 RGB guide, the full-resolution photo.
        radius: filter window half-size, in pixels of ``prob``. Larger windows can
            move the outline further towards a colour edge but, in cluttered photos,
            also towards the wrong one.
        eps: regulariser of the colour fit (colours scaled to 0..1); smaller follows
            weaker colour edges, larger stays closer to ``prob``.
        work_scale: the coefficients are fitted on the photo shrunk by the smallest
            integer factor that brings it to at most this many times the resolution
            of ``prob``. A finer grid costs more and fits no better outlines (see
            GUIDED_WORK_SCALE).

    Returns:
        (H, W) float32 alpha in [0, 1].
    """
    img = _check_image(image)
    p = np.asarray(prob, dtype=np.float32)
    if p.ndim != 2:
        raise ValueError(f"prob must be (h, w), got {p.shape}")
    p = np.clip(p, 0.0, 1.0)  # then b stays in [0, 1] where the fit is flat
    H, W = img.shape[:2]
    f = max(1, math.ceil(max(H, W) / (work_scale * max(p.shape)) - 1e-6))
    f = min(f, H, W)  # a grid cell never larger than the photo (a 1 px or 8 x 20000 photo)
    guide = _shrink(img, f).astype(np.float32) * np.float32(1 / 255)
    wh, ww = guide.shape[:2]
    r = max(1, round(radius * max(wh, ww) / max(p.shape)))
    # Sample prob at the centres of the working grid's cells.
    sx, sy = f * p.shape[1] / W, f * p.shape[0] / H
    to_prob = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]], np.float32)
    p_low = _warp(p, to_prob, (ww, wh))
    coeffs = _guided_coefficients(guide, p_low, r, eps)  # (wh, ww, 4): A_r, A_g, A_b, b
    return _apply_coefficients(coeffs, img, f)


def _guided_coefficients(guide: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Box-averaged linear coefficients of the colour guided filter (He et al., eq. 14-16)."""
    mean_i = _box(guide, r)
    mean_p = _box(p, r)
    cov_ip = _box(guide * p[:, :, None], r) - mean_i * mean_p[:, :, None]
    # Colour covariance, 6 distinct entries: rr rg rb gg gb bb.
    left, right = [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]
    products = guide[:, :, left] * guide[:, :, right]
    var = np.dstack([_box(products[:, :, :3], r), _box(products[:, :, 3:], r)])
    var -= mean_i[:, :, left] * mean_i[:, :, right]
    a, b, c, d, e, f = (var[:, :, k] for k in range(6))
    # Rounding can make a flat patch's variance slightly negative; eps must dominate.
    a, d, f = (np.maximum(x, 0) + np.float32(eps) for x in (a, d, f))
    # Inverse of the symmetric 3x3 [[a b c] [b d e] [c e f]] by cofactors.
    i00, i01, i02 = d * f - e * e, c * e - b * f, b * e - c * d
    i11, i12, i22 = a * f - c * c, b * c - a * e, a * d - b * b
    det = np.maximum(a * i00 + b * i01 + c * i02, np.float32(eps) ** 3)
    inv_det = 1 / det
    cr, cg, cb = cov_ip[:, :, 0], cov_ip[:, :, 1], cov_ip[:, :, 2]
    coeffs = np.empty((*p.shape, 4), np.float32)
    coeffs[:, :, 0] = (i00 * cr + i01 * cg + i02 * cb) * inv_det
    coeffs[:, :, 1] = (i01 * cr + i11 * cg + i12 * cb) * inv_det
    coeffs[:, :, 2] = (i02 * cr + i12 * cg + i22 * cb) * inv_det
    coeffs[:, :, 3] = mean_p - np.einsum("hwc,hwc->hw", coeffs[:, :, :3], mean_i)
    return _box(coeffs, r)


def _apply_coefficients(coeffs: np.ndarray, image: np.ndarray, f: int) -> np.ndarray:
    """q = A·I + b at full resolution; A and b bilinearly upsampled from the f-times grid.

    Where A is zero on every grid cell a tile interpolates from (the mask is flat:
    inside the person or in the background), q = b and no colour is needed, so the
    full computation runs only on tiles along the outline, one tile at a time so
    no full-size float copy of A is ever made.
    """
    H, W = image.shape[:2]
    s = 1.0 / f
    out = _upsample(coeffs[:, :, 3], f, (H, W))  # q = b, in [0, 1] wherever A = 0
    flat = np.abs(coeffs[:, :, :3]).max(axis=2) <= 1e-7
    near_edge = cv2.dilate((~flat).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    # Pixels past the grid's last whole cell use that cell's coefficients: their tiles
    # need the full computation (and the clip) whenever that cell's do.
    h, w = near_edge.shape
    near_edge = np.pad(near_edge, ((0, -(-H // f) - h), (0, -(-W // f) - w)), mode="edge")
    cells = max(1, round(128 / f))  # grid cells per tile side: tiles of ~128 pixels
    tile = cells * f
    scaled = coeffs.copy()
    scaled[:, :, :3] *= np.float32(1 / 255)  # applied to RGB in 0..255
    for ty, tx in zip(*np.nonzero(_block_any(near_edge, cells)), strict=True):
        y0, x0 = ty * tile, tx * tile
        y1, x1 = min(H, y0 + tile), min(W, x0 + tile)
        if y0 >= H or x0 >= W:
            continue
        ab = _warp(scaled, _to_grid(s, x0, y0), (x1 - x0, y1 - y0))
        rgb = image[y0:y1, x0:x1].astype(np.float32)
        q = out[y0:y1, x0:x1]  # a view: written in place
        np.copyto(q, ab[:, :, 3])
        for c in range(3):  # plane by plane: 3x faster than cv2.multiply + transform
            q += ab[:, :, c] * rgb[:, :, c]
        np.clip(q, 0.0, 1.0, out=q)
    return out


def estimate_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Foreground colours with the old background unmixed from semi-transparent pixels.

    Blur-fusion (Forte & Pitié 2021, two passes): an alpha-weighted box blur
    estimates smooth foreground and background colours F̂, B̂; solving the compositing
    equation ``I = a·F + (1 - a)·B`` around them gives
    ``F = F̂ + a(I - a·F̂ - (1 - a)·B̂)``. The first pass uses a large blur, the second
    a small blur of the first pass's F for local detail. Unlike the paper the blurs
    are weighted by a² and (1 - a)² rather than a and 1 - a: half-transparent pixels
    then pull F̂ less towards the background, which halved the leftover fringe on
    synthetic red-on-green edges (max error 5.5 -> 2.7 of 255 for a 3 px ramp,
    30 -> 21 for a 15 px one).

    Only pixels with partial alpha change (opaque ones keep their colour, transparent
    ones are invisible), and the blurred estimates are smooth, so: the large pass runs
    on a ~512 px copy, the small pass on a ~2048 px copy and only in tiles around
    partial alpha, and the final per-pixel solve only on the partial pixels. The
    small-radius blur of the smooth B̂ is B̂ itself, so it is skipped.

    Args:
        image: (H, W, 3) uint8 RGB photo.
        alpha: (H, W) alpha in [0, 1] (float) or 0..255 (uint8).

    Returns:
        (H, W, 3) uint8 RGB foreground, equal to ``image`` away from soft edges.
    """
    img = _check_image(image)
    a_in = np.asarray(alpha)
    if a_in.shape != img.shape[:2]:
        raise ValueError(f"alpha must have the image's shape {img.shape[:2]}, got {a_in.shape}")
    if a_in.dtype == np.uint8:
        partial = cv2.inRange(a_in, 1, 254)
        a_scale = np.float32(1 / 255)
    else:
        a_in = a_in.astype(np.float32, copy=False)
        partial = cv2.inRange(a_in, _PARTIAL_LO, _PARTIAL_HI)
        a_scale = np.float32(1)
    out = img.copy()
    points = cv2.findNonZero(partial)  # (n, 1, 2) int32 x, y: 4x faster than np.nonzero
    if points is None:
        return out
    H, W = img.shape[:2]
    long_side = max(H, W)

    # Pass 1, large radius, on a ~512 px grid: F̂1 and B̂ (smooth).
    f1 = max(1, round(long_side / _LARGE_GRID))
    img1 = _shrink(img, f1).astype(np.float32) * np.float32(1 / 255)
    a1 = np.clip(_shrink(a_in, f1).astype(np.float32) * a_scale, 0, 1)[:, :, None]
    k1 = max(3, round(_LARGE_RADIUS * long_side / f1))
    wf, wb = a1 * a1, (1 - a1) * (1 - a1)
    fg1 = _blur(img1 * wf, k1) / (_blur(wf, k1) + 1e-5)
    bg1 = _blur(img1 * wb, k1) / (_blur(wb, k1) + 1e-5)

    # Pass 2, small radius, on a ~2048 px grid, in tiles around partial alpha. The
    # grids are padded (border replicated) so every tile plus margin is a slice.
    f2 = max(1, round(long_side / _SMALL_GRID))
    k2 = max(3, round(_SMALL_RADIUS * long_side / f2)) | 1
    m = k2 // 2 + 1  # the blur reads k2 // 2 pixels beyond a tile's core
    img2, a2 = _shrink(img, f2), _shrink(a_in, f2)
    h2, w2 = a2.shape
    # Grid cells holding partial pixels (rows and columns past the last whole cell
    # count for the last cell, as _sample clamps them there), plus neighbours.
    blocks = cv2.dilate(partial, np.ones((f2, f2), np.uint8), anchor=(0, 0))[::f2, ::f2]
    needed = blocks[:h2, :w2].copy()
    needed[h2 - 1] |= blocks[h2:, :w2].max(axis=0, initial=0)
    needed[:, w2 - 1] |= blocks[:h2, w2:].max(axis=1, initial=0)
    needed[h2 - 1, w2 - 1] |= blocks[h2:, w2:].max(initial=0)
    needed = cv2.dilate(needed, np.ones((3, 3), np.uint8))  # bilinear neighbours
    del blocks, partial
    ty, tx = np.nonzero(_block_any(needed > 0, _TILE))
    border = (m, m + _TILE, m, m + _TILE)  # top, bottom, left, right
    img2 = cv2.copyMakeBorder(img2, *border, cv2.BORDER_REPLICATE)
    a2 = cv2.copyMakeBorder(a2, *border, cv2.BORDER_REPLICATE)
    fg2 = np.zeros((h2 + _TILE, w2 + _TILE, 3), np.float32)
    batches = [slice(i, i + _TILE_BATCH) for i in range(0, len(ty), _TILE_BATCH)]
    _in_threads(
        lambda b: _small_pass(img2, a2, a_scale, fg1, bg1, f2 / f1, k2, m, ty[b], tx[b], fg2),
        batches,
    )

    # Final solve at full resolution, on the partial pixels only, a chunk at a time.
    grids = _Grids(fg2[:h2, :w2], f2, bg1, f1)
    # At least one chunk per thread (when there is work enough), at most ~1 M pixels.
    points = points.reshape(-1, 2)
    threads = max(1, min(_THREADS, len(points) // _SOLVE_MIN_PER_THREAD))
    step = min(_SOLVE_CHUNK, -(-len(points) // threads))
    chunks = [points[i : i + step] for i in range(0, len(points), step)]
    _in_threads(lambda c: _solve(img, a_in, a_scale, c, grids, out), chunks)
    return out


#: Alpha strictly between these counts as a soft edge; outside, the photo's colour is
#: kept (at alpha 0.998 a wrong colour moves the composite by 0.2 %).
_PARTIAL_LO, _PARTIAL_HI = 0.5 / 255, 254.5 / 255
#: Blur-fusion box sizes as fractions of the photo's long side. The paper uses 90 and
#: 6 pixels on ~1-2 MP images; scaling keeps the behaviour the same at 12 MP.
_LARGE_RADIUS = 90 / 1800
_SMALL_RADIUS = 6 / 1800
_LARGE_GRID = 512
_SMALL_GRID = 2048
_TILE = 64
_TILE_BATCH = 128
#: Soft pixels solved together: ~50 MB of float32 temporaries whatever the photo's
#: size (a 50 MP portrait has ~9 M soft pixels; solving them at once took ~1 GB).
_SOLVE_CHUNK = 1 << 20
#: The fewest soft pixels worth a thread of their own.
_SOLVE_MIN_PER_THREAD = 1 << 16
#: Threads for the tile batches and solve chunks: NumPy and OpenCV release the GIL.
#: On the idle 2-core machine, 12 MP with 2.0 M soft pixels: 303 -> 259 ms (median of
#: 10). guided_upsample's tile loop gained nothing from threads and stays serial.
_THREADS = os.cpu_count() or 1


def _in_threads(work: Callable[[T], None], items: list[T]) -> None:
    """Run ``work`` on every item on up to _THREADS threads; items must write apart."""
    if _THREADS > 1 and len(items) > 1:
        with ThreadPoolExecutor(min(_THREADS, len(items))) as pool:
            list(pool.map(work, items))  # list() re-raises a worker's exception
    else:
        for item in items:
            work(item)


class _Grids(NamedTuple):
    """The smooth estimates the final solve samples: F̂2 and B̂ with their shrink factors."""

    fg: np.ndarray
    fg_factor: int
    bg: np.ndarray
    bg_factor: int


def _solve(
    img: np.ndarray,
    alpha: np.ndarray,
    a_scale: np.float32,
    points: np.ndarray,
    grids: _Grids,
    out: np.ndarray,
) -> None:
    """Unmix the pixels at ``points`` ((n, 2) int32 x, y) of ``img`` into ``out``.

    Pixels are addressed by flat index (one int32 gather per array instead of a 2-D
    fancy index), and every temporary is float32 and n long.
    """
    xs, ys = points[:, 0], points[:, 1]
    index = ys.astype(np.intp) * img.shape[1] + xs
    pix = img.reshape(-1, 3)[index].astype(np.float32)
    pix *= np.float32(1 / 255)
    a = alpha.reshape(-1)[index].astype(np.float32)
    a *= a_scale
    np.clip(a, 0, 1, out=a)
    fg = _sample(grids.fg, ys, xs, grids.fg_factor)
    bg = _sample(grids.bg, ys, xs, grids.bg_factor)
    fg = _unmix(pix, a[:, None], fg, bg)
    fg *= np.float32(255)
    out.reshape(-1, 3)[index] = np.rint(fg, out=fg).astype(np.uint8)


def _small_pass(
    img: np.ndarray,
    alpha: np.ndarray,
    a_scale: np.float32,
    fg1: np.ndarray,
    bg1: np.ndarray,
    ratio: float,
    k2: int,
    margin: int,
    ty: np.ndarray,
    tx: np.ndarray,
    fg2: np.ndarray,
) -> None:
    """Second blur-fusion pass on a batch of tiles, stacked into one tall image.

    ``img`` and ``alpha`` are the pass-2 grid padded by ``margin`` (and a tile), so
    tile (ty, tx) with its margin starts at (ty, tx) * _TILE; ``fg1``/``bg1`` are the
    pass-1 grid, ``ratio`` pass-1 cells per pass-2 cell, resampled per tile. Each
    tile carries its own margin of neighbours, so the box blur of the stack never
    mixes two tiles inside a tile's core; the cores' F̂2 go into ``fg2``.
    """
    n, side = len(ty), _TILE + 2 * margin
    corners = list(zip((ty * _TILE).tolist(), (tx * _TILE).tolist(), strict=True))

    def stack(src: np.ndarray) -> np.ndarray:
        out = np.empty((n, side, side, *src.shape[2:]), src.dtype)
        for i, (y, x) in enumerate(corners):
            out[i] = src[y : y + side, x : x + side]
        return out

    def stack_pass1(src: np.ndarray) -> np.ndarray:
        out = np.empty((n, side, side, 3), np.float32)
        for i, (y, x) in enumerate(corners):  # padded index y is grid row y - margin
            to_src = _to_grid(ratio, x - margin, y - margin)
            out[i] = _warp(src, to_src, (side, side))
        return out

    pix = stack(img).astype(np.float32) * np.float32(1 / 255)
    at = np.clip(stack(alpha).astype(np.float32) * a_scale, 0, 1)[..., None]
    fg = _unmix(pix, at, stack_pass1(fg1), stack_pass1(bg1))
    weight = at * at
    weighted = _blur((fg * weight).reshape(n * side, side, 3), k2)
    weight = _blur(weight.reshape(n * side, side, 1), k2)
    core = (weighted / (weight + 1e-5)).reshape(n, side, side, 3)
    core = core[:, margin : margin + _TILE, margin : margin + _TILE]
    for i, (y, x) in enumerate(corners):
        fg2[y : y + _TILE, x : x + _TILE] = core[i]


def _sample(grid: np.ndarray, ys: np.ndarray, xs: np.ndarray, f: int) -> np.ndarray:
    """Bilinear samples of an f-times-shrunk (h, w, 3) grid at full-resolution pixels."""
    n = len(ys)
    width = 1024  # remap wants both map sides under 32767
    rows = -(-n // width)
    map_x = np.zeros(rows * width, np.float32)
    map_y = np.zeros(rows * width, np.float32)
    half, step = np.float32(0.5), np.float32(f)
    np.subtract((xs.astype(np.float32) + half) / step, half, out=map_x[:n])
    np.subtract((ys.astype(np.float32) + half) / step, half, out=map_y[:n])
    shape = (rows, width)
    values = cv2.remap(
        grid,
        map_x.reshape(shape),
        map_y.reshape(shape),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return values.reshape(-1, grid.shape[2])[:n]


def _unmix(pix: np.ndarray, a: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """F = F̂ + α(I − αF̂ − (1 − α)B̂): the paper's update, clipped to valid colours."""
    out = a * fg
    np.subtract(pix, out, out=out)
    out -= (1 - a) * bg
    out *= a
    out += fg
    return np.clip(out, 0.0, 1.0, out=out)


# --- helpers --------------------------------------------------------------------------


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
    return img


def _shrink(x: np.ndarray, f: int) -> np.ndarray:
    """Average f x f blocks (the last partial row/column of blocks is dropped).

    An exact integer factor lets cv2.INTER_AREA take its fast path (3x faster on
    12 MP), and makes grid cell i cover pixels [i·f, (i+1)·f) exactly.
    """
    if f == 1:
        return x
    h, w = max(1, x.shape[0] // f), max(1, x.shape[1] // f)
    return cv2.resize(x[: h * f, : w * f], (w, h), interpolation=cv2.INTER_AREA)


def _to_grid(s: float, x0: int, y0: int) -> np.ndarray:
    """Affine map from pixels (offset x0, y0) to a coarser grid of s cells per pixel.

    Pixel centres line up: pixel x covers grid coordinate (x + 0.5) * s - 0.5.
    """
    return np.array([[s, 0, (x0 + 0.5) * s - 0.5], [0, s, (y0 + 0.5) * s - 0.5]], np.float32)


def _upsample(grid: np.ndarray, f: int, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bilinear upsampling of an f-times-shrunk single-channel grid.

    Same result as _warp with _to_grid(1 / f, 0, 0), twice as fast: cv2.resize by an
    exact integer factor writes straight into the output; the few rows and columns
    past the grid's last whole cell repeat the last ones (the border is replicated).
    """
    H, W = shape
    h, w = grid.shape
    out = np.empty((H, W), np.float32)
    view = out[: h * f, : w * f]
    cv2.resize(grid, (w * f, h * f), dst=view, interpolation=cv2.INTER_LINEAR)
    out[:, w * f :] = out[:, w * f - 1 : w * f]
    out[h * f :] = out[h * f - 1]
    return out


def _warp(src: np.ndarray, to_src: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling with an explicit pixel-centre mapping (size is (w, h))."""
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(src, to_src, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def _blur(x: np.ndarray, k: int) -> np.ndarray:
    """Box blur that keeps a trailing channel axis of 1 (OpenCV drops it)."""
    return cv2.blur(x, (k, k), borderType=cv2.BORDER_REFLECT).reshape(x.shape)


def _block_any(mask: np.ndarray, block: int) -> np.ndarray:
    """Boolean grid: which block x block squares of mask hold at least one True."""
    H, W = mask.shape
    ty, tx = math.ceil(H / block), math.ceil(W / block)
    padded = np.zeros((ty * block, tx * block), bool)
    padded[:H, :W] = mask
    return padded.reshape(ty, block, tx, block).any(axis=(1, 3))
