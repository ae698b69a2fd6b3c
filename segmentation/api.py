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
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from segmentation import __version__
from segmentation.errors import ImageError
from segmentation.io import encode_jpeg, encode_png, load_image
from segmentation.resources import MODEL_ENV, load_segmenter

__all__ = ["API_KEY_HEADER", "Settings", "app_from_env", "create_app"]

#: Header that carries the API key when the server requires one.
API_KEY_HEADER = "X-API-Key"
ENV_API_KEY = "SEGMENTATION_API_KEY"
ENV_MAX_UPLOAD_MB = "SEGMENTATION_MAX_UPLOAD_MB"
ENV_MAX_MEGAPIXELS = "SEGMENTATION_MAX_MEGAPIXELS"
ENV_CONCURRENCY = "SEGMENTATION_CONCURRENCY"


def _default_concurrency() -> int:
    """Photos processed at once: every core busy, a 12 MP photo's ~0.5 GB each at most."""
    return max(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class Settings:
    """What a server is allowed to do; the same for every request."""

    model: str | None = None  # None: $SEGMENTATION_MODEL, else the shipped weights
    api_key: str | None = None  # None: no key needed (fine on localhost)
    max_upload_mb: float = 50.0  # request body, as the app's upload limit
    max_megapixels: float = 50.0  # per image, as the CLI's default
    concurrency: int = field(default_factory=_default_concurrency)

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from ``SEGMENTATION_*`` variables (how ``nobg serve`` passes them on)."""
        env = os.environ
        return cls(
            model=env.get(MODEL_ENV) or None,
            api_key=env.get(ENV_API_KEY) or None,
            max_upload_mb=float(env.get(ENV_MAX_UPLOAD_MB) or cls.max_upload_mb),
            max_megapixels=float(env.get(ENV_MAX_MEGAPIXELS) or cls.max_megapixels),
            concurrency=int(env.get(ENV_CONCURRENCY) or _default_concurrency()),
        )

    def to_env(self) -> dict[str, str]:
        """The variables :meth:`from_env` reads back."""
        env = {
            ENV_MAX_UPLOAD_MB: repr(self.max_upload_mb),
            ENV_MAX_MEGAPIXELS: repr(self.max_megapixels),
            ENV_CONCURRENCY: str(self.concurrency),
        }
        if self.model:
            env[MODEL_ENV] = str(self.model)
        if self.api_key:
            env[ENV_API_KEY] = self.api_key
        return env


# --- request and response models ------------------------------------------------------


class Options(BaseModel):
    """Query parameters of every image endpoint (the CLI's options)."""

    refine: bool = Field(True, description="follow the photo's edges at full resolution")
    zoom: bool = Field(
        True, description="look again, closer, at people who fill only part of the photo"
    )
    mirror: bool = Field(True, description="average each look with a look at the mirrored photo")
    decontaminate: bool = Field(
        True, description="remove the old background's tint from semi-transparent edges"
    )
    max_megapixels: float | None = Field(
        None, gt=0, description="refuse larger images (at most the server's limit)"
    )


class CompositeOptions(Options):
    """Query parameters of ``/v1/composite``."""

    background: str = Field(
        "white",
        description="a colour name or '#rrggbb', or 'blur' (portrait mode); an uploaded "
        "multipart file 'background' wins over it",
    )
    format: Literal["png", "jpeg"] = Field("png", description="encoding of the result")


class ErrorBody(BaseModel):
    """Every error: one line a person can read."""

    detail: str


class Health(BaseModel):
    """What ``GET /health`` answers once the model is loaded."""

    status: Literal["ok"] = "ok"
    version: str
    model: str
    runtime: str
    input_size: int
    api_key_required: bool


_IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The photo: a multipart upload in the field `image`, or the raw "
        "file as the body (any Content-Type but multipart/form-data).",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "background": {
                            "type": "string",
                            "format": "binary",
                            "description": "/v1/composite only: a background image",
                        },
                    },
                    "required": ["image"],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "malformed request (no image, bad background)"},
    401: {"model": ErrorBody, "description": "API key missing or wrong"},
    413: {"model": ErrorBody, "description": "upload or image over the limits"},
    422: {"model": ErrorBody, "description": "not an image, damaged, too small; bad option"},
}


def _png_response(description: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"image/png": {}}, "description": description}, **_ERRORS}


@dataclass
class _Upload:
    """The photo (and a background image) of one request, as bytes."""

    name: str | None  # the upload's file name; None for a raw body
    image: bytes
    background: bytes | None = None
    background_name: str | None = None
    background_text: str | None = None


# --- dependencies ---------------------------------------------------------------------

_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


def get_settings(request: Request) -> Settings:
    """The server's settings (dependency)."""
    return request.app.state.settings


