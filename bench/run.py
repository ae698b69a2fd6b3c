"""``make bench``: how fast and how big the remover is, against the project's targets.

Measures, each as the median of ``--repeat`` runs (5 by default) after one warm-up:

* network: one forward pass at the model's input size (``predict_probability``);
* end to end for a 1 MP and a 12 MP JPEG, from the file's bytes to transparent-PNG
  bytes, split into decode / network / refinement (``SegmentationResult.timings``),
  cutout (``result.cutout()``: alpha and foreground colour) and PNG encoding;
* CLI batch throughput (images/s between the first and the last output file);
* cold start: a fresh Python importing the package and loading the model;
* peak RSS of this process, and with memory on (the default) :mod:`bench.memory`;
* the HTTP API under 8 concurrent clients (:mod:`bench.api`, ``--no-api`` skips it) and
  ``nobg batch --engine ray`` against the plain CLI (:mod:`bench.batch`, ``--no-engines``).

The table is printed and written to ``bench/RESULTS.md`` with a line describing the
machine. Timings taken while something else loads the CPU are not comparable: the
machine line includes the load average for that reason.

Usage: ``python -m bench.run [--model PATH] [--repeat N] [--no-memory]`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    PHOTO_SIZES,
    ROOT,
    fmt_mb,
    git_revision,
    jpeg_bytes,
    log,
    machine_line,
    make_photo,
    median,
    proc_status,
    python_env,
    resolve_model,
)

RESULTS = ROOT / "bench" / "RESULTS.md"
#: The project's targets.
TARGET_12MP_S = 1.0
TARGET_COLD_START_S = 5.0
STEPS = ("decode", "network", "refine", "cutout", "encode")


@dataclass
class PhotoTiming:
    """Per-step seconds of the runs of one photo size."""

    label: str
    width: int
    height: int
    steps: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    totals: list[float] = field(default_factory=list)

    def median_ms(self, step: str) -> float:
        """Median of a step, in milliseconds."""
        values = self.totals if step == "total" else self.steps[step]
        return median(values) * 1000


def time_network(segmenter: Any, repeat: int) -> tuple[int, float]:
    """(input side, median ms) of the network alone on an image of its own input size."""
    probe = make_photo(64, 64)
    side = int(segmenter.predict_probability(probe).shape[0])
    image = make_photo(side, side, seed=3)
    segmenter.predict_probability(image)  # warm-up: tracing and allocation
    runs = []
    for _ in range(max(repeat, 10)):  # cheap, so a few more runs steady the median
        start = time.perf_counter()
        segmenter.predict_probability(image)
        runs.append(time.perf_counter() - start)
    return side, median(runs) * 1000


def time_photo(segmenter: Any, label: str, size: tuple[int, int], repeat: int) -> PhotoTiming:
    """JPEG bytes -> transparent PNG bytes, ``repeat`` times after one warm-up."""
    from segmentation import encode_png

    data = jpeg_bytes(make_photo(*size, seed=5))
    timing = PhotoTiming(label, *size)
    for run in range(repeat + 1):
        start = time.perf_counter()
        result = segmenter.predict(data)
        predicted = time.perf_counter()
        rgba = result.cutout()
        cut = time.perf_counter()
        png = encode_png(rgba)
        end = time.perf_counter()
        if rgba.shape != (size[1], size[0], 4) or not png:
            raise RuntimeError(f"{label}: cutout has shape {rgba.shape}, expected RGBA {size}")
        if run == 0:
            continue  # warm-up
        for step in ("decode", "network", "refine"):
            timing.steps[step].append(float(result.timings.get(step, float("nan"))))
        timing.steps["cutout"].append(cut - predicted)
        timing.steps["encode"].append(end - cut)
        timing.totals.append(end - start)
        del result, rgba, png
    return timing


_COLD_SCRIPT = """
import json, sys, time
start = time.perf_counter()
from segmentation import Segmenter
imported = time.perf_counter()
segmenter = Segmenter(sys.argv[1])
loaded = time.perf_counter()
import numpy as np
segmenter.predict(np.full((480, 640, 3), 128, np.uint8))
first = time.perf_counter()
print(json.dumps({"import": imported - start, "load": loaded - imported,
                  "first_predict": first - loaded}))
"""


def time_cold_start(model: Path, repeat: int) -> dict[str, float]:
    """Fresh interpreter to model loaded; its wall clock includes Python's own start-up."""
    walls, imports, loads, firsts = [], [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _COLD_SCRIPT, str(model)],
            env=python_env(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"cold start failed: {proc.stderr[-2000:]}")
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        imports.append(report["import"])
        loads.append(report["load"])
        firsts.append(report["first_predict"])
        # Until the model is loaded: the process's wall time minus its first prediction.
        walls.append(wall - report["first_predict"])
    return {
        "ready": median(walls),
        "import": median(imports),
        "load": median(loads),
        "first_predict": median(firsts),
    }


def time_cli_batch(model: Path, count: int, size: tuple[int, int]) -> tuple[float, float]:
    """(images/s in steady state, wall seconds in all) for one CLI run over ``count`` JPEGs."""
    from bench.memory import watch_cli, write_photos

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        inputs = write_photos(Path(tmp) / "in", count, size)
        watch = watch_cli(inputs, Path(tmp) / "out", model)
    if watch.returncode != 0 or len(watch.output_times) != count:
        raise RuntimeError(f"CLI batch failed ({watch.returncode}): {watch.stderr_tail}")
    return watch.images_per_s, watch.wall_s


