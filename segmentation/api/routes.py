"""The FastAPI app: ``/health`` and the three image endpoints, and how errors answer.

Every image endpoint is the same request cycle (:func:`_add_image_route`): read the
upload, run the Segmenter off the event loop within the concurrency limit, encode, and
answer the bytes, or a 4xx with the CLI's reason; only what is encoded differs.

No ``from __future__ import annotations`` here: FastAPI reads the endpoints' parameter
types, and the image endpoints' options model is a variable of the route factory.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from segmentation import __version__
from segmentation.api.dependencies import (
    API_KEY_HEADER,
    SegmenterDep,
    SettingsDep,
    Upload,
    UploadDep,
    require_api_key,
)
from segmentation.api.schemas import (
    CompositeOptions,
    Health,
    Options,
    image_body,
    image_responses,
    limits_text,
)
from segmentation.api.settings import Settings
from segmentation.errors import ImageError
from segmentation.filenames import content_disposition, download_name
from segmentation.io import encode_jpeg, encode_png, load_hint, load_image
from segmentation.segmenter import load_segmenter

__all__ = ["app_from_env", "create_app"]

#: What an image endpoint makes of a result: encode(result, options, background).
Encode = Callable[[Any, Any, Any], bytes]
#: Its media type and the end of the file name it suggests, from the options.
Media = Callable[[Any], tuple[str, str]]


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

    keyed = settings.api_key is not None
    app = FastAPI(
        title="Background remover for photos of people",
        version=__version__,
        description="Transparent cutouts, masks and composites at the photo's full "
        "resolution. Send the photo as a multipart file field `image` or as the raw "
        "request body. "
        + limits_text(settings.max_upload_mb, settings.max_megapixels)
        + (f" This server needs its API key in the `{API_KEY_HEADER}` header." if keyed else ""),
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)

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

    def responses(media_types: list[str], description: str) -> dict[int | str, Any]:
        """The image endpoints' answers, with this server's limits and key."""
        return image_responses(
            media_types,
            description,
            max_upload_mb=settings.max_upload_mb,
            max_megapixels=settings.max_megapixels,
            api_key=keyed,
        )

    _add_image_route(
        app,
        "/v1/cutout",
        "The person cut out: an RGBA PNG the size of the photo.",
        Options,
        responses(["image/png"], "RGBA PNG: the person on transparency, full resolution"),
        encode=lambda result, options, _: result.cutout_png(options.decontaminate),
        media=lambda options: ("image/png", "nobg.png"),
        settings=settings,
    )
    _add_image_route(
        app,
        "/v1/mask",
        "The soft mask as a greyscale PNG.",
        Options,
        responses(["image/png"], "8-bit greyscale PNG, 255 = person, the photo's size"),
        encode=lambda result, options, _: result.mask_png(),
        media=lambda options: ("image/png", "mask.png"),
        settings=settings,
    )
    _add_image_route(
        app,
        "/v1/composite",
        "The person on a colour, a blurred copy of the photo, or an uploaded image.",
        CompositeOptions,
        responses(["image/png", "image/jpeg"], "RGB PNG or JPEG (`format`), the photo's size"),
        encode=_encode_composite,
        media=lambda options: (
            ("image/jpeg", "background.jpg")
            if options.format == "jpeg"
            else ("image/png", "background.png")
        ),
        settings=settings,
        takes_background=True,
    )
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn (``nobg serve``): every worker process builds the same app."""
    return create_app(Settings.from_env())


def _add_image_route(
    app: FastAPI,
    path: str,
    description: str,
    options_model: type[Options],
    responses: dict[int | str, dict[str, Any]],
    *,
    encode: Encode,
    media: Media,
    settings: Settings,
    takes_background: bool = False,
) -> None:
    """Register ``POST path``: the photo in, ``encode``'s bytes out.

    The API key is checked, and declared in the OpenAPI document, only when the server
    has one. With ``takes_background`` the request may bring a background: an uploaded
    image (the multipart file 'background', decoded in the worker thread) or a colour /
    'blur' (a form field 'background', else the query's), parsed before any work.
    """

    async def endpoint(
        request: Request,
        upload: UploadDep,
        options: Annotated[options_model, Query()],
        segmenter: SegmenterDep,
        settings: SettingsDep,
    ) -> Response:
        background: Any = None
        if takes_background and upload.background is None:  # a form field wins over the query
            background = _parse_background(upload.background_text or options.background)

        def work() -> tuple[bytes, dict[str, float]]:
            bg = background
            if takes_background and upload.background is not None:
                bg = _uploaded_background(upload, settings)
            result = _predict(segmenter, upload, options, settings)
            return encode(result, options, bg), result.timings

        media_type, suffix = media(options)
        return await _respond(request, upload, work, media_type, suffix)

    app.post(
        path,
        name=path.rsplit("/", 1)[-1],
        description=f"{description} {limits_text(settings.max_upload_mb, settings.max_megapixels)}",
        response_class=Response,
        responses=responses,
        openapi_extra=image_body(takes_background),
        dependencies=[Depends(require_api_key)] if settings.api_key is not None else [],
        tags=["images"],
    )(endpoint)


def _encode_composite(result: Any, options: CompositeOptions, background: Any) -> bytes:
    rgb = result.composite(background, options.decontaminate)
    return encode_jpeg(rgb) if options.format == "jpeg" else encode_png(rgb)


class _PartError(Exception):
    """An uploaded background or hint image that cannot be used (a 4xx like the photo's)."""


def _uploaded_background(upload: Upload, settings: Settings) -> Any:
    """The uploaded background image, decoded (in the worker thread)."""
    try:
        return load_image(upload.background, max_megapixels=settings.max_megapixels)
    except ImageError as exc:
        raise _PartError(f"background {upload.background_name}: {exc}") from exc


def _predict(segmenter: Any, upload: Upload, options: Options, settings: Settings) -> Any:
    """Run the Segmenter on the upload (in a worker thread)."""
    limit = settings.max_megapixels
    if options.max_megapixels is not None:
        limit = min(limit, options.max_megapixels)
    hints = {}
    for name, data in upload.hints.items():
        try:
            hints[name] = load_hint(data, max_megapixels=settings.max_megapixels)
        except ImageError as exc:
            raise _PartError(f"{name}: {exc}") from exc
    return segmenter.predict(
        upload.image,
        refine=options.refine,
        zoom=options.zoom,
        mirror=options.mirror,
        subject=options.subject,
        max_megapixels=limit,
        **hints,
    )


async def _respond(
    request: Request,
    upload: Upload,
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
    except _PartError as exc:
        reason = " ".join(str(exc).split())
        raise HTTPException(413 if "too large" in reason else 422, detail=reason) from exc
    headers = {
        "Server-Timing": ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in timings.items()),
    }
    if upload.name:
        name = download_name(upload.name, f"-{suffix}")
        headers["Content-Disposition"] = content_disposition(name)
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
