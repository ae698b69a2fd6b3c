"""Clip in, clip out: the person cut out of every frame of a video, steady from frame to frame.

:func:`remove_background` decodes a clip with PyAV (FFmpeg's libraries, bundled in the
wheel: no system ffmpeg), runs every frame through the photo path's pieces (the
shared :class:`~segmentation.Segmenter`'s network, :func:`guided_upsample`,
:func:`estimate_foreground`, :func:`compose.composite`) with a temporal stabiliser in
between, and encodes one of:

* ``webm``: VP9 with an alpha channel (transparent in Chrome and Firefox), the default;
* ``mov``: ProRes 4444 with alpha, for video editors;
* ``mp4``: H.264 of the person on a colour, a blurred copy of the frame or an image;
* ``mask``: the soft mask as greyscale H.264.

Frame timestamps (so variable frame rates), the size, the duration and the first
audio track are kept; rotation metadata is applied, so the result is upright. Work is
streamed through bounded queues, four stages on their own threads (decode, network,
refinement, decontamination) and compositing + encoding in the caller's thread, so
memory stays flat whatever the length and the two cores stay busy. The result is
written to a hidden temporary file beside the target and renamed at the very end: a
failure or a cancelled render leaves nothing.

Steadiness (:class:`TemporalStabilizer`): the network sees each frame on its own, so
its map jitters at the outline and a doubtful region can blink on for one frame. Three
cheap steps on top of the photo path remove that: a temporal median of three maps
(drops one-frame blinks, keeps monotonic motion exactly), a motion-adaptive running
average of the map (smooths small changes, follows large ones at once), and a hold on
the final 8-bit alpha: where the picture itself has not moved, the alpha is kept
(sensor noise moves the guided filter's outline every frame; a still scene gives a
still mask).
"""

from __future__ import annotations

import contextlib
import copy
import os
import queue
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Literal

import cv2
import numpy as np

from segmentation import compose
from segmentation.errors import ImageError
from segmentation.refine import (
    estimate_foreground,
    guided_upsample,
    sharpen_probability,
    upsample_bilinear,
)
from segmentation.zoom import ZOOM_MAX_UPSCALE

__all__ = [
    "OUTPUT_FORMATS",
    "VIDEO_EXTENSIONS",
    "TemporalStabilizer",
    "VideoCancelled",
    "VideoError",
    "VideoInfo",
    "VideoLimits",
    "VideoResult",
    "first_frame",
    "foreground",
    "frame_alpha",
    "frame_probability",
    "masks",
    "probe",
    "remove_background",
]

OutputFormat = Literal["webm", "mov", "mp4", "mask"]
VideoSource = str | os.PathLike[str] | BinaryIO

#: File name endings the CLI and the app treat as videos.
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".qt", ".webm", ".mkv", ".avi", ".gif"}
)
#: Output format -> (file extension, what it is).
OUTPUT_FORMATS: dict[str, tuple[str, str]] = {
    "webm": (".webm", "VP9 with alpha (transparent)"),
    "mov": (".mov", "ProRes 4444 with alpha"),
    "mp4": (".mp4", "H.264 on a background"),
    "mask": (".mp4", "the mask as greyscale H.264"),
}

#: Encoder settings. VP9: libvpx's realtime mode at speed 8 with row threading, what
#: keeps a 720p transparent WebM above 12 frames/s on two cores (bench/video.py).
_VP9_OPTIONS = {
    "deadline": "realtime",
    "cpu-used": "8",
    "row-mt": "1",
    "crf": "30",
    "b": "0",
    "lag-in-frames": "0",
}
_X264_OPTIONS = {"preset": "veryfast", "crf": "20"}
_PRORES_OPTIONS = {"profile": "4", "vendor": "apl0"}  # 4 = ProRes 4444 (with alpha)
#: Audio codecs each container takes as they are (else the track is re-encoded).
_AUDIO_COPY = {
    "webm": {"opus", "vorbis"},
    "mp4": {"aac", "mp3", "alac", "opus", "ac3", "eac3"},
    "mov": {"aac", "mp3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le", "ac3"},
}
_AUDIO_ENCODER = {"webm": "libopus", "mp4": "aac", "mov": "aac"}
#: Single-image demuxers: a photo is not a clip.
_IMAGE_FORMATS = ("image2", "_pipe", "apng", "webp")
#: A stream that ends this much earlier than its header says is truncated.
_TRUNCATION_SLACK_S = 0.5
_QUEUE_SIZE = 3


