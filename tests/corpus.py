"""Bad-input corpus: every awkward file a person can hand the remover, generated in code.

Nothing binary is committed: each case is built from a few lines of NumPy/Pillow (or a
hand-written PNG for the decompression bombs) and states what must happen to it, either a
result of a given size or an :class:`~segmentation.ImageError` whose message matches a
pattern. The same cases drive the Python API, the CLI and the app's per-file function in
``tests/test_corpus.py``; ``python -m tests.corpus`` prints the case -> outcome table
(markdown) for a closing note::

    python -m tests.corpus [--model weights/person_unet.keras] [--out table.md]

Without ``--model`` a tiny untrained network is built, which is all the table needs.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
#: Bound for one CLI run over the whole corpus (TensorFlow's import alone takes ~10 s on a
#: busy 2-core machine); a hang on a bomb must fail the test, not stall CI.
CLI_TIMEOUT_S = 600


@dataclass(frozen=True)
class Case:
    """One input file and what must happen to it.

    ``size`` is the (width, height) of the result for files that must work, None for files
    that must be refused with an ImageError whose message matches ``error``. ``reference``
    is the RGB a correct decoder produces (flattened transparency, applied EXIF rotation,
    first GIF frame...), compared with mean absolute difference at most ``tolerance``.
    """

    id: str
    filename: str
    data: bytes
    description: str
    size: tuple[int, int] | None = None
    error: str | None = None
    reference: np.ndarray | None = None
    tolerance: float = 6.0

    @property
    def ok(self) -> bool:
        """True when the file must give a result."""
        return self.size is not None


# --- pixel and file helpers ------------------------------------------------------------


def synthetic_photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth 'person on a backdrop' (HxWx3 uint8): gradient plus an ellipse, lossy-safe."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3).astype(np.float32)
    tilt = rng.uniform(-60, 60, size=3).astype(np.float32)
    image = base + tilt * (yy / max(height - 1, 1))[..., None]
    cx, cy = width * rng.uniform(0.35, 0.65), height * rng.uniform(0.45, 0.6)
    rx, ry = width * rng.uniform(0.15, 0.3), height * rng.uniform(0.3, 0.45)
    inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
    image[inside] = rng.uniform(0, 255, size=3).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    """Pillow image -> file bytes in ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk with its length and CRC."""
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def zero_png(width: int, height: int) -> bytes:
    """A valid 8-bit greyscale all-black PNG of any size, built without the raw pixels.

    Deflate after a full flush starts afresh, so compressing a block of zero rows once and
    repeating its bytes gives the same stream as compressing every row: 40000 x 40000 costs
    a few MB of file and milliseconds, not the 1.6 GB a decoder would allocate. The
    Adler-32 of n zero bytes is (n mod 65521) << 16 | 1.
    """
    row = bytes(1 + width)  # filter byte 0, then black pixels
    rows_per_block = next(n for n in (100, 10, 1) if height % n == 0)
    compressor = zlib.compressobj(9)
    head = compressor.compress(row * rows_per_block) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = head[2:]  # what every later block compresses to: the first carries the zlib header
    tail = compressor.flush()[:-4]  # the final empty block, without the 4-byte Adler-32
    adler = ((len(row) * height) % 65521) << 16 | 1
    stream = head + block * (height // rows_per_block - 1) + tail + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", stream)
        + png_chunk(b"IEND", b"")
    )


def corrupt_idat_crc(png: bytes) -> bytes:
    """Flip the CRC of the first IDAT chunk (Pillow's decoder alone does not notice)."""
    at = png.index(b"IDAT")
    length = struct.unpack(">I", png[at - 4 : at])[0]
    crc_at = at + 4 + length
    bad = bytes(b ^ 0xFF for b in png[crc_at : crc_at + 4])
    return png[:crc_at] + bad + png[crc_at + 4 :]


def flatten_on_white(rgba: np.ndarray) -> np.ndarray:
    """Reference for transparency: what a person expects to see on a page."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return np.clip(rgba[..., :3] * alpha + 255.0 * (1 - alpha) + 0.5, 0, 255).astype(np.uint8)


# --- the cases ---------------------------------------------------------------------------


def _empty() -> Case:
    return Case("empty", "empty.jpg", b"", "zero-byte file", error=r"empty")


def _random_bytes() -> Case:
    data = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return Case("random_bytes", "random.png", data, "4 KB of random bytes", error=r"not an image")


def _text_as_jpg() -> Case:
    data = b"Dear team,\nthe holiday photos are attached.\n" * 20
    return Case("text_as_jpg", "letter.jpg", data, "a text file named .jpg", error=r"not an image")


def _truncated_jpeg() -> Case:
    full = encode(Image.fromarray(synthetic_photo(320, 240, 2)), "JPEG", quality=90)
    return Case(
        "truncated_jpeg",
        "truncated.jpg",
        full[: len(full) // 2],
        "JPEG cut in half",
        error=r"(?i)damaged|truncated",
    )


def _png_bad_crc() -> Case:
    good = encode(Image.fromarray(synthetic_photo(120, 90, 3)), "PNG")
    return Case(
        "png_bad_crc",
        "bad_crc.png",
        corrupt_idat_crc(good),
        "PNG whose IDAT CRC is wrong",
        error=r"(?i)damaged",
    )


def _tiff_bad_samples() -> Case:
    """A TIFF whose header claims 166 samples per pixel: Pillow refuses it, and logs why."""
    data = bytearray(encode(Image.fromarray(synthetic_photo(40, 30, 14)), "TIFF"))
    assert data[:2] == b"II"  # Pillow writes little-endian TIFF
    ifd = struct.unpack("<I", data[4:8])[0]
    for i in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack("<H", data[entry : entry + 2])[0] == 277:  # SamplesPerPixel
            data[entry + 8 : entry + 10] = struct.pack("<H", 166)
            break
    else:
        raise AssertionError("no SamplesPerPixel tag")
    return Case(
        "tiff_bad_header",
        "scan.tif",
        bytes(data),
        "TIFF claiming 166 samples per pixel",
        error=r"(?i)damaged",
    )


def _bomb() -> Case:
    return Case(
        "bomb_40000px",
        "bomb.png",
        zero_png(40000, 40000),
        "valid PNG of 40000 x 40000 (1.6 GP) in ~1.5 MB",
        error=r"(?i)too large",
    )


def _jpeg_bomb() -> Case:
    """A small JPEG whose frame header (SOF0) claims 65000 x 65000 pixels."""
    data = bytearray(encode(Image.fromarray(synthetic_photo(64, 48, 15)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 65000, 65000)  # height, width
    return Case(
        "jpeg_bomb_65000px",
        "bomb.jpg",
        bytes(data),
        "2 KB JPEG whose header claims 65000 x 65000 (4.2 GP)",
        error=r"(?i)too large",
    )


def _over_limit() -> Case:
    return Case(
        "png_64mp",
        "huge.png",
        zero_png(8000, 8000),
        "valid 8000 x 8000 PNG: above the 50 MP limit, below Pillow's bomb guard",
        error=r"(?i)too large",
    )


def _one_pixel() -> Case:
    image = Image.new("RGB", (1, 1), (200, 100, 50))
    rgb = np.asarray(image)
    return Case(
        "one_pixel", "dot.png", encode(image, "PNG"), "1 x 1 PNG", size=(1, 1), reference=rgb
    )


def _png_16bit_rgb() -> Case:
    rgb8 = synthetic_photo(160, 120, 4)
    rgb16 = rgb8.astype(np.uint16) * 257 + np.uint16(90)  # low byte set: real 16-bit data
    import cv2  # Pillow cannot write 16-bit colour PNG; OpenCV can (BGR order)

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    assert ok
    reference = np.clip(np.rint(rgb16 / 257.0), 0, 255).astype(np.uint8)
    return Case(
        "png_16bit_rgb",
        "deep.png",
        buf.tobytes(),
        "16-bit RGB PNG",
        size=(160, 120),
        reference=reference,
        tolerance=1.5,
    )


def _png_16bit_grey() -> Case:
    grey8 = synthetic_photo(100, 140, 5)[..., 1]
    grey16 = grey8.astype(np.uint16) * 257
    image = Image.fromarray(grey16)  # mode I;16
    return Case(
        "png_16bit_grey",
        "deep_grey.png",
        encode(image, "PNG"),
        "16-bit greyscale PNG",
        size=(100, 140),
        reference=np.repeat(grey8[..., None], 3, axis=2),
        tolerance=1.0,
    )


def _cmyk_jpeg() -> Case:
    rgb = synthetic_photo(200, 150, 6)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    return Case(
        "cmyk_jpeg",
        "print.jpg",
        encode(cmyk, "JPEG", quality=95),
        "CMYK JPEG (print workflow)",
        size=(200, 150),
        reference=np.asarray(cmyk.convert("RGB")),
        tolerance=8.0,
    )


def _palette_transparent() -> Case:
    rgb = synthetic_photo(120, 100, 7)
    image = Image.fromarray(rgb).quantize(colors=16)
    pixels = np.array(image)
    pixels[:, :30] = 15  # a transparent stripe on the left
    palette_image = Image.frombytes("P", image.size, pixels.tobytes())
    palette_image.putpalette(image.getpalette())
    rgba = np.asarray(palette_image.convert("RGBA")).copy()
    rgba[pixels == 15, 3] = 0
    return Case(
        "palette_png_transparent",
        "logo.png",
        encode(palette_image, "PNG", transparency=15),
        "palette PNG with a transparent index",
        size=(120, 100),
        reference=flatten_on_white(rgba),
        tolerance=0.5,
    )


def _animated_gif() -> Case:
    colours = [(220, 30, 30), (30, 200, 30), (30, 30, 220)]
    frames = [Image.new("RGB", (90, 70), c) for c in colours]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    reference = np.zeros((70, 90, 3), np.uint8) + np.array(colours[0], np.uint8)
    return Case(
        "animated_gif",
        "wave.gif",
        data,
        "3-frame animated GIF (first frame expected)",
        size=(90, 70),
        reference=reference,
        tolerance=3.0,
    )


def _exif_rotated() -> Case:
    stored = synthetic_photo(240, 160, 8)
    stored[:, :60] = (250, 250, 0)  # a marker on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    data = encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    return Case(
        "exif_rotated_jpeg",
        "portrait.jpg",
        data,
        "landscape-stored JPEG with EXIF Orientation=6 (shown as portrait)",
        size=(160, 240),
        reference=np.rot90(stored, k=-1),
        tolerance=6.0,
    )


def _rgba_png() -> Case:
    rgba = np.dstack([synthetic_photo(150, 110, 9), np.full((110, 150), 255, np.uint8)])
    rgba[:, 75:, 3] = 0  # right half transparent
    rgba[:, 40:75, 3] = 128  # a half-transparent band
    return Case(
        "rgba_png",
        "cutout.png",
        encode(Image.fromarray(rgba), "PNG"),
        "RGBA PNG with transparent and half-transparent areas",
        size=(150, 110),
        reference=flatten_on_white(rgba),
        tolerance=1.0,
    )


def _greyscale() -> Case:
    grey = synthetic_photo(130, 170, 10)[..., 0]
    return Case(
        "greyscale_jpeg",
        "mono.jpg",
        encode(Image.fromarray(grey), "JPEG", quality=95),
        "8-bit greyscale JPEG",
        size=(130, 170),
        reference=np.repeat(grey[..., None], 3, axis=2),
        tolerance=4.0,
    )


def _panorama() -> Case:
    rgb = synthetic_photo(2000, 200, 11)
    return Case(
        "panorama_10to1",
        "panorama.jpg",
        encode(Image.fromarray(rgb), "JPEG", quality=90),
        "2000 x 200 panorama (10:1)",
        size=(2000, 200),
        reference=rgb,
        tolerance=6.0,
    )


def _heic() -> Case:
    import pillow_heif

    pillow_heif.register_heif_opener()
    rgb = synthetic_photo(192, 144, 12)
    return Case(
        "heic",
        "iphone.heic",
        encode(Image.fromarray(rgb), "HEIF", quality=90),
        "HEIC (iPhone default)",
        size=(192, 144),
        reference=rgb,
        tolerance=8.0,
    )


def _plain_jpeg() -> Case:
    rgb = synthetic_photo(320, 240, 13)
    return Case(
        "plain_jpeg",
        "photo.jpg",
        encode(Image.fromarray(rgb), "JPEG", quality=90),
        "ordinary 320 x 240 JPEG (control)",
        size=(320, 240),
        reference=rgb,
        tolerance=6.0,
    )


BUILDERS: dict[str, Callable[[], Case]] = {
    "plain_jpeg": _plain_jpeg,
    "empty": _empty,
    "random_bytes": _random_bytes,
    "text_as_jpg": _text_as_jpg,
    "truncated_jpeg": _truncated_jpeg,
    "png_bad_crc": _png_bad_crc,
    "tiff_bad_header": _tiff_bad_samples,
    "bomb_40000px": _bomb,
    "jpeg_bomb_65000px": _jpeg_bomb,
    "png_64mp": _over_limit,
    "one_pixel": _one_pixel,
    "png_16bit_rgb": _png_16bit_rgb,
    "png_16bit_grey": _png_16bit_grey,
    "cmyk_jpeg": _cmyk_jpeg,
    "palette_png_transparent": _palette_transparent,
    "animated_gif": _animated_gif,
    "exif_rotated_jpeg": _exif_rotated,
    "rgba_png": _rgba_png,
    "greyscale_jpeg": _greyscale,
    "panorama_10to1": _panorama,
    "heic": _heic,
}
CASE_IDS: tuple[str, ...] = tuple(BUILDERS)


@functools.cache
def get_case(case_id: str) -> Case:
    """Build a case once per process (the bombs take a moment)."""
    case = BUILDERS[case_id]()
    assert case.id == case_id and (case.size is None) != (case.error is None), case_id
    return case


def all_cases() -> list[Case]:
    """Every case, in table order."""
    return [get_case(i) for i in CASE_IDS]


def write_corpus(folder: Path, cases: Iterable[Case] | None = None) -> dict[str, Path]:
    """Write the cases' files into ``folder`` (file names are unique) -> {case id: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for case in cases if cases is not None else all_cases():
        path = folder / case.filename
        path.write_bytes(case.data)
        paths[case.id] = path
    return paths


# --- outcomes through each entry point ---------------------------------------------------


def describe_exception(exc: BaseException) -> str:
    """``ImageError: too small ...``, shortened for a table cell."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 110 else text[:107] + "..."


def api_outcome(case: Case, segmenter: Any) -> str:
    """What ``Segmenter.predict`` does with the file's bytes, as a table cell."""
    from segmentation import ImageError

    try:
        result = segmenter.predict(case.data)
    except ImageError as exc:
        return describe_exception(exc)
    except Exception as exc:  # a bug: reported, not hidden
        return "UNEXPECTED " + describe_exception(exc)
    height, width = result.mask.shape[:2]
    return f"result {width}x{height}"


def app_outcome(case: Case, segmenter: Any) -> str:
    """What the app's per-file function (``app_support.process_photo``) reports."""
    import app_support

    outcome = app_support.process_photo(case.filename, case.data, app_predictor(segmenter))
    if outcome.ok:
        height, width = outcome.prediction.mask.shape[:2]
        return f"result {width}x{height}"
    return f"error: {outcome.error}"


def app_predictor(segmenter: Any) -> Callable[[str, bytes], Any]:
    """The ``predict(digest, data)`` app.py hands process_photo, minus Streamlit's cache."""

    def predict(digest: str, data: bytes) -> Any:
        return segmenter.predict(data)

    return predict


@dataclass(frozen=True)
class AppRun:
    """The app page after uploading files: per-case outcome and any exception shown."""

    outcomes: dict[str, str]
    exceptions: list[str]
    errors: list[str]


def run_app(cases: list[Case], model: Path) -> AppRun:
    """Upload every case at once to the real app (streamlit AppTest) and read the page.

    A case's outcome is ``error: <message>`` when an st.error starts with its file name,
    ``result shown`` when its file name is a photo card's heading, else UNEXPECTED.
    """
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    previous = os.environ.get("SEGMENTATION_MODEL")
    os.environ["SEGMENTATION_MODEL"] = str(model)
    try:
        st.cache_data.clear()
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=CLI_TIMEOUT_S)
        at.run()
        uploader = at.file_uploader(key="photos")
        for case in cases:
            uploader.upload(case.filename, case.data, "application/octet-stream")
        at.run()
    finally:
        if previous is None:
            os.environ.pop("SEGMENTATION_MODEL", None)
        else:
            os.environ["SEGMENTATION_MODEL"] = previous
    errors = [str(e.value) for e in at.error]
    headings = {str(h.value) for h in at.subheader}
    outcomes = {}
    for case in cases:
        mine = [e for e in errors if e.startswith(f"{case.filename}:")]
        if len(mine) == 1 and case.filename not in headings:
            outcomes[case.id] = f"error: {mine[0]}"
        elif not mine and case.filename in headings:
            outcomes[case.id] = "result shown"
        else:
            outcomes[case.id] = f"UNEXPECTED: {len(mine)} errors, shown={case.filename in headings}"
    return AppRun(outcomes, [str(e.value) for e in at.exception], errors)


