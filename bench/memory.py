"""Memory of the remover, measured from outside: a long CLI batch and one 50 MP photo.

Two questions:

* Does memory grow with the number of photos a CLI run processes? A 500-photo batch
  runs as a subprocess; its ``/proc/<pid>/status`` is sampled while the output folder
  is watched, so the RSS after image 50 and after image 500 come with no hook in the core.
* Does a 50 MP photo (the largest load_image accepts) fit in 2 GB? A fresh process
  loads the model, cuts the photo out and encodes the PNG, then reports its VmHWM (the
  kernel's peak resident size), which also counts short-lived peaks sampling would miss.

Run alone with ``python -m bench.memory [--model PATH]``; :mod:`bench.run` includes it.
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

from bench.common import (
    MB,
    fmt_mb,
    jpeg_bytes,
    log,
    make_photo,
    proc_status,
    python_env,
)

#: The task's bound for one 50 MP photo (decimal: 2.0e9 bytes, the stricter reading).
PEAK_LIMIT_BYTES = 2_000_000_000
#: 8660 x 5773 = 49.99 MP: the largest 3:2 frame under load_image's 50 MP default.
BIG_PHOTO = (8660, 5773)
SAMPLE_EVERY_S = 0.02


@dataclass
class CliWatch:
    """What was seen while a CLI batch ran."""

    count: int
    returncode: int
    wall_s: float
    #: seconds since start when the n-th output file appeared (n = 1..count)
    output_times: list[float] = field(default_factory=list)
    #: RSS (bytes) sampled right after the n-th output appeared, for the requested marks
    rss_at: dict[int, int] = field(default_factory=dict)
    peak_rss: int = 0  # VmHWM, last value read while the process lived
    stderr_tail: str = ""

    @property
    def images_per_s(self) -> float:
        """Steady-state throughput: first to last output, so start-up is excluded."""
        if len(self.output_times) < 2:
            return float("nan")
        span = self.output_times[-1] - self.output_times[0]
        return (len(self.output_times) - 1) / span if span > 0 else float("nan")


def write_photos(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """``count`` different JPEG photos of ``size`` (width, height) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"photo_{i:04d}.jpg"
        path.write_bytes(jpeg_bytes(make_photo(*size, seed=i + 1)))
        paths.append(path)
    return paths


