"""Batch jobs over a whole catalogue: SOURCE to DEST with a manifest, here or on Ray.

    nobg batch photos/ cutouts/                                  # this process
    nobg batch s3://shop/photos s3://shop/cutouts --engine ray   # Ray Data, any size

A thin layer over :class:`segmentation.Segmenter`, like the CLI and the API. Inputs are
listed once with pyarrow's file systems (local paths and every URI Ray Data reads); each
becomes one output under the same relative path in DEST. With ``engine="ray"`` the
files are read by Ray Data tasks and segmented by a pool of actors, one model each,
loaded once; the same command runs on a laptop (a local Ray) or a cluster
(``$RAY_ADDRESS`` / ``address``).

Failures are per file: a file that cannot be read, decoded or written gets a manifest
row with the CLI's reason and the job goes on. Outputs are written whole or not at all
(a temporary name renamed on local disks; a single PUT on object stores), so an output
that exists is done: running the job again skips those inputs and resumes an interrupted
run. The manifest (CSV, or Parquet by its extension) lists every input with its status,
output, sizes and error; it is rewritten as the job goes, so a killed job leaves one.

One module per concern, all of their public names here: :mod:`~segmentation.batch.files`
(listing and whole-file writes on pyarrow's file systems),
:mod:`~segmentation.batch.manifest`, :mod:`~segmentation.batch.worker` (one image; the
local engine), :mod:`~segmentation.batch.ray_engine` and
:mod:`~segmentation.batch.runner` (:func:`run_batch`).
"""

from __future__ import annotations

from segmentation.batch.files import Job, list_jobs, resolve
from segmentation.batch.manifest import (
    MANIFEST_EVERY_S,
    MANIFEST_FIELDS,
    MANIFEST_NAME,
    read_manifest,
)
from segmentation.batch.runner import BatchSummary, Engine, run_batch
from segmentation.batch.worker import BatchOptions, OutputFormat, Worker

__all__ = [
    "MANIFEST_EVERY_S",
    "MANIFEST_FIELDS",
    "MANIFEST_NAME",
    "BatchOptions",
    "BatchSummary",
    "Engine",
    "Job",
    "OutputFormat",
    "Worker",
    "list_jobs",
    "read_manifest",
    "resolve",
    "run_batch",
]
