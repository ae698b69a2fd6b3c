"""``nobg batch``: a whole folder or bucket of photos, resumable, here or on a Ray cluster.

Argument handling only; the job is :func:`segmentation.batch.run_batch`. Ray and
pyarrow are imported only when a job starts, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from segmentation.cli.common import add_command, add_look_options, add_subject_option, print_error
from segmentation.resources import MODEL_ENV

DESCRIPTION = """\
Process every image under SOURCE into DEST, one output per input under the same
relative path, and write a manifest listing each input with its status.

SOURCE and DEST are folders or URIs that pyarrow's file systems read (what Ray Data
reads): local paths, s3://bucket/prefix, gs://bucket/prefix, hdfs://... . Images are
found recursively by extension (hidden files skipped, DEST skipped when inside SOURCE).

formats:
  png                  DEST/<path>.png, the person on transparency (RGBA)
  mask                 DEST/<path>.png, 8-bit greyscale soft mask, 255 = person
  jpg-on-background    DEST/<path>.jpg, the person on --background (default white)

engines:
  local   this process, one model (default)
  ray     Ray Data: files are read by Ray tasks, a pool of actors (one model each,
          loaded once) segments them and writes the outputs. Connects to the cluster
          in $RAY_ADDRESS or --address, else starts Ray on this machine. Needs
          `pip install 'person-background-remover[ray]'`; every node needs the package
          and the model (see the README).

A file that cannot be processed is listed in the manifest with its error and never
stops the job. Running the same command again skips inputs whose output exists
(outputs are written whole or not at all), so an interrupted job resumes."""

EPILOG = """\
exit status: 0 when every input is done, 1 when any failed (see the manifest),
2 for invalid arguments.

examples:
  nobg batch catalogue/ cutouts/
  nobg batch catalogue/ masks/ --format mask --no-refine
  nobg batch s3://shop/photos s3://shop/cutouts --engine ray --format jpg-on-background
  RAY_ADDRESS=ray://head:10001 nobg batch s3://shop/photos s3://shop/cutouts --engine ray"""


def add_batch_parser(commands: Any) -> argparse.ArgumentParser:
    """Register ``batch`` on the CLI's subcommands."""
    parser = add_command(
        commands,
        "batch",
        "SOURCE folder/URI to DEST with a manifest; resumable; --engine ray for a cluster",
        DESCRIPTION,
        EPILOG,
    )
    parser.add_argument("source", metavar="SOURCE", help="folder or URI of the input images")
    parser.add_argument("dest", metavar="DEST", help="folder or URI for the outputs")
    parser.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=("png", "mask", "jpg-on-background"),
        default="png",
        help="what to write for each input (default: %(default)s)",
    )
    parser.add_argument(
        "--background",
        default="white",
        metavar="COLOUR",
        help="for jpg-on-background: a colour name, '#rrggbb' or 'blur' (default: %(default)s)",
    )
    parser.add_argument(
        "--manifest",
        default=None,
        metavar="PATH",
        help="where to write the manifest; .csv or .parquet (default: DEST/manifest.csv)",
    )
    parser.add_argument(
        "--model",
        default=None,
        metavar="PATH",
        help=f"Keras model file, readable on every node (default: ${MODEL_ENV}, else the "
        "shipped weights of the installed package)",
    )
    parser.add_argument(
        "--no-refine",
        dest="refine",
        action="store_false",
        help="skip the full-resolution edge refinement (faster, blurrier outline)",
    )
    add_look_options(parser)
    add_subject_option(parser)
    parser.add_argument(
        "--max-megapixels",
        type=float,
        default=50.0,
        metavar="MP",
        help="refuse larger images (default: %(default)g)",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster to connect to (default: $RAY_ADDRESS, else start Ray here); "
        "its token, when it has one: $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token",
    )
    parser.add_argument(
        "--actors",
        type=int,
        default=None,
        metavar="N",
        help="Ray: segmenting actors, one model each (default: the cluster's CPUs "
        "divided by --cpus-per-actor)",
    )
    parser.add_argument(
        "--cpus-per-actor",
        type=float,
        default=1.0,
        metavar="N",
        help="Ray: CPUs reserved per actor (default: %(default)g)",
    )
    parser.add_argument(
        "--runtime-env",
        type=_json_object,
        default=None,
        metavar="JSON",
        help="Ray: runtime environment for the job's workers, e.g. "
        '\'{"working_dir": ".", "pip": ["ai-edge-litert"]}\' (with `ray job submit`, '
        "give it there instead)",
    )
    parser.set_defaults(handler=run_batch_command)
    return parser


def run_batch_command(args: argparse.Namespace) -> int:
    """Run the job; print a one-line summary; 1 when any input failed."""
    from segmentation.batch import BatchOptions, run_batch
    from segmentation.batch.ray_engine import ClusterAuthError

    if args.max_megapixels <= 0:
        print("error: --max-megapixels must be positive", file=sys.stderr)
        return 2
    options = BatchOptions(
        output_format=args.output_format,
        background=args.background,
        refine=args.refine,
        zoom=args.zoom,
        mirror=args.mirror,
        subject=args.subject,
        max_megapixels=args.max_megapixels,
        model=str(args.model) if args.model else os.environ.get(MODEL_ENV) or None,
    )
    try:
        summary = run_batch(
            args.source,
            args.dest,
            options,
            engine=args.engine,
            manifest=args.manifest,
            address=args.address,
            actors=args.actors,
            cpus_per_actor=args.cpus_per_actor,
            runtime_env=args.runtime_env,
        )
    except ClusterAuthError as exc:  # before OSError: it is a ConnectionError
        print_error(exc.address, exc.reason)
        return 1
    except (OSError, ValueError, ImportError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(
        f"{summary.written} written, {summary.skipped} already done, {summary.failed} failed; "
        f"manifest: {summary.manifest}",
        file=sys.stderr,
    )
    return 1 if summary.failed else 0


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object: {...}")
    return value
