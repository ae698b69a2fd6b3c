"""Dataset checks, one-time decode cache and the tf.data input pipeline.

A data folder holds ``images/<name>.jpg``, ``masks/<name>.png`` (255 = person) and one
``<split>.txt`` per split listing names, as ``../shared/data/people`` does.

Labels for a subject head (``build_unet(subject_head=True)``) add the main subject:
the person or group the photo is of. A single-subject folder (VITON, the portraits,
``train.train --single-subject``) marks one subject, so its subject is its person mask;
a multi-person folder's subject is :func:`segmentation.subject.main_subject_probability`
applied to its true mask (:func:`build_subject_cache`), which keeps a group whole.
Copy-paste decides the subject of a composite (:func:`paste_person_with_subject`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf
from PIL import Image

import segmentation.subject
from segmentation.subject import CORE_THRESHOLD, MIN_CORE_SHARE, main_subject_probability
from train.metrics import SUBJECT_WEIGHT_CHANNEL

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class DatasetError(ValueError):
    """The data folder does not have the expected layout; the message names the file."""


@dataclass(frozen=True)
class Sample:
    name: str
    image: Path
    #: None for a person-free background photo: every pixel is background.
    mask: Path | None


def read_split(data_dir: str | Path, split: str) -> list[Sample]:
    """List a split's photo/mask pairs, checking every pair exists and sizes match."""
    data_dir = Path(data_dir)
    names = _read_names(data_dir, split)
    samples = []
    for name in names:
        image = _find_image(data_dir / "images", name)
        mask = data_dir / "masks" / f"{name}.png"
        if not mask.is_file():
            raise DatasetError(f"{mask}: mask missing for image {image.name}")
        with Image.open(image) as im, Image.open(mask) as ma:
            if im.size != ma.size:
                raise DatasetError(
                    f"{mask}: size {ma.size[0]}x{ma.size[1]} does not match "
                    f"image {image.name} ({im.size[0]}x{im.size[1]})"
                )
        samples.append(Sample(name, image, mask))
    return samples


def read_backgrounds(data_dir: str | Path, split: str = "all") -> list[Sample]:
    """List a folder of person-free photos (``images/``, ``<split>.txt``, no masks)."""
    data_dir = Path(data_dir)
    names = _read_names(data_dir, split)
    return [Sample(name, _find_image(data_dir / "images", name), None) for name in names]


def _read_names(data_dir: Path, split: str) -> list[str]:
    """The names listed in ``<split>.txt``; a missing or empty listing is an error."""
    listing = data_dir / f"{split}.txt"
    if not listing.is_file():
        raise DatasetError(f"{listing}: split file not found")
    names = [n.strip() for n in listing.read_text().splitlines() if n.strip()]
    if not names:
        raise DatasetError(f"{listing}: lists no images")
    return names


def _find_image(images_dir: Path, name: str) -> Path:
    for suffix in IMAGE_SUFFIXES:
        path = images_dir / f"{name}{suffix}"
        if path.is_file():
            return path
    raise DatasetError(f"{images_dir / name}.*: image missing for listed name {name!r}")


