"""Decode whatever photo a person hands us into RGB uint8, and encode results.

Everything a user can upload goes through :func:`load_image`, so this is where bad
input is turned into one :class:`~segmentation.errors.ImageError` with a readable
reason. Decoding is restricted to common photo formats (a web app should not run
Pillow's rarer plugins on untrusted bytes), the pixel count is checked from the header
before any pixel is decoded, and the whole image is decoded eagerly so truncation is
reported here rather than later.

No TensorFlow here: the app and the CLI can import this module cheaply.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from segmentation.errors import ImageError
from segmentation.png import encode_png_rle

pillow_heif.register_heif_opener()

__all__ = [
    "DEFAULT_PNG_COMPRESSION",
    "IMAGE_EXTENSIONS",
    "ImageError",
    "as_rgb",
    "encode_jpeg",
    "encode_png",
    "load_hint",
    "load_image",
]

#: File name endings the CLI (and an upload widget) treat as images.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".webp",
        ".bmp",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".hif",
        ".avif",
        ".gif",
    }
)

#: Pillow plugins allowed to parse untrusted bytes (JPEG covers camera MPO files).
_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "HEIF", "AVIF")
_SUPPORTED = "JPEG, PNG, WebP, HEIC/HEIF, AVIF, TIFF, BMP or GIF"

#: PNG compression for results: 0 stores, 1 is the fast setting below, 2..9 are zlib
#: levels with libpng's adaptive per-row filters. Measured on a 12 MP (4000x3000)
#: RGBA cutout (a person photo upscaled, sensor-like grain added; 43 % opaque, 40 %
#: fully transparent with RGB zeroed) on the 2-core dev machine, median of 5, idle
#: (under a training job's load in brackets, best of 2-3):
#:
#:   setting                                               time                size
#:   0  stored (cv2)                                       (0.42 s)            48.1 MB
#:   1  Up filter on every row, Z_RLE, zlib-ng, bands      0.13 s (0.21 s)     10.1 MB
#:      on 2 threads (segmentation.png; default)
#:      the same on one thread                             0.22 s
#:      the same recipe in cv2 (system zlib, one core)     0.35 s (0.28-0.35)  10.2 MB
#:      before: cv2 zlib level 1, adaptive filters         0.63 s (0.66-0.72)  10.2 MB
#:   2  cv2 zlib level 2, adaptive filters                 (0.70 s)             9.9 MB
#:
#: Choosing among five filters for every row costs as much as the deflate itself, and
#: the Up filter alone gives the same size here; Z_RLE only looks for runs of one
#: repeated byte, which is what Up-filtered flat areas and the zeroed transparency
#: mostly are. zlib-ng's Z_RLE is ~1.5x faster than zlib 1.2's, and writing the PNG
#: ourselves skips OpenCV's RGBA -> BGRA copy. The greyscale mask: 101 -> 19 ms, 0.85
#: -> 0.61 MB. Pillow 13 (zlib-ng inside, its own filter choice) took 0.64 s at
#: level 1 and 2.7 s for 8.3 MB at level 6; each level above 1 buys a few % of size
#: for a lot of time.
DEFAULT_PNG_COMPRESSION = 1


def load_image(
    source: str | os.PathLike[str] | bytes | BinaryIO,
    *,
    max_megapixels: float = 50.0,
    min_side: int = 1,
) -> np.ndarray:
    """Decode a photo into an (H, W, 3) uint8 RGB array, the way a person expects it.

    The EXIF orientation is applied (phones store portraits sideways), transparency is
    flattened onto white, 16-bit and CMYK images are converted, and an animation gives
    its first frame.

    Args:
        source: a file path, the file's bytes, or a binary file object (read from its
            current position, e.g. a Streamlit upload).
        max_megapixels: refuse larger images, judged from the header before decoding,
            so a small file claiming 40000x40000 pixels costs nothing.
        min_side: refuse images with a side shorter than this; by default any image
            with pixels works, down to 1 x 1 (the result has the photo's size).

    Raises:
        ImageError: the file is missing, empty, not an image, damaged or truncated,
            too large or too small; the message names the reason, not the file.
    """
    with _opened(source, max_megapixels, min_side) as (image, kind):
        return _decode(image, kind)


def load_hint(
    source: str | os.PathLike[str] | bytes | BinaryIO, *, max_megapixels: float = 50.0
) -> np.ndarray:
    """Decode a touch-up hint (a brush layer, :mod:`segmentation.touchup`) from a file.

    Unlike a photo, its transparency is what it says: an image with an alpha channel
    gives (H, W, 4) RGBA (opaque = marked), any other (H, W) grey (white = marked).

    Raises:
        ImageError: as :func:`load_image`.
    """
    with _opened(source, max_megapixels, 1) as (image, kind):
        _load_pixels(image, kind)
        if image.mode in _ALPHA_MODES or "transparency" in image.info:
            return np.asarray(image.convert("RGBA"))
        return np.asarray(image.convert("L"))


@contextlib.contextmanager
def _opened(
    source: str | os.PathLike[str] | bytes | BinaryIO, max_megapixels: float, min_side: int
) -> Iterator[tuple[Image.Image, str | None]]:
    """The image of a file (and the kind its first bytes say), its size checked from the
    header and a PNG's checksums verified, before any pixel is decoded."""
    fp = _open_source(source)
    try:
        head = fp.read(32)
        fp.seek(0)
        kind = _sniff(head)
        image = _open_pil(fp, kind)
        try:
            _check_size(image.size, max_megapixels, min_side)
            if image.format == "PNG":
                _verify_png(fp)
            yield image, kind
        finally:
            image.close()
    finally:
        fp.close()


def as_rgb(array: np.ndarray, *, max_megapixels: float = 50.0, min_side: int = 1) -> np.ndarray:
    """Check an in-memory image like :func:`load_image` checks a file; return RGB uint8.

    Accepts (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA (flattened onto white) uint8;
    returns a C-contiguous (H, W, 3) array (the input itself when it already is one).
    """
    a = np.asarray(array)
    if a.dtype != np.uint8:
        raise ImageError(f"an image array must hold uint8 pixels, not {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        _check_size((a.shape[1], a.shape[0]), max_megapixels, min_side)  # cv2 rejects empty
        a = _grey_to_rgb(a)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = flatten_on_white(a)
    elif not (a.ndim == 3 and a.shape[2] == 3):
        raise ImageError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), not {a.shape}")
    _check_size((a.shape[1], a.shape[0]), max_megapixels, min_side)
    return np.ascontiguousarray(a)


def encode_png(array: np.ndarray, compression: int = DEFAULT_PNG_COMPRESSION) -> bytes:
    """Encode grey (H, W), RGB (H, W, 3) or RGBA (H, W, 4) uint8/uint16 as PNG bytes.

    Lossless at every ``compression`` (see DEFAULT_PNG_COMPRESSION for what each
    costs). 8-bit images at the default go through :mod:`segmentation.png` (Up
    filter, Z_RLE, all cores); the rest through OpenCV, which wants BGR(A).
    """
    a = np.asarray(array)
    if a.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"encode_png needs uint8 or uint16 pixels, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise ValueError(f"encode_png needs (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    if not 0 <= compression <= 9:
        raise ValueError(f"PNG compression must be 0..9, got {compression}")
    if compression == 1 and a.dtype == np.uint8:
        return encode_png_rle(a)
    if a.ndim == 3:
        a = cv2.cvtColor(a, cv2.COLOR_RGB2BGR if a.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", a, _png_params(int(compression)))
    if not ok:
        raise ValueError(f"could not encode a {a.shape} image as PNG")
    return buf.tobytes()


def _png_params(compression: int) -> list[int]:
    """cv2.imencode parameters for a DEFAULT_PNG_COMPRESSION-style setting."""
    params = [cv2.IMWRITE_PNG_COMPRESSION, compression]
    if compression == 1:  # 16-bit images: the same recipe, on one core
        params += [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    return params


def encode_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    """Encode grey or RGB uint8 as JPEG bytes (for opaque results, e.g. composites)."""
    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        raise ValueError(f"encode_jpeg needs uint8 pixels, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 4:
        raise ValueError("JPEG cannot store transparency: composite onto a background first")
    if a.ndim == 3 and a.shape[2] == 3:
        a = cv2.cvtColor(a, cv2.COLOR_RGB2BGR)
    elif not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 1)):
        raise ValueError(f"encode_jpeg needs (H, W) or (H, W, 3), got {a.shape}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality}")
    ok, buf = cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"could not encode a {a.shape} image as JPEG")
    return buf.tobytes()


# --- decoding steps -------------------------------------------------------------------


def _open_source(source: str | os.PathLike[str] | bytes | BinaryIO) -> BinaryIO:
    """A seekable binary stream over the source; empty and missing files refused."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise ImageError("no such file")
        if path.is_dir():
            raise ImageError("is a folder, not an image file")
        try:
            if path.stat().st_size == 0:
                raise ImageError("the file is empty")
            return path.open("rb")
        except OSError as exc:
            raise ImageError(f"cannot be read ({exc.strerror or exc})") from exc
    elif hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, bytes | bytearray):
            raise TypeError("load_image needs a binary file object (opened with 'rb')")
        data = bytes(data)
    else:
        raise TypeError(f"load_image takes a path, bytes or a binary file, not {type(source)}")
    if not data:
        raise ImageError("the file is empty")
    return io.BytesIO(data)


def _sniff(head: bytes) -> str | None:
    """Name the format from magic bytes, to say 'damaged PNG' rather than 'not an image'."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if head.startswith(b"BM"):
        return "BMP"
    if head[4:8] == b"ftyp":
        return "AVIF" if head[8:12] in (b"avif", b"avis") else "HEIF"
    return None


def _open_pil(fp: BinaryIO, kind: str | None) -> Image.Image:
    """Parse the header only (Pillow decodes lazily)."""
    try:
        return Image.open(fp, formats=_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"too large: {_bomb_size(exc)}") from exc
    except UnidentifiedImageError as exc:
        if kind:
            raise ImageError(f"damaged {kind} file: its header cannot be read") from exc
        raise ImageError(f"not an image, or not a supported type ({_SUPPORTED})") from exc
    except Exception as exc:  # any plugin failure on untrusted bytes is a bad file
        raise ImageError(f"damaged or truncated {kind or 'image'} file ({_reason(exc)})") from exc


def _bomb_size(exc: Exception) -> str:
    """Pillow refused the header outright; say how many pixels it claimed."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "a huge size"
    return f"the header claims {pixels}, far beyond any photo"


def _check_size(size: tuple[int, int], max_megapixels: float, min_side: int) -> None:
    w, h = size
    if w * h > max_megapixels * 1e6:
        raise ImageError(
            f"too large: {w}x{h} pixels is {w * h / 1e6:.1f} megapixels, "
            f"the limit is {max_megapixels:g}"
        )
    if min(w, h) < min_side:
        raise ImageError(f"too small: {w}x{h} pixels, each side needs at least {min_side}")


def _verify_png(fp: BinaryIO) -> None:
    """Check every chunk's CRC: Pillow's decoder ignores a corrupt IDAT checksum."""
    fp.seek(0)
    try:
        with Image.open(fp, formats=("PNG",)) as png:
            png.verify()
    except Exception as exc:
        raise ImageError(f"damaged PNG file ({_reason(exc)})") from exc
    fp.seek(0)


def _load_pixels(image: Image.Image, kind: str | None) -> None:
    """Decode everything now (truncation surfaces here, not later); apply EXIF."""
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageError(f"too large: {_bomb_size(exc)}") from exc
    except Exception as exc:
        raise ImageError(f"damaged or truncated {kind or 'image'} file ({_reason(exc)})") from exc
    with contextlib.suppress(Exception):  # unreadable EXIF: keep the pixels as stored
        ImageOps.exif_transpose(image, in_place=True)


def _decode(image: Image.Image, kind: str | None) -> np.ndarray:
    _load_pixels(image, kind)
    try:
        return _to_rgb(image)
    except Exception as exc:
        raise ImageError(f"cannot convert this {image.mode} image to RGB ({exc})") from exc


def _to_rgb(image: Image.Image) -> np.ndarray:
    """RGB uint8 from any Pillow mode, scaling (not clipping) 16-bit and float data."""
    mode = image.mode
    if mode.startswith("I"):  # 16-bit grey PNG/TIFF: Pillow's convert("L") would clip
        grey = np.asarray(image).astype(np.float32) / 257.0
        return _grey_to_rgb(grey)
    if mode == "F":
        grey = np.nan_to_num(np.asarray(image, dtype=np.float32))
        return _grey_to_rgb(grey * 255.0 if grey.max(initial=0.0) <= 1.0 else grey)
    if mode in _ALPHA_MODES or "transparency" in image.info:
        return flatten_on_white(np.asarray(image.convert("RGBA")))
    return _rgb_in_bands(image)  # RGB, and CMYK, YCbCr, L, 1, P, LAB, HSV converted


#: Pillow modes with an alpha channel.
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")

#: Pixels per band of :func:`_rgb_in_bands`.
_BAND_PIXELS = 1 << 20


def _rgb_in_bands(image: Image.Image) -> np.ndarray:
    """Copy ``image`` into a new RGB uint8 array a band of rows at a time.

    np.array(image) goes through a full-size tobytes() copy, so a 50 MP photo briefly
    held Pillow's 4-byte pixels (200 MB) plus two 150 MB copies; bands keep only the
    array and ~4 MB beside Pillow's buffer, and are faster (12 MP: 136 -> 82 ms, cache
    friendly). Mode conversions to RGB are per pixel, so converting band by band gives
    the same result as converting the whole image.
    """
    width, height = image.size
    out = np.empty((height, width, 3), np.uint8)
    rows = max(1, _BAND_PIXELS // width)
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(height, top + rows)))
        if band.mode != "RGB":
            band = band.convert("RGB")
        out[top : top + rows] = np.asarray(band)
    return out


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    if grey.dtype != np.uint8:
        grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2RGB)


def flatten_on_white(rgba: np.ndarray) -> np.ndarray:
    """Composite onto white: transparent regions of a logo or a cutout become paper.

    Shared with compose, so a background image follows the same rule as a loaded photo.
    """
    alpha = rgba[:, :, 3:4].astype(np.uint16)
    premultiplied = (rgba[:, :, :3].astype(np.uint16) * alpha + 127) // 255
    return (premultiplied + (255 - alpha)).astype(np.uint8)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
