"""Closer looks at people who fill only part of the photo.

The network sees the whole photo squashed to its S x S input. A person standing in
an 854x480 video frame is then ~80 network pixels wide, and the outline the network
draws is correspondingly blobby. :func:`person_box` finds the people in that first
map and frames them (with a margin, at a photo-like aspect); the network then looks
again at just that crop, and :func:`merge_maps` pastes the close-up map into the
whole-photo map at the close-up's resolution.

Measured with model v3 (``python -m train.evaluate``, IoU / boundary F1 at 3 px, no
mirrored look), one look -> two: parkour clip (854x480) 0.804 / 0.693 -> 0.895 /
0.852, people val 0.843 / 0.733 -> 0.854 / 0.752, VITON test unchanged at 0.979 /
0.957 (its 192x256 photos are too small to zoom into). The tuning figures below were
taken with the guided filter's earlier, finer fitting grid (parkour 0.891 / 0.848).

The crop is never blown up more than :data:`ZOOM_MAX_UPSCALE` times: val holds
448 px photos of people ~100 px tall, and a 4x-upscaled crop of one is a blur the
network never saw in training; with no limit it lost those people entirely (IoU
0.81 -> 0.00) and val fell to 0.832. Limit 1.0: val as one look, parkour 0.859 /
0.785; 1.5: val 0.852 / 0.750, parkour 0.890 / 0.842; 2.0: the figures above.

Photos get two closer looks, one crop at each limit of :data:`ZOOM_MAX_UPSCALES`, and
:func:`merge_close_looks` averages their maps; a person big enough that both limits
give the same crop is looked at once. Measured with model v8 (the default Segmenter,
mirrored looks; IoU / boundary F1): limit 2.0 alone, val 0.8659 / 0.7799 and parkour
0.9189 / 0.8860; 2.5 alone, 0.8687 / 0.7835 and 0.9175 / 0.8859; 3.0 alone, 0.8648 /
0.7806 and 0.9176 / 0.8859; both 2.0 and 2.5, averaged: 0.8684 / 0.7829 and 0.9192 /
0.8870, better on 92 val photos and worse on 31, on 22 parkour frames and worse on 7.
A single limit trades one set against the other because the more a small person is
blown up, the likelier the network is to drop one of a pair or to see a rock as a
person (and the less, the blobbier the outline); the two crops err on different
photos. Keeping only the close-up near the first look's people instead (its mask
dilated by the margin) lost parkour's thin, fast limbs (0.9160 / 0.8792). VITON's
photos are too small to zoom into: 0.9803 / 0.9627 throughout. Video frames take one
closer look, at the first limit (:mod:`segmentation.video`).
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

__all__ = [
    "ZOOM_MARGIN",
    "ZOOM_MAX_ASPECT",
    "ZOOM_MAX_UPSCALE",
    "ZOOM_MAX_UPSCALES",
    "Box",
    "merge_close_looks",
    "merge_maps",
    "person_box",
    "person_boxes",
]

#: Context kept around the people, as a share of their box's height and width on each
#: side (parkour: 0.10 beat 0.15, 0.891 / 0.848 against 0.867 / 0.808).
ZOOM_MARGIN = 0.10
#: The crop is widened or heightened to at most this aspect (either way) so a tall,
#: thin person is not stretched sideways when the crop is squashed to the square input.
ZOOM_MAX_ASPECT = 1.3
#: The crop is at least input_size / ZOOM_MAX_UPSCALE pixels on each side (see above).
ZOOM_MAX_UPSCALE = 2.0
#: A photo's closer looks: one crop per limit, widest first, their maps averaged.
ZOOM_MAX_UPSCALES = (ZOOM_MAX_UPSCALE, 2.5)
#: Probability above which a map pixel counts as person when framing.
ZOOM_THRESHOLD = 0.5


class Box(NamedTuple):
    """A crop of the photo in pixels; ``bottom`` and ``right`` are exclusive."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left


