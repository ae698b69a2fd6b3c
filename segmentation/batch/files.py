"""Inputs and outputs of a batch job on pyarrow's file systems (local paths and URIs).

Listing finds the images under SOURCE once and names each one's output under DEST;
writing is whole or not at all, which is what lets a job resume.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segmentation.filenames import disk_relpath, partial_name
from segmentation.io import IMAGE_EXTENSIONS

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["Job", "display", "existing_outputs", "list_jobs", "resolve", "write_whole"]


@dataclass(frozen=True)
class Job:
    """One input and where its output goes, as paths of their file systems."""

    source: str
    target: str
    size: int  # bytes of the input


def resolve(location: str | os.PathLike[str]) -> tuple[pyarrow.fs.FileSystem, str]:
    """A pyarrow file system and the path in it: local paths (relative too) or URIs."""
    import pyarrow.fs

    text = os.fspath(location)
    if "://" not in text:
        return pyarrow.fs.LocalFileSystem(), Path(text).expanduser().resolve().as_posix()
    try:
        filesystem, path = pyarrow.fs.FileSystem.from_uri(text)
    except (ValueError, OSError) as exc:  # unknown scheme, missing credentials, ...
        raise ValueError(f"{text}: cannot open this location ({exc})") from exc
    return filesystem, path.rstrip("/")


def list_jobs(
    in_fs: pyarrow.fs.FileSystem,
    in_root: str,
    out_fs: pyarrow.fs.FileSystem,
    out_root: str,
    suffix: str,
) -> list[Job]:
    """Images under ``in_root`` (recursive, hidden skipped) and their outputs.

    Names follow the CLI: ``a/b.jpg`` becomes ``a/b<suffix>``, and two inputs that
    would share an output keep their extension (``a.jpg.png``, ``a.webp.png``).
    """
    import pyarrow.fs

    info = in_fs.get_file_info(in_root)
    if info.type == pyarrow.fs.FileType.NotFound:
        raise FileNotFoundError(f"{in_root}: no such file or folder")
    if info.type == pyarrow.fs.FileType.File:
        found = [(info.path, posixpath.basename(info.path), info.size)]
        in_root = posixpath.dirname(info.path)
    else:
        selector = pyarrow.fs.FileSelector(in_root, recursive=True)
        inside = out_root + "/" if _same_fs(in_fs, out_fs) and out_root != in_root else None
        found = []
        for entry in in_fs.get_file_info(selector):
            if entry.type != pyarrow.fs.FileType.File:
                continue
            _require_utf8_path(entry)
            rel = posixpath.relpath(entry.path, in_root)
            if posixpath.splitext(rel)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            if inside and entry.path.startswith(inside):  # earlier outputs are no inputs
                continue
            found.append((entry.path, rel, entry.size))
    if not found:
        raise ValueError(f"{in_root}: no images in this folder")
    found.sort(key=lambda item: item[1])
    stems: dict[str, int] = {}
    for _, rel, _ in found:
        stem = posixpath.splitext(rel)[0]
        stems[stem] = stems.get(stem, 0) + 1
    jobs = []
    local = isinstance(out_fs, pyarrow.fs.LocalFileSystem)  # its names have limits
    for path, rel, size in found:
        stem, ext = posixpath.splitext(rel)
        name = stem + (ext if stems[stem] > 1 else "")
        name = disk_relpath(name, suffix) if local else name + suffix
        jobs.append(Job(path, posixpath.join(out_root, name), int(size or 0)))
    return jobs


def _require_utf8_path(entry: Any) -> None:
    """pyarrow cannot read a name that is not UTF-8 (its paths are str): say so, once."""
    try:
        entry.path  # noqa: B018 (decoded on access)
    except UnicodeDecodeError as exc:
        name = bytes(exc.object).decode("utf-8", "backslashreplace")
        raise ValueError(f"{name}: not a UTF-8 name, which batch cannot list: rename it") from None


def _same_fs(a: Any, b: Any) -> bool:
    return type(a) is type(b)


def existing_outputs(out_fs: Any, out_root: str) -> dict[str, int]:
    """Outputs already in DEST (path -> bytes), from one listing, not one request each."""
    import pyarrow.fs

    selector = pyarrow.fs.FileSelector(out_root, recursive=True, allow_not_found=True)
    return {
        entry.path: int(entry.size or 0)
        for entry in out_fs.get_file_info(selector)
        if entry.type == pyarrow.fs.FileType.File and entry.size
    }


def write_whole(out_fs: Any, path: str, data: bytes) -> None:
    """Write ``path`` so that it exists only once complete (resume relies on it)."""
    import pyarrow.fs

    parent, name = posixpath.split(path)
    if isinstance(out_fs, pyarrow.fs.LocalFileSystem):
        out_fs.create_dir(parent, recursive=True)
        partial = posixpath.join(parent, partial_name(name))  # hidden: never listed as input
        with out_fs.open_output_stream(partial) as stream:
            stream.write(data)
        out_fs.move(partial, path)
    else:  # object stores: one PUT, visible only when complete
        with out_fs.open_output_stream(path) as stream:
            stream.write(data)


#: URI schemes of pyarrow's file systems, whose paths leave them out.
_SCHEMES = {"s3": "s3://", "gcs": "gs://", "hdfs": "hdfs://"}


def display(fs: Any, path: str) -> str:
    """``path`` as a user writes it: with its scheme (``s3://bucket/key``) when it has one."""
    return _SCHEMES.get(getattr(fs, "type_name", ""), "") + path
