"""The per-image work of a batch job, and the local engine: one model, one file at a time.

A :class:`Worker` reads, segments, encodes and writes one input and never raises: a
failure becomes the manifest row's error, in the CLI's words. The Ray engine's actors
hold one each (:mod:`segmentation.batch.ray_engine`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from segmentation.batch.files import Job, write_whole
from segmentation.batch.manifest import manifest_row
from segmentation.errors import ImageError
from segmentation.io import encode_jpeg
from segmentation.subject import Subject

__all__ = ["BatchOptions", "OutputFormat", "Worker", "parse_background", "run_local"]

OutputFormat = Literal["png", "mask", "jpg-on-background"]


@dataclass(frozen=True)
class BatchOptions:
    """What to make of each input (the CLI's options); travels to every Ray actor."""

    output_format: OutputFormat = "png"
    background: str = "white"  # jpg-on-background: a colour, '#rrggbb' or 'blur'
    refine: bool = True
    zoom: bool = True  # closer network passes on people who fill part of the photo
    mirror: bool = True  # average each look with a look at the mirrored photo
    subject: Subject = "main"  # 'all': every person, not only the one the photo is of
    max_megapixels: float = 50.0
    model: str | None = None  # None: $SEGMENTATION_MODEL, else the shipped weights

    @property
    def suffix(self) -> str:
        """File ending of the outputs."""
        return ".jpg" if self.output_format == "jpg-on-background" else ".png"


class Worker:
    """One model and the per-file work: read, segment, encode, write; never raises.

    The local engine uses one; on Ray each actor of the pool holds one.
    """

    def __init__(self, options: BatchOptions, background: Any, segmenter: Any = None) -> None:
        from segmentation.segmenter import load_segmenter, native_stderr_silenced

        self.options = options
        self.background = background
        if segmenter is None:
            with native_stderr_silenced():  # TensorFlow's / LiteRT's start-up lines
                segmenter = load_segmenter(options.model)
        self.segmenter = segmenter

    def process(self, job: Job, data: bytes | None, in_fs: Any, out_fs: Any) -> dict[str, Any]:
        """The manifest row of ``job``; ``data`` is the input when already read."""
        start = time.perf_counter()
        row = manifest_row(job, "error")
        try:
            if data is None:
                with in_fs.open_input_stream(job.source) as stream:
                    data = stream.read()
            row["input_bytes"] = len(data)
            options = self.options
            result = self.segmenter.predict(
                data,
                refine=options.refine,
                zoom=options.zoom,
                mirror=options.mirror,
                subject=options.subject,
                max_megapixels=options.max_megapixels,
            )
            row["height"], row["width"] = (int(v) for v in result.mask.shape)
            if options.output_format == "mask":
                encoded = result.mask_png()
            elif options.output_format == "png":
                encoded = result.cutout_png()
            else:
                encoded = encode_jpeg(result.composite(self.background))
            del result
        except ImageError as exc:
            row["error"] = str(exc)
        except OSError as exc:
            row["error"] = f"cannot be read ({exc.strerror or exc})"
        except Exception as exc:  # one odd file must not stop a catalogue
            row["error"] = f"unexpected failure ({type(exc).__name__}: {exc})"
        else:
            try:
                write_whole(out_fs, job.target, encoded)
                row.update(status="ok", output_bytes=len(encoded), error="")
            except OSError as exc:
                row["error"] = f"cannot write {job.target} ({exc.strerror or exc})"
        row["error"] = " ".join(str(row["error"]).split())  # one line, as the CLI prints
        if row["status"] == "error":
            row["output"] = ""
        row["seconds"] = round(time.perf_counter() - start, 3)
        return row


def parse_background(options: BatchOptions) -> Any:
    """The jpg-on-background colour or 'blur'; a bad value fails before any work."""
    if options.output_format != "jpg-on-background":
        return None
    if options.background.strip().lower() == "blur":
        return "blur"
    from segmentation.compose import parse_color

    try:
        return parse_color(options.background)
    except ValueError as exc:
        raise ValueError(f"--background: {exc}, or 'blur'") from exc


def run_local(
    jobs: list[Job], in_fs: Any, out_fs: Any, options: BatchOptions, background: Any
) -> Iterator[dict[str, Any]]:
    """The local engine: one Worker in this process, the jobs in order."""
    worker = Worker(options, background)
    for job in jobs:
        yield worker.process(job, None, in_fs, out_fs)