@dataclass(frozen=True)
class CliRun:
    """One CLI run over a folder of inputs."""

    returncode: int
    stdout: str
    stderr: str
    outdir: Path


def run_cli(
    inputs: list[Path],
    outdir: Path,
    model: Path,
    *extra: str,
    command: str = "cutout",
    timeout: float = CLI_TIMEOUT_S,
) -> CliRun:
    """Run ``python -m segmentation`` in a subprocess (raises TimeoutExpired on a hang)."""
    args = [sys.executable, "-m", "segmentation", command, *map(str, inputs)]
    args += ["-o", str(outdir), "--model", str(model), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return CliRun(proc.returncode, proc.stdout, proc.stderr, outdir)


def outputs_for(run: CliRun, case: Case) -> list[Path]:
    """Files the CLI wrote for this case's input (named after the input's stem)."""
    stem = Path(case.filename).stem
    if not run.outdir.exists():
        return []
    return sorted(
        p for p in run.outdir.iterdir() if p.stem == stem or p.name.startswith(stem + ".")
    )


def error_lines_for(run: CliRun, case: Case) -> list[str]:
    """The CLI's stderr lines that name this case's input file."""
    return [line for line in run.stderr.splitlines() if case.filename in line]


#: What tqdm's progress bar and the CLI's closing summary look like on stderr.
_PROGRESS = re.compile(r"\s*\d+%\|[^|]*\|\s*\d+/\d+ \[[^\]]*\]")
_SUMMARY = re.compile(r"^\d+ written to .*, \d+ failed$")


def stray_stderr(run: CliRun) -> list[str]:
    """stderr text that is neither an ``error: <path>: <reason>`` line, the progress bar
    nor the summary: anything here breaks "one error line per bad file"."""
    stray = []
    for piece in re.split(r"[\r\n]", run.stderr):
        text = _PROGRESS.sub("", piece).strip()
        if text and not text.startswith("error: ") and not _SUMMARY.match(text):
            stray.append(text)
    return stray


def cli_outcome(run: CliRun, case: Case) -> str:
    """A table cell: the files written for the case, or its error line(s)."""
    written = outputs_for(run, case)
    errors = error_lines_for(run, case)
    if written and not errors:
        with Image.open(written[0]) as image:
            return f"wrote {written[0].name} {image.size[0]}x{image.size[1]} {image.mode}"
    if errors and not written:
        cell = errors[0] if len(errors) == 1 else f"{len(errors)} lines: {errors[0]}"
        return cell if len(cell) <= 110 else cell[:107] + "..."
    return f"UNEXPECTED: {len(written)} files, {len(errors)} error lines"


def build_tiny_model(folder: Path) -> Path:
    """The tests' tiny untrained network, saved as .keras (decoding is what matters here)."""
    from segmentation.model import build_unet

    path = folder / "tiny.keras"
    build_unet(64, (8, 8, 8, 8)).save(path)
    return path


def outcome_table(model: Path | None = None) -> str:
    """The case -> outcome markdown table through the API, the CLI and the app function."""
    from segmentation import Segmenter

    cases = all_cases()
    with tempfile.TemporaryDirectory(prefix="corpus-") as tmp:
        folder = Path(tmp)
        model = model or build_tiny_model(folder)
        segmenter = Segmenter(model)
        paths = write_corpus(folder / "in", cases)
        run = run_cli(list(paths.values()), folder / "out", model)
        app = run_app(cases, model)
        lines = [
            f"CLI batch over all {len(cases)} files: exit code {run.returncode}, "
            f"'Traceback' in stderr: {'Traceback' in run.stderr}. "
            f"App with all {len(cases)} uploaded at once: {len(app.exceptions)} exceptions shown.",
            "",
            "| case | input | expected | Python API | CLI | app: process_photo "
            "| app: upload (AppTest) |",
            "|---|---|---|---|---|---|---|",
        ]
        for case in cases:
            expected = (
                f"result {case.size[0]}x{case.size[1]}" if case.ok else f"ImageError /{case.error}/"
            )
            cells = [
                case.id,
                case.description,
                expected,
                api_outcome(case, segmenter),
                cli_outcome(run, case).replace(f"{folder / 'in'}{os.sep}", ""),
                app_outcome(case, segmenter),
                app.outcomes[case.id],
            ]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print (and optionally save) the outcome table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="saved .keras model (default: a tiny one)")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    table = outcome_table(args.model)
    print(table)
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
