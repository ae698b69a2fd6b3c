"""The training pipeline end to end on a few synthetic images, plus its data checks."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from segmentation import Segmenter
from train.data import (
    PASSER_BY_MAX_SHARE,
    SUBJECT_PASTE_MIN_HEIGHT,
    SUBJECT_RULE_WEIGHT,
    AugmentConfig,
    DatasetError,
    SubjectLabels,
    augment,
    build_cache,
    build_subject_cache,
    geometric,
    make_dataset,
    make_mixed_dataset,
    paste_person,
    paste_person_with_subject,
    read_backgrounds,
    read_split,
    rule_subject,
)
from train.export import export_model
from train.metrics import BceDiceLoss, MeanImageScore, boundary_band
from train.train import main as train_main
from train.train import parse_fraction_range, parse_source

#: Geometry only: no colour, blur or noise changes, no portrait crops, no pasting.
GEOMETRY_ONLY = AugmentConfig(
    brightness=0, contrast=(1, 1), saturation=(1, 1), hue=0,
    blur_probability=0, noise_probability=0, grey_probability=0,
)  # fmt: skip


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
    geometry_only = GEOMETRY_ONLY
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


def _standing_figure(size: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """A tall figure: a red head (top fifth) on a blue body, on black; mask 255 = figure."""
    mask = np.zeros((size, size), np.uint8)
    mask[10:110, 45:75] = 255
    photo = np.zeros((size, size, 3), np.uint8)
    photo[10:110, 45:75] = (0, 0, 255)
    photo[10:30, 45:75] = (255, 0, 0)
    return photo, mask


def test_upper_body_crops_frame_the_top_of_the_person():
    """Portrait framing shows the head large; the default zoom shows the whole figure."""
    photo, mask = _standing_figure()
    portrait = dataclasses.replace(GEOMETRY_ONLY, upper_body_probability=1.0)
    tf.random.set_seed(1)

    def head_share(cfg):
        shares = []
        for _ in range(8):
            image, target = geometric(tf.constant(photo), tf.constant(mask), 64, cfg)
            red = (image.numpy()[..., 0] > 128) & (image.numpy()[..., 2] < 128)
            shares.append(red.mean())
            np.testing.assert_allclose(  # geometry is shared by photo and mask
                (image.numpy().max(axis=2) > 128).mean(), (target.numpy() > 0.5).mean(), atol=0.03
            )
        return float(np.mean(shares))

    assert head_share(portrait) > 3 * head_share(GEOMETRY_ONLY)


def test_close_up_crops_fill_the_frame_with_the_person_without_the_head():
    """Close-ups show mostly person, often with no head in view, unlike the default zoom."""
    photo, mask = _standing_figure()
    close_up = dataclasses.replace(GEOMETRY_ONLY, close_up_probability=1.0)
    tf.random.set_seed(2)

    def crops(cfg):
        person, headless = [], 0
        for _ in range(12):
            image, target = geometric(tf.constant(photo), tf.constant(mask), 64, cfg)
            red = (image.numpy()[..., 0] > 128) & (image.numpy()[..., 2] < 128)
            person.append(float((target.numpy() > 0.5).mean()))
            headless += bool(person[-1] > 0.3 and red.mean() < 0.01)
        return float(np.mean(person)), headless

    close_share, close_headless = crops(close_up)
    plain_share, plain_headless = crops(GEOMETRY_ONLY)
    assert close_share > 0.5 and close_share > 2 * plain_share
    assert close_headless >= 4 and plain_headless == 0


def test_paste_person_adds_the_person_and_keeps_the_label_union():
    tf.random.set_seed(0)
    person, person_mask = _standing_figure()
    crop = tf.fill((64, 64, 3), 90.0)
    crop_mask = np.zeros((64, 64, 1), np.float32)
    crop_mask[:, :8] = 1.0  # a person at the left edge of the crop
    for _ in range(5):
        image, mask = paste_person(
            crop, tf.constant(crop_mask), tf.constant(person), tf.constant(person_mask),
            AugmentConfig(paste_height=(0.5, 0.8)),
        )  # fmt: skip
        image, mask = image.numpy(), mask.numpy()
        pasted = mask[:, 8:, 0] > 0.99
        assert pasted.sum() > 100  # a figure of at least 32 x 10 px, partly cut off
        assert (mask[:, :8] >= 0.999).all()  # the crop's own person stays a person
        inside = image[:, 8:][pasted]
        assert (np.ptp(inside, axis=1) > 100).all()  # the figure's colours, not the grey crop
        assert np.abs(image[:, 8:][mask[:, 8:, 0] < 0.01] - 90).max() < 2  # the rest untouched


def test_small_paste_height_pastes_whole_figures_small_and_cut_off_ones_larger():
    """``--paste-height 0.1,0.12``: a whole figure a tenth of the frame high, like a
    distant person; a figure cut off by its photo's bottom stays near-camera size."""
    tf.random.set_seed(2)
    crop, crop_mask = tf.fill((128, 128, 3), 90.0), tf.zeros((128, 128, 1))
    small = AugmentConfig(paste_height=(0.1, 0.12))
    whole, whole_mask = _standing_figure()
    cut_off, cut_off_mask = np.zeros_like(whole), np.zeros_like(whole_mask)
    cut_off[10:, 15:105], cut_off_mask[10:, 15:105] = 200, 255  # 90 wide, 110 high to the edge
    for _ in range(5):
        _, mask = paste_person(crop, crop_mask, tf.constant(whole), tf.constant(whole_mask), small)
        rows = np.flatnonzero((mask.numpy()[..., 0] > 0.5).any(axis=1))
        assert 0 < len(rows) <= 18  # at most 0.12 x 128 px, stretched by 10 % and blurred
        assert rows[-1] < 127  # feet in view
        _, mask = paste_person(
            crop, crop_mask, tf.constant(cut_off), tf.constant(cut_off_mask), small
        )  # fmt: skip
        figure = mask.numpy()[..., 0] > 0.5
        assert figure[-1].any()  # still cut off by the bottom edge
        # at least 0.2 x 128 px high, so at least 90 / 110 of that wide (less 10 %):
        # 0.12 x 128 would give at most 16
        assert np.flatnonzero(figure.any(axis=0)).size >= 18


