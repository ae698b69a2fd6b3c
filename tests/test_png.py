"""The multi-threaded PNG writer: lossless, valid for Pillow and OpenCV, any band split."""

from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

import segmentation.png
from segmentation.png import _adler32_combine, encode_png_rle


def decoded(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    image.load()  # checks the zlib stream's checksum and every chunk CRC
    return np.asarray(image)


def test_adler32_combine_matches_zlib() -> None:
    rng = np.random.default_rng(0)
    for n1, n2 in [(0, 5), (5, 0), (1, 1), (70000, 123457), (3, 65521 * 3 + 7)]:
        a, b = rng.bytes(n1), rng.bytes(n2)
        assert _adler32_combine(zlib.adler32(a), zlib.adler32(b), n2) == zlib.adler32(a + b)


@pytest.mark.parametrize(
    "shape", [(1, 1), (8, 8), (5, 9, 1), (17, 13, 3), (31, 45, 4), (1, 700, 4)]
)
def test_round_trips(shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(len(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = encode_png_rle(array)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    np.testing.assert_array_equal(decoded(data), array.reshape(decoded(data).shape))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_many_bands_give_the_same_file_on_any_number_of_threads(
    monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    """Bands of a few rows: the zlib stream is stitched from pieces, checksum combined."""
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (103, 37, 4), dtype=np.uint8)
    rgba[20:60, :, 3] = 0
    rgba[20:60, :, :3] = 0  # transparent rows: long runs, as in a cutout
    monkeypatch.setattr(segmentation.png, "_BAND_BYTES", 37 * 4 * 10)
    data = encode_png_rle(rgba, threads=threads)
    assert data == encode_png_rle(rgba, threads=1)
    np.testing.assert_array_equal(decoded(data), rgba)
    bgra = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA), rgba)


def test_refuses_what_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_png_rle(np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match="uint8"):
        encode_png_rle(np.zeros((4, 4, 2), np.uint8))
