"""Person segmentation: photo in, soft mask and transparent cutout out, at full resolution.

Typical use::

    from segmentation import Segmenter

    result = Segmenter().predict("photo.jpg")  # weights/person_unet.keras
    png = result.cutout_png()  # RGBA, full resolution

Names are imported lazily, so ``segmentation.io`` and the CLI's ``--help`` do not pay
for importing TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: The package version (pyproject.toml reads it from here; ``nobg --version`` prints it).
__version__ = "0.2.0"

if TYPE_CHECKING:
    from segmentation.compose import adjust_mask, composite, cutout, overlay, parse_color
    from segmentation.errors import ImageError
    from segmentation.io import IMAGE_EXTENSIONS, encode_jpeg, encode_png, load_image
    from segmentation.model import build_unet
    from segmentation.refine import estimate_foreground, guided_upsample, upsample_bilinear
    from segmentation.segmenter import DEFAULT_MODEL_PATH, SegmentationResult, Segmenter
    from segmentation.subject import SUBJECTS

_EXPORTS = {
    "build_unet": "segmentation.model",
    "Segmenter": "segmentation.segmenter",
    "SegmentationResult": "segmentation.segmenter",
    "DEFAULT_MODEL_PATH": "segmentation.segmenter",
    "ImageError": "segmentation.errors",
    "load_image": "segmentation.io",
    "encode_png": "segmentation.io",
    "encode_jpeg": "segmentation.io",
    "IMAGE_EXTENSIONS": "segmentation.io",
    "guided_upsample": "segmentation.refine",
    "upsample_bilinear": "segmentation.refine",
    "estimate_foreground": "segmentation.refine",
    "cutout": "segmentation.compose",
    "overlay": "segmentation.compose",
    "composite": "segmentation.compose",
    "parse_color": "segmentation.compose",
    "adjust_mask": "segmentation.compose",
    "SUBJECTS": "segmentation.subject",
}

__all__ = [
    "DEFAULT_MODEL_PATH",
    "IMAGE_EXTENSIONS",
    "SUBJECTS",
    "ImageError",
    "SegmentationResult",
    "Segmenter",
    "adjust_mask",
    "build_unet",
    "composite",
    "cutout",
    "encode_jpeg",
    "encode_png",
    "estimate_foreground",
    "guided_upsample",
    "load_image",
    "overlay",
    "parse_color",
    "upsample_bilinear",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'segmentation' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
