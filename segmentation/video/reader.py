"""Reading clips: probing, decoding and rotation, with PyAV (FFmpeg's libraries in the wheel).

:func:`probe` and :func:`first_frame` check a clip against :class:`VideoLimits` before
any work; :class:`ClipDecoder` streams its frames upright (rotation metadata applied)
with their timestamps, and its audio packets for the writer to copy.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

from segmentation.errors import ImageError

__all__ = [
    "VIDEO_EXTENSIONS",
    "ClipDecoder",
    "VideoError",
    "VideoInfo",
    "VideoLimits",
    "VideoSource",
    "describe",
    "first_frame",
    "open_input",
    "probe",
    "upright",
]

VideoSource = str | os.PathLike[str] | BinaryIO

#: File name endings the CLI and the app treat as videos.
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".qt", ".webm", ".mkv", ".avi", ".gif"}
)
#: Single-image demuxers: a photo is not a clip.
_IMAGE_FORMATS = ("image2", "_pipe", "apng", "webp")
#: A stream that ends this much earlier than its header says is truncated.
_TRUNCATION_SLACK_S = 0.5


class VideoError(ImageError):
    """Bad input video: not a video, no video stream, damaged, too long or too large,
    or a codec we cannot decode. The message says why; callers prefix the file name.
    """


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


def probe(source: VideoSource, limits: VideoLimits | None = None) -> VideoInfo:
    """Open a clip, check it against ``limits`` and describe it.

    Raises:
        VideoError: not a video, no video stream, an unsupported codec, damaged,
            too long or too large.
    """
    with open_input(source) as container:
        return describe(container, limits or VideoLimits())[0]


def first_frame(source: VideoSource, limits: VideoLimits | None = None) -> np.ndarray:
    """The clip's first frame, upright, as (H, W, 3) uint8 RGB (for a quick preview)."""
    with open_input(source) as container:
        info, frame = describe(container, limits or VideoLimits())
        return upright(frame, info.rotation)


@contextlib.contextmanager
def open_input(source: VideoSource) -> Iterator[Any]:
    """The opened PyAV container of a path or a file object, closed afterwards."""
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


def describe(container: Any, limits: VideoLimits) -> tuple[VideoInfo, Any]:
    """Check the opened container; say what it holds, with its first decoded frame.

    Raises:
        VideoError: not a clip, or one outside ``limits`` (see :func:`probe`).
    """
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


def upright(frame: Any, rotation: int) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 RGB, turned ``rotation`` degrees clockwise."""
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


class ClipDecoder:
    """The first video stream's frames, upright, and the first audio track's packets.

    Iterating yields ``("video", (pts, rgb))`` and ``("audio", packet)`` in file order;
    frames without a timestamp, or with one that goes backwards, get the next one at
    the clip's rate. At the end it raises :class:`VideoError` when the frames stop
    well before the duration the file declares (a truncated download).
    """

    def __init__(self, container: Any, info: VideoInfo) -> None:
        self.container = container
        self.info = info
        self.video = container.streams.video[0]
        self.audio = container.streams.audio[0] if container.streams.audio else None
        self.decoded = 0
        self.last_time = 0.0  # seconds from the stream start to the end of the last frame

    def __iter__(self) -> Iterator[tuple[str, Any]]:
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
        try:
            for packet in self.container.demux(streams):
                if packet.stream is self.audio:
                    if packet.dts is not None:
                        if packet.pts is not None and packet.time_base is not None:
                            end = (packet.pts + (packet.duration or 0)) * packet.time_base
                            audio_end = max(audio_end, float(end) - audio_start)
                        yield "audio", packet
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
                    rgb = upright(frame, self.info.rotation)
                    self.decoded += 1
                    duration = frame.duration or round(step / tb)
                    self.last_time = float((pts + duration - (start_pts or 0)) * tb)
                    yield "video", (pts, rgb)
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
