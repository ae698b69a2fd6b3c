"""``nobg batch``: outputs under the same relative paths, a manifest, resume, Ray Data.

The local engine runs in-process on the session's tiny Segmenter. The Ray engine runs
once, on a local Ray of 2 CPUs started by the fixture, and resumes a job that was
interrupted after two images: it must process only the rest, keep a broken file as an
error row, and leave the finished outputs alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segmentation.segmenter
from segmentation.batch import BatchOptions, list_jobs, read_manifest, resolve, run_batch
from segmentation.cli import main
from segmentation.errors import ImageError
from segmentation.io import load_image
from tests.conftest import small_person_photo

BROKEN_TEXT = "a shopping list, not a photo\n"
#: Relative path -> (width, height) of the good photos.
GOOD = {"a.jpg": (90, 70), "sub/b.png": (64, 100), "sub/deeper/c.webp": (80, 60), "d.jpg": (50, 40)}


def write_photo(path: Path, width: int, height: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC).save(path)


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    """Four photos in nested folders, a broken .jpg, a text file and a hidden photo."""
    folder = tmp_path / "catalogue"
    for seed, (rel, (w, h)) in enumerate(GOOD.items()):
        write_photo(folder / rel, w, h, seed)
    (folder / "broken.jpg").write_text(BROKEN_TEXT)
    (folder / "notes.txt").write_text("not an image extension: ignored\n")
    write_photo(folder / ".thumbs" / "x.jpg", 20, 20, 99)
    return folder


@pytest.fixture
def shared_segmenter(monkeypatch, tiny_segmenter):
    """The local engine loads the session's tiny Segmenter instead of reading weights."""
    monkeypatch.setattr(segmentation.segmenter, "load_segmenter", lambda path: tiny_segmenter)
    return tiny_segmenter


def broken_reason() -> str:
    with pytest.raises(ImageError) as info:
        load_image(BROKEN_TEXT.encode())
    return str(info.value)


def by_input(rows: list[dict], root: Path) -> dict[str, dict]:
    return {Path(row["input"]).relative_to(root).as_posix(): row for row in rows}


def check_outputs(out: Path, mode: str = "RGBA", suffix: str = ".png") -> None:
    for rel, size in GOOD.items():
        with Image.open((out / rel).with_suffix(suffix)) as image:
            assert (image.mode, image.size) == (mode, size), rel


