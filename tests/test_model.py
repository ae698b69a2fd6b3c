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
        {
            "decoder_filters": TINY,
            "residual_blocks": 0,
            "global_context": False,
            "subject_head": False,
        },
        {
            "decoder_filters": (16, 8, 8, 8),
            "residual_blocks": 3,
            "global_context": True,
            "subject_head": True,
        },
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


def test_subject_head_adds_a_named_second_channel() -> None:
    plain, two = build_unet(64, TINY), build_unet(64, TINY, subject_head=True)
    assert plain.output_shape == (None, 64, 64, 1)
    assert two.output_shape == (None, 64, 64, 2)
    names = {layer.name for layer in two.layers}
    assert {"head_conv", "subject_conv", "heads_concat"} <= names
    assert "subject_conv" not in {layer.name for layer in plain.layers}
    assert two.get_layer("subject_conv").input is two.get_layer("head_conv").input
    assert two.count_params() == plain.count_params() + 8 + 1  # one 1x1 conv on 8 channels


def test_warm_start_from_one_channel_starts_the_subject_as_the_person() -> None:
    keras.utils.set_random_seed(0)
    plain = _randomised(build_unet(64, TINY, residual_blocks=1, global_context=True))
    head = plain.get_layer("head_conv")
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 10, bias])  # maps that vary, not 0.5 everywhere
    two = build_unet(64, TINY, residual_blocks=1, global_context=True, subject_head=True)
    fresh = copy_matching_weights(plain, two)
    assert "subject_conv" not in fresh
    x = _photo()
    one, both = np.asarray(plain(x)), np.asarray(two(x))
    assert one.std() > 0.01
    np.testing.assert_allclose(both[..., 0], one[..., 0], atol=1e-5)  # person unchanged
    np.testing.assert_array_equal(both[..., 1], both[..., 0])
    subject = two.get_layer("subject_conv")
    subject.set_weights([-w for w in subject.get_weights()])
    changed = np.asarray(two(x))
    np.testing.assert_array_equal(changed[..., 0], both[..., 0])  # heads are independent
    assert np.abs(changed[..., 1] - both[..., 1]).max() > 0.02


def test_export_keeps_the_subject_head(tmp_path: Path) -> None:
    checkpoint = tmp_path / "run.keras"
    model = _randomised(build_unet(64, TINY, subject_head=True))
    model.save(checkpoint)
    exported = export_model(checkpoint, tmp_path / "out.keras")
    loaded = keras.saving.load_model(exported, compile=False, safe_mode=True)
    assert architecture_of(loaded)["subject_head"] and loaded.output_shape[-1] == 2
    x = _photo()
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