def test_mixed_dataset_pastes_people_from_every_pool():
    size = 48
    grey = (np.full((4, size, size, 3), 90, np.uint8), np.zeros((4, size, size), np.uint8))
    pools = []
    for colour in ((255, 0, 0), (0, 0, 255)):
        photo, mask = _standing_figure()
        photo[mask > 0] = colour
        pools.append((photo[None].repeat(4, axis=0), mask[None].repeat(4, axis=0)))
    cfg = dataclasses.replace(GEOMETRY_ONLY, paste_probability=1.0, paste_height=(0.5, 0.8))
    ds = make_mixed_dataset([(*grey, 1.0)], 8, 32, cfg, paste_pools=pools, seed=0)
    batches = list(ds.take(4))
    images = np.concatenate([x.numpy() for x, _ in batches])
    masks = np.concatenate([y.numpy() for _, y in batches])
    pasted = masks[..., 0] > 0.99
    red = (images[..., 0] > 200) & pasted
    blue = (images[..., 2] > 200) & pasted
    per_image = red.any(axis=(1, 2)).astype(int) + 2 * blue.any(axis=(1, 2))
    assert set(per_image) >= {1, 2}  # some crops got the red figure, some the blue one


def test_background_photos_always_get_a_person_and_people_photos_only_sometimes(tmp_path):
    """A person-free photo (``--backgrounds``) is never a training example on its own."""
    (tmp_path / "images").mkdir()
    for i in range(3):
        Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(tmp_path / "images" / f"b{i}.jpg")
    (tmp_path / "all.txt").write_text("b0\nb1\nb2\n")
    samples = read_backgrounds(tmp_path)
    assert [s.mask for s in samples] == [None] * 3
    images, masks = build_cache(samples, 48, tmp_path / "cache")
    assert images.shape == (3, 48, 48, 3) and not masks.any()
    photo, mask = _standing_figure()
    pool = (photo[None].repeat(4, axis=0), mask[None].repeat(4, axis=0))
    cfg = dataclasses.replace(GEOMETRY_ONLY, paste_probability=0.0, paste_height=(0.5, 0.8))
    ds = make_mixed_dataset([(images, masks, 1.0)], 8, 32, cfg, paste_pools=[pool], seed=0)
    labels = np.concatenate([y.numpy() for _, y in ds.take(2)])
    assert (labels.max(axis=(1, 2, 3)) > 0.99).all()  # every crop holds a pasted person
    with pytest.raises(DatasetError, match=r"all\.txt"):
        read_backgrounds(tmp_path / "images")


