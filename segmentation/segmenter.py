"""Load the trained network once; turn photos into full-resolution person masks.

One :class:`Segmenter` is meant to be shared (by Streamlit sessions, threads, a CLI
loop): the model is loaded and traced once, and the network call is serialised by a
lock, so concurrent requests cannot interfere and do not multiply memory use (the
network already uses every core for one image).

The network runs on LiteRT when ``train.export`` wrote a .tflite beside the .keras
model (no TensorFlow import at all: cold start ~1 s instead of ~6 s), else on Keras;
see :mod:`segmentation.network`. Either is loaded when the first Segmenter is created,
not with this module, so a missing model file is reported at once.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from segmentation import compose
from segmentation.io import as_rgb, encode_png, load_hint, load_image
from segmentation.network import Network, Runtime, load_network
from segmentation.refine import (
    GUIDED_WORK_SCALE,
    estimate_foreground,
    guided_upsample,
    sharpen_probability,
    upsample_bilinear,
)
from segmentation.resources import default_model_path
from segmentation.resources import model_path as resolve_model_path
from segmentation.subject import Subject, check_subject, select_subject
from segmentation.touchup import touch_up
from segmentation.zoom import ZOOM_MAX_UPSCALES, merge_close_looks, person_boxes

__all__ = [
    "DEFAULT_MODEL_PATH",
    "SegmentationResult",
    "Segmenter",
    "load_segmenter",
    "native_stderr_silenced",
]

#: The shipped model: the checkout's weights/ (where ``python -m train.export`` writes),
#: or the copy inside an installed package (see :mod:`segmentation.resources`).
DEFAULT_MODEL_PATH = default_model_path()

ImageSource = np.ndarray | str | os.PathLike[str] | bytes | BinaryIO
#: A touch-up hint: an array, or an image file (see SegmentationResult.touch_up).
HintSource = np.ndarray | str | os.PathLike[str] | bytes | BinaryIO


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous; compare fields yourself
class SegmentationResult:
    """A photo, its person mask at the photo's resolution, and how long each step took.

    Attributes:
        original: (H, W, 3) uint8 RGB photo, EXIF orientation applied.
        mask: (H, W) float32 alpha in [0, 1]; 1 is person.
        timings: seconds spent in 'decode', 'network' and 'refine' (and 'touch-up').
    """

    original: np.ndarray
    mask: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)

    @cached_property
    def alpha(self) -> np.ndarray:
        """(H, W) uint8 mask, 255 = person: what the PNG files hold (computed once)."""
        return compose.alpha8(self.mask, self.mask.shape)

    @cached_property
    def foreground(self) -> np.ndarray:
        """Edge colours without the old background; computed once, shared by outputs."""
        return estimate_foreground(self.original, self.alpha)

    def touch_up(
        self, keep: HintSource | None = None, remove: HintSource | None = None
    ) -> SegmentationResult:
        """This result with the regions a hint dabs on kept or removed (not only the
        dabbed pixels): :func:`segmentation.touchup.touch_up`.

        Hints are brush layers of any size, stretched to the photo: an array (white or
        opaque = marked) or an image file's path, bytes or file object.

        Raises:
            ImageError: a hint is not an image, or not a usable array.
        """
        if keep is None and remove is None:
            return self
        start = time.perf_counter()
        keep_mask, remove_mask = (
            h if h is None or isinstance(h, np.ndarray) else load_hint(h) for h in (keep, remove)
        )
        mask = touch_up(self.original, self.mask, keep_mask, remove_mask)
        timings = {**self.timings, "touch-up": time.perf_counter() - start}
        return SegmentationResult(self.original, mask, timings)

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
        return compose.cutout(self.original, self.alpha, foreground=fg)

    def composite(
        self, background: tuple[int, int, int] | str | np.ndarray, decontaminate: bool = True
    ) -> np.ndarray:
        """(H, W, 3) RGB person on a colour, 'blur' or an image (see compose.composite)."""
        fg = self.foreground if decontaminate else self.original
        return compose.composite(self.original, self.alpha, background, foreground=fg)

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

    def __init__(
        self, model_path: str | os.PathLike[str] | None = None, *, runtime: Runtime = "auto"
    ) -> None:
        """Load the model (once): LiteRT on a current .tflite beside it, else Keras.

        Args:
            model_path: the .keras model (default: the trained weights).
            runtime: 'auto' (LiteRT when ``train.export`` wrote a .tflite at least as
                new as the .keras, else Keras), 'litert' or 'keras' to insist on one.

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
        self.model_path = path
        self._network = load_network(path, runtime)
        self.runtime: str = self._network.runtime
        self.input_size: int = self._network.input_size
        self._lock = threading.Lock()

    @property
    def channels(self) -> int:
        """1: the network marks every person; 2: also the main subject, on its own channel."""
        return int(getattr(self._network, "channels", 1))

    def subject_channel(self, subject: Subject) -> int:
        """The network channel that answers ``subject``: 1 for 'main' where there is one."""
        return 1 if check_subject(subject) == "main" and self.channels == 2 else 0

    def with_network(self, network: Network) -> Segmenter:
        """A copy that runs ``network`` behind its own lock (a video render's own
        one-thread interpreter); everything else is shared with this one."""
        own = copy.copy(self)
        own._network = network
        own._lock = threading.Lock()
        return own

    def __repr__(self) -> str:
        return (
            f"Segmenter({str(self.model_path)!r}, input_size={self.input_size}, "
            f"runtime={self.runtime!r})"
        )

    def predict_probability(
        self, rgb: np.ndarray, *, mirror: bool = False, channel: int = 0
    ) -> np.ndarray:
        """(S, S) float32 person probability of an (H, W, 3) uint8 photo.

        The photo is squashed to the square input with INTER_AREA, exactly as
        training prepared its examples, so the map covers the whole photo. With
        ``mirror`` the network also sees the photo mirrored left to right, and the two
        maps (the second mirrored back) are averaged: training flips photos at random,
        so each look errs differently and the mean is better than either (with model
        v3 and two looks: parkour 0.890 / 0.842 -> 0.901 / 0.859 IoU / boundary F1,
        people val 0.852 / 0.750 -> 0.857 / 0.761), for one more network pass.
        ``channel`` 1 is the main subject's map, on a network that has it (:attr:`channels`).
        """
        image = as_rgb(rgb, max_megapixels=float("inf"), min_side=1)
        size = self.input_size
        x = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        x = x[None].astype(np.float32)
        # Stand-in networks of one channel take no channel argument.
        network = self._network if channel == 0 else partial(self._network, channel=channel)
        with self._lock:
            prob = network(x)
            if mirror:
                mirrored = network(np.ascontiguousarray(x[:, :, ::-1]))
                prob = (prob + mirrored[:, ::-1]) * np.float32(0.5)
        return prob

    def person_probability(
        self,
        rgb: np.ndarray,
        *,
        zoom: bool = True,
        mirror: bool = True,
        max_upscales: tuple[float, ...] = ZOOM_MAX_UPSCALES,
        channel: int = 0,
    ) -> np.ndarray:
        """Person probability map covering the whole (H, W, 3) uint8 photo.

        With ``zoom``, when the people fill only part of the photo the network looks
        again at crops around them, one per limit in ``max_upscales`` (how far a crop
        may be blown up), and the average of those sharper maps replaces the first
        there (:mod:`segmentation.zoom`); the map then has the photo's aspect. Else
        (or when a closer look would not help) it is :meth:`predict_probability`'s.
        ``mirror`` and ``channel`` apply to each look (see :meth:`predict_probability`).
        """
        whole = self.predict_probability(rgb, mirror=mirror, channel=channel)
        if not zoom:
            return whole
        photo_size = rgb.shape[:2]
        boxes = person_boxes(whole, photo_size, self.input_size, max_upscales=max_upscales)
        if not boxes:
            return whole
        looks = [
            (
                self.predict_probability(
                    rgb[b.top : b.bottom, b.left : b.right], mirror=mirror, channel=channel
                ),
                b,
            )
            for b in boxes
        ]
        return merge_close_looks(whole, looks, photo_size)

    def predict(
        self,
        image: ImageSource,
        *,
        refine: bool = True,
        zoom: bool = True,
        mirror: bool = True,
        subject: Subject = "main",
        keep: HintSource | None = None,
        remove: HintSource | None = None,
        max_megapixels: float = 50.0,
    ) -> SegmentationResult:
        """Segment the person (or people) the photo is of.

        Args:
            image: an (H, W, 3) uint8 RGB array, or anything :func:`load_image` takes
                (path, bytes, binary file).
            refine: follow the photo's edges with the guided filter; False stretches
                the network's map bilinearly (faster, blurrier outline).
            zoom: look again, closer, at people who fill only part of the photo
                (one or two more network passes; see :meth:`person_probability`).
            mirror: average each look with a look at the mirrored photo (one more
                network pass each; see :meth:`predict_probability`).
            subject: 'main' keeps the person or group the photo is of and drops
                passers-by and crowds; 'all' keeps every person
                (:mod:`segmentation.subject`).
            keep, remove: touch-up hints, brush layers of any size marking what must
                be person or background; the region each dab lands on follows
                (:meth:`SegmentationResult.touch_up`).
            max_megapixels: refuse bigger photos (decoding and refining cost memory).

        Raises:
            ImageError: the image cannot be used (the message says why).
            ValueError: ``subject`` is not one of :data:`~segmentation.subject.SUBJECTS`.
        """
        check_subject(subject)
        t0 = time.perf_counter()
        if isinstance(image, np.ndarray):
            rgb = as_rgb(image, max_megapixels=max_megapixels)
        else:
            rgb = load_image(image, max_megapixels=max_megapixels)
        t1 = time.perf_counter()
        prob = self.person_probability(
            rgb, zoom=zoom, mirror=mirror, channel=self.subject_channel(subject)
        )
        prob = select_subject(prob, subject)
        t2 = time.perf_counter()
        alpha = sharpen_probability(prob)
        if refine:
            # The filter's fitting grid stays where a single look puts it: a zoomed map
            # of a 12 MP photo would otherwise pull it to 2x finer, 5x the refine time.
            work_scale = GUIDED_WORK_SCALE * self.input_size / max(prob.shape)
            mask = guided_upsample(alpha, rgb, work_scale=work_scale)
        else:
            mask = upsample_bilinear(alpha, rgb.shape[:2])
        t3 = time.perf_counter()
        timings = {"decode": t1 - t0, "network": t2 - t1, "refine": t3 - t2}
        return SegmentationResult(rgb, mask, timings).touch_up(keep, remove)


def load_segmenter(explicit: str | os.PathLike[str] | None = None) -> Segmenter:
    """A :class:`Segmenter` on :func:`~segmentation.resources.model_path`; one message
    per failure, so the CLI, the API and batch jobs all say the same thing.

    Raises:
        FileNotFoundError: no model file there.
        ValueError: not a loadable model, or a .keras model without a current .tflite
            in an install that has no Keras (the message says what to install).
    """
    path = resolve_model_path(explicit)
    try:
        return Segmenter(path)
    except ImportError as exc:
        raise ValueError(
            f"{path}: running a .keras model needs Keras ({exc}): "
            "pip install 'person-background-remover[keras]', or export a .tflite beside it "
            "with python -m train.export"
        ) from exc


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Hide TensorFlow's C++ start-up lines (CUDA probing, oneDNN notes) from users.

    They are written to file descriptor 2 before TF_CPP_MIN_LOG_LEVEL is read, so
    the descriptor itself is pointed at /dev/null while TensorFlow starts. Python
    exceptions are unaffected: they are printed after the descriptor is restored.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded): nothing to hide
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