def person_box(
    prob: np.ndarray,
    photo_size: tuple[int, int],
    input_size: int,
    *,
    margin: float = ZOOM_MARGIN,
    max_aspect: float = ZOOM_MAX_ASPECT,
    max_upscale: float = ZOOM_MAX_UPSCALE,
) -> Box | None:
    """The crop of the photo worth a second look, or None when it would not help.

    Args:
        prob: (h, w) person probability covering the whole photo (any aspect).
        photo_size: (H, W) of the photo.
        input_size: the network's input side S.
        margin: context around the people's box, as a share of its sides.
        max_aspect: the crop's height:width (or width:height) is at most this.
        max_upscale: the crop is at least S / max_upscale pixels high and wide.

    Returns:
        None when no pixel is person, or when the crop is the whole photo.
    """
    rows = np.flatnonzero((prob >= ZOOM_THRESHOLD).any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero((prob >= ZOOM_THRESHOLD).any(axis=0))
    H, W = photo_size
    h, w = prob.shape
    top, bottom = rows[0] * H / h, (rows[-1] + 1) * H / h
    left, right = cols[0] * W / w, (cols[-1] + 1) * W / w
    cy, cx = (top + bottom) / 2, (left + right) / 2
    bh, bw = (bottom - top) * (1 + 2 * margin), (right - left) * (1 + 2 * margin)
    bh, bw = max(bh, bw / max_aspect), max(bw, bh / max_aspect)
    smallest = input_size / max_upscale
    bh, bw = min(H, max(bh, smallest)), min(W, max(bw, smallest))
    y0 = int(np.clip(round(cy - bh / 2), 0, H - round(bh)))
    x0 = int(np.clip(round(cx - bw / 2), 0, W - round(bw)))
    box = Box(y0, min(H, y0 + round(bh)), x0, min(W, x0 + round(bw)))
    if box.height >= H and box.width >= W:
        return None
    return box


def person_boxes(
    prob: np.ndarray,
    photo_size: tuple[int, int],
    input_size: int,
    *,
    max_upscales: tuple[float, ...] = ZOOM_MAX_UPSCALES,
) -> list[Box]:
    """The crops for the closer looks: :func:`person_box` at each limit, repeats dropped.

    Empty when the first (widest) crop would not help; the later limits only ever
    give a smaller crop of the same people.
    """
    boxes: list[Box] = []
    for limit in max_upscales:
        box = person_box(prob, photo_size, input_size, max_upscale=limit)
        if box is None:
            if not boxes:
                return []
            continue
        if box not in boxes:
            boxes.append(box)
    return boxes


def merge_maps(
    whole: np.ndarray, close: np.ndarray, box: Box, photo_size: tuple[int, int]
) -> np.ndarray:
    """One map of the whole photo, at the close-up's resolution (at most the photo's).

    Args:
        whole: (h, w) probability of the whole photo (the first look).
        close: (s, s) probability of the photo's ``box`` crop (the second look).
        box: where the crop lies in the photo.
        photo_size: (H, W) of the photo.

    Returns:
        (H * k, W * k) float32 map with the photo's aspect, k = the close-up's pixels
        per photo pixel along the box's longer side (at most 1): ``whole`` stretched,
        ``close`` pasted over the box.
    """
    H, W = photo_size
    k = min(1.0, close.shape[0] / box.height, close.shape[1] / box.width)
    size = (max(1, round(W * k)), max(1, round(H * k)))
    merged = cv2.resize(np.asarray(whole, np.float32), size, interpolation=cv2.INTER_LINEAR)
    top, left = round(box.top * k), round(box.left * k)
    bottom = max(top + 1, min(size[1], round(box.bottom * k)))
    right = max(left + 1, min(size[0], round(box.right * k)))
    merged[top:bottom, left:right] = cv2.resize(
        np.asarray(close, np.float32), (right - left, bottom - top), interpolation=cv2.INTER_LINEAR
    )
    return merged


def merge_close_looks(
    whole: np.ndarray, looks: list[tuple[np.ndarray, Box]], photo_size: tuple[int, int]
) -> np.ndarray:
    """:func:`merge_maps` for each (close map, box) look, averaged at the first's size.

    The first look is the widest crop, so its merged map is the coarsest: the finer
    ones are resampled down to it (averaging needs one grid).
    """
    maps = [merge_maps(whole, close, box, photo_size) for close, box in looks]
    size = (maps[0].shape[1], maps[0].shape[0])
    return np.mean(
        [
            m if m.shape == maps[0].shape else cv2.resize(m, size, interpolation=cv2.INTER_LINEAR)
            for m in maps
        ],
        axis=0,
    ).astype(np.float32)