def get_segmenter(request: Request) -> Any:
    """The one Segmenter of this process, loaded at start-up (dependency)."""
    return request.app.state.segmenter


def require_api_key(
    settings: Annotated[Settings, Depends(get_settings)],
    key: Annotated[str | None, Security(_api_key_header)] = None,
) -> None:
    """Refuse the request unless it carries the configured key (when there is one)."""
    expected = settings.api_key
    if expected is None:
        return
    if key is None or not secrets.compare_digest(key.encode(), expected.encode()):
        raise HTTPException(
            401,
            detail=f"missing or wrong API key: send it in the {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": "APIKey"},
        )


async def read_upload(
    request: Request, settings: Annotated[Settings, Depends(get_settings)]
) -> _Upload:
    """The request's photo: multipart field ``image``, else the raw body (dependency).

    The body is counted while it arrives and refused past ``max_upload_mb`` (at once
    when Content-Length already says so), before anything is parsed or decoded.
    """
    limit = int(settings.max_upload_mb * 1e6)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, detail=_upload_too_large(int(declared), settings))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, detail=_upload_too_large(size, settings, more=True))
        chunks.append(chunk)
    body = b"".join(chunks)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return _Upload(None, body)

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    parsed = Request(request.scope, replay)
    async with parsed.form(max_files=2, max_fields=4) as form:
        image = form.get("image")
        if not isinstance(image, UploadFile):
            raise HTTPException(
                400,
                detail="no image: send the photo as the multipart file field 'image', "
                "or as the raw request body",
            )
        upload = _Upload(image.filename or "image", await image.read())
        background = form.get("background")
        if isinstance(background, UploadFile):
            upload.background = await background.read()
            upload.background_name = background.filename or "background"
        elif isinstance(background, str):
            upload.background_text = background
    return upload


def _upload_too_large(size: int, settings: Settings, more: bool = False) -> str:
    """The message of a 413 for the body (``more``: it was cut off while arriving)."""
    if more:
        return f"too large: the upload exceeds the limit of {settings.max_upload_mb:g} MB"
    return (
        f"too large: the upload is {size / 1e6:.1f} MB, the limit is {settings.max_upload_mb:g} MB"
    )


