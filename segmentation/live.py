"""Live camera frames: the background replaced one frame at a time, as fast as it comes.

:class:`LiveProcessor` is what the app's live view runs on every camera frame (from
streamlit-webrtc's worker thread, one instance per browser session). It is the video
path cut down for latency, because a late frame is worth nothing here:

- one network pass per frame, no mirrored or closer look (each costs another pass);
- the main-subject rule on a half-size copy of the map (a tenth of its cost at 448 px;
  the rule only decides which regions to keep, the map keeps its resolution);
- the video stabiliser without its temporal median, whose look-ahead would hold every
  frame back by one: the motion-adaptive average of the map and the alpha's dead band
  work on the current frame, so each output belongs to the frame that came in (the
  still-picture hold is left out: see :meth:`LiveProcessor._run`);
- the guided filter only when the frame is much larger than the network's map (at
  640 x 480 the 448 px map is already nearly at the frame's resolution, and bilinear
  upsampling is as good for a tenth of the time), and no decontamination of edge
  colours on the displayed frame (the snapshot PNG has it);
- a blurred background computed at a quarter of the resolution.

The last frame and its alpha are kept for :meth:`LiveProcessor.snapshot_png`, a
transparent PNG at the camera's resolution. Nothing here imports Streamlit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from segmentation import compose
from segmentation.io import as_rgb, encode_png
from segmentation.refine import guided_upsample, sharpen_probability, upsample_bilinear
from segmentation.subject import Subject, check_subject, select_subject
from segmentation.video.render import channel_option, render_segmenter
from segmentation.video.stabilize import TemporalStabilizer

__all__ = [
    "LIVE_REFINE_MIN_RATIO",
    "LIVE_SUBJECT_SIDE",
    "LIVE_WORK_SCALE",
    "LiveProcessor",
    "LiveStats",
    "checkerboard",
]

#: The main-subject rule runs on the map shrunk to this side: its dilation by a disc
#: sized to the person is what costs (11 ms of CPU at 448 px, 1.3 ms at 224).
LIVE_SUBJECT_SIDE = 224
#: The guided filter runs only when the frame's long side is at least this many times
#: the map's; below that bilinear upsampling (0.2 ms at 640 x 480, against 11-23 ms
#: for the filter) follows the outline as well (see segmentation.refine's notes).
LIVE_REFINE_MIN_RATIO = 2.0
#: The guided filter's fitting grid for live frames, a multiple of the map's resolution
#: (the video path's 0.75 costs twice as much at 720p).
LIVE_WORK_SCALE = 0.5
#: Seconds of processed frames the frame rate is averaged over.
STATS_WINDOW = 2.0
#: Side of the checkerboard's squares behind transparent pixels (the app's photos' look).
CHECKER_CELL = 12

Background = tuple[int, int, int] | str | np.ndarray | None


@dataclass(frozen=True)
class LiveStats:
    """What the page shows: processed frames a second, processing time, frame size."""

    fps: float  # processed frames per second over the last STATS_WINDOW seconds
    processing_ms: float  # mean time from a frame's arrival to its result, same window
    frames: int  # frames processed since the processor was made
    size: tuple[int, int] | None  # (width, height) of the last frame


def checkerboard(height: int, width: int, cell: int = CHECKER_CELL) -> np.ndarray:
    """(H, W, 3) uint8 grey checkerboard: the usual picture of transparency."""
    rows = (np.arange(height) // cell)[:, None]
    cols = (np.arange(width) // cell)[None, :]
    board = np.where((rows + cols) % 2 == 0, 235, 200).astype(np.uint8)
    return np.repeat(board[:, :, None], 3, axis=2)


class LiveProcessor:
    """One browser session's live stream: camera frame in, displayed frame out.

    Frames are processed one at a time, in order (the caller's thread; the app's is
    streamlit-webrtc's worker). The network runs on the segmenter's own one-thread
    interpreter for this stream (as a video render does, :func:`render_segmenter`), so
    sessions neither share state nor wait for each other's frames.

    :meth:`close` ends the stream (the session went away, or STOP was pressed): it
    never waits for a frame in progress, whose result is then returned but not kept;
    the interpreter and the stabiliser are dropped, and the next frame, if any, starts
    a new stream. The last snapshot survives it.
    """

    def __init__(
        self,
        segmenter: Any,
        *,
        subject: Subject = "main",
        refine: bool = True,
        background: Background = None,
        stabilize: bool = True,
    ) -> None:
        self._segmenter = segmenter
        self._stabilize = bool(stabilize)
        self._state = threading.Lock()  # short: settings, stream state, snapshot
        self._frame = threading.Lock()  # one frame at a time
        self._generation = 0  # bumped by close(): a frame started before is not kept
        self._network: Any = None
        self._stabilizer: TemporalStabilizer | None = None
        self._shape: tuple[int, int] | None = None
        self._backdrop: tuple[tuple[int, int], np.ndarray] | None = None  # per shape
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._times: deque[tuple[float, float]] = deque()  # (finished, seconds taken)
        self._frames = 0
        self._closed = False
        self.subject: Subject = "main"
        self.refine = True
        self.background: Background = None
        self.configure(subject=subject, refine=refine, background=background)

    # Settings (from the page's script thread, between or during frames) -------------

    def configure(self, *, subject: Subject, refine: bool, background: Background = None) -> None:
        """Take the sidebar's current choices; the next frame uses them."""
        check_subject(subject)
        if isinstance(background, np.ndarray):
            background = as_rgb(background)
        elif background is not None and not _is_blur(background):
            background = compose.as_color(background)
        with self._state:
            changed = not _same_background(background, self.background)
            self.subject, self.refine = subject, bool(refine)
            if changed:
                self.background = background
                self._backdrop = None

    # Frames -----------------------------------------------------------------------

    def process(self, image: np.ndarray, order: Literal["rgb", "bgr"] = "rgb") -> np.ndarray:
        """The displayed frame for one camera frame, in the same channel order.

        ``image`` is (H, W, 3) uint8 RGB or BGR, or (H, W) grey, of any size; a size
        different from the last frame's restarts the stabiliser. After :meth:`close`
        has been called during this frame, the result is still returned.
        """
        start = time.perf_counter()
        colour = np.asarray(image).ndim == 3
        rgb = as_rgb(image, max_megapixels=float("inf"))
        if order == "bgr" and colour:
            rgb = cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB)
        elif rgb is image:
            rgb = rgb.copy()  # kept for the snapshot: the caller may reuse its buffer
        with self._frame:
            out = self._run(rgb, start)
        return cv2.cvtColor(out, cv2.COLOR_RGB2BGR) if order == "bgr" else out

    def recv(self, frame: Any) -> Any:
        """streamlit-webrtc's video frame callback: an ``av.VideoFrame`` in and out."""
        import av

        out = self.process(frame.to_ndarray(format="rgb24"))
        return av.VideoFrame.from_ndarray(out, format="rgb24")

    def _run(self, rgb: np.ndarray, start: float) -> np.ndarray:
        shape = rgb.shape[:2]
        with self._state:
            generation = self._generation
            if self._network is None:
                self._network = render_segmenter(self._segmenter)
                self._closed = False
            if self._shape != shape:  # a new stream, or the camera changed its size
                self._shape = shape
                self._stabilizer = TemporalStabilizer(median=False) if self._stabilize else None
            network, stabilizer = self._network, self._stabilizer
            subject, refine, background = self.subject, self.refine, self.background
            backdrop = self._backdrop
        prob = network.predict_probability(rgb, **channel_option(network, subject))
        if subject != "all":
            prob = _main_subject(prob, subject)
        if stabilizer is not None:
            ((_, prob),) = stabilizer.push_map(None, prob)  # no look-ahead: this frame's
        alpha = sharpen_probability(prob)
        h, w = shape
        if refine and max(h, w) >= LIVE_REFINE_MIN_RATIO * max(alpha.shape):
            mask = guided_upsample(alpha, rgb, work_scale=LIVE_WORK_SCALE)
        else:
            mask = upsample_bilinear(alpha, shape)
        alpha8 = compose.alpha8(mask, shape)
        if stabilizer is not None:
            # The dead band only: the hold's still-picture rule would keep the alpha of
            # the blurry first frames WebRTC sends (their block means barely differ
            # from the sharp frames'), as blocks of stripes around a still person.
            alpha8 = stabilizer.hold(alpha8)
        if background is not None and _is_blur(background):
            bg = _quick_blur(rgb, alpha8)
        elif backdrop is not None and backdrop[0] == shape:
            bg = backdrop[1]
        else:
            bg = _backdrop(background, shape)
            backdrop = (shape, bg)
        weight = alpha8.astype(np.float32)
        weight *= np.float32(1 / 255)
        out = cv2.blendLinear(rgb, bg, weight, 1 - weight)  # compose.composite, sans checks
        finished = time.perf_counter()
        with self._state:
            if generation == self._generation:  # not closed meanwhile
                self._last = (rgb, alpha8)
                if not _is_blur(background) and background is self.background:
                    self._backdrop = backdrop
                self._frames += 1
                self._times.append((finished, finished - start))
                while self._times and self._times[0][0] < finished - STATS_WINDOW:
                    self._times.popleft()
        return out

    # Snapshot, stats, end of stream -------------------------------------------------

    def snapshot(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The last processed (RGB frame, uint8 alpha) at the camera's size, if any."""
        with self._state:
            return self._last

    def snapshot_png(self) -> bytes | None:
        """The last frame as a transparent PNG at the camera's resolution, edge colours
        decontaminated (too slow for every frame, fine for one); None before any frame."""
        last = self.snapshot()
        if last is None:
            return None
        rgb, alpha8 = last
        return encode_png(compose.cutout(rgb, alpha8))

    def stats(self) -> LiveStats:
        """Frame rate and processing time over the last few seconds (for the page)."""
        now = time.perf_counter()
        with self._state:
            times = [(t, s) for t, s in self._times if t >= now - STATS_WINDOW]
            size = None if self._last is None else self._last[0].shape[1::-1]
            frames = self._frames
        fps = 0.0
        if len(times) >= 2:
            span = times[-1][0] - times[0][0]
            fps = (len(times) - 1) / span if span > 0 else 0.0
        ms = 1000 * float(np.mean([s for _, s in times])) if times else 0.0
        return LiveStats(fps=fps, processing_ms=ms, frames=frames, size=size)

    @property
    def closed(self) -> bool:
        """True after :meth:`close` until a frame starts a new stream."""
        with self._state:
            return self._closed

    def close(self) -> None:
        """End the stream: drop its interpreter and stabiliser; never waits for a frame."""
        with self._state:
            self._generation += 1
            self._network = None
            self._stabilizer = None
            self._shape = None
            self._times.clear()
            self._closed = True

    def __enter__(self) -> LiveProcessor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- helpers --------------------------------------------------------------------------


def _is_blur(background: Background) -> bool:
    return isinstance(background, str) and background.strip().lower() == "blur"


def _same_background(a: Background, b: Background) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is b
    return a == b


def _main_subject(prob: np.ndarray, subject: Subject) -> np.ndarray:
    """:func:`select_subject` decided on a smaller copy of the map, applied to the map.

    The rule multiplies the map by a smooth "near the main people" factor; that factor
    is taken from the small map's result and scaled back up.
    """
    h, w = prob.shape
    side = LIVE_SUBJECT_SIDE
    if max(h, w) <= side:
        return select_subject(prob, subject)
    small = cv2.resize(prob, (side, side), interpolation=cv2.INTER_AREA)
    kept = select_subject(small, subject)
    if kept is small:  # one person or nobody: nothing was dropped
        return prob
    factor = np.divide(kept, small, out=np.ones_like(small), where=small > 1e-4)
    np.clip(factor, 0.0, 1.0, out=factor)
    return prob * cv2.resize(factor, (w, h), interpolation=cv2.INTER_LINEAR)


def _backdrop(background: Background, shape: tuple[int, int]) -> np.ndarray:
    """What the person is placed on, at the frame's size (made once per size)."""
    h, w = shape
    if background is None:
        return checkerboard(h, w)
    if isinstance(background, np.ndarray):
        return compose.cover(background, shape)
    fill = np.empty((h, w, 3), np.uint8)
    fill[:] = compose.as_color(background)  # type: ignore[arg-type]
    return fill


def _quick_blur(rgb: np.ndarray, alpha8: np.ndarray) -> np.ndarray:
    """The photo path's portrait blur (compose's normalised convolution, the same
    sigma) computed at a quarter of the resolution: ~1 ms instead of ~30 at 640 x 480."""
    h, w = alpha8.shape
    f = 4 if min(h, w) >= 64 else 1
    size = (max(1, w // f), max(1, h // f))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    weight = 1 - cv2.resize(alpha8, size, interpolation=cv2.INTER_AREA) * np.float32(1 / 255)
    sigma = compose.BLUR_SIGMA * max(h, w) / f
    num = cv2.GaussianBlur(small * weight[:, :, None], (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    plain = cv2.GaussianBlur(small, (0, 0), sigma)  # where no background is near at all
    ok = den > 1e-3
    out = np.where(ok[:, :, None], num / np.maximum(den, 1e-3)[:, :, None], plain)
    out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.convertScaleAbs(out)
