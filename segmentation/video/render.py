"""Rendering a clip: every frame through the photo path's pieces, on a pipeline of threads.

Per frame: the shared :class:`~segmentation.Segmenter`'s network
(:func:`frame_probability`), the temporal stabiliser, the guided filter
(:func:`frame_alpha`), decontamination (:func:`foreground`) and compositing. Work is
streamed through bounded queues, four stages on their own threads (decode, network,
refinement, decontamination) and compositing + encoding in the caller's thread, so
memory stays flat whatever the length and the two cores stay busy. The result is
written to a hidden temporary file beside the target and renamed at the very end: a
failure or a cancelled render leaves nothing.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segmentation import compose
from segmentation.filenames import partial_name
from segmentation.refine import (
    estimate_foreground,
    guided_upsample,
    sharpen_probability,
    upsample_bilinear,
)
from segmentation.subject import Subject, check_subject, select_subject
from segmentation.video.reader import (
    ClipDecoder,
    VideoInfo,
    VideoLimits,
    VideoSource,
    describe,
    open_input,
)
from segmentation.video.stabilize import TemporalStabilizer
from segmentation.video.writer import OUTPUT_FORMATS, ClipWriter, OutputFormat
from segmentation.zoom import ZOOM_MAX_UPSCALE

__all__ = [
    "VIDEO_DECONTAMINATE_SIDE",
    "VIDEO_WORK_SCALE",
    "VIDEO_ZOOM_MAP_SCALE",
    "VideoCancelled",
    "VideoResult",
    "foreground",
    "frame_alpha",
    "frame_probability",
    "masks",
    "remove_background",
    "render_segmenter",
]

_QUEUE_SIZE = 3
_END = object()


class VideoCancelled(Exception):
    """The caller's ``cancel()`` returned True: the render stopped, nothing was written."""


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


def channel_option(segmenter: Any, subject: Subject) -> dict[str, int]:
    """``{"channel": 1}`` when the segmenter's network answers ``subject`` on its own
    channel, else nothing: duck-typed one-channel segmenters need not know the option."""
    channel = segmenter.subject_channel(subject) if hasattr(segmenter, "subject_channel") else 0
    return {"channel": channel} if channel else {}


def frame_probability(
    segmenter: Any, rgb: np.ndarray, zoom: bool = False, subject: Subject = "main"
) -> np.ndarray:
    """The network's map of one frame, for ``subject`` (as a photo's, see
    :mod:`segmentation.subject`); with ``zoom``, at the frame's aspect (see above)."""
    looks = channel_option(segmenter, subject)
    if not zoom:
        return select_subject(segmenter.predict_probability(rgb, **looks), subject)
    prob = segmenter.person_probability(
        rgb, zoom=True, mirror=False, max_upscales=(ZOOM_MAX_UPSCALE,), **looks
    )
    h, w = rgb.shape[:2]
    k = min(1.0, VIDEO_ZOOM_MAP_SCALE * segmenter.input_size / max(h, w))
    size = (max(1, round(w * k)), max(1, round(h * k)))
    return select_subject(cv2.resize(prob, size, interpolation=cv2.INTER_LINEAR), subject)


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
    return compose.alpha8(mask, mask.shape)