def test_parse_fraction_range():
    assert parse_fraction_range("0.1,1") == (0.1, 1.0)
    for bad in ("0,1", "0.5,0.2", "0.2,1.5", "0.2", "a,b"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_fraction_range(bad)


def test_mixed_dataset_draws_sources_by_share():
    size = 40
    dark = (np.zeros((20, size, size, 3), np.uint8), np.zeros((20, size, size), np.uint8))
    bright = (np.full((20, size, size, 3), 255, np.uint8), np.zeros((20, size, size), np.uint8))
    ds = make_mixed_dataset([(*dark, 3.0), (*bright, 1.0)], 10, 32, GEOMETRY_ONLY, seed=0)
    images = np.concatenate([x.numpy() for x, _ in ds.take(30)])
    bright_share = (images.mean(axis=(1, 2, 3)) > 128).mean()
    assert images.shape == (300, 32, 32, 3)
    assert 0.15 < bright_share < 0.35  # 1 / (3 + 1), with sampling noise


def test_parse_source_reads_shares():
    assert parse_source("data/people=3") == (Path("data/people"), 3.0)
    assert parse_source("data/viton") == (Path("data/viton"), 1.0)
    with pytest.raises(argparse.ArgumentTypeError, match="positive"):
        parse_source("data/a=0")
    with pytest.raises(argparse.ArgumentTypeError, match="not a number"):
        parse_source("data/a=x")


def test_boundary_weight_counts_outline_errors_more():
    truth = np.zeros((1, 32, 32, 1), np.float32)
    truth[:, 8:24, 8:24] = 1.0
    band = boundary_band(tf.constant(truth)).numpy()[0]
    assert band[16, 8] == 1 and band[16, 16] == 0 and band[0, 0] == 0
    off_outline = np.clip(truth, 0.1, 0.9)
    off_outline[:, 0:2, 0:2] = 0.9  # wrong far from the outline
    on_outline = np.clip(truth, 0.1, 0.9)
    on_outline[:, 6:8, 12:14] = 0.9  # the same error just outside the outline
    plain, weighted = BceDiceLoss(), BceDiceLoss(boundary_weight=4.0)
    gap = lambda loss: float(loss(truth, on_outline) - loss(truth, off_outline))  # noqa: E731
    assert abs(gap(plain)) < 1e-4  # the plain loss cannot tell them apart
    assert gap(weighted) > 1e-3


@pytest.mark.slow
def test_train_mixes_folders_and_warm_starts(tmp_path, tiny_model_path, capsys):
    people = _write_dataset(tmp_path / "people")
    studio = _write_dataset(tmp_path / "studio", n_train=4, n_val=1)
    run = tmp_path / "runs" / "mix"
    # --resume before any epoch has finished must still warm-start from --init.
    train_main([
        "--data", f"{people}=3", "--data", f"{studio}=1", "--paste-from", str(studio),
        "--paste-from", str(people), "--paste-height", "0.1,1",
        "--out", str(run), "--size", "64", "--batch", "2", "--epochs", "1",
        "--steps-per-epoch", "3", "--decoder-filters", "8,8,8,8", "--boundary-weight", "2",
        "--init", str(tiny_model_path), "--log-every", "2",
        "--residual-blocks", "1", "--global-context", "--resume",
    ])  # fmt: skip
    out = capsys.readouterr().out
    progress = [line for line in out.splitlines() if " img/s" in line]
    assert [line.split(":")[0] for line in progress] == ["epoch 1 step 2/3", "epoch 1 step 3/3"]
    assert "5 layers start as the identity" in out  # the gate's conv, the unit's 2 convs + 2 BNs
    assert "no finished epoch" in out
    config = json.loads((run / "config.json").read_text())
    assert config["data"] == [f"{people}=3", f"{studio}=1"] and config["init"]
    assert config["residual_blocks"] == 1 and config["global_context"]
    assert config["paste_from"] == [str(studio), str(people)]
    assert config["paste_height"] == [0.1, 1.0]
    with open(run / "log.csv") as f:
        assert len(list(csv.DictReader(f))) == 1
    with pytest.raises(SystemExit, match="paste-from"):
        train_main([
            "--data", str(people), "--paste-from", str(studio), "--out", str(tmp_path / "x"),
            "--size", "64", "--batch", "2", "--epochs", "1", "--decoder-filters", "8,8,8,8",
        ])  # fmt: skip


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
    with pytest.raises(SystemExit, match="global_context, residual_blocks"):
        train_main([*common, "--resume", "--global-context", "--residual-blocks", "1"])
    # Make the logged best unbeatable: the resumed epoch must then leave best.keras alone.
    log = (run / "log.csv").read_text().splitlines()
    header = log[0].split(",")
    first = log[1].split(",")
    first[header.index("val_iou")] = "1.5"
    (run / "log.csv").write_text("\n".join([log[0], ",".join(first)]) + "\n")
    best_before = (run / "best.keras").read_bytes()
    train_main([*common, "--epochs", "2", "--resume", "--export", str(exported)])
    assert (run / "best.keras").read_bytes() == best_before
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


def test_evaluate_scores_models_side_by_side(tmp_path, tiny_model_path, capsys):
    from train.evaluate import main as evaluate_main

    data = _write_dataset(tmp_path / "data", n_train=2, n_val=3)
    out = tmp_path / "eval"
    evaluate_main([
        "--data", str(data), "--split", "val", "--model", str(tiny_model_path),
        "--compare", str(tiny_model_path), "--out", str(out),
    ])  # fmt: skip
    table = capsys.readouterr().out.splitlines()
    label = f"{tiny_model_path.parent.name}/tiny"
    assert table[-3].startswith(f"| set | images | {label} (1) | {label} (2) |")
    row = [cell.strip() for cell in table[-1].strip("|").split("|")]
    assert row[:2] == ["data val", "3"] and row[2] == row[3]  # the same model twice
    summary = json.loads((out / "data-val" / "summary.json").read_text())
    assert summary["images"] == 3 and 0 <= summary["iou"] <= 1
    assert (out / "data-val" / "worst.png").is_file()
    assert (out / f"{label} (2)".replace("/", "-") / "data-val" / "summary.json").is_file()


def test_model_labels_tell_models_apart():
    from train.evaluate import model_labels

    assert model_labels([None]) == ["default"]
    assert model_labels([Path("a/m.keras"), Path("b/n.keras")]) == ["m", "n"]
    assert model_labels([Path("a/m.keras"), Path("b/m.keras")]) == ["a/m", "b/m"]


@pytest.mark.slow
def test_speed_table_sets_the_thread_pools_and_skips_xla():
    """Thread pools can only be set before TensorFlow runs an op, so this is a fresh process."""
    command = [sys.executable, "-m", "train.speed", "--sizes", "64", "--batch", "2"]
    command += ["--steps", "1", "--no-xla", "--threads", "1,1"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    lines = run.stdout.splitlines()
    assert lines[0] == "threads: intra-op 1, inter-op 1"
    rows = [line.split(" | ") for line in lines if line.startswith("| 64 ")]
    assert [(row[1], row[2]) for row in rows] == [("float32", "off"), ("bfloat16", "off")]
    assert all(float(row[3].rstrip(" |")) > 0 for row in rows)


def test_soup_saves_the_mean_of_the_weights_and_refuses_other_networks(tmp_path):
    import keras

    from segmentation.model import build_unet
    from train.soup import soup

    paths = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        model = build_unet(64, (8, 8, 8, 8))
        paths.append(tmp_path / f"run{seed}.keras")
        model.save(paths[-1])
    a, b = (keras.saving.load_model(p, compile=False).get_weights() for p in paths)
    assert any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))

    mixed = keras.saving.load_model(soup(paths, tmp_path / "soup.keras"), compile=False)
    for got, x, y in zip(mixed.get_weights(), a, b, strict=True):
        np.testing.assert_allclose(got, (x.astype(np.float64) + y) / 2, rtol=1e-6, atol=1e-7)

    other = tmp_path / "other.keras"
    build_unet(64, (16, 8, 8, 8)).save(other)
    with pytest.raises(ValueError, match="not the same network"):
        soup([paths[0], other], tmp_path / "bad.keras")
    with pytest.raises(ValueError, match="at least two"):
        soup(paths[:1], tmp_path / "one.keras")


