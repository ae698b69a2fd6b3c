"""Property tests of load-and-predict: whatever arrives, only ImageError escapes.

Hand-picked bad files (tests/corpus.py) cover the cases we thought of; these cover the
ones we did not: random bytes, valid files with bytes flipped or cut off, and real
images of random size, mode and format. A valid image must always give a mask of its
own size with values in [0, 1]. Examples are few (the machine is slow) and there is no
deadline because the first prediction traces the network.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from segmentation import ImageError

#: Smallest side load_image accepts (its ``min_side`` default): any image with pixels.
MIN_SIDE = 1

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis folder in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: (format, mode) pairs Pillow can write; together they cover every decoding branch.
FORMAT_MODES: list[tuple[str, str]] = [
    ("PNG", "RGB"),
    ("PNG", "RGBA"),
    ("PNG", "L"),
    ("PNG", "LA"),
    ("PNG", "P"),
    ("PNG", "1"),
    ("PNG", "I;16"),
    ("JPEG", "RGB"),
    ("JPEG", "L"),
    ("JPEG", "CMYK"),
    ("GIF", "P"),
    ("WEBP", "RGB"),
    ("WEBP", "RGBA"),
    ("BMP", "RGB"),
    ("BMP", "L"),
    ("TIFF", "RGB"),
    ("TIFF", "CMYK"),
    ("TIFF", "I;16"),
    ("TIFF", "F"),
    ("HEIF", "RGB"),
]


def make_image(mode: str, width: int, height: int, seed: int) -> Image.Image:
    """Random pixels in ``mode`` (noise is the hardest case for every codec)."""
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "F":
        return Image.fromarray(rng.random((height, width), dtype=np.float32))
    if mode == "1":
        return Image.fromarray(rng.integers(0, 2, (height, width), dtype=np.uint8) * 255).convert(
            "1"
        )
    rgba = Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8))
    if mode == "P":
        return rgba.convert("RGB").quantize(colors=int(rng.integers(2, 256)))
    return rgba.convert(mode)


def encode(image: Image.Image, fmt: str) -> bytes:
    """Image -> file bytes; None-safe registration of the HEIF writer."""
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def assert_valid_result(result, width: int, height: int) -> None:
    """A result for a (width x height) photo: full-size RGB original and a [0, 1] mask."""
    assert result.original.shape == (height, width, 3)
    assert result.original.dtype == np.uint8
    assert result.mask.shape == (height, width)
    assert result.mask.dtype == np.float32
    assert np.isfinite(result.mask).all()
    assert float(result.mask.min()) >= 0.0 and float(result.mask.max()) <= 1.0


def predict_or_image_error(segmenter, data: bytes, refine: bool = True):
    """predict(data), with ImageError (and only it) turned into None."""
    try:
        return segmenter.predict(data, refine=refine)
    except ImageError as exc:
        assert str(exc).strip(), "an ImageError must say why"
        return None


@SETTINGS
@given(
    fmt_mode=st.sampled_from(FORMAT_MODES),
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    refine=st.booleans(),
)
def test_random_images_give_a_full_size_mask(
    tiny_segmenter, fmt_mode: tuple[str, str], width: int, height: int, seed: int, refine: bool
) -> None:
    """Any real image of any mode, down to 1 x 1: a mask of its size in [0, 1]."""
    fmt, mode = fmt_mode
    try:
        data = encode(make_image(mode, width, height, seed), fmt)
    except (OSError, ValueError):
        assume(False)  # the writer refused (e.g. a codec's minimum size): nothing to test
    if min(width, height) < MIN_SIDE:
        with pytest.raises(ImageError, match="too small"):
            tiny_segmenter.predict(data, refine=refine)
        return
    result = tiny_segmenter.predict(data, refine=refine)
    assert_valid_result(result, width, height)


@settings(SETTINGS, max_examples=300)
@given(data=st.binary(max_size=4096))
def test_random_bytes_raise_only_image_error(tiny_segmenter, data: bytes) -> None:
    """Random bytes are refused with ImageError (anything else escaping fails the test)."""
    result = predict_or_image_error(tiny_segmenter, data)
    if result is not None:  # astronomically unlikely, but then it must be a valid result
        height, width = result.original.shape[:2]
        assert_valid_result(result, width, height)


@settings(SETTINGS, max_examples=200)
@given(
    fmt_mode=st.sampled_from(FORMAT_MODES),
    seed=st.integers(0, 2**32 - 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8),
    keep=st.floats(0.05, 1.0),
)
def test_damaged_files_raise_only_image_error(
    tiny_segmenter,
    fmt_mode: tuple[str, str],
    seed: int,
    flips: list[tuple[float, int]],
    keep: float,
) -> None:
    """Valid files with bytes overwritten and the end cut off: ImageError or a valid result.

    This reaches past the magic-number check into every decoder's error paths, which
    random bytes never do.
    """
    fmt, mode = fmt_mode
    data = bytearray(encode(make_image(mode, 48, 40, seed), fmt))
    for where, value in flips:
        data[min(int(where * len(data)), len(data) - 1)] = value
    data = bytes(data[: max(1, int(keep * len(data)))])
    result = predict_or_image_error(tiny_segmenter, data, refine=False)
    if result is not None:
        height, width = result.original.shape[:2]
        assert_valid_result(result, width, height)


@SETTINGS
@given(
    width=st.integers(MIN_SIDE, 300),
    height=st.integers(MIN_SIDE, 300),
    seed=st.integers(0, 2**32 - 1),
)
def test_rgb_arrays_give_a_full_size_mask(
    tiny_segmenter, width: int, height: int, seed: int
) -> None:
    """Decoded RGB arrays (the API's other input) of any size: a mask of that size."""
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    result = tiny_segmenter.predict(rgb)
    assert_valid_result(result, width, height)
    assert np.array_equal(result.original, rgb)


@SETTINGS
@given(
    shape=st.lists(st.integers(0, 40), min_size=0, max_size=4),
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int64, np.bool_]),
    seed=st.integers(0, 2**32 - 1),
)
@example(shape=[0, 0], dtype=np.uint8, seed=0)  # empty arrays: edge cases worth pinning
@example(shape=[0, 12, 1], dtype=np.uint8, seed=0)
@example(shape=[12, 0, 4], dtype=np.uint8, seed=0)
@example(shape=[1, 1], dtype=np.uint8, seed=0)  # the smallest usable image
@example(shape=[2, 3, 3], dtype=np.uint8, seed=0)
def test_any_array_gives_a_mask_or_image_error(
    tiny_segmenter, shape: list[int], dtype: type, seed: int
) -> None:
    """Arrays of any shape and dtype: a full-size mask for (H, W[, 1|3|4]) uint8 with at
    least one pixel, ImageError for everything else (never IndexError or a crash)."""
    rng = np.random.default_rng(seed)
    array = np.asarray((rng.random(shape) * 255).astype(dtype))
    usable = (
        array.dtype == np.uint8
        and array.ndim in (2, 3)
        and (array.ndim == 2 or array.shape[2] in (1, 3, 4))
        and min(array.shape[:2]) >= MIN_SIDE
    )
    if not usable:
        with pytest.raises(ImageError):
            tiny_segmenter.predict(array)
        return
    result = tiny_segmenter.predict(array)
    assert_valid_result(result, array.shape[1], array.shape[0])
