"""Command line: remove the background from photos of people, in bulk.

    nobg cutout photos/ -o out/                # or: python -m segmentation cutout ...
    nobg mask IMG_0001.HEIC -o masks/
    nobg serve --port 8000                     # HTTP API (segmentation.api)
    nobg batch photos/ s3://bucket/cutouts/    # resumable batch job (segmentation.batch)

Only argument handling, file discovery and reporting live here; the work is done by
:class:`segmentation.Segmenter`. TensorFlow is imported only once there is work to
do, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from segmentation import __version__
from segmentation.cli_common import add_look_options, files_in, positive_float
from segmentation.errors import ImageError
from segmentation.io import IMAGE_EXTENSIONS, encode_png, load_image
from segmentation.resources import MODEL_ENV, load_segmenter

if TYPE_CHECKING:
    from segmentation.segmenter import Segmenter

DESCRIPTION = """\
Remove the background from photos of people, at full resolution.

commands:
  cutout   write OUTDIR/<name>.png: the person on a transparent background (RGBA),
           or on --background (RGB)
  mask     write OUTDIR/<name>.png: the soft mask, 8-bit greyscale, the input's
           width and height, 255 = person, 0 = background
  serve    HTTP API on localhost: POST a photo, get the cutout, mask or composite
  video    video clips: transparent WebM, ProRes 4444 MOV, MP4 on a background, mask
  batch    SOURCE folder or bucket to DEST, resumable, with a manifest; on this
           machine or a Ray cluster (--engine ray)

{inputs}

Run `{prog} COMMAND --help` for the command's options."""

EPILOG = """\
exit status: 0 when every image was written, 1 when any failed (each failure prints
one line `error: <path>: <reason>` to stderr and the others are still processed),
2 for invalid arguments.

examples:
  python -m segmentation cutout holiday/ -o cutouts/
  python -m segmentation cutout me.jpg -o out/ --background '#1e90ff'
  python -m segmentation cutout me.jpg -o out/ --background blur
  python -m segmentation mask a.png b.heic -o masks/ --no-refine"""


