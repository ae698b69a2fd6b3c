"""What every request gets handed (FastAPI dependencies): the settings, the one model,
the API key check and the uploaded photo, read within the byte limit."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from starlette.datastructures import UploadFile

from segmentation.api.settings import Settings

__all__ = [
    "API_KEY_HEADER",
    "HINT_FIELDS",
    "SegmenterDep",
    "SettingsDep",
    "Upload",
    "UploadDep",
    "get_segmenter",
    "get_settings",
    "read_upload",
    "require_api_key",
    "upload_too_large",
]

#: Header that carries the API key when the server requires one.
API_KEY_HEADER = "X-API-Key"
#: Optional multipart file fields of every image endpoint: touch-up hints.
HINT_FIELDS = ("keep", "remove")


@dataclass
class Upload:
    """The photo (and a background image) of one request, as bytes."""

    name: str | None  # the upload's file name; None for a raw body
    image: bytes
    background: bytes | None = None
    background_name: str | None = None
    background_text: str | None = None
    #: Touch-up hint images by field ('keep', 'remove'), as uploaded.
    hints: dict[str, bytes] = field(default_factory=dict)


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
) -> Upload:
    """The request's photo: multipart field ``image``, else the raw body (dependency).

    The body is counted while it arrives and refused past ``max_upload_mb`` (at once
    when Content-Length already says so), before anything is parsed or decoded.
    """
    limit = int(settings.max_upload_mb * 1e6)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, detail=upload_too_large(int(declared), settings))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, detail=upload_too_large(size, settings, more=True))
        chunks.append(chunk)
    body = b"".join(chunks)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return Upload(None, body)

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    parsed = Request(request.scope, replay)
    async with parsed.form(max_files=2 + len(HINT_FIELDS), max_fields=4) as form:
        image = form.get("image")
        if not isinstance(image, UploadFile):
            raise HTTPException(
                400,
                detail="no image: send the photo as the multipart file field 'image', "
                "or as the raw request body",
            )
        upload = Upload(image.filename or "image", await image.read())
        background = form.get("background")
        if isinstance(background, UploadFile):
            upload.background = await background.read()
            upload.background_name = background.filename or "background"
        elif isinstance(background, str):
            upload.background_text = background
        for name in HINT_FIELDS:
            hint = form.get(name)
            if isinstance(hint, UploadFile):
                upload.hints[name] = await hint.read()
            elif hint is not None:
                raise HTTPException(422, detail=f"{name}: send the hint as an image file part")
    return upload


def upload_too_large(size: int, settings: Settings, more: bool = False) -> str:
    """The message of a 413 for the body (``more``: it was cut off while arriving)."""
    if more:
        return f"too large: the upload exceeds the limit of {settings.max_upload_mb:g} MB"
    return (
        f"too large: the upload is {size / 1e6:.1f} MB, the limit is {settings.max_upload_mb:g} MB"
    )


SegmenterDep = Annotated[Any, Depends(get_segmenter)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
UploadDep = Annotated[Upload, Depends(read_upload)]