def test_soup_of_an_extended_run_and_a_plain_one_scales_the_extras_down(tmp_path):
    import keras

    from segmentation.model import build_unet, copy_matching_weights
    from train.soup import soup

    keras.utils.set_random_seed(3)
    plain = build_unet(64, (8, 8, 8, 8))
    extended = build_unet(64, (8, 8, 8, 8), residual_blocks=1, global_context=True)
    extras = copy_matching_weights(plain, extended)
    for layer in extended.layers:  # as if trained: every weight moved
        layer.set_weights([w + np.float32(0.5) for w in layer.get_weights()])
    plain_path, extended_path = tmp_path / "plain.keras", tmp_path / "extended.keras"
    plain.save(plain_path)
    extended.save(extended_path)

    mixed = keras.saving.load_model(
        soup([extended_path, plain_path], tmp_path / "soup.keras"), compile=False
    )
    # Shared layers: the mean of the two runs.
    got, ext, pl = (
        m.get_layer("decoder_block1_conv1").get_weights() for m in (mixed, extended, plain)
    )
    for g, e, p in zip(got, ext, pl, strict=True):
        np.testing.assert_allclose(g, (e + p) / 2, rtol=1e-6, atol=1e-6)
    # Extras: the weights that make them the identity are halved, the rest kept.
    assert "context_conv" in extras and "decoder_block1_residual_bn2" in extras
    for name in ("context_conv", "decoder_block1_residual_bn2"):
        g, e = (m.get_layer(name).get_weights()[0] for m in (mixed, extended))
        np.testing.assert_allclose(g, e / 2, rtol=1e-6)
    g, e = (m.get_layer("decoder_block1_residual_conv1").get_weights() for m in (mixed, extended))
    for a, b in zip(g, e, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)

    with pytest.raises(ValueError, match="are not in the first"):
        soup([plain_path, extended_path], tmp_path / "backwards.keras")