def masks(
    frames: Iterable[np.ndarray],
    segmenter: Any,
    *,
    stabilize: bool | TemporalStabilizer = True,
    refine: bool = True,
    zoom: bool = False,
    subject: Subject = "main",
) -> Iterator[np.ndarray]:
    """(H, W) uint8 alpha of each RGB frame, in order, on this thread: what a 'mask'
    render stores before encoding (for tests and measurements on frames in memory)."""
    check_subject(subject)
    stabilizer = stabilize if isinstance(stabilize, TemporalStabilizer) else None
    if stabilize is True:
        stabilizer = TemporalStabilizer()
    input_size = getattr(segmenter, "input_size", None)

    def finish(rgb: np.ndarray, prob: np.ndarray) -> np.ndarray:
        alpha8 = frame_alpha(rgb, prob, refine, input_size)
        return stabilizer.hold(alpha8, rgb) if stabilizer is not None else alpha8

    for rgb in frames:
        prob = frame_probability(segmenter, rgb, zoom, subject)
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
    subject: Subject = "main",
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
        subject: 'main' keeps the performer (or group) the clip is of and drops an
            audience or passers-by; 'all' keeps every person.
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
    check_subject(subject)
    if output in ("webm", "mov", "mask") and background is not None:
        raise ValueError(f"{output!r} output keeps the background transparent: use 'mp4'")
    if output == "mp4" and background is None:
        background = "white"
    limits = limits or VideoLimits()
    target = Path(target)
    start = time.perf_counter()
    with open_input(source) as probe_container:
        info, _ = describe(probe_container, limits)
    if not isinstance(source, str | os.PathLike):
        source.seek(0)
    if isinstance(background, np.ndarray):
        background = compose.cover(background, (info.height, info.width))
    elif background is not None and str(background).strip().lower() != "blur":
        # A colour: fill one frame now rather than every frame (4 ms at 720p).
        fill = np.empty((info.height, info.width, 3), np.uint8)
        fill[:] = compose.as_color(background)
        background = fill
    fd, tmp_name = tempfile.mkstemp(
        prefix=partial_name(target.name, ".", room=16),  # + 8 random letters + ".partial"
        suffix=".partial",
        dir=target.parent or Path("."),
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with open_input(source) as container:
            network = render_segmenter(segmenter)
            run = _Render(container, info, network, output, background, stabilize, refine)
            run.decontaminate = decontaminate
            run.zoom = zoom
            run.subject = subject
            frames = run.write(tmp, progress, cancel)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    seconds = time.perf_counter() - start
    return VideoResult(target, frames, info, seconds, run.timings)


def render_segmenter(segmenter: Any) -> Any:
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
    return segmenter.with_network(network)


class _Render:
    """One render: four worker threads feeding the encoder in the calling thread."""

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
        self.subject: Subject = "main"
        if isinstance(stabilize, TemporalStabilizer):
            self.stabilizer: TemporalStabilizer | None = stabilize
        else:
            self.stabilizer = TemporalStabilizer() if stabilize else None
        self.decoder = ClipDecoder(container, info)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.timings = dict.fromkeys(("decode", "network", "refine", "compose", "encode"), 0.0)

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

    def _items(self, q: queue.Queue) -> Iterator[Any]:
        """What an earlier stage puts on ``q``, until it is done or the render stops."""
        while True:
            item = self._get(q)
            if item is _END or self.stop.is_set():
                return
            yield item

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
        """Decode video frames upright; pass audio packets straight to the muxer."""
        t0 = time.perf_counter()
        for kind, item in self.decoder:
            if self.stop.is_set():
                return
            if kind == "audio":
                self._put(mux_out, ("audio", item))
                continue
            self.timings["decode"] += time.perf_counter() - t0
            self._put(frames_out, item)
            t0 = time.perf_counter()
        self._put(frames_out, _END)
        self._put(mux_out, ("audio-end", None))

    def _network(self, frames_in: queue.Queue, frames_out: queue.Queue) -> None:
        """The network's map of each frame, steadied over time (one frame of look-ahead)."""
        for pts, rgb in self._items(frames_in):
            t0 = time.perf_counter()
            prob = frame_probability(self.segmenter, rgb, self.zoom, self.subject)
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
        for pts, rgb, prob in self._items(frames_in):
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
        for pts, rgb, alpha8 in self._items(frames_in):
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

    # The encoder, in the calling thread ------------------------------------------------

    def write(
        self,
        path: Path,
        progress: Callable[[int, int], None] | None,
        cancel: Callable[[], bool] | None,
    ) -> int:
        """Run the threads, encode and mux everything into ``path``; frames written."""
        out = ClipWriter(path, self.output, self.info, self.decoder.video, self.decoder.audio)
        decoded: queue.Queue = queue.Queue(_QUEUE_SIZE)
        mapped: queue.Queue = queue.Queue(_QUEUE_SIZE)
        refined: queue.Queue = queue.Queue(_QUEUE_SIZE)
        muxed: queue.Queue = queue.Queue(_QUEUE_SIZE * 4)
        threads: list[threading.Thread] = []
        written = 0
        try:
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
                    out.mux_audio(item[1])
                else:
                    _, pts, (rgb, alpha8, fg) = item
                    t0 = time.perf_counter()
                    frame = out.to_frame(self._picture(rgb, alpha8, fg))
                    t1 = time.perf_counter()
                    out.encode(pts, frame)
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
            out.flush()
            self.timings["encode"] += time.perf_counter() - t0
        finally:
            self.stop.set()
            for thread in threads:
                thread.join()
            out.close()
        if self.errors:
            raise self.errors[0]
        return written
