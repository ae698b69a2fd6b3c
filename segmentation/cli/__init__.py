"""Command line: remove the background from photos of people, in bulk.

    nobg cutout photos/ -o out/                # or: python -m segmentation cutout ...
    nobg mask IMG_0001.HEIC -o masks/
    nobg serve --port 8000                     # HTTP API (segmentation.api)
    nobg batch photos/ s3://bucket/cutouts/    # resumable batch job (segmentation.batch)

Only argument handling, file discovery and reporting live here, one module per
command (:mod:`~segmentation.cli.photo` for cutout and mask, ``video``, ``batch``,
``serve``) and their shared helpers in :mod:`~segmentation.cli.common`; the work is done
by :class:`segmentation.Segmenter`. TensorFlow is imported only once there is work to
do, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence

from segmentation import __version__
from segmentation.cli.batch import add_batch_parser
from segmentation.cli.common import add_look_options, files_in, positive_float
from segmentation.cli.photo import EPILOG, add_photo_parsers, collect_inputs
from segmentation.cli.serve import add_serve_parser
from segmentation.cli.video import add_video_parser
from segmentation.io import IMAGE_EXTENSIONS

__all__ = [
    "DESCRIPTION",
    "EPILOG",
    "add_look_options",
    "build_parser",
    "collect_inputs",
    "console",
    "files_in",
    "main",
    "positive_float",
]

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
    add_photo_parsers(commands, parser)
    add_serve_parser(commands)
    add_video_parser(commands)
    add_batch_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m segmentation") -> int:
    """Run the CLI; returns the exit status (0 all written, 1 any failure, 2 bad arguments)."""
    args = build_parser(prog).parse_args(argv)
    return args.handler(args)


def console() -> None:
    """Entry point of the ``nobg`` command that ``pip install`` puts on the PATH."""
    sys.exit(main(prog="nobg"))