def load_pair(sample: Sample, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pair, squashed to size x size (inference squashes the same way)."""
    image = np.asarray(Image.open(sample.image).convert("RGB"))
    if sample.mask is None:
        mask = np.zeros(image.shape[:2], np.uint8)
    else:
        mask = np.asarray(Image.open(sample.mask).convert("L"))
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)
    return image, mask


def build_cache(
    samples: list[Sample], size: int, cache_dir: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """Decode and resize every pair once into .npy files, reused by later runs."""
    key = _cache_key(samples)
    cache_dir = Path(cache_dir)
    images_path = cache_dir / f"{key}_{size}_images.npy"
    masks_path = cache_dir / f"{key}_{size}_masks.npy"
    if images_path.is_file() and masks_path.is_file():
        return np.load(images_path, mmap_mode="r"), np.load(masks_path, mmap_mode="r")
    cache_dir.mkdir(parents=True, exist_ok=True)
    images = np.empty((len(samples), size, size, 3), np.uint8)
    masks = np.empty((len(samples), size, size), np.uint8)
    for i, sample in enumerate(samples):
        images[i], masks[i] = load_pair(sample, size)
    for path, array in ((images_path, images), (masks_path, masks)):
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, array)
        tmp.replace(path)
    return images, masks


def _cache_key(samples: list[Sample]) -> str:
    """Names a cache after its photos and their modification times."""
    return hashlib.sha1(
        "\n".join(f"{s.image}:{s.image.stat().st_mtime_ns}" for s in samples).encode()
    ).hexdigest()[:12]


#: Subject weight of a multi-person photo whose subject the rule chose (its people
#: regions differ): the rule is a guess there, so it pulls half as hard as a known one.
SUBJECT_RULE_WEIGHT = 0.5


@dataclass(frozen=True)
class SubjectLabels:
    """The main subject of every example of a cache, and how much its label counts."""

    #: (N, S, S) uint8, 255 = the main subject, aligned with the cache's masks.
    masks: np.ndarray
    #: (N,) float32 weight of each example's subject channel in the loss.
    weights: np.ndarray

    @classmethod
    def single(cls, masks: np.ndarray) -> SubjectLabels:
        """A single-subject source (or person-free photos): subject = person, weight 1."""
        return cls(masks, np.ones(len(masks), np.float32))


def rule_subject(mask: np.ndarray) -> tuple[np.ndarray, float]:
    """The rule's main subject of an (H, W) uint8 person mask, and its weight.

    Weight 1 where the photo holds one confident person region (nobody to leave out),
    else :data:`SUBJECT_RULE_WEIGHT`.
    """
    probability = mask.astype(np.float32) / 255.0
    subject = np.rint(main_subject_probability(probability) * 255).astype(np.uint8)
    core = (probability >= CORE_THRESHOLD).astype(np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    regions = int((stats[1:, cv2.CC_STAT_AREA] >= MIN_CORE_SHARE * mask.size).sum())
    return subject, 1.0 if regions <= 1 else SUBJECT_RULE_WEIGHT


def build_subject_cache(
    samples: list[Sample], masks: np.ndarray, cache_dir: str | Path
) -> SubjectLabels:
    """:func:`rule_subject` of every cached mask, stored beside the cache and reused.

    The file name carries a hash of ``segmentation/subject.py``, so a changed rule
    makes new labels instead of reusing stale ones.
    """
    rule = hashlib.sha1(Path(segmentation.subject.__file__).read_bytes()).hexdigest()[:8]
    stem = f"{_cache_key(samples)}_{masks.shape[1]}_subject_{rule}"
    masks_path = Path(cache_dir) / f"{stem}_masks.npy"
    weights_path = Path(cache_dir) / f"{stem}_weights.npy"
    if masks_path.is_file() and weights_path.is_file():
        return SubjectLabels(np.load(masks_path, mmap_mode="r"), np.load(weights_path))
    subjects = np.empty_like(masks)
    weights = np.empty(len(masks), np.float32)
    for i, mask in enumerate(masks):
        subjects[i], weights[i] = rule_subject(np.asarray(mask))
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    for path, array in ((masks_path, subjects), (weights_path, weights)):
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, array)
        tmp.replace(path)
    return SubjectLabels(subjects, weights)


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random geometric and photometric changes applied in training.

    A range whose ends are equal (or a zero amount or probability) switches that step off.
    """

    zoom: tuple[float, float] = (0.55, 1.5)  # visible fraction of the frame; >1 zooms out
    aspect: tuple[float, float] = (0.8, 1.25)
    rotation_degrees: float = 12.0
    #: Share of crops framed the way selfies and portraits are shot: the top of the
    #: person (head and shoulders to half body) filling the frame.
    upper_body_probability: float = 0.0
    #: Visible part of the person's height in an upper-body crop, from the top.
    upper_body_fraction: tuple[float, float] = (0.25, 0.7)
    #: Share of crops that zoom into any part of the person (a torso, hands holding a
    #: phone), so that a person filling the frame with no face in it is still a person.
    close_up_probability: float = 0.0
    #: Window side of a close-up, as a fraction of the person's longer box side.
    close_up_fraction: tuple[float, float] = (0.25, 0.6)
    #: Share of examples with another person pasted in (see :func:`paste_person`).
    paste_probability: float = 0.0
    #: Height of the pasted person as a fraction of the frame.
    paste_height: tuple[float, float] = (0.3, 1.0)
    brightness: float = 0.2
    contrast: tuple[float, float] = (0.7, 1.3)
    saturation: tuple[float, float] = (0.6, 1.4)
    hue: float = 0.04
    blur_probability: float = 0.2
    noise_probability: float = 0.2
    grey_probability: float = 0.08


#: The recipe of model v2: the v1 geometry plus portrait framing and copy-paste, and
#: aspect changes up to 16:9 either way, since inference squashes every photo to a
#: square and video frames and phone photos are that far from square.
TRAINING_AUGMENT = AugmentConfig(
    aspect=(0.55, 1.8),
    upper_body_probability=0.3,
    paste_probability=0.35,
    paste_height=(0.2, 1.0),
)


def _uniform(low: float, high: float) -> tf.Tensor:
    return tf.random.uniform([], low, high)


def _log_uniform(low: float, high: float) -> tf.Tensor:
    return tf.exp(tf.random.uniform([], math.log(low), math.log(high)))


def _affine(
    scale: tf.Tensor,
    aspect: tf.Tensor,
    theta: tf.Tensor,
    flip: tf.Tensor,
    centre_in: tuple[tf.Tensor, tf.Tensor],
    centre_out: tuple[float | tf.Tensor, float | tf.Tensor],
) -> tf.Tensor:
    """Output->input pixel transform: ``scale`` input px per output px, rotation, flip.

    The output point ``centre_out`` lands on the input point ``centre_in``.
    """
    sx = scale * tf.sqrt(aspect) * tf.where(flip, -1.0, 1.0)
    sy = scale / tf.sqrt(aspect)
    cos, sin = tf.cos(theta), tf.sin(theta)
    a0, a1 = cos * sx, -sin * sy
    b0, b1 = sin * sx, cos * sy
    (cx, cy), (ox, oy) = centre_in, centre_out
    a2 = cx - a0 * ox - a1 * oy
    b2 = cy - b0 * ox - b1 * oy
    return tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])


