"""Turn a photo and its person mask into the pictures people want (small, pure functions).

``mask`` is always (H, W) alpha at the photo's resolution: float in [0, 1] or uint8
0..255. Every function returns a new uint8 array and never modifies its inputs.
Blending uses cv2.blendLinear (about 4x faster than NumPy on 12 MP).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from PIL import ImageColor

from segmentation.io import flatten_on_white
from segmentation.refine import estimate_foreground

__all__ = [
    "DEFAULT_OVERLAY_COLOR",
    "adjust_mask",
    "composite",
    "cutout",
    "overlay",
    "parse_color",
]

Color = tuple[int, int, int]
#: A cyan that rarely occurs on skin or clothes, so the tinted person stands out.
DEFAULT_OVERLAY_COLOR: Color = (0, 200, 255)
#: Portrait-mode blur: Gaussian sigma as a fraction of the photo's long side.
BLUR_SIGMA = 0.012


def parse_color(value: str) -> Color:
    """RGB of a colour name ('white', 'dodgerblue'), '#rgb', '#rrggbb' or 'rgb(r, g, b)'.

    Raises:
        ValueError: with a message saying what is accepted.
    """
    try:
        rgb = ImageColor.getrgb(value.strip())
    except (ValueError, AttributeError) as exc:
        raise ValueError(
            f"unknown colour {value!r}: use a name such as 'white' or 'dodgerblue', "
            "or a hex code such as '#1e90ff'"
        ) from exc
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]))


def cutout(
    image: np.ndarray,
    mask: np.ndarray,
    decontaminate: bool = True,
    *,
    foreground: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W, 4) RGBA: the person on transparency, alpha = round(mask * 255).

    With ``decontaminate`` the colours of semi-transparent edge pixels are replaced by
    estimated foreground colours, so no fringe of the old background shows wherever
    the cutout is placed. Fully transparent pixels get RGB 0: the removed background
    is really gone from the file (and the PNG is smaller).

    Args:
        foreground: a precomputed :func:`~segmentation.refine.estimate_foreground`
            result for this image and mask, to skip recomputing it.
    """
    img = _check_image(image)
    alpha = alpha8(mask, img.shape[:2])
    if foreground is not None:
        rgb = _check_image(foreground, "foreground", img.shape[:2])
    else:
        rgb = estimate_foreground(img, alpha) if decontaminate else img
    out = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
    out[:, :, 3] = alpha
    # Zero whole pixels where alpha is 0: one multiply over the pixels seen as uint32
    # (10x faster than boolean indexing of the RGB channels on 12 MP).
    pixels = out.view(np.uint32).reshape(alpha.shape)
    np.multiply(pixels, alpha != 0, out=pixels, casting="unsafe")
    return out


def overlay(
    image: np.ndarray,
    mask: np.ndarray,
    color: Color | str = DEFAULT_OVERLAY_COLOR,
    opacity: float = 0.5,
) -> np.ndarray:
    """(H, W, 3) RGB: the photo with the person tinted, to check the mask at a glance."""
    img = _check_image(image)
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    weight = _alpha_float(mask, img.shape[:2]) * np.float32(opacity)
    tint = np.empty_like(img)
    tint[:] = as_color(color)
    return cv2.blendLinear(img, tint, 1 - weight, weight)


