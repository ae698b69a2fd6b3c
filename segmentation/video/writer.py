"""Writing clips: encoding the pictures and muxing them with the source's audio.

* ``webm``: VP9 with an alpha channel (transparent in Chrome and Firefox), the default;
* ``mov``: ProRes 4444 with alpha, for video editors;
* ``mp4``: H.264 of the person on a colour, a blurred copy of the frame or an image;
* ``mask``: the soft mask as greyscale H.264.

The first audio track is copied as it is where the container takes its codec, else
re-encoded; frames keep the source's timestamps (so variable frame rates too).
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from segmentation.video.reader import VideoInfo

__all__ = ["OUTPUT_FORMATS", "PRORES_OPTIONS", "VP9_OPTIONS", "X264_OPTIONS", "ClipWriter"]

OutputFormat = Literal["webm", "mov", "mp4", "mask"]

#: Output format -> (file extension, what it is).
OUTPUT_FORMATS: dict[str, tuple[str, str]] = {
    "webm": (".webm", "VP9 with alpha (transparent)"),
    "mov": (".mov", "ProRes 4444 with alpha"),
    "mp4": (".mp4", "H.264 on a background"),
    "mask": (".mp4", "the mask as greyscale H.264"),
}

#: Encoder settings. VP9: libvpx's realtime mode at speed 8 with row threading, what
#: keeps a 720p transparent WebM above 12 frames/s on two cores (bench/video.py).
VP9_OPTIONS = {
    "deadline": "realtime",
    "cpu-used": "8",
    "row-mt": "1",
    "crf": "30",
    "b": "0",
    "lag-in-frames": "0",
}
X264_OPTIONS = {"preset": "veryfast", "crf": "20"}
PRORES_OPTIONS = {"profile": "4", "vendor": "apl0"}  # 4 = ProRes 4444 (with alpha)
#: Container of each output format.
_CONTAINERS = {"webm": "webm", "mov": "mov", "mp4": "mp4", "mask": "mp4"}
#: Audio codecs each container takes as they are (else the track is re-encoded).
_AUDIO_COPY = {
    "webm": {"opus", "vorbis"},
    "mp4": {"aac", "mp3", "alac", "opus", "ac3", "eac3"},
    "mov": {"aac", "mp3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le", "ac3"},
}
_AUDIO_ENCODER = {"webm": "libopus", "mp4": "aac", "mov": "aac"}


class ClipWriter:
    """One output file: its video stream (the source's size, rate and time base) and,
    when the source has one, its audio stream. :meth:`close` it in every case."""

    def __init__(self, path: Path, output: str, info: VideoInfo, video: Any, audio: Any) -> None:
        import av

        self.output = output
        self.info = info
        self.source_video = video
        self.source_audio = audio
        fmt = _CONTAINERS[output]
        options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        self.out = av.open(str(path), "w", format=fmt, options=options)
        try:
            self.video = self._video_stream()
            self.audio, self.audio_copy = self._audio_stream(fmt)
        except BaseException:
            self.out.close()
            raise

    def _video_stream(self) -> Any:
        width, height = self.info.width, self.info.height
        rate = Fraction(self.info.fps).limit_denominator(100_000) if self.info.fps else 25
        if self.output == "webm":
            stream = self.out.add_stream("libvpx-vp9", rate=rate, options=dict(VP9_OPTIONS))
            stream.pix_fmt = "yuva420p"
        elif self.output == "mov":
            stream = self.out.add_stream("prores_ks", rate=rate, options=dict(PRORES_OPTIONS))
            stream.pix_fmt = "yuva444p10le"
        else:
            stream = self.out.add_stream("libx264", rate=rate, options=dict(X264_OPTIONS))
            stream.pix_fmt = "yuv420p"
            width, height = width - width % 2, height - height % 2  # 4:2:0 needs even sides
        stream.width, stream.height = width, height
        stream.codec_context.time_base = self.source_video.time_base
        stream.time_base = self.source_video.time_base
        stream.codec_context.thread_count = os.cpu_count() or 1
        self._size = (width, height)
        return stream

    def _audio_stream(self, fmt: str) -> tuple[Any, bool]:
        audio = self.source_audio
        if audio is None:
            return None, False
        name = audio.codec_context.name
        if name in _AUDIO_COPY[fmt]:
            return self.out.add_stream_from_template(audio), True
        encoder = _AUDIO_ENCODER[fmt]
        rate = 48000 if encoder == "libopus" else (audio.rate or 48000)
        stream = self.out.add_stream(encoder, rate=rate)
        layout = audio.layout.name if audio.layout else "stereo"
        with contextlib.suppress(Exception):
            stream.layout = layout if audio.channels <= 2 else "stereo"
        return stream, False

    def mux_audio(self, packet: Any) -> None:
        """One packet of the source's audio track: copied, or re-encoded."""
        if self.audio is None:
            return
        if self.audio_copy:
            packet.stream = self.audio
            self.out.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None  # the encoder's resampler counts samples itself
            for encoded in self.audio.encode(frame):
                self.out.mux(encoded)

    def encode(self, pts: int, frame: Any) -> None:
        """Encode and mux one frame of :meth:`to_frame` at the source's timestamp."""
        frame.pts = pts
        frame.time_base = self.source_video.time_base
        for packet in self.video.encode(frame):
            self.out.mux(packet)

    def flush(self) -> None:
        """What the encoders still hold, after the last frame."""
        for packet in self.video.encode(None):
            self.out.mux(packet)
        if self.audio is not None and not self.audio_copy:
            for packet in self.audio.encode(None):
                self.out.mux(packet)

    def close(self) -> None:
        """Close the file (complete after :meth:`flush`, else to be thrown away)."""
        self.out.close()

    def to_frame(self, picture: np.ndarray) -> Any:
        """The encoder's frame of an RGB, RGBA or greyscale (mask) picture.

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
