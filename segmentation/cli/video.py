"""``python -m segmentation video``: remove the background from video clips.

Argument handling, file discovery and reporting only; the work is
:func:`segmentation.video.remove_background`. The same rules as the photo commands:
one line ``error: <path>: <reason>`` per bad file, the others still processed, exit
status 1 when any failed, 2 for invalid arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segmentation.cli.common import (
    add_command,
    add_subject_option,
    found_inputs,
    parse_background,
    positive_float,
    run_jobs,
)
from segmentation.filenames import disk_name
from segmentation.video import OUTPUT_FORMATS, VIDEO_EXTENSIONS

DESCRIPTION = """\
Write OUTDIR/<name>.<ext> for every clip: the person cut out of every frame, with the
clip's frame rate (variable rates included), size, duration and audio track, upright
when the file carries rotation metadata.

formats (--format):
  webm   VP9 with alpha: transparent in Chrome and Firefox (default without --background)
  mov    ProRes 4444 with alpha, for video editors
  mp4    H.264 of the person on --background (default with --background; white if none)
  mask   the soft mask as greyscale H.264 (<name>.mp4), white = person

Inputs: MP4 (H.264/H.265), MOV, WebM, MKV, AVI, animated GIF; folders are searched
recursively for {extensions}."""

EPILOG = """\
exit status: 0 when every clip was written, 1 when any failed (each failure prints one
line `error: <path>: <reason>` to stderr, nothing is left half-written, and the other
clips are still processed), 2 for invalid arguments.

examples:
  python -m segmentation video clip.mp4 -o out/                 # out/clip.webm, transparent
  python -m segmentation video clip.mov -o out/ --format mov    # ProRes 4444 for an editor
  python -m segmentation video clips/ -o out/ --background blur # out/<name>.mp4
  python -m segmentation video clip.mp4 -o masks/ --format mask"""


def add_video_parser(commands: Any) -> argparse.ArgumentParser:
    """Register ``video`` on the CLI's subcommands."""
    parser = add_command(
        commands,
        "video",
        "video clips: transparent WebM, ProRes 4444 MOV, MP4 on a background, mask",
        DESCRIPTION.format(extensions=" ".join(sorted(VIDEO_EXTENSIONS))),
        EPILOG,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="video files and/or folders")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output folder"
    )
    parser.add_argument(
        "--format",
        choices=sorted(OUTPUT_FORMATS),
        default=None,
        help="output format (default: webm, or mp4 when --background is given)",
    )
    parser.add_argument(
        "--background",
        default=None,
        metavar="BG",
        help="for mp4: a colour name or '#rrggbb', 'blur' (a blurred copy of each frame) "
        "or the path of an image, scaled and cropped to cover",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="PATH",
        help="Keras model file (default: the shipped weights/person_unet.keras)",
    )
    parser.add_argument(
        "--no-stabilize",
        dest="stabilize",
        action="store_false",
        help="segment every frame on its own (the outline then flickers)",
    )
    parser.add_argument(
        "--no-refine",
        dest="refine",
        action="store_false",
        help="skip the edge-aware guided filter (faster, blurrier outline)",
    )
    parser.add_argument(
        "--zoom",
        action="store_true",
        help="look again, closer, at people who fill only part of the frame: sharper and "
        "steadier outline, one more network pass per frame (720p about 20%% slower)",
    )
    add_subject_option(parser)
    parser.add_argument(
        "--no-decontaminate",
        dest="decontaminate",
        action="store_false",
        help="keep the frame's colours in semi-transparent edge pixels",
    )
    parser.add_argument(
        "--max-seconds",
        type=positive_float,
        default=600.0,
        metavar="S",
        help="refuse longer clips (default: %(default)g)",
    )
    parser.add_argument(
        "--max-megapixels",
        type=positive_float,
        default=8.9,
        metavar="MP",
        help="refuse clips with larger frames (default: %(default)g, 4096x2160)",
    )
    parser.set_defaults(handler=run, parser=parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Process every clip; 0 when all were written, else 1."""
    from segmentation.video import VideoLimits

    parser: argparse.ArgumentParser = args.parser
    background = None
    if args.background is not None:
        background = parse_background(parser, args.background)
    output = args.format or ("mp4" if background is not None else "webm")
    if output in ("webm", "mov", "mask") and background is not None:
        parser.error(f"--background needs --format mp4 ({output} keeps transparency)")
    limits = VideoLimits(max_seconds=args.max_seconds, max_megapixels=args.max_megapixels)
    jobs, failures = collect_videos(args.inputs, args.output, OUTPUT_FORMATS[output][0])

    def render(segmenter: Any, source: Path, target: Path) -> None:
        _render(source, target, segmenter, output, background, args, limits)

    return run_jobs(jobs, failures, args.model, args.output, render)


def _render(
    source: Path,
    target: Path,
    segmenter: Any,
    output: str,
    background: Any,
    args: argparse.Namespace,
    limits: Any,
) -> None:
    """One clip with a progress bar in frames (rate and time left)."""
    from tqdm import tqdm

    from segmentation.video import remove_background

    bar = tqdm(
        total=0, unit="frame", desc=source.name, file=sys.stderr, dynamic_ncols=True, leave=True
    )

    def progress(done: int, expected: int) -> None:
        if bar.total != expected:
            bar.total = expected
            bar.refresh()
        bar.update(done - bar.n)

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_background(
            source,
            target,
            segmenter,
            output=output,  # type: ignore[arg-type]
            background=background,
            stabilize=args.stabilize,
            refine=args.refine,
            zoom=args.zoom,
            subject=args.subject,
            decontaminate=args.decontaminate,
            limits=limits,
            progress=progress,
        )
    finally:
        bar.close()


def collect_videos(
    inputs: Sequence[str | os.PathLike[str]], outdir: Path, suffix: str
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """(source, target) pairs for files and folders, plus (path, reason) failures.

    A file named explicitly is always tried (its content decides); in folders only
    video extensions count, and their sub-folders are mirrored under ``outdir``.
    """
    pairs: list[tuple[Path, Path]] = []
    failures: list[tuple[Path, str]] = []
    for source, rel in found_inputs(inputs, VIDEO_EXTENSIONS, outdir, "videos", failures):
        target = outdir / rel.parent / disk_name(rel.name, suffix)
        if target.resolve() == source.resolve():
            failures.append((source, "the output would overwrite this input: use another -o"))
        elif any(t == target for _, t in pairs):
            failures.append((source, f"another input also writes {target}"))
        else:
            pairs.append((source, target))
    return pairs, failures
