"""Steady masks from frame to frame: the network sees each frame on its own.

Its map jitters at the outline and a doubtful region can blink on for one frame. Three
cheap steps on top of the photo path remove that: a temporal median of three maps
(drops one-frame blinks, keeps monotonic motion exactly), a motion-adaptive running
average of the map (smooths small changes, follows large ones at once), and a hold on
the final 8-bit alpha: where the picture itself has not moved, the alpha is kept
(sensor noise moves the guided filter's outline every frame; a still scene gives a
still mask).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import cv2
import numpy as np

__all__ = [
    "STAB_BLOCK",
    "STAB_DEAD_BAND",
    "STAB_MEDIAN",
    "STAB_MIN_RATE",
    "STAB_MOTION",
    "STAB_OVERRIDE",
    "STAB_SCENE_CHANGE",
    "TemporalStabilizer",
]

#: Defaults of :class:`TemporalStabilizer`. The median and the average were compared on
#: the parkour clip (bench/VIDEO_QUALITY.md: the median does most of the work, the
#: average's rate hardly matters); the hold's thresholds follow from the noise it must
#: ignore (sigma 4 per pixel averages to 0.5 over an 8x8 block) and are checked by the
#: still-scene test.
STAB_MEDIAN = True  # temporal median of three maps
STAB_MOTION = 0.3  # map change at and above which the average follows at once
STAB_MIN_RATE = 0.4  # share of a small map change taken per frame
STAB_DEAD_BAND = 6  # alpha levels (of 255) of change that are never passed on
STAB_BLOCK = 8  # pixels per side of the blocks whose picture change is watched
STAB_SCENE_CHANGE = 4.0  # block mean change (levels of 255) that counts as motion
STAB_OVERRIDE = 96  # alpha change that is passed on even where the picture is still


class TemporalStabilizer:
    """Steady masks for a sequence of frames; one instance per clip, frames in order.

    Two halves, so they can run on two threads: :meth:`push_map` works on the
    network's low-resolution maps (one frame of look-ahead), :meth:`hold` on the final
    alpha with the frame it belongs to.

    :meth:`hold` is what makes a still scene give a still mask: sensor noise moves
    the guided filter's outline by a few pixels every frame, however steady the map.
    The frame is averaged over 8x8 blocks (noise of sigma 4 averages to 0.5 there);
    where a block's mean colour has not moved by ``scene_change`` since its alpha was
    last updated (and its neighbours' neither), the picture is still and so is its
    alpha, unless the alpha changed by ``override`` or more (the network changed its
    mind for good: the median already dropped one-frame blinks).
    """

    def __init__(
        self,
        motion: float = STAB_MOTION,
        min_rate: float = STAB_MIN_RATE,
        dead_band: int = STAB_DEAD_BAND,
        *,
        median: bool = STAB_MEDIAN,
        block: int = STAB_BLOCK,
        scene_change: float = STAB_SCENE_CHANGE,
        override: int = STAB_OVERRIDE,
    ) -> None:
        self.motion = float(motion)
        self.min_rate = float(min_rate)
        self.dead_band = int(dead_band)
        self.median = bool(median)
        self.block = int(block)
        self.scene_change = float(scene_change)
        self.override = int(override)
        self._window: deque[tuple[Any, np.ndarray]] = deque()
        self._average: np.ndarray | None = None
        self._held: np.ndarray | None = None
        self._reference: np.ndarray | None = None

    def push_map(self, item: Any, prob: np.ndarray) -> list[tuple[Any, np.ndarray]]:
        """Add a frame's map; return the (item, steady map) pairs now ready (0 or 1).

        The median of three needs the next frame, so results lag one frame behind;
        call :meth:`flush` after the last frame.
        """
        if not self.median:
            return [(item, self._smooth(prob))]
        if not self._window:
            self._window.append((item, prob))  # the first frame is its own predecessor
        self._window.append((item, prob))
        if len(self._window) < 3:
            return []
        (_, a), (mid, b), (_, c) = self._window
        self._window.popleft()
        return [(mid, self._smooth(_median3(a, b, c)))]

    def flush(self) -> list[tuple[Any, np.ndarray]]:
        """The last frame's steady map (its own successor), if any frame is pending."""
        if len(self._window) < 2:
            return []
        (_, a), (mid, b) = self._window
        self._window.clear()
        return [(mid, self._smooth(_median3(a, b, b)))]

    def _smooth(self, prob: np.ndarray) -> np.ndarray:
        if self._average is None or self._average.shape != prob.shape:
            self._average = prob.astype(np.float32, copy=True)
            return self._average.copy()
        change = prob - self._average
        rate = np.abs(change)
        rate *= np.float32(1 / self.motion)
        np.clip(rate, self.min_rate, 1.0, out=rate)
        self._average += rate * change
        return self._average.copy()

    def hold(self, alpha: np.ndarray, rgb: np.ndarray | None = None) -> np.ndarray:
        """(H, W) uint8 alpha where still parts of the picture keep their last alpha.

        Without ``rgb`` only the dead band applies.
        """
        if self._held is None or self._held.shape != alpha.shape:
            self._held = alpha.copy()
            self._reference = None if rgb is None else self._block_means(rgb)
            return alpha
        # uint8 masks (255 = update) with OpenCV: ~4x faster than NumPy booleans.
        change = cv2.absdiff(alpha, self._held)
        _, update = cv2.threshold(change, self.dead_band, 255, cv2.THRESH_BINARY)
        if rgb is not None and self._reference is not None:
            means = self._block_means(rgb)
            moving = cv2.absdiff(means, self._reference).max(axis=2) > self.scene_change
            moving = cv2.dilate(moving.astype(np.uint8), np.ones((3, 3), np.uint8))
            self._reference[moving > 0] = means[moving > 0]
            rows, cols = moving.shape
            b = self.block
            gate = np.full_like(alpha, 255)  # partial blocks at the edges always follow
            size = (cols * b, rows * b)
            gate[: rows * b, : cols * b] = cv2.resize(
                moving * np.uint8(255), size, interpolation=cv2.INTER_NEAREST
            )
            _, large = cv2.threshold(change, self.override - 1, 255, cv2.THRESH_BINARY)
            update = cv2.bitwise_and(update, cv2.bitwise_or(gate, large))
        cv2.copyTo(alpha, update, self._held)
        return self._held.copy()

    def _block_means(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        b = self.block
        rows, cols = max(1, h // b), max(1, w // b)
        whole = rgb[: rows * b, : cols * b]
        return cv2.resize(whole, (cols, rows), interpolation=cv2.INTER_AREA).astype(np.float32)


def _median3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Element-wise median of three arrays: max(min(a, b), min(max(a, b), c))."""
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
