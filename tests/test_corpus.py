"""Every file in the bad-input corpus (tests/corpus.py) through every entry point.

Each case states its outcome once: a result of a given size, or an ImageError whose
message says why. The decoder, the Python API, the CLI and the app's per-file function
must all agree with it, never crash, never print a traceback, and never hang on a bomb.
The CLI runs once over the whole corpus in a real process (TensorFlow's start-up
dominates a run) and once per file in-process for a few cases, to check the exit status.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segmentation import ImageError, encode_png, load_image
from tests.corpus import (
    CASE_IDS,
    CliRun,
    all_cases,
    app_predictor,
    error_lines_for,
    get_case,
    outcome_table,
    outputs_for,
    run_app,
    run_cli,
    stray_stderr,
    write_corpus,
)

GOOD = [i for i in CASE_IDS if get_case(i).ok]
BAD = [i for i in CASE_IDS if not get_case(i).ok]


def test_corpus_has_both_kinds() -> None:
    """The cases the issue lists are all here, and some must fail, some must work."""
    required = {
        "empty",
        "random_bytes",
        "text_as_jpg",
        "truncated_jpeg",
        "png_bad_crc",
        "bomb_40000px",
        "one_pixel",
        "png_16bit_rgb",
        "cmyk_jpeg",
        "palette_png_transparent",
        "animated_gif",
        "exif_rotated_jpeg",
        "rgba_png",
        "greyscale_jpeg",
        "panorama_10to1",
        "heic",
    }
    assert required <= set(CASE_IDS)
    assert GOOD and BAD
    assert len({get_case(i).filename for i in CASE_IDS}) == len(CASE_IDS)


def test_bomb_is_cheap_but_real() -> None:
    """The bomb file is small yet its header really claims 40000 x 40000 pixels."""
    case = get_case("bomb_40000px")
    assert len(case.data) < 4_000_000
    assert case.data[16:24] == (40000).to_bytes(4, "big") * 2


# --- decoder -----------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_load_image(case_id: str, tmp_path: Path) -> None:
    """load_image from bytes and from a path: right pixels, or one clear ImageError."""
    case = get_case(case_id)
    path = write_corpus(tmp_path, [case])[case_id]
    for source in (case.data, path):
        if not case.ok:
            with pytest.raises(ImageError, match=case.error):
                load_image(source)
            continue
        rgb = load_image(source)
        width, height = case.size
        assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8
        if case.reference is not None:
            diff = np.abs(rgb.astype(np.float32) - case.reference.astype(np.float32)).mean()
            assert diff <= case.tolerance, f"decoded pixels differ by {diff:.2f} on average"


# --- Python API --------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_api(case_id: str, tiny_segmenter) -> None:
    """Segmenter.predict: a full-size mask in [0, 1] and an RGBA cutout, or ImageError."""
    case = get_case(case_id)
    if not case.ok:
        with pytest.raises(ImageError, match=case.error) as info:
            tiny_segmenter.predict(case.data)
        assert str(info.value).strip(), "the message must say why"
        return
    result = tiny_segmenter.predict(case.data)
    width, height = case.size
    assert result.original.shape == (height, width, 3)
    assert result.mask.shape == (height, width) and result.mask.dtype == np.float32
    assert np.isfinite(result.mask).all()
    assert result.mask.min() >= 0.0 and result.mask.max() <= 1.0
    rgba = result.cutout()
    assert rgba.shape == (height, width, 4) and rgba.dtype == np.uint8
    with Image.open(io.BytesIO(encode_png(rgba))) as png:
        assert png.size == (width, height) and png.mode == "RGBA"


# --- CLI ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_batch(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> CliRun:
    """One CLI run over every corpus file at once."""
    folder = tmp_path_factory.mktemp("cli-corpus")
    paths = write_corpus(folder / "in")
    return run_cli(list(paths.values()), folder / "out", tiny_model_path)


@pytest.mark.slow
def test_cli_batch_exit_code_and_no_traceback(cli_batch: CliRun) -> None:
    """Some files failed, so exit code 1; and no Python traceback reaches the user."""
    assert cli_batch.returncode == 1, cli_batch.stderr
    assert "Traceback" not in cli_batch.stderr + cli_batch.stdout
    assert not stray_stderr(cli_batch), stray_stderr(cli_batch)
    error_lines = [line for line in cli_batch.stderr.splitlines() if "error" in line.lower()]
    bad_names = [get_case(i).filename for i in BAD]
    assert len(error_lines) == len(BAD), cli_batch.stderr
    for line in error_lines:  # each names a bad file: no stray errors or warnings
        assert any(name in line for name in bad_names), f"unexpected stderr line: {line!r}"


@pytest.mark.slow
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_cli_batch(case_id: str, cli_batch: CliRun) -> None:
    """Per file: a full-size RGBA PNG written, or exactly one error line and no output."""
    assert_cli_outcome(cli_batch, case_id)


def assert_cli_outcome(run: CliRun, case_id: str) -> None:
    """The CLI did what the case says: one output of the right size, or one error line."""
    case = get_case(case_id)
    written = outputs_for(run, case)
    errors = error_lines_for(run, case)
    if case.ok:
        assert not errors, errors
        assert len(written) == 1, [p.name for p in written]
        with Image.open(written[0]) as image:
            assert image.size == case.size and image.mode == "RGBA"
    else:
        assert not written, [p.name for p in written]
        assert len(errors) == 1, run.stderr
        assert re.search(case.error, errors[0]), errors[0]


#: One CLI start-up per file costs ~15 s here, so the per-file runs (which add the exit
#: code to what the batch run checks) cover one case of each kind of outcome.
SINGLE_FILE_CASES = [
    "plain_jpeg",
    "heic",
    "exif_rotated_jpeg",
    "empty",
    "text_as_jpg",
    "png_bad_crc",
    "tiff_bad_header",
    "bomb_40000px",
    "one_pixel",
]


@pytest.mark.parametrize("case_id", SINGLE_FILE_CASES)
def test_cli_single_file(
    case_id: str, tmp_path: Path, tiny_model_path: Path, reuse_tiny_segmenter, capsys
) -> None:
    """One file per run: exit status 0 for a good file and 1 for a bad one, in-process
    (the batch run and the test below check the real process)."""
    from segmentation.cli import main

    case = get_case(case_id)
    path = write_corpus(tmp_path / "in", [case])[case_id]
    out = tmp_path / "out"
    code = main(["cutout", str(path), "-o", str(out), "--model", str(tiny_model_path)])
    captured = capsys.readouterr()
    run = CliRun(code, captured.out, captured.err, out)
    assert run.returncode == (0 if case.ok else 1), run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert not stray_stderr(run), stray_stderr(run)
    assert_cli_outcome(run, case_id)


@pytest.mark.slow
def test_cli_process_exits_0_for_one_good_file(tmp_path: Path, tiny_model_path: Path) -> None:
    """The status main() returns is the process's: 0 here, 1 in the batch run above."""
    path = write_corpus(tmp_path / "in", [get_case("plain_jpeg")])["plain_jpeg"]
    run = run_cli([path], tmp_path / "out", tiny_model_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert not stray_stderr(run), stray_stderr(run)
    assert_cli_outcome(run, "plain_jpeg")


# --- app ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_app_process_photo(case_id: str, tiny_segmenter) -> None:
    """The app's per-file function: a prediction and downloads, or a named, clear message."""
    import app_support

    case = get_case(case_id)
    outcome = app_support.process_photo(case.filename, case.data, app_predictor(tiny_segmenter))
    if not case.ok:
        assert outcome.prediction is None
        assert outcome.error and outcome.error.startswith(f"{case.filename}: ")
        assert app_support.UNEXPECTED_ERROR not in outcome.error
        assert re.search(case.error, outcome.error), outcome.error
        assert "Traceback" not in outcome.error
        return
    assert outcome.ok and outcome.error is None
    width, height = case.size
    assert outcome.prediction.mask.shape == (height, width)
    assert outcome.prediction.original.shape == (height, width, 3)


@pytest.mark.slow
def test_app_upload_of_the_whole_corpus(tiny_model_path: Path) -> None:
    """The real app (AppTest) with every corpus file uploaded at once: no exception shown,
    one error naming each bad file, a photo card for each good one."""
    app = run_app(all_cases(), tiny_model_path)
    assert not app.exceptions, app.exceptions
    assert len(app.errors) == len(BAD), app.errors
    for case_id in CASE_IDS:
        case = get_case(case_id)
        outcome = app.outcomes[case_id]
        if case.ok:
            assert outcome == "result shown", outcome
        else:
            assert outcome.startswith(f"error: {case.filename}: "), outcome
            assert re.search(case.error, outcome), outcome


@pytest.mark.slow
def test_outcome_table(tmp_path: Path, tiny_model_path: Path) -> None:
    """``python -m tests.corpus`` helper: a row per case and nothing unexpected."""
    table = outcome_table(tiny_model_path)
    (tmp_path / "corpus.md").write_text(table)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == len(CASE_IDS) + 1  # header + one per case
    assert "UNEXPECTED" not in table
