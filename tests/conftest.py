"""Shared fixtures: a tiny untrained network, so no test needs the trained weights.

``tiny_model_path`` is a real ``build_unet`` model (64 px input, 8-channel decoder,
about 1 M parameters) saved as .keras, loaded by the same code path as the real one.
Its output layer's weights are scaled up so the random network gives masks that vary
across the photo (0 to 1, with edges) instead of 0.5 everywhere; that exercises
refinement, soft edges and compositing, and makes a mix-up between two photos'
masks visible.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

TINY_INPUT_SIZE = 64
#: Multiplies the random head's logits (std ~0.015) to a std of a few units.
TINY_HEAD_GAIN = 300.0


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a saved tiny person-segmentation model (built once per test session)."""
    import keras

    from segmentation.model import build_unet

    keras.utils.set_random_seed(0)
    model = build_unet(TINY_INPUT_SIZE, (8, 8, 8, 8))
    head = model.get_layer("head_conv")
    kernel, bias = head.get_weights()
    head.set_weights([kernel * TINY_HEAD_GAIN, bias])
    path = tmp_path_factory.mktemp("tiny_model") / "tiny.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_segmenter(tiny_model_path: Path):
    """One Segmenter on the tiny model, shared like the app shares its instance."""
    from segmentation import Segmenter

    return Segmenter(tiny_model_path)


@pytest.fixture
def reuse_tiny_segmenter(monkeypatch, tiny_model_path, tiny_segmenter):
    """Let main() reuse the session's Segmenter instead of loading the model again.

    Loading and tracing takes seconds; the CLI tests that run without it load it for real.
    """
    import segmentation.segmenter

    def shared(path):
        assert Path(path) == tiny_model_path
        return tiny_segmenter

    monkeypatch.setattr(segmentation.segmenter, "Segmenter", shared)


class ColourNetwork:
    """A stand-in network: probability = how red the pixel is, ``shift`` map pixels to
    the right of it (a left-right bias, as a trained network may have); counts calls."""

    input_size = TINY_INPUT_SIZE
    runtime = "fake"

    def __init__(self, shift: int = 0) -> None:
        self.calls = 0
        self.shift = shift

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        prob = (batch[0, :, :, 0] / 255).astype(np.float32)
        if self.shift:
            prob = np.roll(prob, self.shift, axis=1)
            prob[:, : self.shift] = 0
        return prob


def small_person_photo() -> tuple[np.ndarray, np.ndarray]:
    """A 1600x900 photo with a 300 px tall red figure whose arms are 6 px wide, and its mask."""
    truth = np.zeros((900, 1600), np.uint8)
    cv2.ellipse(truth, (700, 500), (40, 120), 0, 0, 360, 1, -1)
    cv2.circle(truth, (700, 350), 30, 1, -1)
    cv2.line(truth, (660, 420), (590, 520), 1, 6)
    cv2.line(truth, (740, 420), (810, 520), 1, 6)
    rgb = np.zeros((900, 1600, 3), np.uint8)
    rgb[truth > 0] = (230, 40, 40)
    rgb[truth == 0] = (30, 90, 60)
    return rgb, truth.astype(bool)


@pytest.fixture(scope="session")
def colour_segmenter(tiny_model_path: Path):
    """A Segmenter whose network is :class:`ColourNetwork` (returned beside it).

    With it a second, closer look measurably sharpens :func:`small_person_photo`.
    """
    from segmentation import Segmenter

    segmenter = Segmenter(tiny_model_path)
    network = ColourNetwork()
    segmenter._network = network
    return segmenter, network


@pytest.fixture(scope="session")
def biased_segmenter(tiny_model_path: Path):
    """A Segmenter whose network is a :class:`ColourNetwork` shifted 3 map pixels right."""
    from segmentation import Segmenter

    segmenter = Segmenter(tiny_model_path)
    segmenter._network = ColourNetwork(shift=3)
    return segmenter
