"""The smallest and narrowest images: anything with pixels gives a result of its size.

load_image used to refuse images under 8 px a side for no reason of its own; the one
real limit was in the guided filter, whose working grid could be coarser than the photo
(a 1 px tall, or an 8 x 20000 px photo: an IndexError, or a mask of uninitialised
memory). Both are gone; these tests pin it.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from segmentation import ImageError
from segmentation.io import as_rgb, load_image
from segmentation.refine import guided_upsample

#: (width, height): the smallest, both orientations of a sliver, and a panorama whose
#: working grid cell used to exceed its height.
SIZES = [(1, 1), (2, 3), (3, 2), (1, 500), (500, 1), (7, 1), (8, 20000), (20000, 8)]


def png(size: tuple[int, int], seed: int = 0) -> bytes:
    width, height = size
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_guided_filter_of_a_flat_map_is_flat_at_any_shape(size: tuple[int, int]) -> None:
    """A constant probability must come back constant, at the photo's size: garbage from
    a grid cell larger than the photo (or an IndexError) shows at once."""
    width, height = size
    image = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    alpha = guided_upsample(np.full((64, 64), 0.3, np.float32), image)
    assert alpha.shape == (height, width)
    np.testing.assert_allclose(alpha, 0.3, atol=1e-4)


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_segmenter_on_tiny_and_narrow_photos(tiny_segmenter, size: tuple[int, int]) -> None:
    width, height = size
    for refine in (True, False):
        result = tiny_segmenter.predict(png(size), refine=refine)
        assert result.mask.shape == (height, width)
        assert np.isfinite(result.mask).all()
        assert 0 <= result.mask.min() and result.mask.max() <= 1
        with Image.open(io.BytesIO(result.cutout_png())) as cutout:
            assert (cutout.mode, cutout.size) == ("RGBA", size)
        assert result.composite("blur").shape == (height, width, 3)


def test_one_and_two_by_three_pixels_decode_and_arrays_work(tiny_segmenter) -> None:
    assert load_image(png((1, 1))).shape == (1, 1, 3)
    assert load_image(png((2, 3))).shape == (3, 2, 3)
    rgb = np.zeros((3, 2, 3), np.uint8)
    assert tiny_segmenter.predict(rgb).mask.shape == (3, 2)


def test_an_image_without_pixels_is_still_refused() -> None:
    with pytest.raises(ImageError, match="too small: 0x5"):
        as_rgb(np.zeros((5, 0, 3), np.uint8))
    with pytest.raises(ImageError, match="too small"):
        load_image(png((4, 4)), min_side=8)  # a caller may still ask for more
