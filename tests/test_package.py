"""The installable package: the ``nobg`` command, its help and version, the shipped model.

``make test`` installs the checkout editable, so ``nobg`` sits beside the venv's
Python. These tests run it from a folder outside the checkout, as a user would, and
build the wheel to check that the weights travel inside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

import segmentation
from segmentation.resources import MODEL_NAME, default_model_path, model_path

REPO = Path(__file__).resolve().parent.parent
NOBG = Path(sys.executable).with_name("nobg")
SUBCOMMANDS = ("cutout", "mask", "video", "serve", "batch")


def nobg(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SEGMENTATION_MODEL")}
    return subprocess.run(
        [str(NOBG), *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_command_version_and_help_for_every_subcommand(tmp_path: Path) -> None:
    assert NOBG.is_file(), "the project is not installed in this venv (make test does it)"
    version = nobg("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"nobg {segmentation.__version__}"
    top = nobg("--help", cwd=tmp_path)
    assert top.returncode == 0
    for command in SUBCOMMANDS:
        assert command in top.stdout
        sub = nobg(command, "--help", cwd=tmp_path)
        assert sub.returncode == 0, sub.stderr
        assert sub.stdout.startswith(f"usage: nobg {command}")
    serve_help = nobg("serve", "--help", cwd=tmp_path).stdout
    for words in ("--host", "--port", "--workers", "--api-key", "X-API-Key", "127.0.0.1"):
        assert words in serve_help
    batch_help = nobg("batch", "--help", cwd=tmp_path).stdout
    for words in ("--engine", "--format", "jpg-on-background", "RAY_ADDRESS", "manifest"):
        assert words in batch_help


@pytest.mark.skipif(not default_model_path().is_file(), reason="no shipped model")
def test_command_works_from_another_folder_with_the_shipped_model(tmp_path: Path) -> None:
    shutil.copy(REPO / "assets" / "example.png", tmp_path / "photo.png")
    run = nobg("cutout", "photo.png", "-o", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    with Image.open(tmp_path / "out" / "photo.png") as cutout:
        assert cutout.mode == "RGBA"
        assert cutout.size == Image.open(tmp_path / "photo.png").size
        alpha = cutout.getchannel("A")
        assert alpha.getpixel((0, 0)) < 128  # background corner removed
    # $SEGMENTATION_MODEL chooses other weights: a missing file is reported as such.
    other = nobg(
        "mask", "photo.png", "-o", "m", cwd=tmp_path, env={"SEGMENTATION_MODEL": "x.keras"}
    )
    assert other.returncode == 1 and "model file not found: x.keras" in other.stderr


def test_model_lookup_order(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SEGMENTATION_MODEL", raising=False)
    assert default_model_path() == REPO / "weights" / MODEL_NAME  # a checkout
    assert model_path() == default_model_path()
    monkeypatch.setenv("SEGMENTATION_MODEL", str(tmp_path / "env.keras"))
    assert model_path() == tmp_path / "env.keras"
    assert model_path(tmp_path / "flag.keras") == tmp_path / "flag.keras"  # --model wins

    # An installed copy: the weights inside the package win over any weights/ beside it.
    site = tmp_path / "site-packages"
    shutil.copytree(REPO / "segmentation", site / "segmentation")
    (site / "segmentation" / "weights").mkdir(exist_ok=True)
    (site / "segmentation" / "weights" / MODEL_NAME).write_bytes(b"stand-in")
    (site / "weights").mkdir()
    (site / "weights" / MODEL_NAME).write_bytes(b"someone else's")
    probe = subprocess.run(
        [sys.executable, "-c", "from segmentation import DEFAULT_MODEL_PATH as p; print(p)"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.stdout.strip() == str(site / "segmentation" / "weights" / MODEL_NAME), probe


def test_wheel_holds_the_package_the_model_and_the_command(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = tmp_path.glob("person_background_remover-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert "nobg = segmentation.cli:console" in scripts
    for package in ("cli", "api", "batch", "video"):
        assert f"segmentation/{package}/__init__.py" in names
    if (REPO / "weights" / MODEL_NAME).is_file():
        assert f"segmentation/weights/{MODEL_NAME}" in names
    tflite = REPO / "weights" / MODEL_NAME.replace(".keras", ".tflite")
    if tflite.is_file():
        # Written after the .keras, so an installed copy still runs on LiteRT.
        keras_at = names.index(f"segmentation/weights/{MODEL_NAME}")
        assert names.index(f"segmentation/weights/{tflite.name}") > keras_at
    assert not any(n.startswith(("tests/", "train/", "weights/", "bench/")) for n in names)


def test_a_keras_model_without_keras_says_what_to_install(monkeypatch, tmp_path: Path) -> None:
    """The plain install has LiteRT only: a .keras without a .tflite names the extra."""
    import segmentation.segmenter
    from segmentation.segmenter import load_segmenter

    def no_keras(path):
        raise ModuleNotFoundError("No module named 'keras'")

    monkeypatch.setattr(segmentation.segmenter, "Segmenter", no_keras)
    with pytest.raises(ValueError, match=r"pip install 'person-background-remover\[keras\]'"):
        load_segmenter(tmp_path / "other.keras")
