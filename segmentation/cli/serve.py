"""``nobg serve``: run the HTTP API (:mod:`segmentation.api`) under uvicorn.

Options become ``SEGMENTATION_*`` environment variables that the app factory reads, so
with ``--workers N`` every worker process loads the same model with the same limits.
FastAPI and uvicorn are imported only when the server starts, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path
from typing import Any

from segmentation.cli.common import add_command, positive_float, positive_int
from segmentation.resources import MODEL_ENV

DESCRIPTION = """\
Serve the background remover as an HTTP API (FastAPI on uvicorn).

endpoints:
  POST /v1/cutout      photo in, RGBA PNG out (the person on transparency)
  POST /v1/mask        photo in, 8-bit greyscale PNG out, 255 = person
  POST /v1/composite   photo in, the person on ?background=white|#rrggbb|blur or on an
                       uploaded multipart file 'background'; ?format=png|jpeg
  GET  /health         model and version; GET /docs is the interactive documentation

Send the photo as a multipart file field 'image' or as the raw request body. Query
options: refine=false, decontaminate=false, max_megapixels=MP. Bad input answers 4xx
with {"detail": "<name>: <reason>"}, the reason the CLI prints.

security: it listens on 127.0.0.1 (this machine only) unless --host says otherwise.
Before listening on other addresses, set an API key (--api-key, or better the
SEGMENTATION_API_KEY environment variable, which ps does not show): every /v1 request
must then send it in the X-API-Key header (/health and /docs stay open)."""

EPILOG = """\
examples:
  nobg serve
  SEGMENTATION_API_KEY=s3cret nobg serve --host 0.0.0.0 --port 8080 --workers 2
  curl -F image=@me.jpg http://127.0.0.1:8000/v1/cutout -o me-nobg.png
  curl --data-binary @me.jpg 'http://127.0.0.1:8000/v1/composite?background=blur' -o me.png"""


def add_serve_parser(commands: Any) -> argparse.ArgumentParser:
    """Register ``serve`` on the CLI's subcommands."""
    parser = add_command(
        commands,
        "serve",
        "HTTP API: cutout, mask and composite endpoints (FastAPI)",
        DESCRIPTION,
        EPILOG,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: %(default)s)")
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="server processes, each with its own copy of the model (default: 1; "
        "one already uses every core for the network)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"Keras model file (default: ${MODEL_ENV}, else the shipped weights)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="require this key in the X-API-Key header of /v1 requests "
        "(default: $SEGMENTATION_API_KEY; none needed when both are unset)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=positive_float,
        default=50.0,
        metavar="MB",
        help="refuse larger request bodies before reading them (default: %(default)g)",
    )
    parser.add_argument(
        "--max-megapixels",
        type=positive_float,
        default=50.0,
        metavar="MP",
        help="refuse larger images, judged from their header (default: %(default)g)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=None,
        metavar="N",
        help="photos processed at once per worker; more wait their turn "
        "(default: the number of cores, at least 2)",
    )
    parser.set_defaults(handler=run_serve)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    """Start uvicorn with the app factory; returns when the server stops."""
    import uvicorn

    from segmentation.api import ENV_API_KEY, Settings

    api_key = args.api_key or os.environ.get(ENV_API_KEY) or None
    settings = Settings(
        model=str(args.model) if args.model else os.environ.get(MODEL_ENV) or None,
        api_key=api_key,
        max_upload_mb=args.max_upload_mb,
        max_megapixels=args.max_megapixels,
        **({"concurrency": args.concurrency} if args.concurrency else {}),
    )
    if not _is_loopback(args.host) and api_key is None:
        print(
            f"warning: listening on {args.host} without an API key: anyone who can reach "
            f"port {args.port} can use this server (set {ENV_API_KEY} or --api-key)",
            file=sys.stderr,
        )
    os.environ.update(settings.to_env())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    uvicorn.run(
        "segmentation.api:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
    )
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
