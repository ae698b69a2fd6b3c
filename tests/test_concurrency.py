"""One Segmenter shared by 8 threads, the way the app's cached model serves sessions.

Streamlit runs each session in its own thread and st.cache_resource hands them all the
same Segmenter, so concurrent predictions must not share scratch buffers or mix up
inputs. Each thread gets its own photo (sizes and contents differ, two share a size so
a swap of same-shaped masks is caught too) and must get exactly the mask that photo
gets when processed alone.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.corpus import encode, synthetic_photo

THREADS = 8
ROUNDS = 3
#: (width, height): all different except the last two, which differ only in content.
SIZES = [(64, 48), (300, 200), (120, 333), (512, 384), (97, 61), (250, 250), (180, 140)]
SIZES.append(SIZES[-1])


def photos() -> list[np.ndarray]:
    """Eight different photos, with content distinct enough to give distinct masks."""
    out = []
    for i, (w, h) in enumerate(SIZES):
        rgb = synthetic_photo(w, h, seed=100 + i)
        if i % 2:  # half get texture, so refinement has edges to work on
            noise = np.random.default_rng(i).integers(0, 40, rgb.shape, dtype=np.uint8)
            rgb = np.clip(rgb.astype(np.int16) + noise - 20, 0, 255).astype(np.uint8)
        out.append(rgb)
    return out


@pytest.mark.parametrize("source", ["array", "jpeg bytes"])
def test_threads_get_their_own_results(tiny_segmenter, source: str) -> None:
    """8 threads x 3 rounds at once: every mask equals its photo's sequential mask."""
    from PIL import Image

    images = photos()
    inputs = images if source == "array" else [encode(Image.fromarray(i), "JPEG") for i in images]
    expected = [tiny_segmenter.predict(x) for x in inputs]
    for (w, h), result in zip(SIZES, expected, strict=True):
        assert result.mask.shape == (h, w)
    # Precondition: the two same-sized photos give different masks, else a swap is invisible.
    assert not np.array_equal(expected[-1].mask, expected[-2].mask)

    barrier = threading.Barrier(THREADS)

    def work(index: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        barrier.wait()  # maximise overlap: everyone calls predict at the same moment
        out = []
        for _ in range(ROUNDS):
            result = tiny_segmenter.predict(inputs[index])
            out.append((result.original, result.mask, result.cutout()))
        return out

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(work, i) for i in range(THREADS)]
        outcomes = [f.result(timeout=600) for f in futures]  # re-raises a thread's error

    for index, runs in enumerate(outcomes):
        w, h = SIZES[index]
        for original, mask, rgba in runs:
            assert original.shape == (h, w, 3)
            assert np.array_equal(original, expected[index].original), f"photo {index}"
            assert mask.shape == (h, w)
            np.testing.assert_array_equal(mask, expected[index].mask, err_msg=f"photo {index}")
            assert rgba.shape == (h, w, 4)
            assert np.array_equal(rgba, expected[index].cutout())
