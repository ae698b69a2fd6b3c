"""Touch-up: one dab of "keep" or "remove" fixes the whole region it lands on.

No network is right on every photo: ours may keep the blanket under a baby or drop
the bag a person holds. Painting every pixel of the blanket by hand is slow, so a
hint here marks a *region*: :func:`touch_up` takes the photo, the network's alpha
and two optional hint masks and returns a new alpha in which the marked pixels are
kept or removed and so is the region they belong to, found as follows (all on a
working copy of about WORK_SIDE px, then back to full resolution):

1. OpenCV's GrabCut is seeded with the network's mask (the side a dab contradicts,
   inside the mask for "remove" and outside it for "keep", as probable labels, the
   other side as sure ones), a colour flood from the dab as the dab's side, and the
   dabs as hard labels; it settles the region on the photo's colours;
2. only the pixels whose label changed *and* that are connected to a dab change,
   so the rest of the person (and of the background) stays as the network had it;
3. a change bigger than half the person has leaked into look-alike surroundings: it
   is found again letting only pixels coloured like the dab change, tighter each
   time (a dab on a blanket then cannot take a differently coloured arm);
4. the changed area is upsampled with the guided filter (:mod:`segmentation.refine`)
   so its outline follows the full-resolution photo; elsewhere alpha is untouched.

The method was chosen by ``python -m bench.touchup`` (see bench/TOUCHUP.md) against
a plain brush that paints only the dabbed pixels, a colour flood alone and GrabCut
without the flood and the colour limits.
Everything here is pure NumPy/OpenCV; nothing imports TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from segmentation.errors import ImageError
from segmentation.refine import guided_upsample

__all__ = ["WORK_SIDE", "hint_mask", "paint_hints", "touch_up"]

#: Long side of the working copy that the region search runs on (photos smaller than
#: this are used as they are).
WORK_SIDE = 640
#: GrabCut iterations on the working copy.
GRABCUT_ITERATIONS = 3
#: Lab distance (of 255-scaled L, a, b) from the dab's colours within which the flood
#: proposal grows.
FLOOD_TOLERANCE = 18.0
#: Lab distances from the dab's colours beyond which a pixel keeps the network's label
#: for sure, tried in turn while the change is too big (inf: any pixel may change).
MAY_CHANGE_TOLERANCES = (math.inf, 40.0, 20.0)
#: The most a touch-up may add or drop, as a share of the person's area (at least
#: MIN_PERSON_SHARE of the photo): a bag or a blanket, not the whole background.
MAX_CHANGE_SHARE = 0.5
MIN_PERSON_SHARE = 0.05
#: Context around the pixels that may change that GrabCut sees (working pixels).
GRABCUT_MARGIN = 16
#: Colours of the dab summarised by this many k-means centres (textured regions).
DAB_COLOURS = 4
#: Alpha at or above which the network's mask counts as person.
FOREGROUND_AT = 0.5

#: (image, alpha, keep, remove) -> (added, dropped), all on the working grid.
RegionFinder = Callable[
    [np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]
]

_HINT_DTYPES = (np.bool_, np.uint8, np.uint16, np.float32, np.float64)


def hint_mask(hint: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Which pixels of a photo of ``shape`` (H, W[, C]) a hint image marks, as (H, W) bool.

    A hint is a brush layer of any size; it is stretched to the photo (a hint drawn
    on a 600 px preview applies to the 12 MP original). Marked are:

    * (H, W) or (H, W, 1) grey and (H, W, 3) colour: bright pixels, at least half of
      white (uint8 >= 128, uint16 >= 32768, float >= 0.5; a 0/1 uint8 mask also works);
      a colour pixel counts by its brightest channel, so a red stroke on black marks;
    * (H, W, 4) RGBA, e.g. a transparent canvas: opaque pixels (alpha at least half);
    * bool arrays: True.

    Raises:
        ImageError: (a ValueError) not an array of one of those shapes and types.
    """
    a = np.asarray(hint)
    if a.dtype not in _HINT_DTYPES:
        raise ImageError(f"a hint must hold bool, uint8, uint16 or float pixels, not {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, 3]
    elif a.ndim == 3 and a.shape[2] in (1, 3):
        a = a.max(axis=2)
    elif a.ndim != 2:
        raise ImageError(f"a hint must be (H, W), (H, W, 3) or (H, W, 4), not {a.shape}")
    if a.size == 0:
        raise ImageError(f"a hint must not be empty, got {a.shape}")
    marked = _marked(a)
    height, width = int(shape[0]), int(shape[1])
    if marked.shape == (height, width):
        return marked
    # Area-resample the coverage, so a thin stroke on a big hint survives shrinking.
    coverage = cv2.resize(marked.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    if height >= marked.shape[0] and width >= marked.shape[1]:
        return coverage >= 0.5  # enlarging: nearest-like edges, no bleeding
    return coverage > 0


def _marked(a: np.ndarray) -> np.ndarray:
    """Bool mask of the marked pixels of a 2-D hint (see :func:`hint_mask`)."""
    if a.dtype == np.bool_:
        return a.copy()
    if a.dtype == np.uint8:
        return a >= (1 if a.max(initial=0) <= 1 else 128)
    if a.dtype == np.uint16:
        return a >= 32768
    if not np.isfinite(a).all():
        raise ImageError("a float hint must not hold NaN or infinity")
    return a >= 0.5


def paint_hints(
    alpha: np.ndarray, keep: np.ndarray | None, remove: np.ndarray | None
) -> np.ndarray:
    """The plain brush: alpha 1 on the kept pixels, 0 on the removed ones, nothing else.

    ``alpha`` is (H, W) float; hints are anything :func:`hint_mask` takes. Where both
    mark a pixel, "remove" wins (the later, stricter wish of an eraser).
    """
    out = np.array(alpha, dtype=np.float32)
    if keep is not None:
        out[hint_mask(keep, out.shape)] = 1.0
    if remove is not None:
        out[hint_mask(remove, out.shape)] = 0.0
    return out


def touch_up(
    photo: np.ndarray,
    alpha: np.ndarray,
    keep: np.ndarray | None = None,
    remove: np.ndarray | None = None,
) -> np.ndarray:
    """A new alpha in which the dabbed regions, not just the dabbed pixels, are fixed.

    Args:
        photo: (H, W, 3) uint8 RGB photo, full resolution.
        alpha: the network's mask for it: (h, w) float in [0, 1] or uint8 0..255, any
            size (``SegmentationResult.mask`` at full size, or the probability map,
            which is stretched to the photo); >= 0.5 counts as person.
        keep: hint of what should be person (any size, see :func:`hint_mask`), or None.
        remove: hint of what should be background, or None.

    Returns:
        (H, W) float32 alpha in [0, 1]: 1 on every kept and 0 on every removed pixel,
        the regions connected to them following (outlines refined at full
        resolution), and the network's alpha, exactly, away from those regions. With
        no pixel marked, the input alpha at the photo's size.

    Raises:
        ImageError: (a ValueError) the photo, the alpha or a hint cannot be used.
    """
    return touch_up_with(changed_regions, photo, alpha, keep, remove)


def touch_up_with(
    find_regions: RegionFinder,
    photo: np.ndarray,
    alpha: np.ndarray,
    keep: np.ndarray | None,
    remove: np.ndarray | None,
) -> np.ndarray:
    """:func:`touch_up` with another region finder (the benchmark compares several)."""
    img = _check_photo(photo)
    height, width = img.shape[:2]
    base = _alpha_at(alpha, (height, width))
    keep_px = hint_mask(keep, img.shape) if keep is not None else np.zeros((height, width), bool)
    remove_px = hint_mask(remove, img.shape) if remove is not None else np.zeros_like(keep_px)
    keep_px &= ~remove_px
    if not (keep_px.any() or remove_px.any()):
        return base
    scale = min(1.0, WORK_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small_img = cv2.resize(img, size, interpolation=cv2.INTER_AREA) if scale < 1 else img
    small_alpha = cv2.resize(base, size, interpolation=cv2.INTER_AREA) if scale < 1 else base
    small_keep = _shrink_hint(keep_px, size)
    small_remove = _shrink_hint(remove_px, size) & ~small_keep
    added, dropped = find_regions(small_img, small_alpha, small_keep, small_remove)
    out = _apply_at_full_size(img, base, small_alpha, added, dropped)
    out[keep_px] = 1.0
    out[remove_px] = 0.0
    return out


def changed_regions(
    image: np.ndarray, alpha: np.ndarray, keep: np.ndarray, remove: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(added, dropped): bool masks of the background a keep dab brings in and the
    person a remove dab takes out, all (h, w) on one (working-size) RGB image and its
    alpha.

    The network's mask is GrabCut's seed: the side a dab contradicts is probable, the
    other sure; a colour flood from the dab is proposed as the dab's side; the dabs are
    hard labels; and only changes connected to a dab count. When the change would be
    implausibly big (more than MAX_CHANGE_SHARE of the person: it leaked into
    look-alike surroundings), it is found again letting only pixels coloured like the
    dab change (the rest keep the network's label for sure, so a dab on a blanket
    cannot take a differently coloured arm), tighter each time (MAY_CHANGE_TOLERANCES);
    if none fits, only the dabbed pixels change.
    """
    person = alpha >= FOREGROUND_AT
    lab = _smoothed_lab(image)
    limit = MAX_CHANGE_SHARE * max(np.count_nonzero(person), MIN_PERSON_SHARE * person.size)
    for tolerance in MAY_CHANGE_TOLERANCES:
        added, dropped = _regions_within(image, lab, person, keep, remove, tolerance)
        if max(np.count_nonzero(added), np.count_nonzero(dropped)) <= limit:
            break
    else:
        added, dropped = np.zeros_like(person), np.zeros_like(person)
    return added | (keep & ~person), dropped | (remove & person)


def _regions_within(
    image: np.ndarray,
    lab: np.ndarray,
    person: np.ndarray,
    keep: np.ndarray,
    remove: np.ndarray,
    tolerance: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One pass of :func:`changed_regions` at one colour tolerance."""
    none = np.zeros_like(person)
    may_add = _may_change(lab, keep, ~person, tolerance) if keep.any() else none
    may_drop = _may_change(lab, remove, person, tolerance) if remove.any() else none
    if not (may_add | may_drop).any():
        return none, none
    flood_tolerance = min(FLOOD_TOLERANCE, tolerance)
    labels = np.where(person, np.uint8(cv2.GC_FGD), np.uint8(cv2.GC_BGD))
    labels[may_drop] = cv2.GC_PR_FGD
    labels[may_add] = cv2.GC_PR_BGD
    if keep.any():
        labels[_colour_flood(lab, keep, may_add, flood_tolerance)] = cv2.GC_PR_FGD
    if remove.any():
        labels[_colour_flood(lab, remove, may_drop, flood_tolerance)] = cv2.GC_PR_BGD
    labels[keep] = cv2.GC_FGD
    labels[remove] = cv2.GC_BGD
    box = _bounding_box(may_add | may_drop, GRABCUT_MARGIN)
    cut = person.copy()
    cut[box] = _grabcut(image[box], labels[box])
    return _touching(may_add & cut, keep), _touching(may_drop & ~cut, remove)


def _may_change(
    lab: np.ndarray, seed: np.ndarray, side: np.ndarray, tolerance: float
) -> np.ndarray:
    """Pixels of ``side`` coloured like the seed and joined to it through such pixels."""
    if math.isinf(tolerance):
        return _touching(side | seed, seed) & side
    like_seed = _near_colours(lab, _dab_colours(lab, seed), tolerance)
    return _touching((like_seed & side) | seed, seed) & side


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """Slices of the bounding box of ``mask``'s True pixels grown by ``margin``."""
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    return (
        slice(max(0, ys.min() - margin), min(height, ys.max() + margin + 1)),
        slice(max(0, xs.min() - margin), min(width, xs.max() + margin + 1)),
    )


def _grabcut(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """GrabCut from a full label mask; True where it ends as (probable) foreground."""
    mask = labels.copy()
    has_fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).any()
    has_bg = np.isin(mask, (cv2.GC_BGD, cv2.GC_PR_BGD)).any()
    if has_fg and has_bg:
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        try:
            cv2.grabCut(bgr, mask, None, bgd, fgd, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
        except cv2.error:  # too few pixels of one side for its colour model
            mask = labels
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def _smoothed_lab(image: np.ndarray) -> np.ndarray:
    """Lab colours (float32, 0..255 scale) after a small blur that calms texture."""
    blurred = cv2.GaussianBlur(image, (0, 0), 1.5)
    return cv2.cvtColor(blurred, cv2.COLOR_RGB2LAB).astype(np.float32)


def _dab_colours(lab: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Up to DAB_COLOURS k-means centres of the seed's Lab colours, (k, 3) float32."""
    colours = np.ascontiguousarray(lab[seed])
    k = min(DAB_COLOURS, len(colours))
    if k < 2:
        return colours[:1]
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    _, _, centres = cv2.kmeans(colours, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    return centres


def _near_colours(lab: np.ndarray, centres: np.ndarray, tolerance: float) -> np.ndarray:
    """Pixels within ``tolerance`` (Lab distance) of one of the centres."""
    near = np.zeros(lab.shape[:2], bool)
    for centre in centres:
        near |= np.linalg.norm(lab - centre, axis=2) <= tolerance
    return near


def _colour_flood(
    lab: np.ndarray, seed: np.ndarray, within: np.ndarray, tolerance: float = FLOOD_TOLERANCE
) -> np.ndarray:
    """Pixels of ``within`` joined to ``seed`` by pixels close in colour to the seed's."""
    near = _near_colours(lab, _dab_colours(lab, seed), tolerance)
    return _touching((near & within) | seed, seed)


def _touching(region: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The 8-connected components of ``region`` that touch ``seed`` (or its 1 px rim)."""
    if not region.any() or not seed.any():
        return np.zeros_like(region)
    count, comp = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
    rim = cv2.dilate(seed.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    hit = np.unique(comp[rim & region])
    hit = hit[hit > 0]
    if len(hit) == 0:
        return np.zeros_like(region)
    lookup = np.zeros(count, bool)
    lookup[hit] = True
    return lookup[comp]


def _apply_at_full_size(
    img: np.ndarray,
    base: np.ndarray,
    small_alpha: np.ndarray,
    added: np.ndarray,
    dropped: np.ndarray,
) -> np.ndarray:
    """Full-size alpha: ``base`` except around the changed regions, where the working
    alpha with those regions set is upsampled along the photo's edges (guided filter).
    """
    out = base.copy()
    changed = added | dropped
    if not changed.any():
        return out
    height, width = base.shape
    small_h, small_w = small_alpha.shape
    target = small_alpha.copy()
    target[added] = 1.0
    target[dropped] = 0.0
    # Work on the bounding box of the change plus a margin, in working pixels.
    margin = 4
    ys, xs = np.nonzero(changed)
    y0, y1 = max(0, ys.min() - margin), min(small_h, ys.max() + margin + 1)
    x0, x1 = max(0, xs.min() - margin), min(small_w, xs.max() + margin + 1)
    fy0, fy1 = round(y0 * height / small_h), round(y1 * height / small_h)
    fx0, fx1 = round(x0 * width / small_w), round(x1 * width / small_w)
    crop = (slice(fy0, fy1), slice(fx0, fx1))
    refined = guided_upsample(target[y0:y1, x0:x1], img[crop], work_scale=1.0)
    # Blend weight: 1 on the changed pixels and their 2 px rim, fading over 2 more.
    near = cv2.dilate(changed[y0:y1, x0:x1].astype(np.uint8), np.ones((5, 5), np.uint8))
    weight = cv2.blur(near.astype(np.float32), (5, 5))
    weight = cv2.resize(weight, (fx1 - fx0, fy1 - fy0), interpolation=cv2.INTER_LINEAR)
    region = out[crop]
    region += weight * (refined - region)
    return out


def _shrink_hint(marked: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A full-size bool hint on the working grid; any covered working pixel is marked."""
    if marked.shape[::-1] == size:
        return marked
    coverage = cv2.resize(marked.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return coverage > 0


def _alpha_at(alpha: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The network's alpha as a float32 (H, W) copy in [0, 1], stretched if needed."""
    a = np.asarray(alpha)
    if a.ndim != 2 or a.size == 0:
        raise ImageError(f"alpha must be a non-empty (h, w) array, got {a.shape}")
    if a.dtype == np.uint8:
        a = a.astype(np.float32) * np.float32(1 / 255)
    elif np.issubdtype(a.dtype, np.floating) or a.dtype == np.bool_:
        a = a.astype(np.float32)
    else:
        raise ImageError(f"alpha must be float in [0, 1] or uint8, not {a.dtype}")
    if a.shape != shape:
        a = cv2.resize(a, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(a, 0.0, 1.0)


def _check_photo(photo: np.ndarray) -> np.ndarray:
    img = np.asarray(photo)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
        raise ImageError(f"the photo must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
    return np.ascontiguousarray(img)
