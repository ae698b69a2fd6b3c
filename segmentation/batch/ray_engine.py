"""The Ray engine of a batch job: Ray Data reads the files, a pool of actors segments them.

Each actor holds one :class:`~segmentation.batch.worker.Worker` (one model, loaded
once); the same code runs on a laptop (a local Ray) or a cluster (``$RAY_ADDRESS`` or
``address``). Ray is imported only here, and only when a job starts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from segmentation.batch.files import Job
from segmentation.batch.manifest import MANIFEST_FIELDS, manifest_row
from segmentation.batch.worker import BatchOptions, Worker

__all__ = ["run_ray"]


class _RayActor:
    """A Ray Data actor: one Worker (one model), rows of bytes in, manifest rows out."""

    def __init__(self, options: BatchOptions, background: Any, targets: dict[str, str], fs: Any):
        self._worker = Worker(options, background)
        self._targets = targets
        self._out_fs = fs

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        path = str(row["path"])
        job = Job(path, self._targets[path], len(row["bytes"]))
        return self._worker.process(job, bytes(row["bytes"]), None, self._out_fs)


def run_ray(
    jobs: list[Job],
    in_fs: Any,
    out_fs: Any,
    options: BatchOptions,
    background: Any,
    address: str | None,
    actors: int | None,
    cpus_per_actor: float,
    runtime_env: dict[str, Any] | None,
) -> Iterator[dict[str, Any]]:
    """Read with Ray Data, segment in an actor pool, yield manifest rows as they finish."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ImportError(
            f"--engine ray needs Ray ({exc}): pip install 'person-background-remover[ray]'"
        ) from exc
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        settings: dict[str, Any] = {"logging_level": "warning", "runtime_env": runtime_env}
        if address:
            ray.init(address=address, **settings)
        else:
            ray.init(include_dashboard=False, **settings)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset INFO lines
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts images, not blocks
    context.verbose_stats_logs = False
    if actors is None:
        cpus = float(ray.cluster_resources().get("CPU", 1))
        actors = max(1, int(cpus // cpus_per_actor))
    targets = {job.source: job.target for job in jobs}
    dataset = ray.data.read_binary_files(
        [job.source for job in jobs],
        filesystem=in_fs,
        include_paths=True,
        ignore_missing_paths=True,
        # One block per file and the actors' CPUs: then Ray Data fuses the read into
        # the actors (a folder of fewer files than its default parallelism, or other
        # remote args, keep them apart), and a pool holding every CPU cannot starve
        # separate read tasks. Measured here: 60 1 MP JPEGs, two actors, 14.8 images/s
        # fused, 9.4 with the reads as their own zero-CPU tasks.
        override_num_blocks=len(jobs),
        num_cpus=cpus_per_actor,
    )
    segmented = dataset.map(
        _RayActor,
        fn_constructor_kwargs={
            "options": options,
            "background": background,
            "targets": targets,
            "fs": out_fs,
        },
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
    )
    seen = set()
    for row in segmented.iter_rows():
        seen.add(row["input"])
        yield {key: row[key] for key in MANIFEST_FIELDS}
    for job in jobs:  # vanished between listing and reading
        if job.source not in seen:
            yield manifest_row(job, "error", error="no longer there when Ray Data read it")