SegmenterDep = Annotated[Any, Depends(get_segmenter)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
UploadDep = Annotated[_Upload, Depends(read_upload)]


# --- the app --------------------------------------------------------------------------


def create_app(settings: Settings | None = None, segmenter: Any = None) -> FastAPI:
    """The FastAPI app; ``segmenter`` (tests) skips loading ``settings.model``.

    The model is loaded when the server starts (lifespan), not per request; a model
    that cannot be loaded stops the server with the loader's message.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.limiter = anyio.CapacityLimiter(settings.concurrency)
        app.state.segmenter = segmenter or await anyio.to_thread.run_sync(
            load_segmenter, settings.model
        )
        yield

    app = FastAPI(
        title="Background remover for photos of people",
        version=__version__,
        description="Transparent cutouts, masks and composites at the photo's full "
        "resolution. Send the photo as a multipart file field `image` or as the raw "
        f"request body. When the server has an API key, send it in `{API_KEY_HEADER}`.",
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    keyed = [Depends(require_api_key)]

    @app.get("/health", response_model=Health, tags=["service"])
    def health(segmenter: SegmenterDep, settings: SettingsDep) -> Health:
        """Liveness and what is being served (no API key needed)."""
        return Health(
            version=__version__,
            model=Path(segmenter.model_path).name,
            runtime=segmenter.runtime,
            input_size=segmenter.input_size,
            api_key_required=settings.api_key is not None,
        )

    @app.post(
        "/v1/cutout",
        response_class=Response,
        responses=_png_response("RGBA PNG: the person on transparency, full resolution"),
        openapi_extra=_IMAGE_BODY,
        dependencies=keyed,
        tags=["images"],
    )
    async def cutout(
        request: Request,
        upload: UploadDep,
        options: Annotated[Options, Query()],
        segmenter: SegmenterDep,
        settings: SettingsDep,
    ) -> Response:
        """The person cut out: an RGBA PNG the size of the photo."""

        def work() -> tuple[bytes, dict[str, float]]:
            result = _predict(segmenter, upload, options, settings)
            return result.cutout_png(options.decontaminate), result.timings

        return await _respond(request, upload, work, "image/png", "nobg.png")

    @app.post(
        "/v1/mask",
        response_class=Response,
        responses=_png_response("8-bit greyscale PNG, 255 = person, the photo's size"),
        openapi_extra=_IMAGE_BODY,
        dependencies=keyed,
        tags=["images"],
    )
    async def mask(
        request: Request,
        upload: UploadDep,
        options: Annotated[Options, Query()],
        segmenter: SegmenterDep,
        settings: SettingsDep,
    ) -> Response:
        """The soft mask as a greyscale PNG."""

        def work() -> tuple[bytes, dict[str, float]]:
            result = _predict(segmenter, upload, options, settings)
            return result.mask_png(), result.timings

        return await _respond(request, upload, work, "image/png", "mask.png")

    @app.post(
        "/v1/composite",
        response_class=Response,
        responses={
            200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "RGB"},
            **_ERRORS,
        },
        openapi_extra=_IMAGE_BODY,
        dependencies=keyed,
        tags=["images"],
    )
    async def composite(
        request: Request,
        upload: UploadDep,
        options: Annotated[CompositeOptions, Query()],
        segmenter: SegmenterDep,
        settings: SettingsDep,
    ) -> Response:
        """The person on a colour, a blurred copy of the photo, or an uploaded image."""
        bg: Any = None
        if upload.background is None:  # a form field 'background' wins over the query
            bg = _parse_background(upload.background_text or options.background)

        def work() -> tuple[bytes, dict[str, float]]:
            nonlocal bg
            if upload.background is not None:
                try:
                    bg = load_image(upload.background, max_megapixels=settings.max_megapixels)
                except ImageError as exc:
                    raise _BackgroundError(f"background {upload.background_name}: {exc}") from exc
            result = _predict(segmenter, upload, options, settings)
            rgb = result.composite(bg, options.decontaminate)
            data = encode_jpeg(rgb) if options.format == "jpeg" else encode_png(rgb)
            return data, result.timings

        media = "image/jpeg" if options.format == "jpeg" else "image/png"
        suffix = "background.jpg" if options.format == "jpeg" else "background.png"
        return await _respond(request, upload, work, media, suffix)

    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn (``nobg serve``): every worker process builds the same app."""
    return create_app(Settings.from_env())


# --- helpers --------------------------------------------------------------------------


class _BackgroundError(Exception):
    """An uploaded background image that cannot be used (a 4xx like the photo's)."""


def _predict(segmenter: Any, upload: _Upload, options: Options, settings: Settings) -> Any:
    """Run the Segmenter on the upload (in a worker thread)."""
    limit = settings.max_megapixels
    if options.max_megapixels is not None:
        limit = min(limit, options.max_megapixels)
    return segmenter.predict(
        upload.image,
        refine=options.refine,
        zoom=options.zoom,
        mirror=options.mirror,
        max_megapixels=limit,
    )


async def _respond(
    request: Request,
    upload: _Upload,
    work: Callable[[], tuple[bytes, dict[str, float]]],
    media_type: str,
    suffix: str,
) -> Response:
    """Run ``work`` off the event loop; its ImageError becomes the CLI's message as a 4xx."""
    limiter = request.app.state.limiter
    try:
        data, timings = await anyio.to_thread.run_sync(work, limiter=limiter)
    except ImageError as exc:
        reason = " ".join(str(exc).split())
        status = 413 if reason.startswith("too large") else 422
        detail = f"{upload.name}: {reason}" if upload.name else reason
        raise HTTPException(status, detail=detail) from None
    except _BackgroundError as exc:
        reason = " ".join(str(exc).split())
        raise HTTPException(413 if "too large" in reason else 422, detail=reason) from exc
    headers = {
        "Server-Timing": ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in timings.items()),
    }
    if upload.name:
        stem = Path(upload.name).stem.replace('"', "") or "image"
        headers["Content-Disposition"] = f'inline; filename="{stem}-{suffix}"'
    return Response(data, media_type=media_type, headers=headers)


def _parse_background(text: str) -> tuple[int, int, int] | str:
    """A colour or 'blur' as compose.composite takes it; bad values are a 400.

    Unlike the CLI, a server never opens a path it was sent: images come as uploads.
    """
    value = text.strip()
    if value.lower() == "blur":
        return "blur"
    if value.lower() in ("", "transparent", "none"):
        raise HTTPException(400, detail="background: use /v1/cutout for a transparent result")
    from segmentation.compose import parse_color

    try:
        return parse_color(value)
    except ValueError as exc:
        raise HTTPException(
            400, detail=f"background: {exc}, 'blur' or an uploaded background image"
        ) from exc


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's list of problems as one readable line, like every other error."""
    problems = []
    for error in getattr(exc, "errors", list)():
        where = ".".join(str(part) for part in error.get("loc", ())[1:])
        problems.append(f"{where}: {error.get('msg', 'invalid')}" if where else error["msg"])
    return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, status_code=422)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug, not bad input: still JSON, and it says what failed (as the CLI does)."""
    return JSONResponse(
        {"detail": f"unexpected failure ({type(exc).__name__}: {exc})"}, status_code=500
    )
