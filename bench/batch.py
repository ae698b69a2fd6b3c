"""``nobg batch --engine ray`` on this machine against the plain CLI, on the same folder.

Writes ``--count`` different 1 MP JPEGs (1152x864) to a folder, then runs, each as a
fresh process: ``nobg cutout FOLDER -o OUT`` (the plain CLI), ``nobg batch FOLDER OUT``
(the local engine) and ``nobg batch FOLDER OUT --engine ray`` (a local Ray started by
the command, its default actor pool). Each gives images/s two ways: over the whole
command (start-up included: Ray's start is part of its cost on one machine) and in
steady state, from the first to the last output file's modification time.

Run alone with ``python -m bench.batch [--model PATH] [--count N]``; :mod:`bench.run`
includes it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import PHOTO_SIZES, log

NOBG = Path(sys.executable).with_name("nobg")
COUNT = 60


@dataclass
class EngineRun:
    """One command over the folder."""

    label: str
    count: int
    wall_s: float
    first_to_last_s: float

    @property
    def wall_rate(self) -> float:
        return self.count / self.wall_s

    @property
    def steady_rate(self) -> float:
        span = self.first_to_last_s
        return (self.count - 1) / span if span > 0 else float("nan")


def _run(label: str, args: list[str], out: Path, count: int) -> EngineRun:
    log(f"bench: {label} ...")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "RAY_ADDRESS": ""}
    start = time.perf_counter()
    proc = subprocess.run([str(NOBG), *args], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    outputs = list(out.rglob("*.png"))
    if proc.returncode != 0 or len(outputs) != count:
        raise RuntimeError(f"{label} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    stamps = sorted(p.stat().st_mtime for p in outputs)
    return EngineRun(label, count, wall, stamps[-1] - stamps[0])


def run_engines(model: Path, count: int = COUNT) -> list[EngineRun]:
    """The three commands on one folder of ``count`` photos."""
    from bench.memory import write_photos

    size = PHOTO_SIZES["1 MP"]
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        folder = Path(tmp) / "in"
        write_photos(folder, count, size)
        common = ["--model", str(Path(model).resolve())]
        root = Path(tmp)
        return [
            _run(
                "plain CLI (`nobg cutout`)",
                ["cutout", str(folder), "-o", str(root / "cli"), *common],
                root / "cli",
                count,
            ),
            _run(
                "`nobg batch --engine local`",
                ["batch", str(folder), str(root / "local"), *common],
                root / "local",
                count,
            ),
            _run(
                "`nobg batch --engine ray` (local Ray, default: an actor per CPU)",
                ["batch", str(folder), str(root / "ray"), "--engine", "ray", *common],
                root / "ray",
                count,
            ),
            _run(
                "`nobg batch --engine ray --actors 1`",
                [
                    "batch",
                    str(folder),
                    str(root / "ray1"),
                    "--engine",
                    "ray",
                    *common,
                    "--actors",
                    "1",
                ],
                root / "ray1",
                count,
            ),
        ]


def batch_section(model: Path, count: int = COUNT) -> str:
    """The markdown table for RESULTS.md."""
    runs = run_engines(model, count)
    w, h = PHOTO_SIZES["1 MP"]
    base = runs[0].wall_rate
    lines = [
        f"| batch of {count} JPEGs of {w}x{h} -> PNG cutouts, one folder | images/s, whole "
        "command | images/s, steady state (first to last output) | whole command vs CLI |",
        "|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run.label} | {run.wall_rate:.2f} ({run.wall_s:.1f} s) "
            f"| {run.steady_rate:.2f} | {run.wall_rate / base:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="saved .keras model (default: trained weights)")
    parser.add_argument("--count", type=int, default=COUNT, help="photos in the folder")
    args = parser.parse_args(argv)
    from bench.common import resolve_model

    print(batch_section(resolve_model(args.model), args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
