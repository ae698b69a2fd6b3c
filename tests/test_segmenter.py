"""Segmenter: loads once, predicts a full-resolution mask, and can be shared by threads."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from segmentation import DEFAULT_MODEL_PATH, ImageError, SegmentationResult, Segmenter
from tests.conftest import TINY_INPUT_SIZE


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth random 'photo' with a few blobs, so the network has something to see."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    rgb = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(0, 12, rgb.shape, dtype=np.uint8)
    return cv2.add(rgb, noise)


def jpeg(rgb: np.ndarray, orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    Image.fromarray(rgb).save(buf, "JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue()


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.keras"
    with pytest.raises(FileNotFoundError, match=r"model file not found: .*nope\.keras"):
        Segmenter(missing)


def test_damaged_model_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 definitely not a keras archive")
    with pytest.raises(ValueError, match="not a loadable Keras model"):
        Segmenter(broken)


def test_default_model_path_is_in_the_repository() -> None:
    assert DEFAULT_MODEL_PATH == Path(__file__).resolve().parent.parent / "weights" / (
        "person_unet.keras"
    )


def test_input_size_comes_from_the_model(tiny_segmenter: Segmenter) -> None:
    assert tiny_segmenter.input_size == TINY_INPUT_SIZE


def test_probability_is_the_network_on_the_squashed_photo(
    tiny_segmenter: Segmenter, tiny_model_path: Path
) -> None:
    """Same preprocessing as training: INTER_AREA squash of the whole photo, 0..255."""
    import keras

    rgb = photo(300, 120)
    prob = tiny_segmenter.predict_probability(rgb)
    assert prob.shape == (TINY_INPUT_SIZE, TINY_INPUT_SIZE) and prob.dtype == np.float32
    model = keras.saving.load_model(tiny_model_path, compile=False)
    x = cv2.resize(rgb, (TINY_INPUT_SIZE,) * 2, interpolation=cv2.INTER_AREA)
    expected = np.asarray(model(x[None].astype(np.float32), training=False))[0, :, :, 0]
    np.testing.assert_allclose(prob, expected, atol=1e-5)


@pytest.mark.parametrize("refine", [True, False])
def test_mask_has_the_original_resolution(tiny_segmenter: Segmenter, refine: bool) -> None:
    rgb = photo(333, 251)
    result = tiny_segmenter.predict(rgb, refine=refine)
    assert isinstance(result, SegmentationResult)
    assert result.original.shape == (251, 333, 3)
    np.testing.assert_array_equal(result.original, rgb)
    assert result.mask.shape == (251, 333)
    assert result.mask.dtype == np.float32
    assert 0.0 <= result.mask.min() and result.mask.max() <= 1.0
    assert result.mask.std() > 0.05  # the tiny model's mask varies: a real test
    assert set(result.timings) == {"decode", "network", "refine"}
    assert all(t >= 0 for t in result.timings.values())


def test_refinement_changes_the_mask(tiny_segmenter: Segmenter) -> None:
    rgb = photo(400, 300, seed=5)
    refined = tiny_segmenter.predict(rgb, refine=True).mask
    plain = tiny_segmenter.predict(rgb, refine=False).mask
    assert np.abs(refined - plain).mean() > 1e-3


def test_predict_from_file_bytes_and_stream_applies_exif(
    tiny_segmenter: Segmenter, tmp_path: Path
) -> None:
    data = jpeg(photo(120, 80), orientation=6)  # stored landscape, displayed portrait
    path = tmp_path / "phone.jpg"
    path.write_bytes(data)
    for source in (path, str(path), data, io.BytesIO(data)):
        result = tiny_segmenter.predict(source)
        assert result.original.shape == (120, 80, 3)
        assert result.mask.shape == (120, 80)


def test_bad_input_raises_image_error(tiny_segmenter: Segmenter) -> None:
    with pytest.raises(ImageError, match="not an image"):
        tiny_segmenter.predict(b"hello, I am not a photo" * 10)
    with pytest.raises(ImageError, match="too large"):
        tiny_segmenter.predict(photo(100, 100), max_megapixels=0.005)
    with pytest.raises(ImageError, match="uint8"):
        tiny_segmenter.predict(photo(100, 100).astype(np.float32))


def test_result_outputs_agree_with_the_mask(tiny_segmenter: Segmenter) -> None:
    result = tiny_segmenter.predict(photo(211, 157, seed=2))
    alpha = np.rint(result.mask * 255).astype(np.uint8)
    np.testing.assert_array_equal(result.alpha, alpha)
    rgba = result.cutout()
    assert rgba.shape == (157, 211, 4)
    np.testing.assert_array_equal(rgba[:, :, 3], alpha)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(result.mask_png()))), alpha)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(result.cutout_png()))), rgba)
    red = result.composite("red")
    person = alpha == 255
    background = alpha == 0
    assert person.any() and background.any()
    np.testing.assert_array_equal(red[person], result.original[person])
    assert (red[background] == (255, 0, 0)).all()
    tinted = result.overlay((0, 0, 0), opacity=1.0)
    assert (tinted[person] == 0).all()


def test_adjusted_result(tiny_segmenter: Segmenter) -> None:
    result = tiny_segmenter.predict(photo(120, 90, seed=3))
    hard = result.adjusted(threshold=0.5)
    assert set(np.unique(hard.mask)) <= {0.0, 1.0}
    np.testing.assert_array_equal(hard.mask, (result.mask >= 0.5).astype(np.float32))
    assert hard.original is result.original


def test_eight_threads_each_get_their_own_result(tiny_segmenter: Segmenter) -> None:
    sizes = [(64 + 37 * i, 48 + 23 * i) for i in range(8)]
    photos = [photo(w, h, seed=i) for i, (w, h) in enumerate(sizes)]
    expected = [tiny_segmenter.predict(p).mask for p in photos]
    assert not np.allclose(
        cv2.resize(expected[0], (64, 64)), cv2.resize(expected[1], (64, 64)), atol=0.05
    )  # photos give different masks, so a mix-up would show
    results: list[np.ndarray | None] = [None] * 8
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(i: int) -> None:
        try:
            start.wait()
            for _ in range(3):
                results[i] = tiny_segmenter.predict(photos[i]).mask
                np.testing.assert_array_equal(results[i], expected[i])
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]
    for got, want in zip(results, expected, strict=True):
        assert got is not None
        np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason="trained weights not exported yet")
def test_trained_weights_smoke() -> None:
    """The shipped model loads with safe_mode and finds a person-shaped blob."""
    segmenter = Segmenter()
    assert segmenter.input_size % 32 == 0
    rgb = np.full((480, 640, 3), 200, np.uint8)
    cv2.ellipse(rgb, (320, 300), (110, 200), 0, 0, 360, (80, 60, 50), -1)
    cv2.circle(rgb, (320, 110), 60, (190, 150, 120), -1)
    result = segmenter.predict(rgb)
    assert result.mask.shape == (480, 640)
    assert 0.0 <= result.mask.min() and result.mask.max() <= 1.0
    assert len(result.cutout_png()) > 0
