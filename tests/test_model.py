"""The network builder: its optional extras, warm starts into them, and their export."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from segmentation.model import architecture_of, build_unet, copy_matching_weights
from train.export import export_model

TINY = (8, 8, 8, 8)


def _randomised(model: keras.Model, seed: int = 0) -> keras.Model:
    """Random batch norms too (convs already start random), as in a trained network."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = (w.shape for w in layer.get_weights())
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma), rng.normal(0, 0.1, beta),
                rng.normal(0, 0.1, mean), rng.uniform(0.5, 1.5, variance),
            ])  # fmt: skip
    return model


def _photo(size: int = 64) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 255, (2, size, size, 3)).astype("float32")


def _predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """What each decoder block receives, and the logits, concatenated.

    Untrained decoders damp a change in the coarse maps a hundredfold by the output,
    so the maps are compared where the extras feed them.
    """
    taps = [model.get_layer(f"decoder_block{i}_upsample").input for i in range(1, 5)]
    taps.append(model.get_layer("head_conv").output)
    maps = keras.Model(model.input, taps)(x)
    flat = np.concatenate([np.asarray(m).ravel() for m in maps])
    assert np.isfinite(flat).all() and flat.std() > 1e-3
    return flat


def test_extras_start_as_the_identity_of_the_warm_start() -> None:
    plain = _randomised(build_unet(64, TINY))
    extended = build_unet(64, TINY, residual_blocks=2, global_context=True)
    fresh = copy_matching_weights(plain, extended)
    assert "context_conv" in fresh
    assert {name.split("_residual")[0] for name in fresh if "_residual" in name} == {
        "decoder_block1",
        "decoder_block2",
    }
    x = _photo()
    np.testing.assert_allclose(_predict(extended, x), _predict(plain, x), rtol=1e-4, atol=1e-4)


def test_trained_extras_change_the_output() -> None:
    plain = _randomised(build_unet(64, TINY))
    extended = _randomised(build_unet(64, TINY, residual_blocks=1, global_context=True), seed=2)
    copy_matching_weights(plain, extended)
    gate = extended.get_layer("context_conv")
    gate.set_weights([np.full_like(w, 0.3) for w in gate.get_weights()])
    x = _photo()
    assert float(np.abs(_predict(extended, x) - _predict(plain, x)).max()) > 0.1


def test_architecture_of_reads_back_what_was_built() -> None:
    for kwargs in (
        {"decoder_filters": TINY, "residual_blocks": 0, "global_context": False},
        {"decoder_filters": (16, 8, 8, 8), "residual_blocks": 3, "global_context": True},
    ):
        assert architecture_of(build_unet(64, **kwargs)) == kwargs


def test_builder_and_warm_start_refuse_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="residual_blocks"):
        build_unet(64, TINY, residual_blocks=5)
    with pytest.raises(ValueError, match="bottleneck_conv"):
        copy_matching_weights(build_unet(64, (16, 8, 8, 8)), build_unet(64, TINY))


def test_export_keeps_the_extras_and_converts_them(tmp_path: Path) -> None:
    checkpoint = tmp_path / "run.keras"
    model = _randomised(build_unet(64, TINY, residual_blocks=2, global_context=True))
    model.save(checkpoint)
    exported = export_model(checkpoint, tmp_path / "out.keras", input_size=96)
    loaded = keras.saving.load_model(exported, compile=False, safe_mode=True)
    assert architecture_of(loaded) == architecture_of(model)
    assert loaded.input_shape[1] == 96
    assert exported.with_suffix(".tflite").is_file()
