"""The manifest of a batch job: one row per input with its status, output, sizes, error.

CSV, or Parquet by its extension; rewritten as the job goes (at least every
``MANIFEST_EVERY_S``) and at the end, so a killed job leaves one.
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
import time
from typing import Any

from segmentation.batch.files import Job, display, resolve, write_whole

__all__ = [
    "MANIFEST_EVERY_S",
    "MANIFEST_FIELDS",
    "MANIFEST_NAME",
    "ManifestWriter",
    "manifest_row",
    "read_manifest",
]

#: Columns of the manifest, in order.
MANIFEST_FIELDS = (
    "input",
    "status",  # ok (written by this run), skipped (output already there), error
    "output",
    "input_bytes",
    "output_bytes",
    "width",
    "height",
    "seconds",
    "error",
)
MANIFEST_NAME = "manifest.csv"
#: Rewrite the manifest at least this often while a job runs.
MANIFEST_EVERY_S = 30.0


def manifest_row(job: Job, status: str, **values: Any) -> dict[str, Any]:
    """A row for ``job`` with every column, ``values`` filled in."""
    row: dict[str, Any] = dict.fromkeys(MANIFEST_FIELDS, "")
    row.update(input=job.source, status=status, output=job.target, input_bytes=job.size)
    row.update(values)
    return row


class ManifestWriter:
    """Rewrites the manifest (all inputs known so far) now and then, and at the end."""

    def __init__(
        self,
        fs: Any,
        path: str,
        jobs: list[Job],
        rows: dict[str, dict[str, Any]],
        in_fs: Any,
        out_fs: Any,
    ) -> None:
        self._fs, self._path, self._jobs, self._rows = fs, path, jobs, rows
        self._in_fs, self._out_fs = in_fs, out_fs
        self._last = time.monotonic()

    def ordered(self) -> list[dict[str, Any]]:
        """Rows in input order with URIs as the user wrote them; inputs not done left out."""
        out = []
        for job in self._jobs:
            row = self._rows.get(job.source)
            if row is not None:
                shown = display(self._in_fs, row["input"])
                target = display(self._out_fs, row["output"]) if row["output"] else ""
                out.append({**row, "input": shown, "output": target})
        return out

    def maybe_write(self) -> None:
        """:meth:`write` when the last write is ``MANIFEST_EVERY_S`` old."""
        if time.monotonic() - self._last >= MANIFEST_EVERY_S:
            self.write()

    def write(self) -> None:
        """Write the whole manifest now (never half a file)."""
        rows = self.ordered()
        parent = posixpath.dirname(self._path)
        import pyarrow.fs

        if isinstance(self._fs, pyarrow.fs.LocalFileSystem):
            self._fs.create_dir(parent, recursive=True)
        if self._path.lower().endswith(".parquet"):
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pylist(
                [{k: str(v) for k, v in row.items()} for row in rows]
                or [dict.fromkeys(MANIFEST_FIELDS, "")]
            )
            if not rows:
                table = table.slice(0, 0)
            data = io.BytesIO()
            pq.write_table(table, data)
            payload = data.getvalue()
        else:
            text = io.StringIO()
            out = csv.DictWriter(text, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
            out.writeheader()
            out.writerows(rows)
            payload = text.getvalue().encode()
        write_whole(self._fs, self._path, payload)
        self._last = time.monotonic()


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The rows of a CSV or Parquet manifest, as strings (for tests and tooling)."""
    fs, where = resolve(path)
    with fs.open_input_stream(where) as stream:
        data = stream.read()
    if where.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data)).to_pylist()
    return list(csv.DictReader(io.StringIO(data.decode())))
