"""Request and response models of the HTTP API, and what its OpenAPI document says."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from segmentation.subject import Subject

__all__ = [
    "ERRORS",
    "IMAGE_BODY",
    "CompositeOptions",
    "ErrorBody",
    "Health",
    "Options",
    "png_response",
]


class Options(BaseModel):
    """Query parameters of every image endpoint (the CLI's options)."""

    refine: bool = Field(True, description="follow the photo's edges at full resolution")
    zoom: bool = Field(
        True, description="look again, closer, at people who fill only part of the photo"
    )
    mirror: bool = Field(True, description="average each look with a look at the mirrored photo")
    subject: Subject = Field(
        "main",
        description="'main': the person or group the photo is of, without passers-by or an "
        "audience; 'all': every person",
    )
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


#: OpenAPI request body of every image endpoint (FastAPI cannot infer it: the photo is
#: read by hand, as a multipart field or the raw body).
IMAGE_BODY: dict[str, Any] = {
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
#: OpenAPI error responses of every image endpoint.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "malformed request (no image, bad background)"},
    401: {"model": ErrorBody, "description": "API key missing or wrong"},
    413: {"model": ErrorBody, "description": "upload or image over the limits"},
    422: {"model": ErrorBody, "description": "not an image, damaged, too small; bad option"},
}


def png_response(description: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of an endpoint that answers a PNG, and the errors."""
    return {200: {"content": {"image/png": {}}, "description": description}, **ERRORS}
