"""Dataset checks, one-time decode cache and the tf.data input pipeline.

A data folder holds ``images/<name>.jpg``, ``masks/<name>.png`` (255 = person) and one
``<split>.txt`` per split listing names, as ``../shared/data/people`` does.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class DatasetError(ValueError):
    """The data folder does not have the expected layout; the message names the file."""


@dataclass(frozen=True)
class Sample:
    name: str
    image: Path
    mask: Path


def read_split(data_dir: str | Path, split: str) -> list[Sample]:
    """List a split's photo/mask pairs, checking every pair exists and sizes match."""
    data_dir = Path(data_dir)
    listing = data_dir / f"{split}.txt"
    if not listing.is_file():
        raise DatasetError(f"{listing}: split file not found")
    names = [n.strip() for n in listing.read_text().splitlines() if n.strip()]
    if not names:
        raise DatasetError(f"{listing}: lists no images")
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


def _find_image(images_dir: Path, name: str) -> Path:
    for suffix in IMAGE_SUFFIXES:
        path = images_dir / f"{name}{suffix}"
        if path.is_file():
            return path
    raise DatasetError(f"{images_dir / name}.*: image missing for listed name {name!r}")


def load_pair(sample: Sample, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pair, squashed to size x size (inference squashes the same way)."""
    image = np.asarray(Image.open(sample.image).convert("RGB"))
    mask = np.asarray(Image.open(sample.mask).convert("L"))
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)
    return image, mask


def build_cache(
    samples: list[Sample], size: int, cache_dir: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """Decode and resize every pair once into .npy files, reused by later runs."""
    key = hashlib.sha1(
        "\n".join(f"{s.image}:{s.image.stat().st_mtime_ns}" for s in samples).encode()
    ).hexdigest()[:12]
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


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random geometric and photometric changes applied in training.

    A range whose ends are equal (or a zero amount or probability) switches that step off.
    """

    zoom: tuple[float, float] = (0.55, 1.5)  # visible fraction of the frame; >1 zooms out
    aspect: tuple[float, float] = (0.8, 1.25)
    rotation_degrees: float = 12.0
    brightness: float = 0.2
    contrast: tuple[float, float] = (0.7, 1.3)
    saturation: tuple[float, float] = (0.6, 1.4)
    hue: float = 0.04
    blur_probability: float = 0.2
    noise_probability: float = 0.2
    grey_probability: float = 0.08


def _random_affine(in_size: int, out_size: int, cfg: AugmentConfig) -> tf.Tensor:
    """Output->input pixel transform: zoom, aspect, rotation, flip and shift in one matrix."""
    zoom = tf.exp(tf.random.uniform([], math.log(cfg.zoom[0]), math.log(cfg.zoom[1])))
    aspect = tf.exp(tf.random.uniform([], math.log(cfg.aspect[0]), math.log(cfg.aspect[1])))
    scale = zoom * in_size / out_size
    sx = scale * tf.sqrt(aspect) * tf.where(tf.random.uniform([]) < 0.5, -1.0, 1.0)
    sy = scale / tf.sqrt(aspect)
    theta = tf.random.uniform([], -1.0, 1.0) * cfg.rotation_degrees * math.pi / 180
    cos, sin = tf.cos(theta), tf.sin(theta)
    a0, a1 = cos * sx, -sin * sy
    b0, b1 = sin * sx, cos * sy
    # Zoomed in: the window may sit anywhere inside the frame; zoomed out: small jitter.
    slack = tf.maximum((1.0 - zoom) * in_size / 2, 0.08 * in_size)
    cx = in_size / 2 + tf.random.uniform([], -1.0, 1.0) * slack
    cy = in_size / 2 + tf.random.uniform([], -1.0, 1.0) * slack
    c_out = out_size / 2
    a2 = cx - a0 * c_out - a1 * c_out
    b2 = cy - b0 * c_out - b1 * c_out
    return tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])


def _warp(image: tf.Tensor, transform: tf.Tensor, out_size: int) -> tf.Tensor:
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform[None],
        output_shape=tf.constant([out_size, out_size]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )[0]


def _gaussian_blur(image: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    radius = 3
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    k = tf.exp(-(x**2) / (2 * sigma**2))
    k = k / tf.reduce_sum(k)
    kernel = tf.tile((k[:, None] * k[None, :])[:, :, None, None], [1, 1, 3, 1])
    return tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "SAME")[0]


def augment(
    image: tf.Tensor, mask: tf.Tensor, out_size: int, cfg: AugmentConfig
) -> tuple[tf.Tensor, tf.Tensor]:
    """Same geometry for photo and mask; photometric changes on the photo only."""
    in_size = image.shape[0]
    transform = _random_affine(in_size, out_size, cfg)
    image = _warp(tf.cast(image, tf.float32), transform, out_size)
    mask = _warp(tf.cast(mask[..., None], tf.float32), transform, out_size)

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
    image = tf.clip_by_value(image, 0.0, 1.0) * 255.0
    return image, mask / 255.0


def make_dataset(
    images: np.ndarray,
    masks: np.ndarray,
    batch_size: int,
    out_size: int,
    training: bool,
    augment_config: AugmentConfig | None = None,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of (RGB 0..255 float32, mask 0..1 float32), shuffled and augmented in training."""
    n, in_size = len(images), images.shape[1]
    cfg = augment_config or AugmentConfig()
    rng = np.random.default_rng(seed)

    def generate():
        order = rng.permutation(n) if training else np.arange(n)
        for i in order:
            yield np.asarray(images[i]), np.asarray(masks[i])

    ds = tf.data.Dataset.from_generator(
        generate,
        output_signature=(
            tf.TensorSpec((in_size, in_size, 3), tf.uint8),
            tf.TensorSpec((in_size, in_size), tf.uint8),
        ),
    )
    if training:
        ds = ds.repeat().map(
            lambda i, m: augment(i, m, out_size, cfg), num_parallel_calls=tf.data.AUTOTUNE
        )
    else:
        ds = ds.map(
            lambda i, m: (
                tf.image.resize(tf.cast(i, tf.float32), (out_size, out_size), antialias=True),
                tf.image.resize(tf.cast(m[..., None], tf.float32) / 255.0, (out_size, out_size)),
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)
