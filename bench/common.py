"""Shared pieces of the benchmarks: test photos, /proc readings, machine description.

psutil is not a dependency, so memory comes straight from ``/proc/<pid>/status``
(VmRSS: resident now; VmHWM: the peak resident size, kept by the kernel).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "assets" / "example.png"
MB = 1024 * 1024

#: Sizes of the named photos: ~1 MP and a 12 MP camera frame, both 4:3.
PHOTO_SIZES: dict[str, tuple[int, int]] = {"1 MP": (1152, 864), "12 MP": (4000, 3000)}


def crop_to_aspect(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The centre of ``image`` with the aspect ratio of ``width`` x ``height``."""
    bh, bw = image.shape[:2]
    if width / height > bw / bh:
        ch = max(1, round(bw * height / width))
        return image[(bh - ch) // 2 : (bh - ch) // 2 + ch]
    cw = max(1, round(bh * width / height))
    return image[:, (bw - cw) // 2 : (bw - cw) // 2 + cw]


def make_photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A person photo at any size (HxWx3 uint8 RGB): the example upscaled, plus grain.

    Grain matters: PNG and JPEG costs depend on entropy, and a smooth upscale would make
    encoding look cheaper than on a real camera frame. Falls back to a synthetic scene
    when the example is missing.
    """
    rng = np.random.default_rng(seed)
    base = cv2.imread(str(EXAMPLE), cv2.IMREAD_COLOR) if EXAMPLE.exists() else None
    if base is None:
        base = np.zeros((384, 512, 3), np.uint8)
        base[:] = rng.integers(40, 220, 3, dtype=np.uint8)
        cv2.ellipse(base, (256, 240), (90, 170), 0, 0, 360, (40, 60, 170), -1)
        cv2.circle(base, (256, 90), 55, (120, 150, 210), -1)
    else:
        base = cv2.cvtColor(base, cv2.COLOR_BGR2RGB)
    base = crop_to_aspect(base, width, height)  # then scale: nothing is squashed
    if seed:  # vary content between photos of a batch, cheaply
        base = np.roll(base, int(rng.integers(0, base.shape[1])), axis=1)
    photo = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)
    tile = rng.integers(0, 9, size=(256, 256, 3), dtype=np.uint8)  # sensor-like grain
    reps = (-(-height // 256), -(-width // 256), 1)
    grain = np.tile(tile, reps)[:height, :width]
    photo = cv2.add(photo, grain)
    return cv2.subtract(photo, np.full_like(photo, 4))


def jpeg_bytes(rgb: np.ndarray, quality: int = 90) -> bytes:
    """Encode like a camera would (quality 90, 4:2:0)."""
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS / VmHWM / VmPeak of a process in bytes ({} once the process is gone)."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "VmPeak") and value.strip().endswith("kB"):
            out[key] = int(value.split()[0]) * 1024
    return out


def median(values: Sequence[float]) -> float:
    """Median, NaN for no values (a skipped measurement must not crash the report)."""
    return statistics.median(values) if values else float("nan")


def python_env() -> dict[str, str]:
    """Environment for child Pythons: repo importable, TensorFlow's C++ logging quiet."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def tensorflow_version() -> str:
    """Read from the installed package's metadata, without importing TensorFlow."""
    from importlib import metadata

    for name in ("tensorflow", "tensorflow-cpu"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def machine_line() -> str:
    """CPU, cores, RAM, versions, date and load: what a reader needs to compare numbers."""
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown RAM"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kb = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        ram = f"{total_kb / 1024 / 1024:.1f} GiB RAM"
    load = "n/a"
    if hasattr(os, "getloadavg"):
        load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{cpu}, {os.cpu_count()} cores, {ram}; Python {platform.python_version()}, "
        f"TensorFlow {tensorflow_version()}; {date}; load average (1/5/15 min) {load}"
    )


def git_revision() -> str:
    """Short commit of the code measured, with '+dirty' when the tree has changes."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (rev or "unknown") + ("+dirty" if dirty else "")


def fmt_mb(value: float | None) -> str:
    """Bytes as MiB for tables."""
    return "n/a" if value is None else f"{value / MB:.0f} MiB"


def log(message: str) -> None:
    """Progress on stderr, so stdout stays the table."""
    print(message, file=sys.stderr, flush=True)


def resolve_model(model: Path | None) -> Path:
    """The model to measure: ``--model`` or the trained weights (never a silent fallback)."""
    if model is None:
        from segmentation.segmenter import DEFAULT_MODEL_PATH

        model = Path(DEFAULT_MODEL_PATH)
    if not Path(model).is_file():
        raise SystemExit(
            f"no model at {model}: train one (see README) or pass --model PATH "
            "(e.g. a build_unet() saved with model.save('/tmp/untrained.keras'))"
        )
    return Path(model)
