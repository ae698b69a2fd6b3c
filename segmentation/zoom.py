"""A second, closer look at people who fill only part of the photo.

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
0.785; 1.5: val 0.852 / 0.750, parkour 0.890 / 0.842; 2.0 (used): the figures above.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

__all__ = ["ZOOM_MARGIN", "ZOOM_MAX_ASPECT", "ZOOM_MAX_UPSCALE", "Box", "merge_maps", "person_box"]

#: Context kept around the people, as a share of their box's height and width on each
#: side (parkour: 0.10 beat 0.15, 0.891 / 0.848 against 0.867 / 0.808).
ZOOM_MARGIN = 0.10
#: The crop is widened or heightened to at most this aspect (either way) so a tall,
#: thin person is not stretched sideways when the crop is squashed to the square input.
ZOOM_MAX_ASPECT = 1.3
#: The crop is at least input_size / ZOOM_MAX_UPSCALE pixels on each side (see above).
ZOOM_MAX_UPSCALE = 2.0
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