def test_local_engine_writes_every_output_and_a_manifest(
    shared_segmenter, catalogue: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    code = main(["batch", str(catalogue), str(out)])
    assert code == 1  # one input failed
    assert "4 written, 0 already done, 1 failed" in capsys.readouterr().err
    check_outputs(out)
    found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert found == sorted(
        ["manifest.csv", *(Path(r).with_suffix(".png").as_posix() for r in GOOD)]
    )

    rows = by_input(read_manifest(out / "manifest.csv"), catalogue)
    assert set(rows) == {*GOOD, "broken.jpg"}
    assert rows["broken.jpg"]["status"] == "error"
    assert rows["broken.jpg"]["error"] == broken_reason()
    assert rows["broken.jpg"]["output"] == ""
    for rel, (w, h) in GOOD.items():
        row = rows[rel]
        target = (out / rel).with_suffix(".png")
        assert row["status"] == "ok" and row["error"] == ""
        assert row["output"] == str(target)
        assert (int(row["width"]), int(row["height"])) == (w, h)
        assert int(row["output_bytes"]) == target.stat().st_size
        assert int(row["input_bytes"]) == (catalogue / rel).stat().st_size
    np.testing.assert_array_equal(
        np.asarray(Image.open(out / "a.png")),
        shared_segmenter.predict(catalogue / "a.jpg").cutout(),
    )


def test_formats_and_a_parquet_manifest(shared_segmenter, catalogue: Path, tmp_path: Path) -> None:
    dest = (tmp_path / "masks").as_uri()  # a URI, as for object stores: file:///...
    masks = run_batch(str(catalogue), dest, BatchOptions("mask"), progress=False)
    assert (masks.written, masks.failed) == (4, 1)
    check_outputs(tmp_path / "masks", mode="L")
    assert masks.manifest == (tmp_path / "masks" / "manifest.csv").as_posix()
    options = BatchOptions("jpg-on-background", background="#1e90ff", refine=False)
    manifest = tmp_path / "report" / "jobs.parquet"
    jpegs = run_batch(
        str(catalogue), str(tmp_path / "jpg"), options, manifest=str(manifest), progress=False
    )
    check_outputs(tmp_path / "jpg", mode="RGB", suffix=".jpg")
    assert jpegs.manifest == manifest.as_posix()
    rows = by_input(read_manifest(manifest), catalogue)
    assert rows["a.jpg"]["output"] == str(tmp_path / "jpg" / "a.jpg")
    assert rows["broken.jpg"]["status"] == "error"
    with pytest.raises(ValueError, match="unknown colour 'blurple'"):
        run_batch(str(catalogue), str(tmp_path / "x"), BatchOptions("jpg-on-background", "blurple"))


def test_zoom_option_reaches_the_segmenter(monkeypatch, colour_segmenter, tmp_path: Path) -> None:
    segmenter, _ = colour_segmenter
    monkeypatch.setattr(segmentation.segmenter, "load_segmenter", lambda path: segmenter)
    rgb, _ = small_person_photo()
    (tmp_path / "in").mkdir()
    photo = tmp_path / "in" / "runner.png"
    Image.fromarray(rgb).save(photo)
    masks = {}
    for zoom in (True, False):
        out = tmp_path / f"zoom-{zoom}"
        options = BatchOptions("mask", zoom=zoom)
        summary = run_batch(str(tmp_path / "in"), str(out), options, progress=False)
        assert summary.written == 1
        masks[zoom] = np.asarray(Image.open(out / "runner.png"))
        np.testing.assert_array_equal(masks[zoom], segmenter.predict(photo, zoom=zoom).alpha)
    assert not np.array_equal(masks[True], masks[False])


def test_listing_names_like_the_cli(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    for rel in ("x.jpg", "x.png", "y.JPEG", ".hidden.jpg", "deep/z.webp", "readme.md", "o/old.png"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"?")
    fs, root = resolve(folder)
    out_fs, out_root = resolve(folder / "o")  # DEST inside SOURCE: its files are no inputs
    jobs = list_jobs(fs, root, out_fs, out_root, ".png")
    names = {Path(j.source).relative_to(folder).as_posix(): j.target for j in jobs}
    assert names == {
        "x.jpg": f"{out_root}/x.jpg.png",
        "x.png": f"{out_root}/x.png.png",
        "y.JPEG": f"{out_root}/y.png",
        "deep/z.webp": f"{out_root}/deep/z.png",
    }
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        list_jobs(*resolve(tmp_path / "ghost"), out_fs, out_root, ".png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images in this folder"):
        list_jobs(*resolve(tmp_path / "empty"), out_fs, out_root, ".png")


class StopsAfter:
    """A Segmenter that is interrupted (Ctrl-C, a killed node) before its n+1-th photo."""

    def __init__(self, inner, count: int) -> None:
        self._inner, self._left = inner, count

    def predict(self, *args, **kwargs):
        if self._left == 0:
            raise KeyboardInterrupt
        self._left -= 1
        return self._inner.predict(*args, **kwargs)


@pytest.fixture
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.timeout(300)  # an actor pool holding every CPU once starved the reads: a hang
def test_ray_engine_resumes_an_interrupted_job(
    monkeypatch, tiny_segmenter, tiny_model_path: Path, catalogue: Path, tmp_path: Path, local_ray
) -> None:
    out = tmp_path / "out"
    # 1. A local run interrupted after three inputs (one broken) leaves a manifest behind.
    stopper = StopsAfter(tiny_segmenter, 3)
    monkeypatch.setattr(segmentation.segmenter, "load_segmenter", lambda path: stopper)
    with pytest.raises(KeyboardInterrupt):
        run_batch(str(catalogue), str(out), progress=False)
    monkeypatch.undo()
    partial = read_manifest(out / "manifest.csv")
    assert [row["status"] for row in partial] == ["ok", "error", "ok"]
    done = {Path(row["output"]) for row in partial if row["status"] == "ok"}
    stamps = {path: path.stat().st_mtime_ns for path in done}
    (out / "sub" / ".b.png.part").parent.mkdir(parents=True, exist_ok=True)
    (out / "sub" / ".b.png.part").write_bytes(b"half a PNG from a killed write")

    # 2. The Ray engine (actors load the model from its path) does the rest only.
    options = BatchOptions(model=str(tiny_model_path))
    summary = run_batch(str(catalogue), str(out), options, engine="ray", progress=False)
    assert (summary.written, summary.skipped, summary.failed) == (len(GOOD) - 2, 2, 1)
    check_outputs(out)
    assert {path: path.stat().st_mtime_ns for path in done} == stamps  # not redone
    rows = by_input(read_manifest(out / "manifest.csv"), catalogue)
    assert set(rows) == {*GOOD, "broken.jpg"}
    assert {rel for rel, row in rows.items() if row["status"] == "skipped"} == {
        Path(row["input"]).relative_to(catalogue).as_posix()
        for row in partial
        if row["status"] == "ok"
    }
    assert rows["broken.jpg"]["status"] == "error"
    assert rows["broken.jpg"]["error"] == broken_reason()
    for rel in GOOD:
        assert rows[rel]["output"] == str((out / rel).with_suffix(".png"))
    # Same model, same code in the actors: the masks match the in-process ones.
    for rel in GOOD:
        got = np.asarray(Image.open((out / rel).with_suffix(".png")))[:, :, 3].astype(int)
        expected = tiny_segmenter.predict(catalogue / rel).alpha.astype(int)
        assert np.abs(got - expected).max() <= 1, rel
    assert not (out / "sub" / ".b.png.part").exists()  # replaced by the finished write
