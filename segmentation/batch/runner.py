"""Running a batch job: list SOURCE, skip what DEST already holds, run an engine, keep
the manifest. See :mod:`segmentation.batch` for what a job promises."""

from __future__ import annotations

import posixpath
import sys
from dataclasses import dataclass, field
from typing import Any, Literal

from segmentation.batch.files import display, existing_outputs, list_jobs, resolve
from segmentation.batch.manifest import MANIFEST_NAME, ManifestWriter, manifest_row
from segmentation.batch.ray_engine import run_ray
from segmentation.batch.worker import BatchOptions, parse_background, run_local

__all__ = ["BatchSummary", "Engine", "run_batch"]

Engine = Literal["local", "ray"]


@dataclass
class BatchSummary:
    """What a run did; ``rows`` are the manifest's rows, one per input."""

    written: int
    skipped: int
    failed: int
    manifest: str
    rows: list[dict[str, Any]] = field(default_factory=list)


def run_batch(
    source: str,
    dest: str,
    options: BatchOptions | None = None,
    *,
    engine: Engine = "local",
    manifest: str | None = None,
    address: str | None = None,
    actors: int | None = None,
    cpus_per_actor: float = 1.0,
    runtime_env: dict[str, Any] | None = None,
    progress: bool = True,
) -> BatchSummary:
    """Process every image under ``source`` into ``dest``; skip inputs already done.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: bad options, no images in ``source``, or the model cannot be loaded.
        ImportError: ``engine="ray"`` without Ray installed.
    """
    options = options or BatchOptions()
    if options.output_format not in ("png", "mask", "jpg-on-background"):
        raise ValueError(f"unknown format {options.output_format!r}")
    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r}: use 'local' or 'ray'")
    background = parse_background(options)
    in_fs, in_root = resolve(source)
    out_fs, out_root = resolve(dest)
    jobs = list_jobs(in_fs, in_root, out_fs, out_root, options.suffix)
    manifest_fs, manifest_path = resolve(manifest) if manifest else (out_fs, out_root)
    if not manifest:
        manifest_path = posixpath.join(out_root, MANIFEST_NAME)

    done = existing_outputs(out_fs, out_root)
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for job in jobs:
        if job.target in done:
            rows[job.source] = manifest_row(job, "skipped", output_bytes=done[job.target])
        else:
            todo.append(job)

    writer = ManifestWriter(manifest_fs, manifest_path, jobs, rows, in_fs, out_fs)
    if todo:
        if engine == "ray":
            ray_args = (address, actors, cpus_per_actor, runtime_env)
            results = run_ray(todo, in_fs, out_fs, options, background, *ray_args)
        else:
            results = run_local(todo, in_fs, out_fs, options, background)
        bar = _progress(len(todo), enabled=progress)
        try:
            for row in results:
                rows[row["input"]] = row
                bar.update(1)
                if row["status"] == "error":
                    bar.write(f"error: {row['input']}: {row['error']}", file=sys.stderr)
                writer.maybe_write()
        finally:
            bar.close()
            writer.write()  # what was done, even when the job is interrupted
    else:
        writer.write()
    ordered = writer.ordered()
    return BatchSummary(
        written=sum(r["status"] == "ok" for r in ordered),
        skipped=sum(r["status"] == "skipped" for r in ordered),
        failed=sum(r["status"] == "error" for r in ordered),
        manifest=display(manifest_fs, manifest_path),
        rows=ordered,
    )


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="image", disable=not enabled or total < 2, file=sys.stderr)
