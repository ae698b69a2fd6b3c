"""The LiteRT runtime: same masks as Keras, used only when a current .tflite is present."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from segmentation import Segmenter
from segmentation.network import tflite_sibling
from tests.test_segmenter import photo

pytest.importorskip("ai_edge_litert")

#: The export's own bound on the runtimes' mean absolute difference.
MAX_DIFFERENCE = 1e-3


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Path:
    """A copy of the tiny .keras model with its .tflite conversion beside it."""
    from train.export import export_tflite

    folder = tmp_path_factory.mktemp("converted")
    keras_path = folder / "tiny.keras"
    shutil.copy(tiny_model_path, keras_path)
    tflite = export_tflite(keras_path)
    assert tflite == folder / "tiny.tflite"
    return keras_path


@pytest.fixture(scope="module")
def lite_segmenter(converted: Path) -> Segmenter:
    return Segmenter(converted)


def test_segmenter_uses_litert_when_a_current_tflite_is_beside_the_model(
    lite_segmenter: Segmenter,
) -> None:
    assert lite_segmenter.runtime == "litert"
    assert lite_segmenter.input_size == 64


def test_litert_and_keras_masks_match(lite_segmenter: Segmenter, tiny_segmenter: Segmenter) -> None:
    assert tiny_segmenter.runtime == "keras"
    for seed, (w, h) in enumerate([(300, 200), (97, 161), (640, 480)]):
        rgb = photo(w, h, seed=seed)
        lite = lite_segmenter.predict(rgb)
        reference = tiny_segmenter.predict(rgb)
        assert np.abs(lite.mask - reference.mask).mean() <= MAX_DIFFERENCE
        prob = lite_segmenter.predict_probability(rgb)
        assert prob.shape == (64, 64) and prob.dtype == np.float32
        assert np.abs(prob - tiny_segmenter.predict_probability(rgb)).mean() <= MAX_DIFFERENCE


def test_falls_back_to_keras_without_a_tflite(tiny_model_path: Path, tmp_path: Path) -> None:
    assert tflite_sibling(tiny_model_path) is None
    assert Segmenter(tiny_model_path).runtime == "keras"
    with pytest.raises(FileNotFoundError, match=r"no \.tflite"):
        Segmenter(tiny_model_path, runtime="litert")


def test_an_older_tflite_is_ignored(converted: Path, tmp_path: Path) -> None:
    """A .tflite from a previous model must not serve stale weights."""
    keras_path = tmp_path / "model.keras"
    shutil.copy(converted, keras_path)
    tflite = shutil.copy(converted.with_suffix(".tflite"), tmp_path / "model.tflite")
    stamp = keras_path.stat().st_mtime
    os.utime(tflite, (stamp - 60, stamp - 60))
    assert tflite_sibling(keras_path) is None
    assert Segmenter(keras_path).runtime == "keras"


def test_a_damaged_tflite_falls_back_to_keras_with_a_warning(
    tiny_model_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keras_path = tmp_path / "model.keras"
    shutil.copy(tiny_model_path, keras_path)
    keras_path.with_suffix(".tflite").write_bytes(b"TFL3 but not really a flatbuffer")
    with caplog.at_level(logging.WARNING, logger="segmentation.network"):
        assert Segmenter(keras_path).runtime == "keras"
    assert "falling back to Keras" in caplog.text
    with pytest.raises(ValueError, match="cannot run it with LiteRT"):
        Segmenter(keras_path, runtime="litert")


def test_keras_runtime_can_be_forced(converted: Path) -> None:
    assert Segmenter(converted, runtime="keras").runtime == "keras"
    with pytest.raises(ValueError, match="runtime must be"):
        Segmenter(converted, runtime="onnx")  # type: ignore[arg-type]


def test_litert_segmenter_is_thread_safe(lite_segmenter: Segmenter) -> None:
    photos = [photo(80 + 41 * i, 60 + 17 * i, seed=i) for i in range(6)]
    expected = [lite_segmenter.predict(p).mask for p in photos]
    errors: list[BaseException] = []
    start = threading.Barrier(len(photos))

    def work(i: int) -> None:
        try:
            start.wait()
            for _ in range(3):
                np.testing.assert_array_equal(lite_segmenter.predict(photos[i]).mask, expected[i])
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(photos))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]


def test_export_writes_a_current_tflite_beside_the_model(tiny_model_path: Path, tmp_path: Path):
    from train.export import main

    destination = tmp_path / "weights" / "model.keras"
    main([str(tiny_model_path), str(destination)])
    assert tflite_sibling(destination) == destination.with_suffix(".tflite")
    assert Segmenter(destination).runtime == "litert"


def test_export_can_convert_an_exported_model_alone(converted: Path, tmp_path: Path) -> None:
    from train.export import main

    keras_path = tmp_path / "model.keras"
    shutil.copy(converted, keras_path)
    main(["--tflite-only", str(keras_path)])
    assert tflite_sibling(keras_path) == keras_path.with_suffix(".tflite")
    main([str(converted), str(tmp_path / "plain.keras"), "--no-tflite"])
    assert not (tmp_path / "plain.tflite").exists()


@pytest.fixture(scope="module")
def two_channel(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Path:
    """The tiny model with a subject head (its own weights, so its maps differ), exported
    as .keras and .tflite."""
    import keras

    from segmentation.model import build_unet, copy_matching_weights
    from train.export import export_model

    folder = tmp_path_factory.mktemp("two_channel")
    model = build_unet(64, (8, 8, 8, 8), subject_head=True)
    copy_matching_weights(keras.saving.load_model(tiny_model_path, compile=False), model)
    subject = model.get_layer("subject_conv")
    subject.set_weights([-w for w in subject.get_weights()])  # the person map's negative
    model.save(folder / "run.keras")
    return export_model(folder / "run.keras", folder / "two.keras")


@pytest.mark.parametrize("runtime", ["litert", "keras"])
def test_a_two_channel_network_gives_the_person_map_by_default(
    two_channel: Path, runtime: str
) -> None:
    from segmentation.network import load_network

    network = load_network(two_channel, runtime)  # type: ignore[arg-type]
    assert network.runtime == runtime and network.channels == 2
    batch = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    maps = network.maps(batch)
    person, subject = network(batch), network(batch, channel=1)
    assert maps.shape == (64, 64, 2) and person.shape == subject.shape == (64, 64)
    assert person.dtype == np.float32 and person.flags.c_contiguous
    np.testing.assert_allclose(person, maps[..., 0], atol=1e-6)
    np.testing.assert_allclose(subject, maps[..., 1], atol=1e-6)
    np.testing.assert_allclose(subject, 1 - person, atol=1e-4)  # sigmoid(-z) = 1 - sigmoid(z)
    assert person.std() > 0.05
    with pytest.raises(ValueError, match="channel 2"):
        network(batch, channel=2)
    probability = Segmenter(two_channel, runtime=runtime).predict_probability(photo(90, 70))
    assert probability.shape == (64, 64)  # the Segmenter still sees one map


def test_a_one_channel_network_has_no_subject_map(converted: Path) -> None:
    from segmentation.network import load_network

    for runtime in ("litert", "keras"):
        network = load_network(converted, runtime)  # type: ignore[arg-type]
        assert network.channels == 1
        batch = np.zeros((1, 64, 64, 3), np.float32)
        assert network.maps(batch).shape == (64, 64, 1)
        with pytest.raises(ValueError, match="channel 1 of a 1-channel"):
            network(batch, channel=1)