def _person_box(mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """(found, top, bottom, left, right) of the mask's person pixels, in pixels.

    The box is meaningless when ``found`` is False (an empty mask).
    """
    rows = tf.cast(tf.where(tf.reduce_any(mask > 127, axis=1))[:, 0], tf.float32)
    cols = tf.cast(tf.where(tf.reduce_any(mask > 127, axis=0))[:, 0], tf.float32)
    return tf.size(rows) > 0, _first(rows), _last(rows), _first(cols), _last(cols)


def _first(indices: tf.Tensor) -> tf.Tensor:
    return tf.reduce_min(tf.concat([indices, [1e9]], 0))  # the sentinel covers "none"


def _last(indices: tf.Tensor) -> tf.Tensor:
    return tf.reduce_max(tf.concat([indices, [-1.0]], 0)) + 1


def _random_affine(
    in_size: int, out_size: int, cfg: AugmentConfig, mask: tf.Tensor | None = None
) -> tf.Tensor:
    """Output->input transform of a random crop: the v1 zoom, an upper-body framing or
    a close-up inside the person."""
    zoom = _log_uniform(*cfg.zoom)
    aspect = _log_uniform(*cfg.aspect)
    theta = _uniform(-1.0, 1.0) * cfg.rotation_degrees * math.pi / 180
    flip = tf.random.uniform([]) < 0.5
    # Zoomed in: the window may sit anywhere inside the frame; zoomed out: small jitter.
    slack = tf.maximum((1.0 - zoom) * in_size / 2, 0.08 * in_size)
    cx = in_size / 2 + _uniform(-1.0, 1.0) * slack
    cy = in_size / 2 + _uniform(-1.0, 1.0) * slack
    framing = cfg.upper_body_probability + cfg.close_up_probability
    if mask is not None and framing > 0:
        found, top, bottom, left, right = _person_box(mask)
        draw = tf.random.uniform([])
        upper = tf.logical_and(found, draw < cfg.upper_body_probability)
        close = tf.logical_and(found, tf.logical_not(upper) & (draw < framing))
        # Window side: the top part of the person's height, at least most of the width.
        side = tf.maximum(
            _uniform(*cfg.upper_body_fraction) * (bottom - top),
            _uniform(0.7, 1.1) * (right - left),
        )
        side = tf.clip_by_value(side, 0.12 * in_size, 1.2 * in_size)
        headroom = _uniform(-0.05, 0.2) * side
        zoom = tf.where(upper, side / in_size, zoom)
        cx = tf.where(upper, (left + right) / 2 + _uniform(-0.15, 0.15) * side, cx)
        cy = tf.where(upper, top - headroom + side / 2, cy)
        # Close-up: a small window centred on a random point of the person's box.
        near = _uniform(*cfg.close_up_fraction) * tf.maximum(bottom - top, right - left)
        near = tf.clip_by_value(near, 0.3 * in_size, 1.0 * in_size)  # at most ~3x upscaling
        zoom = tf.where(close, near / in_size, zoom)
        cx = tf.where(close, left + _uniform(0.2, 0.8) * (right - left), cx)
        cy = tf.where(close, top + _uniform(0.15, 0.85) * (bottom - top), cy)
    scale = zoom * in_size / out_size
    return _affine(scale, aspect, theta, flip, (cx, cy), (out_size / 2, out_size / 2))


def _warp(
    image: tf.Tensor, transform: tf.Tensor, out_size: int, fill_mode: str = "REFLECT"
) -> tf.Tensor:
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform[None],
        output_shape=tf.constant([out_size, out_size]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode=fill_mode,
    )[0]


def _gaussian_blur(image: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    radius = 3
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    k = tf.exp(-(x**2) / (2 * sigma**2))
    k = k / tf.reduce_sum(k)
    channels = image.shape[-1]
    kernel = tf.tile((k[:, None] * k[None, :])[:, :, None, None], [1, 1, channels, 1])
    return tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "SAME")[0]


def geometric(
    image: tf.Tensor, mask: tf.Tensor, out_size: int, cfg: AugmentConfig
) -> tuple[tf.Tensor, tf.Tensor]:
    """One random crop of photo and mask alike: RGB 0..255 float32, mask 0..1 (S, S, C).

    ``mask`` is (H, W) uint8, or (H, W, C) for several labels (every person first, then
    the main subject), all warped alike; the crop is framed on channel 0.
    """
    in_size = image.shape[0]
    masks = mask if len(mask.shape) == 3 else mask[..., None]
    transform = _random_affine(in_size, out_size, cfg, masks[..., 0])
    image = _warp(tf.cast(image, tf.float32), transform, out_size)
    mask = _warp(tf.cast(masks, tf.float32), transform, out_size)
    return image, mask / 255.0


def photometric(image: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    """Colour, blur and noise changes of an RGB 0..255 float32 photo."""
    image = image / 255.0
    if cfg.brightness > 0:
        image = tf.image.random_brightness(image, cfg.brightness)
    if cfg.contrast[0] < cfg.contrast[1]:
        image = tf.image.random_contrast(image, *cfg.contrast)
    if cfg.saturation[0] < cfg.saturation[1]:
        image = tf.image.random_saturation(image, *cfg.saturation)
    if cfg.hue > 0:
        image = tf.image.random_hue(image, cfg.hue)
    image = tf.clip_by_value(image, 0.0, 1.0)
    if tf.random.uniform([]) < cfg.grey_probability:
        image = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))
    if tf.random.uniform([]) < cfg.blur_probability:
        image = _gaussian_blur(image, tf.random.uniform([], 0.5, 1.6))
    if tf.random.uniform([]) < cfg.noise_probability:
        image = image + tf.random.normal(tf.shape(image), stddev=tf.random.uniform([], 0.01, 0.04))
    return tf.clip_by_value(image, 0.0, 1.0) * 255.0


