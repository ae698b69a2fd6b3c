"""Load the trained network once; turn photos into full-resolution person masks.

One :class:`Segmenter` is meant to be shared (by Streamlit sessions, threads, a CLI
loop): the model is loaded and traced once, and the network call is serialised by a
lock, so concurrent requests cannot interfere and do not multiply memory use (the
network already uses every core for one image).

TensorFlow is imported when the first Segmenter is created, not with this module, so
a missing model file is reported at once.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from segmentation import compose
from segmentation.io import as_rgb, encode_png, load_image
from segmentation.refine import (
    estimate_foreground,
    guided_upsample,
    sharpen_probability,
    upsample_bilinear,
)

__all__ = ["DEFAULT_MODEL_PATH", "SegmentationResult", "Segmenter"]

#: Where training exports the model (``python -m train.export``).
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "weights" / "person_unet.keras"

ImageSource = np.ndarray | str | os.PathLike[str] | bytes | BinaryIO


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous; compare fields yourself
class SegmentationResult:
    """A photo, its person mask at the photo's resolution, and how long each step took.

    Attributes:
        original: (H, W, 3) uint8 RGB photo, EXIF orientation applied.
        mask: (H, W) float32 alpha in [0, 1]; 1 is person.
        timings: seconds spent in 'decode', 'network' and 'refine'.
    """

    original: np.ndarray
    mask: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def alpha(self) -> np.ndarray:
        """(H, W) uint8 mask, 255 = person: what the PNG files hold."""
        return compose._alpha8(self.mask, self.mask.shape)

    @cached_property
    def foreground(self) -> np.ndarray:
        """Edge colours without the old background; computed once, shared by outputs."""
        return estimate_foreground(self.original, self.alpha)

    def overlay(
        self,
        color: tuple[int, int, int] | str = compose.DEFAULT_OVERLAY_COLOR,
        opacity: float = 0.5,
    ) -> np.ndarray:
        """(H, W, 3) RGB photo with the person tinted."""
        return compose.overlay(self.original, self.mask, color, opacity)

    def cutout(self, decontaminate: bool = True) -> np.ndarray:
        """(H, W, 4) RGBA person on transparency."""
        fg = self.foreground if decontaminate else self.original
        return compose.cutout(self.original, self.mask, foreground=fg)

    def composite(
        self, background: tuple[int, int, int] | str | np.ndarray, decontaminate: bool = True
    ) -> np.ndarray:
        """(H, W, 3) RGB person on a colour, 'blur' or an image (see compose.composite)."""
        fg = self.foreground if decontaminate else self.original
        return compose.composite(self.original, self.mask, background, foreground=fg)

    def adjusted(self, threshold: float | None = None, softness: float = 0.0) -> SegmentationResult:
        """A new result with the mask passed through :func:`compose.adjust_mask`."""
        mask = compose.adjust_mask(self.mask, threshold=threshold, softness=softness)
        return SegmentationResult(self.original, mask, dict(self.timings))

    def mask_png(self) -> bytes:
        """8-bit greyscale PNG of the soft mask, 255 = person."""
        return encode_png(self.alpha)

    def cutout_png(self, decontaminate: bool = True) -> bytes:
        """RGBA PNG of the cutout at full resolution."""
        return encode_png(self.cutout(decontaminate))


class Segmenter:
    """The person-segmentation network plus everything around it (decode, refine).

    Thread-safe: share one instance.
    """

    def __init__(self, model_path: str | os.PathLike[str] | None = None) -> None:
        """Load the model (once) and trace its inference graph.

        Raises:
            FileNotFoundError: no model file at the path.
            ValueError: the file is not a loadable Keras model of the expected shape.
        """
        path = Path(model_path) if model_path is not None else DEFAULT_MODEL_PATH
        if not path.is_file():
            raise FileNotFoundError(
                f"model file not found: {path} (train and export one with train/, "
                "or pass the path of a .keras model)"
            )
        import keras
        import tensorflow as tf

        from segmentation.model import DEFAULT_INPUT_SIZE

        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:
            raise ValueError(f"{path}: not a loadable Keras model ({exc})") from exc
        shape = tuple(model.input_shape)
        if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
            raise ValueError(f"{path}: expected a (B, S, S, 3) input, got {shape}")
        self.model_path = path
        self.input_size: int = int(shape[1] or DEFAULT_INPUT_SIZE)
        self._model = model
        self._lock = threading.Lock()
        size = self.input_size
        # A traced graph runs the network ~8x faster than eager calls on a CPU.
        self._forward = tf.function(
            self._call_model,
            input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32)],
            autograph=False,
        )
        self._forward(tf.zeros((1, size, size, 3)))  # trace now, not on the first photo

    def _call_model(self, x):
        return self._model(x, training=False)

    def __repr__(self) -> str:
        return f"Segmenter({str(self.model_path)!r}, input_size={self.input_size})"

    def predict_probability(self, rgb: np.ndarray) -> np.ndarray:
        """(S, S) float32 person probability of an (H, W, 3) uint8 photo.

        The photo is squashed to the square input with INTER_AREA, exactly as
        training prepared its examples, so the map covers the whole photo.
        """
        image = as_rgb(rgb, max_megapixels=float("inf"), min_side=1)
        size = self.input_size
        x = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        x = x[None].astype(np.float32)
        with self._lock:
            y = self._forward(x)
        return np.asarray(y, dtype=np.float32)[0, :, :, 0]

    def predict(
        self, image: ImageSource, *, refine: bool = True, max_megapixels: float = 50.0
    ) -> SegmentationResult:
        """Segment the person (or people) in a photo.

        Args:
            image: an (H, W, 3) uint8 RGB array, or anything :func:`load_image` takes
                (path, bytes, binary file).
            refine: follow the photo's edges with the guided filter; False stretches
                the network's map bilinearly (faster, blurrier outline).
            max_megapixels: refuse bigger photos (decoding and refining cost memory).

        Raises:
            ImageError: the image cannot be used (the message says why).
        """
        t0 = time.perf_counter()
        if isinstance(image, np.ndarray):
            rgb = as_rgb(image, max_megapixels=max_megapixels)
        else:
            rgb = load_image(image, max_megapixels=max_megapixels)
        t1 = time.perf_counter()
        prob = self.predict_probability(rgb)
        t2 = time.perf_counter()
        alpha = sharpen_probability(prob)
        mask = guided_upsample(alpha, rgb) if refine else upsample_bilinear(alpha, rgb.shape[:2])
        t3 = time.perf_counter()
        timings = {"decode": t1 - t0, "network": t2 - t1, "refine": t3 - t2}
        return SegmentationResult(rgb, mask, timings)
