"""What the closer and mirrored looks cost a photo: network plus refinement, in ms.

Each photo goes through ``Segmenter.predict`` three ways (one look; the closer look;
closer + mirrored, the default), taking turns, and the table gives the median of
``--runs`` rounds of the network and refinement stages, after a warm-up round. The
parkour frame comes from ``../shared/data/clips/parkour``; without it those rows are
left out.

    python -m bench.looks [--runs 7] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from bench.common import EXAMPLE, ROOT, crop_to_aspect, log, machine_line

PARKOUR_FRAME = ROOT.parent / "shared" / "data" / "clips" / "parkour" / "images" / "00000.jpg"
TWELVE_MP = (4000, 3000)
#: (label, zoom, mirror) of each column.
LOOKS = (
    ("one look", False, False),
    ("closer look", True, False),
    ("closer + mirrored", True, True),
)


def _read_rgb(path: Path) -> np.ndarray | None:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _upscaled(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` centre-cropped to the aspect of ``size = (W, H)``, then scaled to it."""
    return cv2.resize(crop_to_aspect(rgb, *size), size, interpolation=cv2.INTER_CUBIC)


def photos() -> Iterator[tuple[str, np.ndarray]]:
    """(label, RGB photo) of each row."""
    frame = _read_rgb(PARKOUR_FRAME)
    if frame is not None:
        h, w = frame.shape[:2]
        yield f"{w} × {h} parkour frame", frame
        yield "the same frame upscaled to 12 MP", _upscaled(frame, TWELVE_MP)
    else:
        log(f"bench.looks: {PARKOUR_FRAME} not found; parkour rows left out")
    portrait = _read_rgb(EXAMPLE)
    if portrait is None:
        raise SystemExit(f"bench.looks: {EXAMPLE} not found")
    h, w = portrait.shape[:2]
    yield f"example portrait, {w} × {h}", portrait
    yield "example portrait upscaled to 12 MP", _upscaled(portrait, TWELVE_MP)


def looks_ms(segmenter, rgb: np.ndarray, runs: int) -> list[float]:
    """Median network + refine ms of each of LOOKS over ``runs`` rounds, after a warm-up.

    The looks take turns within each round, so a change in the machine's speed during
    the measurement hits all of them alike.
    """
    times: list[list[float]] = [[] for _ in LOOKS]
    for round_ in range(runs + 1):
        for column, (_, zoom, mirror) in enumerate(LOOKS):
            timings = segmenter.predict(rgb, zoom=zoom, mirror=mirror).timings
            if round_:
                times[column].append(1000 * (timings["network"] + timings["refine"]))
    return [statistics.median(column) for column in times]


def table(runs: int) -> str:
    from segmentation import Segmenter

    segmenter = Segmenter()
    lines = [
        machine_line(),
        "",
        "| photo | " + " | ".join(label for label, _, _ in LOOKS) + " |",
        "|---|" + "---|" * len(LOOKS),
    ]
    for label, rgb in photos():
        log(f"bench.looks: {label} ...")
        cells = [f"{ms:.0f} ms" for ms in looks_ms(segmenter, rgb, runs)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per cell (median)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    text = table(args.runs)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