def augment(
    image: tf.Tensor, mask: tf.Tensor, out_size: int, cfg: AugmentConfig
) -> tuple[tf.Tensor, tf.Tensor]:
    """Same geometry for photo and mask; photometric changes on the photo only."""
    image, mask = geometric(image, mask, out_size, cfg)
    return photometric(image, cfg), mask


#: Least height (fraction of the frame) of a pasted person cut off by the bottom of their
#: photo. Smaller pasted people (``paste_height`` below this) are whole figures with
#: their feet in view, as distant people are.
CUT_OFF_MIN_HEIGHT = 0.2


def paste_person(
    image: tf.Tensor,
    mask: tf.Tensor,
    person: tf.Tensor,
    person_mask: tf.Tensor,
    cfg: AugmentConfig,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Paste the person of another photo into a training crop (copy-paste augmentation).

    The pasted person stands at a random place and height, in front of whatever the
    crop shows, so people are seen next to furniture, bedding and clothes that are
    background. The label is the union: the crop's own people stay people where the
    pasted one does not hide them. ``image``/``mask`` are a crop (float, S x S);
    ``person``/``person_mask`` a cached photo and mask (uint8).
    """
    fg, alpha = _place_person(image.shape[0], person, person_mask[..., None], cfg)
    return alpha * fg + (1 - alpha) * image, alpha + (1 - alpha) * mask


#: A pasted subject at least this tall (visible share of the frame's height) is near
#: the camera, as the person a photo is of is.
SUBJECT_PASTE_MIN_HEIGHT = 0.5
#: ...and taller than the crop's own subject by this factor, so two people of one size
#: (a couple) never teach that one of them is a bystander.
SUBJECT_PASTE_TALLER = 1.1
#: A pasted person at most this share of the crop's subject's height is a passer-by:
#: clearly farther away than the subject.
PASSER_BY_MAX_SHARE = 0.6


def paste_person_with_subject(
    image: tf.Tensor,
    label: tf.Tensor,
    weight: tf.Tensor,
    person: tf.Tensor,
    person_mask: tf.Tensor,
    person_subject: tf.Tensor,
    cfg: AugmentConfig,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """:func:`paste_person` for (S, S, 2) labels (every person, the main subject).

    Channel 0 is the union, as there. Channel 1 (``person_subject`` is the pasted
    photo's own subject, uint8) and ``weight`` (of channel 1) follow who the picture
    is of now:

    - a crop with nobody in it: the pasted subject, weight 1;
    - a pasted subject at least :data:`SUBJECT_PASTE_MIN_HEIGHT` of the frame high and
      :data:`SUBJECT_PASTE_TALLER` times the crop's subject: it alone, weight 1 (the
      crop's people become bystanders behind it);
    - at most :data:`PASSER_BY_MAX_SHARE` of the crop's subject's height: a passer-by,
      so the crop's subject where the pasted person does not hide it, weight unchanged;
    - in between (no clear answer): the crop's subject, weight 0.
    """
    out_size = image.shape[0]
    masks = tf.stack([person_mask, person_subject], axis=-1)
    fg, alphas = _place_person(out_size, person, masks, cfg)
    alpha, pasted = alphas[..., :1], alphas[..., 1:]
    people, subject = label[..., :1], label[..., 1:]
    pasted_height, own_height = _visible_height(pasted), _visible_height(subject)
    nobody = tf.reduce_max(people) < 0.5
    large = (pasted_height >= SUBJECT_PASTE_MIN_HEIGHT) & (
        pasted_height >= SUBJECT_PASTE_TALLER * own_height
    )
    small = pasted_height <= PASSER_BY_MAX_SHARE * own_height
    takes_over = nobody | large
    subject = tf.where(takes_over, pasted, (1 - alpha) * subject)
    weight = tf.where(takes_over, 1.0, tf.where(small, weight, 0.0))
    label = tf.concat([alpha + (1 - alpha) * people, subject], axis=-1)
    return alpha * fg + (1 - alpha) * image, label, weight


def _visible_height(mask: tf.Tensor) -> tf.Tensor:
    """Rows spanned by an (S, S, 1) 0..1 mask's pixels above 0.5, as a share of S."""
    rows = tf.cast(tf.where(tf.reduce_any(mask[..., 0] > 0.5, axis=1))[:, 0], tf.float32)
    return tf.maximum(_last(rows) - _first(rows), 0.0) / mask.shape[0]


def _place_person(
    out_size: int, person: tf.Tensor, person_masks: tf.Tensor, cfg: AugmentConfig
) -> tuple[tf.Tensor, tf.Tensor]:
    """A cached photo's person at a random place and height in an ``out_size`` frame.

    ``person_masks`` is (H, W, C) uint8, channel 0 the person (it sets the placement);
    returns the warped photo and each channel's soft alpha (S, S, C), 0 where nothing
    was found to paste.
    """
    found, top, bottom, left, right = _person_box(person_masks[..., 0])
    # Feet near or below the bottom edge, anywhere across the frame; a person cut off
    # by the bottom of their photo is cut off by the bottom of this one too, and is
    # never small there: only someone near the camera is cut off by the frame.
    cut_off = bottom >= tf.cast(tf.shape(person_masks)[0], tf.float32) - 2
    height = _uniform(*cfg.paste_height)
    height = tf.where(cut_off, tf.maximum(height, CUT_OFF_MIN_HEIGHT), height) * out_size
    scale = (bottom - top) / height
    centre_in = ((left + right) / 2, (top + bottom) / 2)
    low = tf.where(cut_off, 1.0, 0.55)
    high = tf.where(height < CUT_OFF_MIN_HEIGHT * out_size, 1.0, 1.15)  # small: feet in view
    centre_out = (
        _uniform(0.1, 0.9) * out_size,
        (low + _uniform(0.0, 1.0) * (high - low)) * out_size - height / 2,
    )
    theta = _uniform(-1.0, 1.0) * 5 * math.pi / 180
    flip = tf.random.uniform([]) < 0.5
    transform = _affine(scale, _log_uniform(0.9, 1.1), theta, flip, centre_in, centre_out)
    fg = _warp(tf.cast(person, tf.float32), transform, out_size, "CONSTANT")
    alpha = _warp(tf.cast(person_masks, tf.float32), transform, out_size, "CONSTANT")
    alpha = _gaussian_blur(alpha / 255.0, tf.constant(0.7))  # no razor-sharp paste seam
    return fg, tf.where(found, alpha, tf.zeros_like(alpha))


def _stream(arrays: Sequence[np.ndarray], rng: np.random.Generator, shuffle: bool):
    """Aligned rows of a cache's arrays (photos, masks, ...) as tensors, reshuffled on
    every pass."""
    n = len(arrays[0])

    def generate():
        order = rng.permutation(n) if shuffle else np.arange(n)
        for i in order:
            yield tuple(np.asarray(a[i]) for a in arrays)

    return tf.data.Dataset.from_generator(
        generate,
        output_signature=tuple(tf.TensorSpec(a.shape[1:], tf.as_dtype(a.dtype)) for a in arrays),
    )


def _with_weight_plane(label: tf.Tensor, weight: tf.Tensor) -> tf.Tensor:
    """(S, S, 2) person and subject labels plus the subject weight as a third plane."""
    plane = tf.fill(tf.concat([tf.shape(label)[:2], [1]], 0), tf.cast(weight, tf.float32))
    labels = tf.concat([label, plane], axis=-1)
    assert labels.shape[-1] == SUBJECT_WEIGHT_CHANNEL + 1
    return labels


def make_dataset(
    images: np.ndarray,
    masks: np.ndarray,
    batch_size: int,
    out_size: int,
    training: bool,
    augment_config: AugmentConfig | None = None,
    seed: int | None = None,
    subjects: SubjectLabels | None = None,
) -> tf.data.Dataset:
    """Batches of (RGB 0..255 float32, mask 0..1 float32), shuffled and augmented in training.

    With ``subjects`` the labels are (S, S, 3), as in :func:`make_mixed_dataset`.
    """
    if training:
        return make_mixed_dataset(
            [(images, masks, 1.0)],
            batch_size,
            out_size,
            augment_config,
            seed=seed,
            subjects=None if subjects is None else [subjects],
        )

    def resize(mask: tf.Tensor) -> tf.Tensor:
        return tf.image.resize(tf.cast(mask[..., None], tf.float32) / 255.0, (out_size, out_size))

    def prepare(image: tf.Tensor, mask: tf.Tensor, *subject: tf.Tensor):
        x = tf.image.resize(tf.cast(image, tf.float32), (out_size, out_size), antialias=True)
        if not subject:
            return x, resize(mask)
        subject_mask, weight = subject
        return x, _with_weight_plane(tf.concat([resize(mask), resize(subject_mask)], -1), weight)

    arrays = [images, masks]
    if subjects is not None:
        arrays += [subjects.masks, subjects.weights]
    ds = _stream(arrays, np.random.default_rng(seed), shuffle=False).map(
        prepare, num_parallel_calls=tf.data.AUTOTUNE
    )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def make_mixed_dataset(
    sources: Sequence[tuple[np.ndarray, np.ndarray, float]],
    batch_size: int,
    out_size: int,
    augment_config: AugmentConfig | None = None,
    *,
    paste_pools: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    seed: int | None = None,
    subjects: Sequence[SubjectLabels] | None = None,
    paste_subjects: Sequence[np.ndarray] = (),
) -> tf.data.Dataset:
    """Endless augmented training batches drawn from several caches by their share.

    ``sources`` are (images, masks, share) caches of the same square size; each batch
    element comes from source k with probability share_k / sum(shares). People to
    paste (``cfg.paste_probability``) come from ``paste_pools`` (images, masks), each
    as often, by default the first source. A crop with no person in it (a background
    photo of :func:`read_backgrounds`) always gets one pasted, so that whatever touches
    a person there is learned as background.

    With ``subjects`` (one per source) each label is (S, S, 3): every person, the main
    subject, and the subject channel's weight as a constant plane
    (:data:`train.metrics.SUBJECT_WEIGHT_CHANNEL`); the geometry moves both masks alike
    and pasting decides the subject (:func:`paste_person_with_subject`), from
    ``paste_subjects``, the subject masks of each paste pool (default: the first
    source's).
    """
    cfg = augment_config or AugmentConfig()
    rng = np.random.default_rng(seed)
    sizes = {images.shape[1] for images, _, _ in sources}
    if len(sizes) != 1:
        raise ValueError(f"all sources must be cached at one size, got {sorted(sizes)}")
    with_subject = subjects is not None
    if with_subject and len(subjects) != len(sources):
        raise ValueError(f"{len(subjects)} subject labels for {len(sources)} sources")

    def crop(image, mask, *subject):
        if not subject:
            return geometric(image, mask, out_size, cfg)
        subject_mask, weight = subject
        return (*geometric(image, tf.stack([mask, subject_mask], -1), out_size, cfg), weight)

    streams = [
        _stream(
            [images, masks, subjects[k].masks, subjects[k].weights]
            if with_subject
            else [images, masks],
            rng,
            shuffle=True,
        )
        .repeat()
        .map(crop, num_parallel_calls=tf.data.AUTOTUNE)
        for k, (images, masks, _) in enumerate(sources)
    ]
    shares = [float(share) for _, _, share in sources]
    ds = (
        streams[0]
        if len(streams) == 1
        else tf.data.Dataset.sample_from_datasets(
            streams, weights=[s / sum(shares) for s in shares], seed=seed
        )
    )
    if cfg.paste_probability > 0 or paste_pools:
        pool_arrays = [list(pool) for pool in (paste_pools or [sources[0][:2]])]
        if with_subject:
            pool_subjects = paste_subjects or ([] if paste_pools else [subjects[0].masks])
            if len(pool_subjects) != len(pool_arrays):
                raise ValueError(f"{len(pool_subjects)} paste_subjects, {len(pool_arrays)} pools")
            pool_arrays = [[*a, s] for a, s in zip(pool_arrays, pool_subjects, strict=True)]
        pools = [_stream(arrays, rng, shuffle=True).repeat() for arrays in pool_arrays]
        people = (
            pools[0] if len(pools) == 1 else tf.data.Dataset.sample_from_datasets(pools, seed=seed)
        )
        paste = paste_person_with_subject if with_subject else paste_person

        def maybe_paste(crop, person):
            empty = tf.reduce_max(crop[1]) <= 0
            return tf.cond(
                empty | (tf.random.uniform([]) < cfg.paste_probability),
                lambda: paste(*crop, *person, cfg),
                lambda: crop,
            )

        ds = tf.data.Dataset.zip((ds, people)).map(maybe_paste, num_parallel_calls=tf.data.AUTOTUNE)
    if with_subject:
        ds = ds.map(
            lambda i, m, w: (photometric(i, cfg), _with_weight_plane(m, w)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        ds = ds.map(lambda i, m: (photometric(i, cfg), m), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