# --- The subject head's labels (channel 1: the person or group the photo is of) ------


def _crop_with_person(rows: slice, cols: slice, size: int = 64) -> tuple[tf.Tensor, np.ndarray]:
    """A grey crop whose (S, S, 2) label holds one person, who is also its subject."""
    label = np.zeros((size, size, 2), np.float32)
    label[rows, cols] = 1.0
    return tf.fill((size, size, 3), 90.0), label


def _paste_with_subject(crop, label, weight, cfg, seed):
    """The pasted image, (S, S, 2) label and weight, and the pasted figure's own alpha
    (the same random placement, by the same seed, through :func:`paste_person`)."""
    person, person_mask = _standing_figure()
    figure = tf.constant(person), tf.constant(person_mask)
    tf.random.set_seed(seed)
    image, out, w = paste_person_with_subject(
        crop, tf.constant(label), tf.constant(weight), *figure, figure[1], cfg
    )
    tf.random.set_seed(seed)
    _, alpha = paste_person(crop, tf.zeros_like(crop[..., :1]), *figure, cfg)
    return image.numpy(), out.numpy(), float(w), alpha.numpy()[..., 0]


def test_a_large_paste_becomes_the_subject_and_the_crops_people_background():
    crop, label = _crop_with_person(slice(24, 48), slice(0, 8))  # 0.375 of the frame high
    large = AugmentConfig(paste_height=(0.85, 0.9))
    for seed in range(4):
        _, out, weight, alpha = _paste_with_subject(crop, label, 0.5, large, seed)
        assert (alpha.max(axis=1) > 0.5).sum() >= SUBJECT_PASTE_MIN_HEIGHT * 64
        assert weight == 1.0  # known by construction, whatever the crop's own weight
        np.testing.assert_allclose(out[..., 0], alpha + (1 - alpha) * label[..., 0], atol=1e-5)
        np.testing.assert_allclose(out[..., 1], alpha, atol=1e-5)  # the pasted one alone
        assert (out[24:48, 0:8, 0] >= 0.999).all()  # channel 0 still holds the crop's person


