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
audio track are kept; rotation metadata is applied, so the result is upright.

One module per concern, all of their public names here:

* :mod:`~segmentation.video.reader`: probing, decoding and rotation;
* :mod:`~segmentation.video.stabilize`: :class:`TemporalStabilizer`, steady masks;
* :mod:`~segmentation.video.render`: per-frame processing and the threaded render;
* :mod:`~segmentation.video.writer`: encoding and muxing.
"""

from __future__ import annotations

# Names outside __all__ are public too (the stabiliser's defaults, the render's
# constants, the type aliases): ``X`` marks them as re-exported.
from segmentation.video.reader import (
    VIDEO_EXTENSIONS,
    VideoError,
    VideoInfo,
    VideoLimits,
    VideoSource,
    first_frame,
    probe,
)
from segmentation.video.render import (
    VIDEO_DECONTAMINATE_SIDE,
    VIDEO_WORK_SCALE,
    VIDEO_ZOOM_MAP_SCALE,
    VideoCancelled,
    VideoResult,
    foreground,
    frame_alpha,
    frame_probability,
    masks,
    remove_background,
)
from segmentation.video.stabilize import (
    STAB_BLOCK,
    STAB_DEAD_BAND,
    STAB_MEDIAN,
    STAB_MIN_RATE,
    STAB_MOTION,
    STAB_OVERRIDE,
    STAB_SCENE_CHANGE,
    TemporalStabilizer,
)
from segmentation.video.writer import OUTPUT_FORMATS, OutputFormat

__all__ = [
    "OUTPUT_FORMATS",
    "STAB_BLOCK",
    "STAB_DEAD_BAND",
    "STAB_MEDIAN",
    "STAB_MIN_RATE",
    "STAB_MOTION",
    "STAB_OVERRIDE",
    "STAB_SCENE_CHANGE",
    "VIDEO_DECONTAMINATE_SIDE",
    "VIDEO_EXTENSIONS",
    "VIDEO_WORK_SCALE",
    "VIDEO_ZOOM_MAP_SCALE",
    "OutputFormat",
    "TemporalStabilizer",
    "VideoCancelled",
    "VideoError",
    "VideoInfo",
    "VideoLimits",
    "VideoResult",
    "VideoSource",
    "first_frame",
    "foreground",
    "frame_alpha",
    "frame_probability",
    "masks",
    "probe",
    "remove_background",
]
