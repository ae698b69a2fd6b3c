"""Cutouts, overlays and composites put the right colour in every pixel."""

from __future__ import annotations

import numpy as np
import pytest

from segmentation.compose import adjust_mask, composite, cutout, overlay, parse_color

H, W = 60, 80


def photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(30, 220, (H, W, 3), dtype=np.uint8)


def three_band_mask() -> np.ndarray:
    """Left third background (0), middle half-transparent (0.5), right third person (1)."""
    mask = np.zeros((H, W), np.float32)
    mask[:, 30:50] = 0.5
    mask[:, 50:] = 1.0
    return mask


@pytest.mark.parametrize(
    ("text", "rgb"),
    [
        ("white", (255, 255, 255)),
        ("Black", (0, 0, 0)),
        ("#1e90ff", (30, 144, 255)),
        ("#F00", (255, 0, 0)),
        (" dodgerblue ", (30, 144, 255)),
        ("rgb(1, 2, 3)", (1, 2, 3)),
    ],
)
def test_parse_color(text: str, rgb: tuple[int, int, int]) -> None:
    assert parse_color(text) == rgb


@pytest.mark.parametrize("text", ["", "blurple", "#12345", "#gggggg", "12,34"])
def test_parse_color_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"unknown colour .*#1e90ff"):
        parse_color(text)


def test_cutout_alpha_is_the_rounded_mask() -> None:
    image = photo()
    mask = np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W)
    rgba = cutout(image, mask)
    assert rgba.shape == (H, W, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[:, :, 3], np.rint(mask * 255).astype(np.uint8))


def test_cutout_colours() -> None:
    image, mask = photo(), three_band_mask()
    rgba = cutout(image, mask)
    assert (rgba[:, :30, :3] == 0).all()  # the old background is gone from the file
    np.testing.assert_array_equal(rgba[:, 50:, :3], image[:, 50:])
    plain = cutout(image, mask, decontaminate=False)
    np.testing.assert_array_equal(plain[:, 30:, :3], image[:, 30:])
    assert (plain[:, :30, :3] == 0).all()


def test_cutout_accepts_uint8_mask_and_precomputed_foreground() -> None:
    image, mask = photo(), three_band_mask()
    mask8 = np.rint(mask * 255).astype(np.uint8)
    fg = np.full_like(image, 7)
    rgba = cutout(image, mask8, foreground=fg)
    np.testing.assert_array_equal(rgba[:, :, 3], mask8)
    assert (rgba[:, 30:, :3] == 7).all()


@pytest.mark.parametrize("background", [(0, 128, 255), "#0080ff", "rgb(0,128,255)"])
def test_composite_on_a_colour(background) -> None:
    image, mask = photo(), three_band_mask()
    out = composite(image, mask, background, decontaminate=False)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    assert (out[:, :30] == (0, 128, 255)).all()
    np.testing.assert_array_equal(out[:, 50:], image[:, 50:])
    half = (image[:, 30:50].astype(float) + np.array([0, 128, 255])) / 2
    np.testing.assert_allclose(out[:, 30:50], half, atol=1)


def test_composite_on_an_image_covers_and_centre_crops() -> None:
    image = photo()
    mask = np.zeros((H, W), np.float32)  # all background: the output is the background
    wide = np.zeros((30, 120, 3), np.uint8)  # 4:1, left/middle/right thirds differ
    wide[:, :40] = (255, 0, 0)
    wide[:, 40:80] = (0, 255, 0)
    wide[:, 80:] = (0, 0, 255)
    out = composite(image, mask, wide)
    assert out.shape == (H, W, 3)
    # Scaled x2 to 60x240 to cover the height, the centre 80 columns are the green
    # third (bilinear scaling blends only the outermost columns with red and blue);
    # stretching instead of cropping would show red and blue thirds.
    assert (out[:, 1:-1] == (0, 255, 0)).all()
    tall_grey = np.full((500, 50), 90, np.uint8)
    assert (composite(image, mask, tall_grey) == 90).all()


def test_composite_blur_keeps_the_person_and_softens_the_background() -> None:
    image, mask = photo(), three_band_mask()
    out = composite(image, mask, "blur", decontaminate=False)
    np.testing.assert_array_equal(out[:, 50:], image[:, 50:])
    # The background is a smooth version of itself, not of the person.
    assert out[:, :25].astype(float).std() < image[:, :25].astype(float).std() / 3
    assert np.abs(out[:, :25].mean(axis=(0, 1)) - image[:, :30].mean(axis=(0, 1))).max() < 12


def test_portrait_blur_does_not_smear_the_person_into_the_background() -> None:
    image = np.zeros((H, W, 3), np.uint8)
    image[:, :40] = (0, 0, 200)  # blue wall
    image[:, 40:] = (250, 250, 0)  # yellow coat
    mask = np.zeros((H, W), np.float32)
    mask[:, 40:] = 1
    out = composite(image, mask, "blur", decontaminate=False)
    assert out[:, :40, 0].max() < 20  # no yellow bleeding into the blue next to him


def test_overlay() -> None:
    image, mask = photo(), three_band_mask()
    np.testing.assert_array_equal(overlay(image, mask, opacity=0.0), image)
    full = overlay(image, mask, color=(10, 20, 30), opacity=1.0)
    assert (full[:, 50:] == (10, 20, 30)).all()
    np.testing.assert_array_equal(full[:, :30], image[:, :30])
    half = overlay(image, mask, color="white", opacity=0.5)
    np.testing.assert_allclose(half[:, 50:], (image[:, 50:].astype(float) + 255) / 2, atol=1)
    with pytest.raises(ValueError, match="opacity"):
        overlay(image, mask, opacity=1.5)


def test_adjust_mask_threshold_and_softness() -> None:
    mask = np.tile(np.linspace(0, 1, W, dtype=np.float32), (H, 1))
    np.testing.assert_array_equal(adjust_mask(mask), mask)
    hard = adjust_mask(mask, threshold=0.5)
    assert set(np.unique(hard)) == {0.0, 1.0}
    np.testing.assert_array_equal(hard, (mask >= 0.5).astype(np.float32))
    soft = adjust_mask(hard, softness=4)
    assert soft.dtype == np.float32 and 0 <= soft.min() and soft.max() <= 1
    edge = int(np.argmax(hard[0]))
    assert 0.2 < soft[30, edge] < 0.8  # the edge now fades
    assert soft[30, 0] == 0.0 and soft[30, -1] == 1.0  # far from it nothing changed
    both = adjust_mask(mask, threshold=0.5, softness=4)
    np.testing.assert_allclose(both, soft)


def test_adjust_mask_rejects_nonsense() -> None:
    mask = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="threshold"):
        adjust_mask(mask, threshold=2)
    with pytest.raises(ValueError, match="softness"):
        adjust_mask(mask, softness=-1)


def test_inputs_are_validated_and_never_modified() -> None:
    image, mask = photo(), three_band_mask()
    before_image, before_mask = image.copy(), mask.copy()
    cutout(image, mask)
    composite(image, mask, "blur")
    overlay(image, mask)
    np.testing.assert_array_equal(image, before_image)
    np.testing.assert_array_equal(mask, before_mask)
    with pytest.raises(ValueError, match="mask"):
        cutout(image, mask[:, :-1])
    with pytest.raises(ValueError, match="uint8"):
        composite(image.astype(np.float32), mask, "white")
    with pytest.raises(ValueError, match="three values"):
        composite(image, mask, (1, 2))