def test_a_small_paste_is_a_passer_by_in_the_subject_channel():
    crop, label = _crop_with_person(slice(4, 64), slice(0, 10))  # the subject: 60 px high
    small = AugmentConfig(paste_height=(0.1, 0.2))
    assert 0.2 * 1.1 < PASSER_BY_MAX_SHARE * 60 / 64
    for seed in range(4):
        _, out, weight, alpha = _paste_with_subject(crop, label, 0.5, small, seed)
        assert (alpha > 0.5).sum() > 10
        np.testing.assert_allclose(out[..., 0], alpha + (1 - alpha) * label[..., 0], atol=1e-5)
        # The crop's subject, less where the passer-by hides it; the passer-by background.
        np.testing.assert_allclose(out[..., 1], (1 - alpha) * label[..., 1], atol=1e-5)
        assert weight == 0.5  # as sure as the crop's own subject was


def test_a_paste_neither_large_nor_small_leaves_the_subject_unweighted():
    crop, label = _crop_with_person(slice(10, 50), slice(0, 8))  # 40 px high
    middle = AugmentConfig(paste_height=(0.5, 0.55))
    for seed in range(2):
        _, out, weight, alpha = _paste_with_subject(crop, label, 1.0, middle, seed)
        assert weight == 0.0  # about the subject's size: who the photo is of is unclear
        np.testing.assert_allclose(out[..., 1], (1 - alpha) * label[..., 1], atol=1e-5)


def test_a_person_pasted_on_a_background_photo_is_the_subject_at_any_size():
    size = 120
    backgrounds = (np.full((3, size, size, 3), 90, np.uint8), np.zeros((3, size, size), np.uint8))
    photo, mask = _standing_figure()
    pool = (photo[None].repeat(2, axis=0), mask[None].repeat(2, axis=0))
    # Pasted under SUBJECT_PASTE_MIN_HEIGHT: a passer-by anywhere else, the subject here.
    cfg = dataclasses.replace(GEOMETRY_ONLY, paste_probability=0.0, paste_height=(0.2, 0.4))
    ds = make_mixed_dataset(
        [(*backgrounds, 1.0)], 4, 32, cfg, paste_pools=[pool], seed=0,
        subjects=[SubjectLabels.single(backgrounds[1])], paste_subjects=[pool[1]],
    )  # fmt: skip
    labels = np.concatenate([y.numpy() for _, y in ds.take(2)])
    assert labels.shape == (8, 32, 32, 3)
    assert (labels[..., 0].max(axis=(1, 2)) > 0.5).all()  # every crop got a person
    np.testing.assert_allclose(labels[..., 1], labels[..., 0], atol=1e-6)
    assert (labels[..., 2] == 1.0).all()


