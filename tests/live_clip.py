"""Fake-camera clips for the live view: the example's person in front of stripes, as Y4M.

Chromium plays a ``.y4m`` file as its camera with ``--use-fake-device-for-media-stream
--use-file-for-fake-video-capture=<file>`` (looping it at the file's frame rate). Used
by tests/test_live_browser.py and bench/live.py.

The person is cut from assets/example.png with the model the server will run, so with
the trained weights the clip is exactly "that person in front of high-contrast
stripes", and :func:`regions` says where each is. With :data:`CODE_BITS` > 0 each frame
also carries its index as black and white squares on the person's chest, which the
person keeps through the live view: the benchmark reads it back to measure latency.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "assets" / "example.png"
WIDTH, HEIGHT = 640, 480
STRIPE = 16  # px per stripe: black, white, black, ...
#: The frame-index code: this many squares in a row on the chest, most significant first.
CODE_BITS = 6
CODE_CELL = 16  # px per square
CODE_ORIGIN = (136, 264)  # (x, y) of the first square's top left corner in the frame
#: The squares' colours: a light and a dark shade of the suit, so that the network
#: keeps seeing the person there (black and white squares look like the stripes).
CODE_ON = (255, 190, 140)
CODE_OFF = (110, 30, 0)
#: Bands around the outline left out of both regions (the soft edge, either way).
MARGIN = 12


def stripes(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """(H, W, 3) uint8 vertical black and white stripes: the background to replace."""
    cols = (np.arange(width) // STRIPE) % 2 * 255
    return np.repeat(np.repeat(cols[None, :, None], height, axis=0), 3, axis=2).astype(np.uint8)


def person(segmenter: Any) -> tuple[np.ndarray, np.ndarray]:
    """The example photo at the frame's height, centred, and its (H, W) uint8 alpha."""
    photo = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    alpha = segmenter.predict(photo, subject="main").alpha
    side = HEIGHT
    left = (WIDTH - side) // 2
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    rgb[:, left : left + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    mask[:, left : left + side] = cv2.resize(alpha, (side, side), interpolation=cv2.INTER_AREA)
    return rgb, mask


def frame(rgb: np.ndarray, alpha: np.ndarray, index: int | None = None) -> np.ndarray:
    """The person over the stripes; with ``index``, its code stamped on the chest."""
    a = alpha.astype(np.float32)[:, :, None] / 255
    out = (rgb * a + stripes() * (1 - a) + 0.5).astype(np.uint8)
    if index is not None:
        x0, y0 = CODE_ORIGIN
        for bit in range(CODE_BITS):
            on = (index >> (CODE_BITS - 1 - bit)) & 1
            x = x0 + bit * CODE_CELL
            out[y0 : y0 + CODE_CELL, x : x + CODE_CELL] = CODE_ON if on else CODE_OFF
    return out


def read_code(picture: np.ndarray) -> int:
    """The frame index stamped by :func:`frame`, read from the squares' centres."""
    x0, y0 = CODE_ORIGIN
    c = CODE_CELL // 2
    value = 0
    for bit in range(CODE_BITS):
        patch = picture[y0 + c - 3 : y0 + c + 3, x0 + bit * CODE_CELL + c - 3 :][:, :6]
        value = value << 1 | int(patch.mean() > 110)
    return value


def regions(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (person, background) masks, each at least MARGIN px from the outline."""
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * MARGIN + 1, 2 * MARGIN + 1))
    inside = cv2.erode((alpha >= 128).astype(np.uint8), disc) > 0
    outside = cv2.erode((alpha < 128).astype(np.uint8), disc) > 0
    return inside, outside


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    """Write RGB frames as an uncompressed 4:2:0 Y4M file (what Chromium's fake camera reads)."""
    h, w = frames[0].shape[:2]
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for picture in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(picture, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def stripes_clip(
    path: Path, segmenter: Any, frames: int = 8, stamped: bool = False, fps: int = 30
) -> tuple[Path, np.ndarray, np.ndarray]:
    """Write the clip; return its path, its first frame (RGB) and the person's alpha."""
    rgb, alpha = person(segmenter)
    pictures = [frame(rgb, alpha, i % (1 << CODE_BITS) if stamped else None) for i in range(frames)]
    return write_y4m(path, pictures, fps), pictures[0], alpha
