"""The training pipeline end to end on a few synthetic images, plus its data checks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from segmentation import Segmenter
from train.data import AugmentConfig, DatasetError, augment, build_cache, read_split
from train.export import export_model
from train.train import main as train_main


def _write_dataset(root: Path, n_train: int = 6, n_val: int = 2, size: int = 48) -> Path:
    """A data folder in the layout of ../shared/data/people: a bright disk is the person."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    names = []
    for i in range(n_train + n_val):
        yy, xx = np.mgrid[:size, :size]
        cx, cy = rng.integers(14, size - 14, 2)
        r = rng.integers(6, 12)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.uint8) * 255
        photo = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        photo[mask > 0] = (220, 180, 150)
        Image.fromarray(photo).save(root / "images" / f"p{i}.jpg")
        Image.fromarray(mask).save(root / "masks" / f"p{i}.png")
        names.append(f"p{i}")
    (root / "train.txt").write_text("\n".join(names[:n_train]) + "\n")
    (root / "val.txt").write_text("\n".join(names[n_train:]) + "\n")
    return root


def test_read_split_lists_pairs(tmp_path):
    data = _write_dataset(tmp_path / "data")
    samples = read_split(data, "train")
    assert [s.name for s in samples] == [f"p{i}" for i in range(6)]
    assert all(s.image.is_file() and s.mask.is_file() for s in samples)


def test_missing_mask_is_named(tmp_path):
    data = _write_dataset(tmp_path / "data")
    (data / "masks" / "p3.png").unlink()
    with pytest.raises(DatasetError, match=r"p3\.png.*mask missing"):
        read_split(data, "train")


def test_size_mismatch_is_named(tmp_path):
    data = _write_dataset(tmp_path / "data")
    Image.new("L", (10, 12)).save(data / "masks" / "p1.png")
    with pytest.raises(DatasetError, match=r"p1\.png: size 10x12 does not match"):
        read_split(data, "train")


def test_missing_split_file(tmp_path):
    data = _write_dataset(tmp_path / "data")
    with pytest.raises(DatasetError, match=r"test\.txt"):
        read_split(data, "test")


def test_cache_is_reused(tmp_path):
    data = _write_dataset(tmp_path / "data")
    samples = read_split(data, "train")
    images, masks = build_cache(samples, 32, tmp_path / "cache")
    assert images.shape == (6, 32, 32, 3) and masks.shape == (6, 32, 32)
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    again, _ = build_cache(samples, 32, tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == files
    np.testing.assert_array_equal(images, again)


def test_augment_moves_photo_and_mask_together():
    """With colour changes off, a photo that equals its mask must still equal it."""
    geometry_only = AugmentConfig(
        brightness=0, contrast=(1, 1), saturation=(1, 1), hue=0,
        blur_probability=0, noise_probability=0, grey_probability=0,
    )  # fmt: skip
    yy, xx = np.mgrid[:80, :80]
    mask = (((xx - 30) ** 2 + (yy - 45) ** 2) < 300).astype(np.uint8) * 255
    photo = np.repeat(mask[..., None], 3, axis=2)
    tf.random.set_seed(3)
    for _ in range(5):
        image, target = augment(tf.constant(photo), tf.constant(mask), 64, geometry_only)
        assert image.shape == (64, 64, 3) and target.shape == (64, 64, 1)
        np.testing.assert_allclose(image.numpy()[..., 0] / 255.0, target.numpy()[..., 0], atol=1e-4)


def test_augment_changes_colours_but_not_mask_range():
    tf.random.set_seed(0)
    photo = np.full((40, 40, 3), 128, np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 255
    cfg = AugmentConfig()
    outputs = [augment(tf.constant(photo), tf.constant(mask), 32, cfg) for _ in range(4)]
    means = [float(tf.reduce_mean(img)) for img, _ in outputs]
    assert max(means) - min(means) > 1.0  # colour jitter varies the photo
    for img, m in outputs:
        assert 0 <= float(tf.reduce_min(img)) and float(tf.reduce_max(img)) <= 255
        assert 0 <= float(tf.reduce_min(m)) and float(tf.reduce_max(m)) <= 1


@pytest.mark.slow
def test_train_resume_export_and_predict(tmp_path):
    data = _write_dataset(tmp_path / "data")
    run = tmp_path / "runs" / "smoke"
    exported = tmp_path / "weights" / "smoke.keras"
    common = [
        "--data", str(data), "--out", str(run), "--size", "64", "--batch", "2",
        "--decoder-filters", "8,8,8,8", "--encoder-weights", str(tmp_path / "none.h5"),
    ]  # fmt: skip
    train_main([*common, "--epochs", "1"])
    assert (run / "last.keras").is_file() and (run / "best.keras").is_file()
    assert (run / "curves.png").is_file()

    with pytest.raises(SystemExit, match="--resume"):
        train_main([*common, "--epochs", "2"])
    train_main([*common, "--epochs", "2", "--resume", "--export", str(exported)])
    with open(run / "log.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"]
    assert json.loads((run / "config.json").read_text())["epochs"] == 2

    segmenter = Segmenter(exported)
    photo = np.asarray(Image.open(data / "images" / "p0.jpg").convert("RGB"))
    result = segmenter.predict(photo)
    assert result.mask.shape == photo.shape[:2]
    assert 0.0 <= result.mask.min() and result.mask.max() <= 1.0


def test_export_refuses_oversized_file(tmp_path, monkeypatch, tiny_model_path):
    import train.export

    monkeypatch.setattr(train.export, "MAX_EXPORT_BYTES", 1000)
    with pytest.raises(ValueError, match="over 1000 bytes"):
        export_model(tiny_model_path, tmp_path / "big.keras")
