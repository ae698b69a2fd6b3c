"""python -m segmentation: folders in, PNGs out, one clear line per bad file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segmentation.cli import collect_inputs, main
from tests.conftest import small_person_photo

REPO = Path(__file__).resolve().parent.parent


def write_photo(path: Path, width: int, height: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """in/a.jpg (90x70), in/sub/b.png (64x100) and in/broken.jpg (text)."""
    folder = tmp_path / "in"
    write_photo(folder / "a.jpg", 90, 70, seed=1)
    write_photo(folder / "sub" / "b.png", 64, 100, seed=2)
    (folder / "broken.jpg").write_text("this is a shopping list, not a photo\n")
    (folder / "notes.txt").write_text("ignored: not an image extension\n")
    return folder


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line]


def test_cutout_folder_with_one_bad_file(photos: Path, tmp_path: Path, tiny_model_path, capsys):
    out = tmp_path / "out"
    code = main(["cutout", str(photos), "-o", str(out), "--model", str(tiny_model_path)])
    stderr = capsys.readouterr().err
    assert code == 1
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr
    assert errors[0].startswith("error: ")
    assert "broken.jpg: not an image" in errors[0]
    with Image.open(out / "a.png") as a, Image.open(out / "sub" / "b.png") as b:
        assert (a.mode, a.size) == ("RGBA", (90, 70))
        assert (b.mode, b.size) == ("RGBA", (64, 100))
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["a.png", "b.png"]


def test_mask_command_writes_greyscale_at_input_size(
    reuse_tiny_segmenter, photos: Path, tmp_path: Path, tiny_model_path, capsys
):
    out = tmp_path / "masks"
    source = photos / "a.jpg"
    code = main(["mask", str(source), "-o", str(out), "--model", str(tiny_model_path)])
    assert code == 0, capsys.readouterr().err
    with Image.open(out / "a.png") as mask:
        assert (mask.mode, mask.size) == ("L", (90, 70))
        values = np.asarray(mask)
    assert values.std() > 5  # a soft mask, not a constant


def test_mask_matches_the_api(
    reuse_tiny_segmenter, photos: Path, tmp_path: Path, tiny_model_path, tiny_segmenter
):
    out = tmp_path / "masks"
    main(["mask", str(photos / "a.jpg"), "-o", str(out), "--model", str(tiny_model_path)])
    expected = tiny_segmenter.predict(photos / "a.jpg").alpha
    np.testing.assert_array_equal(np.asarray(Image.open(out / "a.png")), expected)


def test_no_zoom_looks_once(
    monkeypatch, colour_segmenter, tmp_path: Path, tiny_model_path, capsys
) -> None:
    import segmentation.segmenter

    segmenter, _ = colour_segmenter
    monkeypatch.setattr(segmentation.segmenter, "Segmenter", lambda path: segmenter)
    rgb, _ = small_person_photo()
    photo = tmp_path / "runner.png"
    Image.fromarray(rgb).save(photo)
    for flags, out in (([], "twice"), (["--no-zoom"], "once")):
        args = ["mask", str(photo), "-o", str(tmp_path / out), "--model", str(tiny_model_path)]
        assert main([*args, *flags]) == 0, capsys.readouterr().err
    twice, once = (np.asarray(Image.open(tmp_path / d / "runner.png")) for d in ("twice", "once"))
    np.testing.assert_array_equal(twice, segmenter.predict(photo).alpha)
    np.testing.assert_array_equal(once, segmenter.predict(photo, zoom=False).alpha)
    assert not np.array_equal(twice, once)


@pytest.mark.parametrize("background", ["white", "#1e90ff", "blur"])
def test_background_gives_rgb(
    reuse_tiny_segmenter, photos: Path, tmp_path: Path, tiny_model_path, background: str, capsys
):
    out = tmp_path / "out"
    args = ["cutout", str(photos / "sub"), "-o", str(out), "--model", str(tiny_model_path)]
    code = main([*args, "--background", background, "--no-refine"])
    assert code == 0, capsys.readouterr().err
    with Image.open(out / "b.png") as image:
        assert (image.mode, image.size) == ("RGB", (64, 100))


def test_background_image_file(
    reuse_tiny_segmenter, photos: Path, tmp_path: Path, tiny_model_path, capsys
):
    out = tmp_path / "out"
    args = ["cutout", str(photos / "sub" / "b.png"), "-o", str(out)]
    code = main([*args, "--model", str(tiny_model_path), "--background", str(photos / "a.jpg")])
    assert code == 0, capsys.readouterr().err
    assert Image.open(out / "b.png").mode == "RGB"


def test_bad_background_is_a_usage_error(photos: Path, tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["cutout", str(photos), "-o", str(tmp_path / "o"), "--background", "blurple"])
    assert info.value.code == 2
    assert "unknown colour 'blurple'" in capsys.readouterr().err


def test_missing_model_fails_cleanly(photos: Path, tmp_path: Path, capsys):
    code = main(["cutout", str(photos), "-o", str(tmp_path / "o"), "--model", "nope.keras"])
    assert code == 1
    errors = error_lines(capsys.readouterr().err)
    assert errors == [errors[0]] and "model file not found" in errors[0]


def test_missing_input_and_size_limit(
    reuse_tiny_segmenter, photos: Path, tmp_path: Path, tiny_model_path, capsys
):
    out = tmp_path / "out"
    args = [str(photos / "a.jpg"), str(tmp_path / "ghost.jpg"), "-o", str(out)]
    code = main(["mask", *args, "--model", str(tiny_model_path), "--max-megapixels", "0.005"])
    assert code == 1
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 2
    assert any("ghost.jpg: no such file or folder" in line for line in errors)
    assert any("a.jpg: too large" in line for line in errors)
    assert not out.exists() or not any(out.iterdir())


def test_collect_inputs_names_and_skips(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    for name in ["x.jpg", "x.png", "y.JPEG", ".hidden.jpg", "deep/z.webp", "readme.md"]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    (tmp_path / "empty").mkdir()
    jobs, failures = collect_inputs([folder, folder / "x.jpg", tmp_path / "empty"], tmp_path / "o")
    targets = {src.name: dst.relative_to(tmp_path / "o").as_posix() for src, dst in jobs}
    assert targets == {
        "x.jpg": "x.jpg.png",  # same stem twice: keep the extension
        "x.png": "x.png.png",
        "y.JPEG": "y.png",
        "z.webp": "deep/z.png",
    }
    assert len(jobs) == 4  # x.jpg named twice is processed once
    assert failures == [(tmp_path / "empty", "no images in this folder")]


def test_outputs_never_overwrite_inputs_nor_become_inputs(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    write_photo(folder / "me.png", 20, 20)
    write_photo(folder / "out" / "old_result.png", 20, 20)
    jobs, failures = collect_inputs([folder], folder)  # -o photos/: me.png -> me.png
    assert all(source.name != "me.png" for source, _ in jobs)
    overwrite = "the output would overwrite this input: use another -o"
    assert (folder / "me.png", overwrite) in failures
    jobs, failures = collect_inputs([folder], folder / "out")
    assert [source.name for source, _ in jobs] == ["me.png"]  # out/old_result.png skipped
    assert failures == []


def test_help_documents_every_option_without_loading_tensorflow() -> None:
    code = (
        "import sys\n"
        "from segmentation.cli import build_parser\n"
        "build_parser()\n"
        "print('tensorflow' in sys.modules)\n"
    )
    probe = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert probe.stdout.strip() == "False", probe.stderr
    helps = [
        subprocess.run(
            [sys.executable, "-m", "segmentation", *cmd, "--help"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        for cmd in ([], ["cutout"], ["mask"])
    ]
    assert all(h.returncode == 0 for h in helps)
    top, cutout_help, mask_help = (h.stdout for h in helps)
    for word in ("cutout", "mask", "recursively", "exit status", "error: <path>: <reason>"):
        assert word in top
    for option in (
        "--output",
        "--model",
        "--background",
        "--no-refine",
        "--no-zoom",
        "--no-mirror",
        "--max-megapixels",
    ):
        assert option in cutout_help
    for word in ("blur", "#rrggbb", "transparent"):
        assert word in cutout_help
    assert "--background BG" not in mask_help and "--model PATH" in mask_help
