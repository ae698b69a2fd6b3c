"""HTTP API: the remover as a service that a website or a workflow tool calls.

    nobg serve                      # http://127.0.0.1:8000/docs
    curl -F image=@me.jpg http://127.0.0.1:8000/v1/cutout -o me.png
    curl --data-binary @me.jpg http://127.0.0.1:8000/v1/mask -o mask.png

A thin layer over :class:`segmentation.Segmenter`, like the CLI: one model per process,
loaded at start-up and shared by every request (a dependency hands it out). Decoding,
the network, refinement and encoding run in worker threads, at most ``concurrency`` at
once, so the event loop keeps accepting requests and memory stays bounded however many
clients there are. Bad input answers 4xx with ``{"detail": "<name>: <reason>"}``, the
same reason the CLI prints after ``error:``; the byte limit is enforced while the body
arrives and the megapixel limit from the image header, both before any pixel is decoded.

Settings come from :class:`Settings` (``nobg serve`` fills them from its options through
environment variables, so each of uvicorn's worker processes builds the same app).

One module per concern, all of their public names here: :mod:`~segmentation.api.settings`,
:mod:`~segmentation.api.schemas` (request and response models),
:mod:`~segmentation.api.dependencies` (settings, model, API key, upload) and
:mod:`~segmentation.api.routes` (:func:`create_app`, the endpoints, the error answers).
"""

from __future__ import annotations

from segmentation.api.dependencies import (
    API_KEY_HEADER,
    SegmenterDep,
    SettingsDep,
    UploadDep,
    get_segmenter,
    get_settings,
    read_upload,
    require_api_key,
)
from segmentation.api.routes import app_from_env, create_app
from segmentation.api.schemas import CompositeOptions, ErrorBody, Health, Options
from segmentation.api.settings import (
    ENV_API_KEY,
    ENV_CONCURRENCY,
    ENV_MAX_MEGAPIXELS,
    ENV_MAX_UPLOAD_MB,
    Settings,
)

__all__ = [
    "API_KEY_HEADER",
    "ENV_API_KEY",
    "ENV_CONCURRENCY",
    "ENV_MAX_MEGAPIXELS",
    "ENV_MAX_UPLOAD_MB",
    "CompositeOptions",
    "ErrorBody",
    "Health",
    "Options",
    "SegmenterDep",
    "Settings",
    "SettingsDep",
    "UploadDep",
    "app_from_env",
    "create_app",
    "get_segmenter",
    "get_settings",
    "read_upload",
    "require_api_key",
]
