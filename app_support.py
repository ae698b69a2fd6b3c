"""Pure helpers behind the Streamlit app (app.py): naming, previews, exports, ZIP, errors.

They live outside app.py so tests can call them without a Streamlit session, and outside
``segmentation/`` because they are about presenting results, not computing them.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import cv2
import numpy as np

from segmentation import ImageError, SegmentationResult
from segmentation.compose import adjust_mask
from segmentation.filenames import MAX_NAME_BYTES, clip_bytes
from segmentation.io import IMAGE_EXTENSIONS, encode_jpeg

log = logging.getLogger(__name__)

#: Extensions the uploader accepts: exactly what segmentation.load_image can decode.
UPLOAD_TYPES: tuple[str, ...] = tuple(sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS))
#: Longest side of the images shown on the page: a 12 MP photo sent at full size makes
#: every rerun push tens of megabytes to the browser. Downloads stay at full resolution.
PREVIEW_MAX_SIDE = 1200
JPEG_QUALITY = 92
#: Longest stem of a download name, in UTF-8 bytes: room for "-background.jpg" and the
#: "-2" that keeps ZIP entries apart, within a file system's 255.
MAX_STEM_BYTES = MAX_NAME_BYTES - 40
#: The downloads for each photo: output-name suffix -> (extension, MIME type, button label).
EXPORTS: dict[str, tuple[str, str, str]] = {
    "nobg": ("png", "image/png", "Transparent PNG"),
    "mask": ("png", "image/png", "Mask PNG"),
    "background": ("jpg", "image/jpeg", "JPEG on the background"),
}
#: Message for failures we did not foresee; the details go to the server log, not the page.
UNEXPECTED_ERROR = (
    "could not be processed because of an unexpected error (details are in the server log)"
)


#: What the app keeps per photo: segmentation's own result (original, mask, timings).
#: The name is what process_photo's callers build (tests construct it positionally).
Prediction = SegmentationResult


@dataclass(frozen=True)
class PhotoOutcome:
    """One uploaded file after processing: a prediction, or a message saying why not."""

    name: str
    digest: str
    prediction: Prediction | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the photo has a result to show."""
        return self.prediction is not None


@dataclass(frozen=True)
class Exports:
    """The downloadable files for one photo."""

    png: bytes  # RGBA cutout at the original resolution
    mask_png: bytes  # 8-bit greyscale mask
    jpeg: bytes  # cutout on the chosen background (white when transparent was chosen)


def file_digest(data: bytes) -> str:
    """Content hash that keys the per-photo cache, so renaming a file does not re-run it."""
    return hashlib.sha256(data).hexdigest()


def process_photo(
    name: str, data: bytes, predict: Callable[[str, bytes], Prediction]
) -> PhotoOutcome:
    """Run ``predict(digest, data)`` for one file, turning every failure into a message.

    A bad file must not stop the batch nor show a traceback: ImageError carries a
    human reason; anything else is logged with its traceback and reported generically.
    """
    digest = file_digest(data)
    if not data:
        return PhotoOutcome(name, digest, error=f"{name}: the file is empty")
    try:
        return PhotoOutcome(name, digest, prediction=predict(digest, data))
    except ImageError as exc:
        return PhotoOutcome(name, digest, error=f"{name}: {exc}")
    except MemoryError:
        return PhotoOutcome(name, digest, error=f"{name}: the photo is too large for this server")
    except Exception:
        log.exception("processing %s failed", name)
        return PhotoOutcome(name, digest, error=f"{name}: {UNEXPECTED_ERROR}")


def safe_stem(filename: str) -> str:
    """File stem without directories or characters that break downloads or ZIP entries.

    Letters of every script stay (NFC, as macOS's decomposed names become); the stem is
    cut to MAX_STEM_BYTES so every download and ZIP entry fits a file system's 255 bytes.
    """
    stem = PurePath(unicodedata.normalize("NFC", filename).replace("\\", "/")).stem
    stem = re.sub(r"[^\w.-]+", "_", stem, flags=re.UNICODE).strip("._")
    return clip_bytes(stem, MAX_STEM_BYTES).rstrip("._") or "photo"


def output_name(filename: str, suffix: str, ext: str) -> str:
    """``photo.jpg``, ``nobg``, ``png`` -> ``photo-nobg.png``."""
    return f"{safe_stem(filename)}-{suffix}.{ext}"


def dedupe_names(names: Sequence[str]) -> list[str]:
    """Make names unique (``a.png``, ``a-2.png``) so ZIP entries never overwrite each other."""
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate = name
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        n = 2
        while candidate in seen:
            candidate = f"{stem}-{n}.{ext}" if dot else f"{stem}-{n}"
            n += 1
        seen.add(candidate)
        out.append(candidate)
    return out