def watch_cli(
    inputs: list[Path],
    outdir: Path,
    model: Path,
    marks: tuple[int, ...] = (),
    timeout_s: float = 3600.0,
) -> CliWatch:
    """Run ``python -m segmentation cutout`` over ``inputs``, sampling /proc as it goes."""
    outdir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "segmentation", "cutout", *map(str, inputs)]
    args += ["-o", str(outdir), "--model", str(model)]
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(args, env=python_env(), stdout=subprocess.DEVNULL, stderr=err)
        watch = CliWatch(count=len(inputs), returncode=-1, wall_s=0.0)
        pending = sorted(marks)
        seen = 0
        try:
            while True:
                finished = proc.poll() is not None
                status = proc_status(proc.pid)
                watch.peak_rss = max(watch.peak_rss, status.get("VmHWM", 0))
                now = time.perf_counter() - start
                produced = sum(1 for _ in outdir.iterdir())
                watch.output_times += [now] * max(0, produced - seen)
                seen = max(seen, produced)
                while pending and seen >= pending[0] and "VmRSS" in status:
                    watch.rss_at[pending.pop(0)] = status["VmRSS"]
                if finished:
                    break
                if now > timeout_s:
                    proc.kill()
                    raise TimeoutError(f"CLI batch still running after {timeout_s:.0f} s")
                time.sleep(SAMPLE_EVERY_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        watch.wall_s = time.perf_counter() - start
        watch.returncode = proc.returncode
        err.seek(0)
        watch.stderr_tail = err.read().decode(errors="replace")[-2000:]
    return watch


def batch_rss(
    model: Path, count: int = 500, size: tuple[int, int] = (640, 480), mark: int = 50
) -> CliWatch:
    """RSS of one CLI run after image ``mark`` and after the last image."""
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        log(f"memory: writing {count} photos of {size[0]}x{size[1]} ...")
        inputs = write_photos(Path(tmp) / "in", count, size)
        log(f"memory: CLI batch of {count} ...")
        watch = watch_cli(inputs, Path(tmp) / "out", model, marks=(mark, count))
    if watch.returncode != 0:
        raise RuntimeError(f"CLI batch failed ({watch.returncode}): {watch.stderr_tail}")
    return watch


_PEAK_SCRIPT = """
import json, sys, time
from pathlib import Path

def status():
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out

from segmentation import Segmenter, encode_png

segmenter = Segmenter(sys.argv[2])
loaded = status()
start = time.perf_counter()
result = segmenter.predict(sys.argv[1])
png = encode_png(result.cutout())
seconds = time.perf_counter() - start
shape = list(result.mask.shape)
del result
done = status()
print(json.dumps({"loaded": loaded, "done": done, "seconds": seconds,
                  "shape": shape, "png_bytes": len(png)}))
"""


@dataclass(frozen=True)
class PeakRss:
    """Peak memory of one fresh process doing one photo, end to end."""

    width: int
    height: int
    peak: int  # VmHWM after the photo: the figure compared with the limit
    after_load: int  # VmHWM right after importing and loading the model
    seconds: float

    @property
    def passed(self) -> bool:
        """Within the 2 GB bound."""
        return self.peak <= PEAK_LIMIT_BYTES


def peak_rss_photo(model: Path, size: tuple[int, int] = BIG_PHOTO) -> PeakRss:
    """Load model, predict, cut out and PNG-encode one photo in a fresh process."""
    width, height = size
    with tempfile.TemporaryDirectory(prefix="bench-big-") as tmp:
        log(f"memory: writing a {width}x{height} ({width * height / 1e6:.1f} MP) JPEG ...")
        path = Path(tmp) / "big.jpg"
        path.write_bytes(jpeg_bytes(make_photo(width, height, seed=7)))
        log("memory: processing it in a fresh process ...")
        proc = subprocess.run(
            [sys.executable, "-c", _PEAK_SCRIPT, str(path), str(model)],
            env=python_env(),
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{width}x{height} photo failed: {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if report["shape"] != [height, width]:
        raise RuntimeError(f"mask has shape {report['shape']}, expected {[height, width]}")
    return PeakRss(
        width=width,
        height=height,
        peak=report["done"]["VmHWM"],
        after_load=report["loaded"]["VmHWM"],
        seconds=report["seconds"],
    )


def memory_section(model: Path, count: int = 500, mark: int = 50) -> str:
    """Markdown: the 50 MP peak and the batch RSS, with pass/fail against 2 GB."""
    big = peak_rss_photo(model)
    batch = batch_rss(model, count=count, mark=mark)
    growth = batch.rss_at.get(count, 0) - batch.rss_at.get(mark, 0)
    verdict = "PASS" if big.passed else "FAIL"
    lines = [
        "| memory | value | target | result |",
        "|---|---|---|---|",
        f"| peak RSS, one {big.width}x{big.height} ({big.width * big.height / 1e6:.1f} MP) "
        f"photo end to end (fresh process VmHWM) | {fmt_mb(big.peak)} "
        f"(after model load {fmt_mb(big.after_load)}; {big.seconds:.1f} s) "
        f"| ≤ 2 GB ({PEAK_LIMIT_BYTES / MB:.0f} MiB) | {verdict} |",
        f"| CLI batch of {count} 640x480 JPEGs: RSS after image {mark} "
        f"| {fmt_mb(batch.rss_at.get(mark))} | | |",
        f"| CLI batch: RSS after image {count} | {fmt_mb(batch.rss_at.get(count))} "
        f"(growth {growth / MB:+.0f} MiB) | flat | "
        f"{'PASS' if growth <= 50 * MB else 'CHECK'} |",
        f"| CLI batch: peak RSS (VmHWM) | {fmt_mb(batch.peak_rss)} | | |",
        f"| CLI batch: throughput | {batch.images_per_s:.1f} images/s "
        f"({batch.wall_s:.0f} s in all) | | |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the memory table."""
    from bench.common import resolve_model  # one place decides the default model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="saved .keras model")
    parser.add_argument("--count", type=int, default=500, help="photos in the CLI batch")
    parser.add_argument("--mark", type=int, default=50, help="also report RSS after this image")
    args = parser.parse_args(argv)
    print(memory_section(resolve_model(args.model), count=args.count, mark=args.mark))
    return 0


if __name__ == "__main__":
    sys.exit(main())