class VideoError(ImageError):
    """Bad input video: not a video, no video stream, damaged, too long or too large,
    or a codec we cannot decode. The message says why; callers prefix the file name.
    """


class VideoCancelled(Exception):
    """The caller's ``cancel()`` returned True: the render stopped, nothing was written."""


@dataclass(frozen=True)
class VideoLimits:
    """What a clip may be. Decoding and refining cost time and memory per pixel-second."""

    max_seconds: float = 600.0
    max_megapixels: float = 8.9  # 4096 x 2160 (DCI 4K)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a clip (width and height as displayed, upright)."""

    width: int
    height: int
    fps: float
    duration: float
    frames: int  # from the header, or estimated from duration and rate
    rotation: int  # clockwise degrees applied to make the frames upright
    codec: str
    container: str
    audio: str | None  # codec of the first audio track


@dataclass
class VideoResult:
    """A written clip: where, how many frames, and seconds spent per stage in all."""

    path: Path
    frames: int
    info: VideoInfo
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        """Frames processed per second of wall time, end to end."""
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


# --- stabilisation --------------------------------------------------------------------

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


# --- reading --------------------------------------------------------------------------


def probe(source: VideoSource, limits: VideoLimits | None = None) -> VideoInfo:
    """Open a clip, check it against ``limits`` and describe it.

    Raises:
        VideoError: not a video, no video stream, an unsupported codec, damaged,
            too long or too large.
    """
    with _open_input(source) as container:
        return _describe(container, limits or VideoLimits())[0]


def first_frame(source: VideoSource, limits: VideoLimits | None = None) -> np.ndarray:
    """The clip's first frame, upright, as (H, W, 3) uint8 RGB (for a quick preview)."""
    with _open_input(source) as container:
        info, frame = _describe(container, limits or VideoLimits())
        return _upright(frame, info.rotation)


@contextlib.contextmanager
def _open_input(source: VideoSource) -> Iterator[Any]:
    import av

    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise VideoError("no such file")
        if path.is_dir():
            raise VideoError("is a folder, not a video file")
        if path.stat().st_size == 0:
            raise VideoError("the file is empty")
        target: Any = str(path)
    else:
        target = source
    try:
        container = av.open(target, "r", metadata_errors="ignore")
    except av.error.InvalidDataError as exc:
        raise VideoError(
            "not a video, or damaged (supported: MP4, MOV, WebM, MKV, AVI, animated GIF)"
        ) from exc
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"cannot be opened as a video ({_reason(exc)})") from exc
    try:
        yield container
    finally:
        container.close()


def _describe(container: Any, limits: VideoLimits) -> tuple[VideoInfo, Any]:
    """Check the opened container; say what it holds, with its first decoded frame."""
    import av

    name = container.format.name
    if any(part in name for part in _IMAGE_FORMATS):
        raise VideoError("a still image, not a video (use the photo commands for photos)")
    pictures = [v for v in container.streams.video if not _is_cover_art(v)]
    if not pictures:
        what = "only audio" if container.streams.audio else "no picture at all"
        raise VideoError(f"no video stream in this file ({what})")
    stream = container.streams.video[0]
    if stream is not pictures[0]:
        raise VideoError("the first video stream is cover art, not a video")
    codec = stream.codec_context.name if stream.codec_context is not None else None
    if codec is None or codec == "none":
        raise VideoError("unsupported video codec: this build of FFmpeg cannot decode it")
    try:
        av.codec.Codec(codec, "r")
    except Exception as exc:
        raise VideoError(f"unsupported video codec {codec!r}: no decoder for it") from exc
    width, height = stream.codec_context.width, stream.codec_context.height
    if not width or not height:
        raise VideoError("damaged video: the stream has no picture size")
    if width * height > limits.max_megapixels * 1e6:
        raise VideoError(
            f"too large: {width}x{height} is {width * height / 1e6:.1f} megapixels a frame, "
            f"the limit is {limits.max_megapixels:g}"
        )
    duration = _duration(container, stream)
    if duration > limits.max_seconds:
        raise VideoError(
            f"too long: {duration:.1f} s, the limit is {limits.max_seconds:g} s "
            "(cut the clip, or raise the limit)"
        )
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
    fps = float(rate)
    frames = int(stream.frames or 0) or max(1, round(duration * fps))
    try:
        first = next(iter(container.decode(stream)), None)
    except av.error.FFmpegError as exc:
        raise VideoError(f"damaged video: the first frame cannot be decoded ({exc})") from exc
    if first is None:
        raise VideoError("damaged video: the video stream holds no frames")
    rotation = _frame_rotation(first)
    if rotation in (90, 270):
        width, height = height, width
    audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    info = VideoInfo(width, height, fps, duration, frames, rotation, codec, name, audio)
    return info, first