def verdict(ok: bool) -> str:
    """PASS/FAIL cell."""
    return "PASS" if ok else "FAIL"


def render(
    model: Path,
    params: int,
    runtime: str,
    repeat: int,
    network: tuple[int, float],
    photos: list[PhotoTiming],
    cold: dict[str, float],
    batch: tuple[int, tuple[int, int], float, float] | None,
    peak_rss: int,
    memory: str | None,
    argv: list[str],
) -> str:
    """The RESULTS.md text."""
    side, network_ms = network
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {machine_line()}.",
        "",
        f"Code {git_revision()}; model `{model}` (run by {runtime}"
        f"{f', {params:,} parameters' if params else ''}, input {side}x{side}); "
        f"medians of {repeat} runs after one warm-up; command `python -m bench.run"
        f"{' ' + ' '.join(argv) if argv else ''}`.",
        "",
        "| photo (JPEG bytes -> RGBA PNG bytes) | decode | network | refine | cutout "
        "| PNG encode | total | target | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in photos:
        cells = [f"{p.median_ms(s):.0f} ms" for s in (*STEPS, "total")]
        target = result = ""
        if p.label == "12 MP":
            target = f"≤ {TARGET_12MP_S * 1000:.0f} ms"
            result = verdict(p.median_ms("total") <= TARGET_12MP_S * 1000)
        row = " | ".join([f"{p.label} ({p.width}x{p.height})", *cells, target, result])
        lines.append(f"| {row} |")
    lines += [
        "",
        "| measurement | value | target | result |",
        "|---|---|---|---|",
        f"| network alone, {side}x{side} input | {network_ms:.1f} ms | | |",
        f"| cold start: fresh process to model loaded | {cold['ready']:.2f} s "
        f"(package import {cold['import']:.2f} s, Segmenter(): runtime, model, tracing "
        f"{cold['load']:.2f} s) "
        f"| ≤ {TARGET_COLD_START_S:.0f} s | {verdict(cold['ready'] <= TARGET_COLD_START_S)} |",
        f"| first prediction after cold start (640x480) | {cold['first_predict']:.2f} s | | |",
    ]
    if batch:
        count, size, ips, wall = batch
        lines.append(
            f"| CLI batch, {count} JPEGs of {size[0]}x{size[1]} -> PNG cutouts "
            f"| {ips:.2f} images/s ({wall:.1f} s with start-up) | | |"
        )
    lines.append(f"| peak RSS of this benchmark process (up to 12 MP) | {fmt_mb(peak_rss)} | | |")
    if memory:
        lines += ["", memory.rstrip()]
    else:
        lines += ["", "Memory section skipped (`--no-memory`)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run everything, print the table, write RESULTS.md."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="saved .keras model (default: trained weights)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--batch", type=int, default=30, help="photos in the CLI throughput run")
    parser.add_argument("--batch-size", default="1152x864", help="WxH of the CLI batch photos")
    parser.add_argument("--memory-count", type=int, default=500, help="photos in the RSS batch")
    parser.add_argument(
        "--memory",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run bench.memory: 50 MP peak RSS and the RSS batch (default: on)",
    )
    parser.add_argument(
        "--api",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run bench.api: 8 clients x 200 1 MP cutouts against nobg serve",
    )
    parser.add_argument(
        "--engines",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run bench.batch: nobg batch --engine ray against the plain CLI",
    )
    parser.add_argument(
        "--video",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run bench.video: clips to MP4 and WebM, 2-minute 1080p RSS (default: on)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown file to write")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    model = resolve_model(args.model)
    batch_size = tuple(int(v) for v in args.batch_size.lower().split("x"))

    log(f"bench: cold start x{args.repeat} ...")
    cold = time_cold_start(model, args.repeat)

    from segmentation import Segmenter

    segmenter = Segmenter(model)
    params = _count_params(segmenter)
    runtime = str(getattr(segmenter, "runtime", "keras"))
    log("bench: network ...")
    network = time_network(segmenter, args.repeat)
    photos = []
    for label, size in PHOTO_SIZES.items():
        log(f"bench: {label} end to end x{args.repeat} ...")
        photos.append(time_photo(segmenter, label, size, args.repeat))
    peak_rss = proc_status().get("VmHWM", 0)
    del segmenter

    batch = None
    if args.batch > 1:
        log(f"bench: CLI batch of {args.batch} ...")
        ips, wall = time_cli_batch(model, args.batch, batch_size)  # type: ignore[arg-type]
        batch = (args.batch, batch_size, ips, wall)

    memory = None
    if args.memory:
        from bench.memory import memory_section

        memory = memory_section(model, count=args.memory_count)

    sections = []
    if args.api:
        from bench.api import api_section

        sections.append(api_section(model))
    if args.engines:
        from bench.batch import batch_section

        sections.append(batch_section(model))
    text = render(
        model, params, runtime, args.repeat, network, photos, cold, batch, peak_rss, memory, argv
    )
    if args.video:
        from bench.video import video_section

        text += video_section(model, memory=args.memory)
    text += "".join("\n" + section for section in sections)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    log(f"bench: wrote {args.out}")
    return 0


def _count_params(segmenter: Any) -> int:
    """Parameters of the loaded Keras model; 0 when it runs on LiteRT (not counted)."""
    network = getattr(segmenter, "_network", segmenter)
    model = getattr(network, "_model", None)
    return int(model.count_params()) if hasattr(model, "count_params") else 0


if __name__ == "__main__":
    sys.exit(main())