def build_parser(prog: str = "python -m segmentation") -> argparse.ArgumentParser:
    """All subcommands; ``prog`` is how the user called us (``nobg`` or ``python -m ...``)."""
    inputs = textwrap.fill(
        "INPUT is any mix of image files and folders. Folders are searched recursively "
        f"(hidden files skipped) for {' '.join(sorted(IMAGE_EXTENSIONS))} in any case; "
        "their sub-folders are mirrored under OUTDIR. Existing outputs are overwritten.",
        width=80,
    )
    parser = argparse.ArgumentParser(
        prog=prog,
        description=DESCRIPTION.format(inputs=inputs, prog=prog),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
    common.add_argument(
        "-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output folder"
    )
    common.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"Keras model file (default: ${MODEL_ENV}, else the shipped "
        "weights/person_unet.keras)",
    )
    common.add_argument(
        "--no-refine",
        dest="refine",
        action="store_false",
        help="skip the edge-aware guided filter; stretch the network's low-resolution "
        "mask instead (faster, blurrier outline)",
    )
    add_look_options(common)
    common.add_argument(
        "--max-megapixels",
        type=positive_float,
        default=50.0,
        metavar="MP",
        help="refuse larger images (default: %(default)g)",
    )
    cutout = commands.add_parser(
        "cutout",
        parents=[common],
        help="person on transparency (RGBA PNG) or on a new background",
        description="Write OUTDIR/<name>.png with the person cut out at full resolution.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cutout.add_argument(
        "--background",
        default="transparent",
        metavar="BG",
        help="'transparent' (default: RGBA PNG); a colour name ('white') or '#rrggbb'; "
        "'blur' for a portrait-mode blur of the photo's own background; or the path of "
        "an image, scaled and cropped to cover. Anything but transparent gives an RGB PNG.",
    )
    cutout.add_argument(
        "--no-decontaminate",
        dest="decontaminate",
        action="store_false",
        help="keep the photo's colours in semi-transparent edge pixels instead of "
        "removing the old background's tint from them",
    )
    commands.add_parser(
        "mask",
        parents=[common],
        help="8-bit greyscale soft mask PNG, 255 = person",
        description="Write OUTDIR/<name>.png: the soft mask at the input's resolution.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from segmentation.cli_batch import add_batch_parser
    from segmentation.cli_serve import add_serve_parser
    from segmentation.cli_video import add_video_parser

    add_serve_parser(commands)
    add_video_parser(commands)
    add_batch_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m segmentation") -> int:
    """Run the CLI; returns the exit status (0 all written, 1 any failure)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is not None:  # serve, batch: their own modules
        return args.handler(args)
    logging.getLogger("PIL").setLevel(logging.CRITICAL)  # else a bad TIFF adds a 2nd line
    background = _parse_background(parser, getattr(args, "background", "transparent"))

    jobs, failures = collect_inputs(args.inputs, args.output)
    unfound = len(failures)
    for path, reason in failures:
        _error(path, reason)
    if not jobs:
        return 1

    from tqdm import tqdm

    segmenter = _load_segmenter_or_report(args.model)
    if segmenter is None:
        return 1

    written = 0
    progress = tqdm(jobs, unit="image", disable=len(jobs) < 2, file=sys.stderr)
    for source, target in progress:
        try:
            result = segmenter.predict(
                source,
                refine=args.refine,
                zoom=args.zoom,
                mirror=args.mirror,
                max_megapixels=args.max_megapixels,
            )
            if args.command == "mask":
                data = result.mask_png()
            elif background is None:
                data = result.cutout_png(args.decontaminate)
            else:
                data = encode_png(result.composite(background, args.decontaminate))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            written += 1
        except ImageError as exc:
            _error(source, str(exc), progress)
            failures.append((source, str(exc)))
        except OSError as exc:
            reason = f"cannot write {target} ({exc.strerror or exc})"
            _error(source, reason, progress)
            failures.append((source, reason))
        except Exception as exc:  # one odd file must not stop a batch of thousands
            reason = f"unexpected failure ({type(exc).__name__}: {exc})"
            _error(source, reason, progress)
            failures.append((source, reason))
    progress.close()
    if len(jobs) + unfound > 1:
        print(f"{written} written to {args.output}, {len(failures)} failed", file=sys.stderr)
    return 1 if failures else 0


def collect_inputs(
    inputs: Sequence[str | os.PathLike[str]], outdir: Path
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """Expand files and folders into (source, target) pairs, plus (path, reason) failures.

    A file named explicitly is always tried (its content decides whether it is an
    image); in folders only image extensions count. Two sources that would write the
    same target keep their original extension in the name: ``a.jpg.png``.
    """
    sources: list[tuple[Path, Path]] = []  # (file, path relative to outdir, no suffix)
    failures: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = files_in(path, IMAGE_EXTENSIONS, outdir)
            if not found:
                failures.append((path, "no images in this folder"))
            pairs = [(p, p.relative_to(path).with_suffix("")) for p in found]
        elif path.exists():
            pairs = [(path, Path(path.stem))]
        else:
            failures.append((path, "no such file or folder"))
            pairs = []
        for source, rel in pairs:
            key = source.resolve()
            if key not in seen:
                seen.add(key)
                sources.append((source, rel))
    counts: dict[Path, int] = {}
    for _, rel in sources:
        counts[rel] = counts.get(rel, 0) + 1
    jobs = []
    for source, rel in sources:
        name = rel.name + (source.suffix if counts[rel] > 1 else "") + ".png"
        target = outdir / rel.parent / name
        if target.resolve() == source.resolve():
            failures.append((source, "the output would overwrite this input: use another -o"))
        else:
            jobs.append((source, target))
    return jobs, failures


def _parse_background(
    parser: argparse.ArgumentParser, value: str
) -> tuple[int, int, int] | str | np.ndarray | None:
    """None for transparency, else what compose.composite takes; bad values exit 2."""
    text = value.strip()
    if text.lower() in ("", "transparent", "none"):
        return None
    if text.lower() == "blur":
        return "blur"
    if Path(text).is_file():
        try:
            return load_image(text)
        except ImageError as exc:
            parser.error(f"--background {text}: {exc}")
    from segmentation.compose import parse_color

    try:
        return parse_color(text)
    except ValueError as exc:
        parser.error(f"--background: {exc}, 'blur', 'transparent' or an image file")
    return None  # unreachable: parser.error exits


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide TensorFlow's C++ start-up lines (CUDA probing, oneDNN notes) from users.

    They are written to file descriptor 2 before TF_CPP_MIN_LOG_LEVEL is read, so
    the descriptor itself is pointed at /dev/null while TensorFlow starts. Python
    exceptions are unaffected: they are printed after the descriptor is restored.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded): nothing to hide
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _load_segmenter_or_report(model: str | None) -> Segmenter | None:
    """The segmenter, or None after one ``error:`` line saying why it cannot load."""
    try:
        with _native_stderr_silenced():
            return load_segmenter(model)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _error(path: Path, reason: str, progress=None) -> None:
    line = f"error: {path}: {' '.join(reason.split())}"  # always exactly one line
    if progress is not None and not progress.disable:
        progress.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr)


def console() -> None:
    """Entry point of the ``nobg`` command that ``pip install`` puts on the PATH."""
    sys.exit(main(prog="nobg"))


if __name__ == "__main__":
    sys.exit(main())