def composite(
    image: np.ndarray,
    mask: np.ndarray,
    background: Color | str | np.ndarray,
    *,
    decontaminate: bool = True,
    foreground: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W, 3) RGB: the person placed on a new background.

    Args:
        background: an RGB tuple; a colour name, '#rrggbb' (see :func:`parse_color`);
            'blur' for a portrait-mode blur of the photo's own background; or an image
            (H', W', 3) uint8, scaled and centre-cropped to cover the photo.
        decontaminate: unmix the old background from edge colours (no halo).
        foreground: a precomputed foreground estimate, as for :func:`cutout`.
    """
    img = _check_image(image)
    # The 8-bit alpha a cutout PNG stores, so a composite equals that PNG placed on
    # the background, pixel for pixel.
    a8 = alpha8(mask, img.shape[:2])
    alpha = a8.astype(np.float32) * np.float32(1 / 255)
    if foreground is not None:
        fg = _check_image(foreground, "foreground", img.shape[:2])
    else:
        fg = estimate_foreground(img, a8) if decontaminate else img
    if isinstance(background, np.ndarray):
        bg = cover(background, img.shape[:2])
    elif isinstance(background, str) and background.strip().lower() == "blur":
        bg = _blurred_background(img, alpha)
    else:
        bg = np.empty_like(img)
        bg[:] = as_color(background)
    return cv2.blendLinear(fg, bg, alpha, 1 - alpha)


def adjust_mask(
    mask: np.ndarray, threshold: float | None = None, softness: float = 0.0
) -> np.ndarray:
    """The app's edge controls: a hard cut, a feathered edge, or both.

    Args:
        mask: (H, W) alpha in [0, 1] (or uint8).
        threshold: if given, pixels at or above it become 1 and the rest 0: crisp
            edges for graphics, and a way to drop faint blobs.
        softness: feather radius in pixels (0 keeps the edge): the mask is blurred,
            so the outline fades over about twice this width.

    Returns:
        (H, W) float32 alpha in [0, 1].
    """
    m = _alpha_float(mask, None)
    if threshold is not None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        m = (m >= threshold).astype(np.float32)
    if softness < 0:
        raise ValueError(f"softness must be >= 0, got {softness}")
    if softness > 0:
        # Stack blur: a Gaussian look at a cost independent of the radius.
        k = 2 * max(1, round(softness)) + 1
        m = np.clip(cv2.stackBlur(m, (k, k)), 0.0, 1.0)
    return np.ascontiguousarray(m, dtype=np.float32)


# --- helpers --------------------------------------------------------------------------


def as_color(color: Color | Sequence[int] | str) -> Color:
    """An (r, g, b) colour from a name, '#rrggbb' or three values 0..255 (video fills
    one frame with it once a clip, rather than every frame)."""
    if isinstance(color, str):
        return parse_color(color)
    values = tuple(int(c) for c in color)
    if len(values) != 3 or not all(0 <= c <= 255 for c in values):
        raise ValueError(f"a colour needs three values 0..255, got {color!r}")
    return values  # type: ignore[return-value]


def _check_image(
    image: np.ndarray, name: str = "image", shape: tuple[int, ...] | None = None
) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"{name} must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
    if shape is not None and img.shape[:2] != shape:
        raise ValueError(f"{name} must be {shape}, got {img.shape[:2]}")
    return img


def _alpha_float(mask: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2 or (shape is not None and m.shape != shape):
        raise ValueError(f"mask must be (H, W) = {shape}, got {m.shape}")
    if m.dtype == np.uint8:
        return m.astype(np.float32) * np.float32(1 / 255)
    return np.clip(m.astype(np.float32), 0.0, 1.0)


def alpha8(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(H, W) uint8 alpha, 255 = person, of a float or uint8 mask: what PNGs and video hold."""
    m = np.asarray(mask)
    if m.dtype == np.uint8:
        if m.shape != shape:
            raise ValueError(f"mask must be (H, W) = {shape}, got {m.shape}")
        return m
    # convertScaleAbs rounds and saturates like np.rint, 5x faster; the clip keeps
    # negative values from being mirrored by its abs().
    return cv2.convertScaleAbs(_alpha_float(m, shape), alpha=255)


def cover(background: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Scale the background to cover the photo, keeping its aspect, and crop the centre.

    Public because a video scales its background once a clip, not once a frame.
    """
    bg = np.asarray(background)
    if bg.dtype != np.uint8 or bg.ndim not in (2, 3):
        raise ValueError(f"a background image must be uint8 (H, W[, C]), got {bg.shape}")
    if bg.ndim == 2:
        bg = cv2.cvtColor(bg, cv2.COLOR_GRAY2RGB)
    elif bg.shape[2] == 4:
        bg = flatten_on_white(bg)  # the same rule as for loaded images
    elif bg.shape[2] != 3:
        raise ValueError(f"a background image needs 1, 3 or 4 channels, got {bg.shape}")
    H, W = shape
    bh, bw = bg.shape[:2]
    scale = max(W / bw, H / bh)
    nw, nh = max(W, round(bw * scale)), max(H, round(bh * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(bg, (nw, nh), interpolation=interpolation)
    y0, x0 = (nh - H) // 2, (nw - W) // 2
    return np.ascontiguousarray(resized[y0 : y0 + H, x0 : x0 + W])


def _blurred_background(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Portrait mode: blur only the background, so the person does not smear into it.

    A normalised convolution (blur of I·(1-a) over blur of 1-a) fills the person's
    place with nearby background colours. The blur is computed on a copy ~512 px
    long, where a large sigma is cheap, and scaled back up (it is smooth anyway).
    """
    H, W = image.shape[:2]
    f = max(1, round(max(H, W) / 512))
    small = (W // f or 1, H // f or 1)
    img = cv2.resize(image, small, interpolation=cv2.INTER_AREA).astype(np.float32)
    weight = 1 - cv2.resize(alpha, small, interpolation=cv2.INTER_AREA)
    sigma = BLUR_SIGMA * max(H, W) / f
    blurred = cv2.GaussianBlur(img * weight[:, :, None], (0, 0), sigma)
    norm = cv2.GaussianBlur(weight, (0, 0), sigma)
    plain = cv2.GaussianBlur(img, (0, 0), sigma)  # where no background is near at all
    ok = norm > 1e-3
    out = np.where(ok[:, :, None], blurred / np.maximum(norm, 1e-3)[:, :, None], plain)
    out = cv2.resize(np.clip(out, 0, 255), (W, H), interpolation=cv2.INTER_LINEAR)
    return np.rint(out).astype(np.uint8)
