"""``nobg cutout`` and ``nobg mask``: photos of people in, PNGs out, at full resolution.

Argument handling and file discovery only; the work is :class:`segmentation.Segmenter`.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segmentation.cli.common import (
    add_command,
    add_look_options,
    add_subject_option,
    found_inputs,
    parse_background,
    positive_float,
    run_jobs,
)
from segmentation.filenames import disk_name
from segmentation.io import IMAGE_EXTENSIONS, encode_png
from segmentation.resources import MODEL_ENV

if TYPE_CHECKING:
    from segmentation.segmenter import Segmenter

__all__ = ["EPILOG", "add_photo_parsers", "collect_inputs", "run_photos"]

EPILOG = """\
exit status: 0 when every image was written, 1 when any failed (each failure prints
one line `error: <path>: <reason>` to stderr and the others are still processed),
2 for invalid arguments.

examples:
  python -m segmentation cutout holiday/ -o cutouts/
  python -m segmentation cutout me.jpg -o out/ --background '#1e90ff'
  python -m segmentation cutout me.jpg -o out/ --background blur
  python -m segmentation mask a.png b.heic -o masks/ --no-refine
  python -m segmentation cutout baby.jpg -o out/ --remove blanket-dab.png"""


def add_photo_parsers(commands: Any, top: argparse.ArgumentParser) -> None:
    """Register ``cutout`` and ``mask``; ``top`` reports their bad --background values."""
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
    add_subject_option(common)
    for hint, marks in (("keep", "person"), ("remove", "background")):
        common.add_argument(
            f"--{hint}",
            type=Path,
            default=None,
            metavar="PNG",
            help=f"touch-up hint: an image (any size, stretched to each photo) whose white "
            f"or opaque pixels mark {marks}; the whole region a dab lands on follows",
        )
    common.add_argument(
        "--max-megapixels",
        type=positive_float,
        default=50.0,
        metavar="MP",
        help="refuse larger images (default: %(default)g)",
    )
    cutout = add_command(
        commands,
        "cutout",
        "person on transparency (RGBA PNG) or on a new background",
        "Write OUTDIR/<name>.png with the person cut out at full resolution.",
        EPILOG,
        parents=[common],
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
    mask = add_command(
        commands,
        "mask",
        "8-bit greyscale soft mask PNG, 255 = person",
        "Write OUTDIR/<name>.png: the soft mask at the input's resolution.",
        EPILOG,
        parents=[common],
    )
    for parser in (cutout, mask):
        parser.set_defaults(handler=run_photos, parser=top)


def run_photos(args: argparse.Namespace) -> int:
    """Process every photo; 0 when all were written, else 1."""
    logging.getLogger("PIL").setLevel(logging.CRITICAL)  # else a bad TIFF adds a 2nd line
    background = parse_background(args.parser, getattr(args, "background", "transparent"))
    hints = {name: _read_hint(args.parser, name, getattr(args, name)) for name in HINTS}
    jobs, failures = collect_inputs(args.inputs, args.output)

    def write(segmenter: Segmenter, source: Path, target: Path) -> None:
        result = segmenter.predict(
            source,
            refine=args.refine,
            zoom=args.zoom,
            mirror=args.mirror,
            subject=args.subject,
            max_megapixels=args.max_megapixels,
            **hints,
        )
        if args.command == "mask":
            data = result.mask_png()
        elif background is None:
            data = result.cutout_png(args.decontaminate)
        else:
            data = encode_png(result.composite(background, args.decontaminate))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    return run_jobs(jobs, failures, args.model, args.output, write, bar_unit="image")


#: The touch-up hint options, as ``predict``'s keyword arguments.
HINTS = ("keep", "remove")


def _read_hint(parser: argparse.ArgumentParser, name: str, path: Path | None) -> Any:
    """The decoded hint of ``--keep``/``--remove`` (once, for every photo), or None."""
    if path is None:
        return None
    from segmentation.errors import ImageError
    from segmentation.io import load_hint

    try:
        return load_hint(path)
    except ImageError as exc:
        parser.error(f"--{name} {path}: {exc}")


def collect_inputs(
    inputs: Sequence[str | os.PathLike[str]], outdir: Path
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """Expand files and folders into (source, target) pairs, plus (path, reason) failures.

    A file named explicitly is always tried (its content decides whether it is an
    image); in folders only image extensions count. Two sources that would write the
    same target keep their original extension in the name: ``a.jpg.png``.
    """
    failures: list[tuple[Path, str]] = []
    sources = list(found_inputs(inputs, IMAGE_EXTENSIONS, outdir, "images", failures))
    counts: dict[Path, int] = {}
    for _, rel in sources:
        counts[rel] = counts.get(rel, 0) + 1
    jobs = []
    for source, rel in sources:
        name = disk_name(rel.name, (source.suffix if counts[rel] > 1 else "") + ".png")
        target = outdir / rel.parent / name
        if target.resolve() == source.resolve():
            failures.append((source, "the output would overwrite this input: use another -o"))
        else:
            jobs.append((source, target))
    return jobs, failures