def build_zip(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """ZIP of (name, data) pairs; PNG and JPEG are compressed already, so store them as is."""
    entries = list(entries)
    names = dedupe_names([name for name, _ in entries])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, (_, data) in zip(names, entries, strict=True):
            archive.writestr(name, data)
    return buffer.getvalue()


def describe_size(image: np.ndarray) -> str:
    """``4000 × 3000 px (12.0 MP)``."""
    height, width = image.shape[:2]
    return f"{width} × {height} px ({width * height / 1e6:.1f} MP)"


def describe_timings(timings: dict[str, float]) -> str:
    """Total processing time with its parts, e.g. ``1.42 s (decode 0.20 s, network 0.90 s, …)``."""
    total = sum(timings.values())
    parts = ", ".join(f"{key} {value:.2f} s" for key, value in timings.items())
    return f"{total:.2f} s ({parts})" if parts else f"{total:.2f} s"


def fit_preview(image: np.ndarray, max_side: int = PREVIEW_MAX_SIDE) -> np.ndarray:
    """Shrink (never enlarge) so the longest side is at most ``max_side``; keeps dtype."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def checkerboard(height: int, width: int, cell: int = 12) -> np.ndarray:
    """Grey checkerboard (HxWx3 uint8), the usual way to show that pixels are transparent."""
    rows = (np.arange(height) // cell)[:, None]
    cols = (np.arange(width) // cell)[None, :]
    board = np.where((rows + cols) % 2 == 0, 235, 200).astype(np.uint8)
    return np.repeat(board[:, :, None], 3, axis=2)


def over_checkerboard(rgba: np.ndarray) -> np.ndarray:
    """Flatten an RGBA image onto a checkerboard for display."""
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    board = checkerboard(*rgba.shape[:2]).astype(np.float32)
    out = rgba[:, :, :3].astype(np.float32) * alpha + board * (1.0 - alpha)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def final_mask(mask: np.ndarray, hard_edges: bool, threshold: float, softness: float) -> np.ndarray:
    """The mask after the sidebar's edge controls (threshold only when hard edges are on)."""
    if not hard_edges and softness <= 0:
        return mask
    return adjust_mask(mask, threshold=threshold if hard_edges else None, softness=softness)


def export_file(kind: str, original: np.ndarray, mask: np.ndarray, background: Any) -> bytes:
    """One download (a key of EXPORTS) at the photo's own resolution, as the CLI writes it.

    ``background`` is None for transparent (the JPEG then goes on white, since JPEG has
    no alpha), else anything ``compose.composite`` accepts.
    """
    result = SegmentationResult(original, mask)
    if kind == "nobg":
        return result.cutout_png()
    if kind == "mask":
        return result.mask_png()
    if kind == "background":
        flat = result.composite("white" if background is None else background)
        return encode_jpeg(flat, JPEG_QUALITY)
    raise ValueError(f"unknown export {kind!r}; expected one of {sorted(EXPORTS)}")


def make_exports(original: np.ndarray, mask: np.ndarray, background: Any) -> Exports:
    """All three downloads at once; one SegmentationResult shares the foreground estimate."""
    result = SegmentationResult(original, mask)
    flat = result.composite("white" if background is None else background)
    return Exports(
        png=result.cutout_png(),
        mask_png=result.mask_png(),
        jpeg=encode_jpeg(flat, JPEG_QUALITY),
    )


# --- video ------------------------------------------------------------------------------

#: Video uploads the app takes (the CLI takes more: MKV, AVI, GIF).
VIDEO_UPLOAD_TYPES: tuple[str, ...] = ("mp4", "m4v", "mov", "webm")
#: What one clip may be in the app: a 2-core server renders ~10-20 frames/s at 720p,
#: so a 60 s 1080p clip already takes a few minutes. The CLI's limits are larger.
APP_VIDEO_MAX_SECONDS = 60.0
APP_VIDEO_MAX_MEGAPIXELS = 2.1  # 1920 x 1080
#: Output format -> (extension, MIME type, download label).
VIDEO_EXPORTS: dict[str, tuple[str, str, str]] = {
    "webm": ("webm", "video/webm", "Transparent WebM"),
    "mp4": ("mp4", "video/mp4", "MP4 on the background"),
}


def describe_clip(info: Any) -> str:
    """``1280 × 720 px · 30.0 frames/s · 12.4 s · audio`` for a VideoInfo."""
    parts = [
        f"{info.width} × {info.height} px",
        f"{info.fps:.1f} frames/s",
        f"{info.duration:.1f} s",
    ]
    parts.append(f"audio ({info.audio})" if info.audio else "no audio")
    return " · ".join(parts)


def describe_progress(done: int, total: int, elapsed: float) -> str:
    """``Rendering frame 40 of 120 · 12.3 frames/s · about 7 s left``."""
    text = f"Rendering frame {done} of {total}"
    if done and elapsed > 0:
        rate = done / elapsed
        left = max(0.0, (total - done) / rate)
        text += f" · {rate:.1f} frames/s · about {left:.0f} s left"
    return text