def _two_people(size: int = 64) -> np.ndarray:
    """A mask of a tall person on the left and a small one far to the right."""
    mask = np.zeros((size, size), np.uint8)
    mask[8:60, 8:24] = 255  # 832 px
    mask[48:58, 50:54] = 255  # 40 px: under a third of the first, far from it
    return mask


def test_rule_subject_drops_the_small_far_person_and_weighs_the_guess_down():
    mask = _two_people()
    subject, weight = rule_subject(mask)
    assert (subject[8:60, 8:24] == 255).all() and not subject[48:58, 50:54].any()
    assert weight == SUBJECT_RULE_WEIGHT < 1
    one = mask.copy()
    one[48:58, 50:54] = 0
    subject, weight = rule_subject(one)
    np.testing.assert_array_equal(subject, one)
    assert weight == 1.0  # one person: nobody to leave out, the label is sure


def test_single_subject_sources_mark_every_person_and_the_rule_does_not():
    size = 64
    mask = _two_people(size)
    images = np.full((4, size, size, 3), 90, np.uint8)
    images[:, mask > 0] = 230
    masks = mask[None].repeat(4, axis=0)
    rule = SubjectLabels(*map(np.stack, zip(*[rule_subject(m) for m in masks], strict=True)))
    cfg = dataclasses.replace(GEOMETRY_ONLY, zoom=(1.0, 1.0), aspect=(1.0, 1.0), rotation_degrees=0)
    for subjects, weight in ((SubjectLabels.single(masks), 1.0), (rule, SUBJECT_RULE_WEIGHT)):
        ds = make_mixed_dataset([(images, masks, 1.0)], 4, 64, cfg, seed=0, subjects=[subjects])
        _, labels = next(iter(ds))
        labels = labels.numpy()
        assert (labels[..., 2] == weight).all()
        assert (labels[..., 1] <= labels[..., 0] + 1e-6).all()
        dropped = (labels[..., 0] - labels[..., 1]).sum(axis=(1, 2))
        if weight == 1.0:
            assert (dropped < 1e-3).all()  # single subject: the subject is the person
        else:
            assert (dropped > 20).all()  # the rule leaves the small far person out


