"""Helpers shared by the command-line modules (photos, video, serve, batch)."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from pathlib import Path


def files_in(folder: Path, extensions: Collection[str], outdir: Path) -> list[Path]:
    """Files under ``folder`` with one of ``extensions`` (any case), sorted.

    Hidden files and folders are skipped, and so are a previous run's results in
    ``outdir`` when it lies inside the scanned folder (not when it is the folder itself).
    """
    out_resolved = Path(outdir).resolve()
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in extensions
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and not (out_resolved != folder.resolve() and p.resolve().is_relative_to(out_resolved))
    )


def add_look_options(parser: argparse.ArgumentParser) -> None:
    """--no-zoom and --no-mirror: the photo path's extra network looks, on by default."""
    parser.add_argument(
        "--no-zoom",
        dest="zoom",
        action="store_false",
        help="one network pass over the whole photo; skip the closer looks at people "
        "who fill only part of it (faster, blurrier outline on small people)",
    )
    parser.add_argument(
        "--no-mirror",
        dest="mirror",
        action="store_false",
        help="skip averaging each look with a look at the mirrored photo (half the "
        "network passes, slightly less accurate mask)",
    )


def positive_float(text: str) -> float:
    """argparse type: a number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value
