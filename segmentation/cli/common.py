"""Helpers shared by the command-line modules (photos, video, serve, batch).

The rules every command keeps: one line ``error: <path>: <reason>`` per bad file on
stderr, the other files still processed, a one-line summary when there was more than
one, exit status 1 when any failed and 2 for invalid arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segmentation.errors import ImageError
from segmentation.io import load_image

if TYPE_CHECKING:
    from segmentation.segmenter import Segmenter

__all__ = [
    "add_command",
    "add_look_options",
    "failure_reason",
    "files_in",
    "found_inputs",
    "load_segmenter_or_report",
    "parse_background",
    "positive_float",
    "positive_int",
    "print_error",
    "run_jobs",
]


def add_command(
    commands: Any,
    name: str,
    help: str,
    description: str,
    epilog: str | None = None,
    parents: Collection[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """Register subcommand ``name``; its description and epilog keep their line breaks."""
    return commands.add_parser(
        name,
        parents=list(parents),
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


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


def found_inputs(
    inputs: Iterable[str | os.PathLike[str]],
    extensions: Collection[str],
    outdir: Path,
    kind: str,
    failures: list[tuple[Path, str]],
) -> Iterator[tuple[Path, Path]]:
    """Each input file once, as (source, its output's path under ``outdir`` without a suffix).

    A file named explicitly is always tried (its content decides); folders are searched
    with :func:`files_in` and their sub-folders mirrored. A missing input, or a folder
    without ``kind`` ("images", "videos"), is appended to ``failures`` as it comes.
    """
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = files_in(path, extensions, outdir)
            if not found:
                failures.append((path, f"no {kind} in this folder"))
            candidates = [(p, p.relative_to(path).with_suffix("")) for p in found]
        elif path.exists():
            candidates = [(path, Path(path.stem))]
        else:
            failures.append((path, "no such file or folder"))
            candidates = []
        for source, rel in candidates:
            key = source.resolve()
            if key not in seen:
                seen.add(key)
                yield source, rel


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


def add_subject_option(parser: argparse.ArgumentParser) -> None:
    """--subject main|all: whom to keep, the same choice as the library's and the API's."""
    from segmentation.subject import SUBJECTS

    parser.add_argument(
        "--subject",
        choices=SUBJECTS,
        default=SUBJECTS[0],
        help="'main' (default): the person or group the picture is of, without passers-by "
        "or an audience; 'all': every person",
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


def positive_int(text: str) -> int:
    """argparse type: a whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def parse_background(
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


def load_segmenter_or_report(model: str | None) -> Segmenter | None:
    """The segmenter, or None after one ``error:`` line saying why it cannot load."""
    from segmentation.segmenter import load_segmenter, native_stderr_silenced

    try:
        with native_stderr_silenced():
            return load_segmenter(model)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def print_error(path: str | os.PathLike[str], reason: str, progress: Any = None) -> None:
    """``error: <path>: <reason>`` on stderr, always one line (above a progress bar).

    ``path`` may be a string that is no file path (a cluster address, a URI).
    """
    line = f"error: {path}: {' '.join(reason.split())}"
    if progress is not None and not progress.disable:
        progress.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr)


def failure_reason(exc: Exception, target: Path) -> str:
    """Why one input failed, as its error line says it."""
    if isinstance(exc, ImageError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"cannot write {target} ({exc.strerror or exc})"
    return f"unexpected failure ({type(exc).__name__}: {exc})"


def run_jobs(
    jobs: list[tuple[Path, Path]],
    failures: list[tuple[Path, str]],
    model: str | None,
    outdir: Path,
    make: Callable[[Segmenter, Path, Path], None],
    *,
    bar_unit: str | None = None,
) -> int:
    """Write every (source, target) with ``make``; the exit status (0 all written, else 1).

    ``failures`` are the inputs already refused (reported first). The model is loaded
    only when there is work; one input that fails, however oddly, never stops the
    others. ``bar_unit``: one progress bar over all the jobs (else ``make`` shows its own).
    """
    unfound = len(failures)
    for path, reason in failures:
        print_error(path, reason)
    if not jobs:
        return 1
    segmenter = load_segmenter_or_report(model)
    if segmenter is None:
        return 1

    progress = None
    if bar_unit is not None:
        from tqdm import tqdm

        progress = tqdm(jobs, unit=bar_unit, disable=len(jobs) < 2, file=sys.stderr)
    written = 0
    for source, target in progress if progress is not None else jobs:
        try:
            make(segmenter, source, target)
            written += 1
        except Exception as exc:  # one odd file must not stop a batch of thousands
            reason = failure_reason(exc, target)
            print_error(source, reason, progress)
            failures.append((source, reason))
    if progress is not None:
        progress.close()
    if len(jobs) + unfound > 1:
        print(f"{written} written to {outdir}, {len(failures)} failed", file=sys.stderr)
    return 1 if failures else 0
