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