def _is_cover_art(stream: Any) -> bool:
    """A music file's embedded picture shows up as a one-frame 'video' stream."""
    import av

    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except Exception:
        return False


def _duration(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return 0.0


def _frame_rotation(frame: Any) -> int:
    """Clockwise degrees (0, 90, 180, 270) that make a decoded frame upright.

    PyAV gives the display matrix's counter-clockwise angle; FFmpeg's own autorotate
    turns frames by its negative, and so do we.
    """
    try:
        angle = float(frame.rotation or 0)
    except Exception:  # no display matrix, or an unreadable one: keep as stored
        return 0
    return round(-angle / 90) % 4 * 90


def _upright(frame: Any, rotation: int) -> np.ndarray:
    rgb = frame.to_ndarray(format="rgb24")
    if rotation == 90:
        return cv2.rotate(rgb, cv2.ROTATE_90_CLOCKWISE)
    if rotation == 180:
        return cv2.rotate(rgb, cv2.ROTATE_180)
    if rotation == 270:
        return cv2.rotate(rgb, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return rgb


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


# --- clip in, clip out ----------------------------------------------------------------

#: Guided-filter fitting grid for video, as a multiple of the network's map. The
#: photo default (2.0) fits at full resolution for frames under ~770 px and costs
#: 50 ms of CPU a 720p frame; 0.75 costs 17 ms. On the parkour clip (stabilised) the
#: mean IoU is 0.761 at 2.0, 0.765 at 1.0, 0.768 at 0.75, with flicker 1.19, 1.23,
#: 1.28 (bench/video_quality.py): coarser is no worse for these small, blurred people.
VIDEO_WORK_SCALE = 0.75

#: Frames are decontaminated on a copy at most this long (then scaled back, and only
#: the soft edge pixels taken): estimate_foreground's cost grows with the pixels, and
#: 4:2:0 video keeps colour at half resolution anyway. At 720p: 60 -> 20 ms of CPU a
#: frame on the synthetic bench clip, 2-4 levels of 255 off on the edge pixels.
VIDEO_DECONTAMINATE_SIDE = 640

#: With ``zoom`` (the photo path's closer look, :mod:`segmentation.zoom`; one crop, at
#: the first limit, where a photo takes two: a second is another network pass a frame) a
#: frame's map has the frame's aspect and is resampled to one size per clip, at most
#: this many times the network's input on its long side, because the stabiliser
#: compares maps pixel by pixel. On the parkour clip (stabilised, bench.video_quality)
#: zoom lifts IoU 0.795 -> 0.868 and cuts flicker 1.20 -> 0.84 and blinks 85 -> 51,
#: at one more network pass per frame; the guided filter's grid stays where one look
#: puts it. (Fitting it 2x finer gave 0.859 / 0.71 / 28 for 3x the refine time.)
VIDEO_ZOOM_MAP_SCALE = 2.0

_END = object()


def frame_probability(segmenter: Any, rgb: np.ndarray, zoom: bool = False) -> np.ndarray:
    """The network's map of one frame; with ``zoom``, at the frame's aspect (see above)."""
    if not zoom:
        return segmenter.predict_probability(rgb)
    prob = segmenter.person_probability(
        rgb, zoom=True, mirror=False, max_upscales=(ZOOM_MAX_UPSCALE,)
    )
    h, w = rgb.shape[:2]
    k = min(1.0, VIDEO_ZOOM_MAP_SCALE * segmenter.input_size / max(h, w))
    size = (max(1, round(w * k)), max(1, round(h * k)))
    return cv2.resize(prob, size, interpolation=cv2.INTER_LINEAR)


def frame_alpha(
    rgb: np.ndarray, prob: np.ndarray, refine: bool = True, input_size: int | None = None
) -> np.ndarray:
    """(H, W) uint8 alpha of a frame from its (steadied) map: the photo path's refinement.

    ``input_size`` (the network's) keeps the guided filter's grid at VIDEO_WORK_SCALE
    times it when the map is larger (zoom); None takes the map for the network's output.
    """
    alpha = sharpen_probability(prob)
    if refine:
        work_scale = VIDEO_WORK_SCALE * (input_size or max(prob.shape)) / max(prob.shape)
        mask = guided_upsample(alpha, rgb, work_scale=work_scale)
    else:
        mask = upsample_bilinear(alpha, rgb.shape[:2])
    return compose._alpha8(mask, mask.shape)


def masks(
    frames: Iterable[np.ndarray],
    segmenter: Any,
    *,
    stabilize: bool | TemporalStabilizer = True,
    refine: bool = True,
    zoom: bool = False,
) -> Iterator[np.ndarray]:
    """(H, W) uint8 alpha of each RGB frame, in order, on this thread: what a 'mask'
    render stores before encoding (for tests and measurements on frames in memory)."""
    stabilizer = stabilize if isinstance(stabilize, TemporalStabilizer) else None
    if stabilize is True:
        stabilizer = TemporalStabilizer()
    input_size = getattr(segmenter, "input_size", None)

    def finish(rgb: np.ndarray, prob: np.ndarray) -> np.ndarray:
        alpha8 = frame_alpha(rgb, prob, refine, input_size)
        return stabilizer.hold(alpha8, rgb) if stabilizer is not None else alpha8

    for rgb in frames:
        prob = frame_probability(segmenter, rgb, zoom)
        if stabilizer is None:
            yield finish(rgb, prob)
            continue
        for image, steady in stabilizer.push_map(rgb, prob):
            yield finish(image, steady)
    if stabilizer is not None:
        for image, steady in stabilizer.flush():
            yield finish(image, steady)


def foreground(
    rgb: np.ndarray, alpha8: np.ndarray, max_side: int = VIDEO_DECONTAMINATE_SIDE
) -> np.ndarray:
    """:func:`estimate_foreground` of a frame, computed at most ``max_side`` px long."""
    h, w = alpha8.shape
    scale = max_side / max(h, w)
    if scale >= 1:
        return estimate_foreground(rgb, alpha8)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = estimate_foreground(
        cv2.resize(rgb, size, interpolation=cv2.INTER_AREA),
        cv2.resize(alpha8, size, interpolation=cv2.INTER_AREA),
    )
    out = rgb.copy()
    cv2.copyTo(
        cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), cv2.inRange(alpha8, 1, 254), out
    )
    return out


def remove_background(
    source: VideoSource,
    target: str | os.PathLike[str],
    segmenter: Any,
    *,
    output: OutputFormat = "webm",
    background: tuple[int, int, int] | str | np.ndarray | None = None,
    stabilize: bool | TemporalStabilizer = True,
    refine: bool = True,
    zoom: bool = False,
    decontaminate: bool = True,
    limits: VideoLimits | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> VideoResult:
    """Write ``target``: the clip with the person cut out of every frame.

    Args:
        source: a video file path or a seekable binary file object.
        target: the file to write (its folder must exist); replaced only at the end.
        segmenter: a :class:`~segmentation.Segmenter` (shared; one frame at a time).
        output: 'webm' (VP9 + alpha), 'mov' (ProRes 4444 + alpha), 'mp4' (H.264 on
            ``background``, white when None) or 'mask' (greyscale H.264).
        background: for 'mp4': a colour, 'blur' or an RGB image (scaled to cover).
        stabilize: steady the mask over time (:class:`TemporalStabilizer` with its
            defaults, or the fresh instance given).
        refine: follow the frame's edges with the guided filter.
        zoom: a second, closer network pass on people who fill only part of the
            frame (see VIDEO_ZOOM_MAP_SCALE): sharper and steadier, slower.
        decontaminate: remove the old background's colour from the edges.
        limits: refuse longer or larger clips (default :class:`VideoLimits`).
        progress: called as ``progress(frames_done, frames_expected)`` after each
            frame, from the calling thread; an exception it raises stops the render.
        cancel: polled after each frame; True stops the render (VideoCancelled).

    Raises:
        VideoError: the input cannot be used (nothing is written).
        VideoCancelled: ``cancel`` asked to stop (nothing is written).
        ValueError: an unknown output format, or a background for a transparent one.
    """
    if output not in OUTPUT_FORMATS:
        raise ValueError(f"output must be one of {sorted(OUTPUT_FORMATS)}, not {output!r}")
    if output in ("webm", "mov", "mask") and background is not None:
        raise ValueError(f"{output!r} output keeps the background transparent: use 'mp4'")
    if output == "mp4" and background is None:
        background = "white"
    limits = limits or VideoLimits()
    target = Path(target)
    start = time.perf_counter()
    with _open_input(source) as probe_container:
        info, _ = _describe(probe_container, limits)
    if not isinstance(source, str | os.PathLike):
        source.seek(0)
    if isinstance(background, np.ndarray):
        background = compose._cover(background, (info.height, info.width))
    elif background is not None and str(background).strip().lower() != "blur":
        # A colour: fill one frame now rather than every frame (4 ms at 720p).
        fill = np.empty((info.height, info.width, 3), np.uint8)
        fill[:] = compose._as_color(background)
        background = fill
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".partial", dir=target.parent or Path(".")
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with _open_input(source) as container:
            network = _render_segmenter(segmenter)
            run = _Render(container, info, network, output, background, stabilize, refine)
            run.decontaminate = decontaminate
            run.zoom = zoom
            frames = run.write(tmp, progress, cancel)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    seconds = time.perf_counter() - start
    return VideoResult(target, frames, info, seconds, run.timings)


def _render_segmenter(segmenter: Any) -> Any:
    """The segmenter a render calls: for LiteRT, a copy with its own one-thread interpreter.

    A render keeps both cores busy with its other stages, so XNNPACK's second thread
    mostly waits for a core: on the 2-core machine a 720p frame cost 94 ms of CPU with
    the shared two-thread interpreter and 74 ms with its own one-thread one (same
    .tflite, same predict_probability). It also never waits for the shared lock, so
    photo requests and other renders are not held up frame by frame. Keras models
    (and stand-ins in tests) are used as they are.
    """
    if getattr(segmenter, "runtime", None) != "litert":
        return segmenter
    from segmentation.network import LiteRTNetwork, tflite_sibling

    tflite = tflite_sibling(Path(segmenter.model_path))
    if tflite is None:
        return segmenter
    try:
        network = LiteRTNetwork(tflite, num_threads=1)
    except (ImportError, ValueError):
        return segmenter
    own = copy.copy(segmenter)
    own._network = network
    own._lock = threading.Lock()
    return own


class _Render:
    """One render: three worker threads feeding the encoder in the calling thread."""

    def __init__(
        self,
        container: Any,
        info: VideoInfo,
        segmenter: Any,
        output: str,
        background: Any,
        stabilize: bool | TemporalStabilizer,
        refine: bool,
    ) -> None:
        self.container = container
        self.info = info
        self.segmenter = segmenter
        self.output = output
        self.background = background
        self.refine = refine
        self.decontaminate = True
        self.zoom = False
        if isinstance(stabilize, TemporalStabilizer):
            self.stabilizer: TemporalStabilizer | None = stabilize
        else:
            self.stabilizer = TemporalStabilizer() if stabilize else None
        self.video = container.streams.video[0]
        self.audio = container.streams.audio[0] if container.streams.audio else None
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.timings = dict.fromkeys(("decode", "network", "refine", "compose", "encode"), 0.0)
        self.decoded = 0
        self.last_time = 0.0  # seconds from the stream start to the end of the last frame

    # Threads -------------------------------------------------------------------------

    def _put(self, q: queue.Queue, item: Any) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue) -> Any:
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _END

    def _thread(self, work: Callable[[], None], name: str) -> threading.Thread:
        def run() -> None:
            try:
                work()
            except BaseException as exc:
                self.errors.append(exc)
                self.stop.set()

        thread = threading.Thread(target=run, name=f"video-{name}", daemon=True)
        thread.start()
        return thread

    def _read(self, frames_out: queue.Queue, mux_out: queue.Queue) -> None:
        """Demux; decode video frames upright; pass audio packets straight to the muxer."""
        import av

        streams = [self.video] + ([self.audio] if self.audio is not None else [])
        tb = self.video.time_base
        step = 1 / (self.info.fps or 25)
        last_pts = None
        start_pts = self.video.start_time
        audio_end = 0.0  # a header's duration can be the longer audio track's
        audio_start = 0.0
        if self.audio is not None and self.audio.start_time is not None:
            audio_start = float(self.audio.start_time * self.audio.time_base)
        t0 = time.perf_counter()
        try:
            for packet in self.container.demux(streams):
                if self.stop.is_set():
                    return
                if packet.stream is self.audio:
                    if packet.dts is not None:
                        if packet.pts is not None and packet.time_base is not None:
                            end = (packet.pts + (packet.duration or 0)) * packet.time_base
                            audio_end = max(audio_end, float(end) - audio_start)
                        self._put(mux_out, ("audio", packet))
                    continue
                for frame in packet.decode():
                    pts = frame.pts
                    if pts is None or (last_pts is not None and pts <= last_pts):
                        pts = (
                            (last_pts or 0) + max(1, round(step / tb))
                            if last_pts is not None
                            else 0
                        )
                    last_pts = pts
                    rgb = _upright(frame, self.info.rotation)
                    self.decoded += 1
                    duration = frame.duration or round(step / tb)
                    self.last_time = float((pts + duration - (start_pts or 0)) * tb)
                    self.timings["decode"] += time.perf_counter() - t0
                    self._put(frames_out, (pts, rgb))
                    t0 = time.perf_counter()
        except av.error.FFmpegError as exc:
            raise VideoError(
                f"damaged or truncated video: decoding failed after {self.decoded} frames "
                f"({_reason(exc)}); nothing was written"
            ) from exc
        if not self.decoded:
            raise VideoError("damaged video: no frame could be decoded; nothing was written")
        declared = self.info.duration
        ended = max(self.last_time, audio_end)
        if declared and ended < declared - max(_TRUNCATION_SLACK_S, 2 * step):
            raise VideoError(
                f"truncated video: the frames stop at {self.last_time:.1f} s of the "
                f"{declared:.1f} s the file declares ({self.decoded} frames); nothing was written"
            )
        self._put(frames_out, _END)
        self._put(mux_out, ("audio-end", None))

    def _network(self, frames_in: queue.Queue, frames_out: queue.Queue) -> None:
        """The network's map of each frame, steadied over time (one frame of look-ahead)."""
        while True:
            item = self._get(frames_in)
            if item is _END or self.stop.is_set():
                break
            pts, rgb = item
            t0 = time.perf_counter()
            prob = frame_probability(self.segmenter, rgb, self.zoom)
            if self.stabilizer is not None:
                ready = self.stabilizer.push_map((pts, rgb), prob)
            else:
                ready = [((pts, rgb), prob)]
            self.timings["network"] += time.perf_counter() - t0
            for (p, image), steady in ready:
                self._put(frames_out, (p, image, steady))
        if self.stabilizer is not None and not self.stop.is_set():
            for (p, image), steady in self.stabilizer.flush():
                self._put(frames_out, (p, image, steady))
        self._put(frames_out, _END)

    def _refine(self, frames_in: queue.Queue, frames_out: queue.Queue) -> None:
        """Full-resolution 8-bit alpha of each frame, held steady where it barely moved."""
        while True:
            item = self._get(frames_in)
            if item is _END or self.stop.is_set():
                break
            pts, rgb, prob = item
            t0 = time.perf_counter()
            alpha8 = frame_alpha(
                rgb, prob, self.refine, getattr(self.segmenter, "input_size", None)
            )
            if self.stabilizer is not None:
                alpha8 = self.stabilizer.hold(alpha8, rgb)
            self.timings["refine"] += time.perf_counter() - t0
            self._put(frames_out, (pts, rgb, alpha8))
        self._put(frames_out, _END)

    def _compose(self, frames_in: queue.Queue, mux_out: queue.Queue) -> None:
        """Decontaminated edge colours; the picture itself is made next to the encoder.

        Decontamination is the costliest step (~22 ms of CPU at 720p), so it has this
        thread to itself; compositing and the YUV conversion (~5 ms) run on the
        encoder's thread, which leaves the stages better balanced on two cores.
        """
        while True:
            item = self._get(frames_in)
            if item is _END or self.stop.is_set():
                break
            pts, rgb, alpha8 = item
            t0 = time.perf_counter()
            fg = rgb
            if self.output != "mask" and self.decontaminate:
                fg = foreground(rgb, alpha8)
            self.timings["compose"] += time.perf_counter() - t0
            self._put(mux_out, ("video", pts, (rgb, alpha8, fg)))
        self._put(mux_out, ("video-end", None))

    def _picture(self, rgb: np.ndarray, alpha8: np.ndarray, fg: np.ndarray) -> np.ndarray:
        if self.output == "mask":
            return alpha8
        if self.output in ("webm", "mov"):
            return compose.cutout(rgb, alpha8, foreground=fg)
        return compose.composite(rgb, alpha8, self.background, foreground=fg)

    # The encoder, in the calling thread -----------------------------------------------

    def write(
        self,
        path: Path,
        progress: Callable[[int, int], None] | None,
        cancel: Callable[[], bool] | None,
    ) -> int:
        """Run the threads, encode and mux everything into ``path``; frames written."""
        import av

        fmt = {"webm": "webm", "mov": "mov", "mp4": "mp4", "mask": "mp4"}[self.output]
        options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        out = av.open(str(path), "w", format=fmt, options=options)
        decoded: queue.Queue = queue.Queue(_QUEUE_SIZE)
        mapped: queue.Queue = queue.Queue(_QUEUE_SIZE)
        refined: queue.Queue = queue.Queue(_QUEUE_SIZE)
        muxed: queue.Queue = queue.Queue(_QUEUE_SIZE * 4)
        threads: list[threading.Thread] = []
        written = 0
        try:
            video_out = self._video_stream(out)
            audio_out, audio_copy = self._audio_stream(out, fmt)
            threads = [
                self._thread(lambda: self._read(decoded, muxed), "decode"),
                self._thread(lambda: self._network(decoded, mapped), "network"),
                self._thread(lambda: self._refine(mapped, refined), "refine"),
                self._thread(lambda: self._compose(refined, muxed), "compose"),
            ]
            open_ends = {"video-end", "audio-end"}
            while open_ends:
                item = self._get(muxed)
                if item is _END:  # stopped: a worker failed
                    break
                kind = item[0]
                if kind in open_ends:
                    open_ends.discard(kind)
                elif kind == "audio":
                    self._mux_audio(out, item[1], audio_out, audio_copy)
                else:
                    _, pts, (rgb, alpha8, fg) = item
                    t0 = time.perf_counter()
                    frame = self._to_frame(self._picture(rgb, alpha8, fg))
                    t1 = time.perf_counter()
                    self._encode(out, video_out, pts, frame)
                    self.timings["compose"] += t1 - t0
                    self.timings["encode"] += time.perf_counter() - t1
                    written += 1
                    if progress is not None:
                        progress(written, max(self.info.frames, written))
                    if cancel is not None and cancel():
                        raise VideoCancelled("the render was cancelled")
            if self.errors:
                raise self.errors[0]
            t0 = time.perf_counter()
            for packet in video_out.encode(None):
                out.mux(packet)
            if audio_out is not None and not audio_copy:
                for packet in audio_out.encode(None):
                    out.mux(packet)
            self.timings["encode"] += time.perf_counter() - t0
        finally:
            self.stop.set()
            for thread in threads:
                thread.join()
            out.close()
        if self.errors:
            raise self.errors[0]
        return written

    def _video_stream(self, out: Any) -> Any:
        width, height = self.info.width, self.info.height
        rate = Fraction(self.info.fps).limit_denominator(100_000) if self.info.fps else 25
        if self.output == "webm":
            stream = out.add_stream("libvpx-vp9", rate=rate, options=dict(_VP9_OPTIONS))
            stream.pix_fmt = "yuva420p"
        elif self.output == "mov":
            stream = out.add_stream("prores_ks", rate=rate, options=dict(_PRORES_OPTIONS))
            stream.pix_fmt = "yuva444p10le"
        else:
            stream = out.add_stream("libx264", rate=rate, options=dict(_X264_OPTIONS))
            stream.pix_fmt = "yuv420p"
            width, height = width - width % 2, height - height % 2  # 4:2:0 needs even sides
        stream.width, stream.height = width, height
        stream.codec_context.time_base = self.video.time_base
        stream.time_base = self.video.time_base
        stream.codec_context.thread_count = os.cpu_count() or 1
        self._size = (width, height)
        return stream

    def _audio_stream(self, out: Any, fmt: str) -> tuple[Any, bool]:
        if self.audio is None:
            return None, False
        name = self.audio.codec_context.name
        if name in _AUDIO_COPY[fmt]:
            return out.add_stream_from_template(self.audio), True
        encoder = _AUDIO_ENCODER[fmt]
        rate = 48000 if encoder == "libopus" else (self.audio.rate or 48000)
        stream = out.add_stream(encoder, rate=rate)
        layout = self.audio.layout.name if self.audio.layout else "stereo"
        with contextlib.suppress(Exception):
            stream.layout = layout if self.audio.channels <= 2 else "stereo"
        return stream, False

    def _mux_audio(self, out: Any, packet: Any, stream: Any, copy: bool) -> None:
        if stream is None:
            return
        if copy:
            packet.stream = stream
            out.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None  # the encoder's resampler counts samples itself
            for encoded in stream.encode(frame):
                out.mux(encoded)

    def _encode(self, out: Any, stream: Any, pts: int, frame: Any) -> None:
        frame.pts = pts
        frame.time_base = self.video.time_base
        for packet in stream.encode(frame):
            out.mux(packet)

    def _to_frame(self, picture: np.ndarray) -> Any:
        """The encoder's frame.

        OpenCV's RGB -> I420 is the same BT.601 limited-range conversion as FFmpeg's
        swscale, ~10x faster (0.3 against 3.5 ms at 720p); swscale stays for odd
        sizes and for ProRes's 10-bit 4:4:4.
        """
        import av

        width, height = self._size
        if picture.shape[1] != width or picture.shape[0] != height:
            picture = np.ascontiguousarray(picture[:height, :width])
        even = width % 2 == 0 and height % 2 == 0
        if picture.ndim == 2:  # the mask: grey as luma, neutral chroma
            i420 = np.full((height * 3 // 2, width), 128, np.uint8)
            cv2.convertScaleAbs(picture, i420[:height], alpha=219 / 255, beta=16)
            return av.VideoFrame.from_ndarray(i420, format="yuv420p")
        if picture.shape[2] == 3:
            i420 = cv2.cvtColor(picture, cv2.COLOR_RGB2YUV_I420)
            return av.VideoFrame.from_ndarray(i420, format="yuv420p")
        if self.output != "webm" or not even:
            return av.VideoFrame.from_ndarray(picture, format="rgba")  # swscale converts
        i420 = cv2.cvtColor(picture, cv2.COLOR_RGBA2YUV_I420)
        frame = av.VideoFrame(width, height, "yuva420p")
        quarter = height // 4  # I420 stores U then V as (height / 4, width) blocks
        planes = (
            i420[:height],
            i420[height : height + quarter].reshape(height // 2, width // 2),
            i420[height + quarter :].reshape(height // 2, width // 2),
            picture[:, :, 3],
        )
        for plane, values in zip(frame.planes, planes, strict=True):
            rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            rows[:, : plane.width] = values
        return frame