def test_subject_cache_is_the_rule_and_is_reused(tmp_path):
    data = _write_dataset(tmp_path / "data", n_train=3, n_val=0)
    samples = read_split(data, "train")
    _, masks = build_cache(samples, 32, tmp_path / "cache")
    labels = build_subject_cache(samples, masks, tmp_path / "cache")
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert labels.masks.shape == masks.shape and labels.weights.tolist() == [1.0] * 3
    np.testing.assert_array_equal(labels.masks, masks)  # one person each: kept whole
    again = build_subject_cache(samples, masks, tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == files
    np.testing.assert_array_equal(again.masks, labels.masks)


def test_validation_labels_carry_the_subject_and_a_unit_weight():
    masks = _two_people()[None].repeat(3, axis=0)
    images = np.zeros((3, 64, 64, 3), np.uint8)
    subjects = SubjectLabels.single(np.stack([rule_subject(m)[0] for m in masks]))
    (_, y), *_ = make_dataset(images, masks, 3, 64, False, subjects=subjects)
    y = y.numpy()
    assert y.shape == (3, 64, 64, 3) and (y[..., 2] == 1).all()
    assert y[:, 50, 52, 0].min() > 0.99 and y[:, 50, 52, 1].max() < 0.01


def test_subject_loss_adds_the_weighted_subject_channel():
    rng = np.random.default_rng(0)
    truth = (rng.uniform(size=(2, 16, 16, 2)) > 0.5).astype(np.float32)
    pred = rng.uniform(0.05, 0.95, (2, 16, 16, 2)).astype(np.float32)
    weights = np.array([0.0, 1.0], np.float32)
    plane = np.broadcast_to(weights[:, None, None, None], (2, 16, 16, 1))
    label = np.concatenate([truth, plane], axis=-1)
    plain = BceDiceLoss(boundary_weight=2.0)
    person = plain.call(truth[..., :1], pred[..., :1]).numpy()
    subject = plain.call(truth[..., 1:], pred[..., 1:]).numpy()
    for factor in (1.0, 3.0):
        loss = BceDiceLoss(boundary_weight=2.0, subject_weight=factor).call(label, pred).numpy()
        np.testing.assert_allclose(loss, person + factor * weights * subject, rtol=1e-5)
    assert subject[1] > 0.1  # the weighted term is not negligible, so the test can fail
    again = BceDiceLoss.from_config(BceDiceLoss(subject_weight=3.0).get_config())
    assert again.subject_weight == 3.0


def test_subject_iou_scores_channel_1_and_skips_unknown_subjects():
    truth = np.zeros((2, 8, 8, 3), np.float32)
    truth[:, :4, :, :2] = 1.0
    truth[0, ..., 2], truth[1, ..., 2] = 1.0, 0.0  # the second example's subject is unknown
    pred = np.zeros((2, 8, 8, 2), np.float32)
    pred[:, :4, :, 0] = 1.0  # every person right
    pred[1, :4, :, 1] = 1.0  # the subject right only where it does not count
    person, subject = MeanImageScore("iou", channel=0), MeanImageScore("iou", channel=1)
    person.update_state(truth, pred)
    subject.update_state(truth, pred)
    assert float(person.result()) == 1.0 and float(subject.result()) == 0.0


@pytest.mark.slow
def test_train_a_subject_head_from_a_one_channel_model_resume_and_export(
    tmp_path, tiny_model_path, capsys
):
    import keras

    from segmentation.network import load_network

    people = _write_dataset(tmp_path / "people")
    studio = _write_dataset(tmp_path / "studio", n_train=4, n_val=1)
    run = tmp_path / "runs" / "subject"
    exported = tmp_path / "weights" / "subject.keras"
    common = [
        "--data", f"{people}=2", "--data", f"{studio}=1", "--paste-from", str(studio),
        "--paste-from", str(people), "--single-subject", "studio", "--out", str(run),
        "--size", "64", "--batch", "2", "--steps-per-epoch", "2", "--decoder-filters",
        "8,8,8,8", "--init", str(tiny_model_path), "--subject-head", "--subject-weight", "0.5",
    ]  # fmt: skip
    train_main([*common, "--epochs", "1"])
    assert "the subject head starts as a copy of the person head" in capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    assert config["subject_head"] and config["single_subject"] == ["studio"]
    assert config["subject_weight"] == 0.5
    with pytest.raises(SystemExit, match="subject_head"):
        train_main([*common[:-3], "--epochs", "2", "--resume"])
    train_main([*common, "--epochs", "2", "--resume", "--export", str(exported)])
    with open(run / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert {"val_iou", "val_subject_iou", "subject_iou"} <= set(rows[0])
    model = keras.saving.load_model(exported, compile=False, safe_mode=True)
    assert model.output_shape == (None, 64, 64, 2)
    network = load_network(exported)
    assert network.runtime == "litert" and network.channels == 2
    with pytest.raises(SystemExit, match="single-subject nowhere"):
        train_main([*common[:8], "--single-subject", "nowhere", "--subject-head",
                    "--out", str(tmp_path / "x")])  # fmt: skip
