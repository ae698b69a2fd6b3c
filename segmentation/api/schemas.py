"""Request and response models of the HTTP API, and what its OpenAPI document says."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from segmentation.subject import Subject

__all__ = [
    "MIN_MEGAPIXELS",
    "CompositeOptions",
    "ErrorBody",
    "Health",
    "Options",
    "image_body",
    "image_responses",
    "limits_text",
]

#: The smallest ``max_megapixels`` that lets an image through: one pixel.
MIN_MEGAPIXELS = 1e-6
#: What load_image decodes (segmentation.io.IMAGE_EXTENSIONS), as a person names them.
IMAGE_FORMATS = "JPEG, PNG, WebP, HEIC/HEIF, AVIF, TIFF, BMP or GIF"


def _number_only(schema: dict[str, Any]) -> None:
    """An optional number's schema without its ``null`` branch: a query parameter is
    either absent (the default) or a number, never null."""
    number = next(branch for branch in schema.pop("anyOf") if branch.get("type") == "number")
    schema.update(number)
    schema.pop("default", None)


class Options(BaseModel):
    """Query parameters of every image endpoint (the CLI's options); any other is a 422
    (a misspelt option would otherwise be ignored without a word)."""

    model_config = ConfigDict(extra="forbid")

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
        None,
        ge=MIN_MEGAPIXELS,
        allow_inf_nan=False,
        description="refuse larger images with 413, judged from the header; above the "
        "server's limit the server's applies. Absent: the server's limit",
        json_schema_extra=_number_only,
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


#: A binary upload (the photo or a background image), as OpenAPI writes file fields.
_FILE = {"type": "string", "format": "binary"}


def image_body(takes_background: bool) -> dict[str, Any]:
    """OpenAPI request body of an image endpoint (FastAPI cannot infer it: the photo is
    read by hand, as a multipart field or the raw body); ``openapi_extra`` of the route.

    ``takes_background``: the multipart form may also carry ``background``, an image
    file or a colour / 'blur' as text (/v1/composite).
    """
    fields: dict[str, Any] = {"image": {**_FILE, "description": "the photo"}}
    for hint, marks in (("keep", "person"), ("remove", "background")):
        fields[hint] = {
            **_FILE,
            "description": f"touch-up hint: an image of any size (stretched to the photo) "
            f"whose white or opaque pixels mark {marks}; the whole region a dab lands on "
            "follows",
        }
    if takes_background:
        fields["background"] = {  # no format: a text part is as welcome as a file
            "type": "string",
            "description": "a background image as a file part, or a colour or 'blur' as a "
            "text part; wins over the query's `background`",
        }
    form = {"type": "object", "properties": fields, "required": ["image"]}
    return {
        "requestBody": {
            "required": True,
            "description": "The photo: a multipart upload in the field `image`, or the raw "
            "file as the body (any Content-Type but multipart/form-data).",
            "content": {
                "multipart/form-data": {"schema": form},
                "application/octet-stream": {"schema": _FILE},
                "image/*": {"schema": _FILE},
            },
        }
    }


def limits_text(max_upload_mb: float, max_megapixels: float) -> str:
    """What an image endpoint accepts beyond what its schema says (no schema can say it)."""
    return (
        f"The photo is an image file ({IMAGE_FORMATS}) of at least 1 x 1 pixel and at most "
        f"{max_megapixels:g} megapixels (fewer with `max_megapixels`), judged from its "
        f"header before any pixel is decoded, in a request body of at most "
        f"{max_upload_mb:g} MB. Larger answers 413; a file that is not an image, is "
        "damaged or truncated answers 422, each with the reason in `detail`."
    )


def image_responses(
    media_types: list[str],
    description: str,
    *,
    max_upload_mb: float,
    max_megapixels: float,
    api_key: bool,
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of an image endpoint: the image, its headers, every error it
    answers with the server's limits in them (401 only when a key is configured)."""
    ok = {
        "description": description,
        "content": {media: {"schema": _FILE} for media in media_types},
        "headers": {
            "Server-Timing": {
                "description": "milliseconds spent decoding, in the network and "
                "refining: `decode;dur=4.1, network;dur=80.2, refine;dur=30.5`",
                "required": True,
                "schema": {"type": "string"},
            },
            "Content-Disposition": {
                "description": "for a multipart upload, the name to save the answer as "
                "(`<upload's name>-<kind>.<ext>`, RFC 6266 with `filename*` for non-ASCII)",
                "schema": {"type": "string"},
            },
        },
    }
    errors: dict[int | str, dict[str, Any]] = {
        400: {
            "model": ErrorBody,
            "description": "no image in the request or a malformed multipart body; for "
            "/v1/composite also a background that is not a colour, 'blur' or an image",
        },
        413: {
            "model": ErrorBody,
            "description": f"a body over {max_upload_mb:g} MB, or an image over "
            f"{max_megapixels:g} megapixels or over `max_megapixels`",
        },
        422: {
            "model": ErrorBody,
            "description": "not an image, damaged or truncated; or a query parameter "
            "outside its schema",
        },
    }
    if api_key:
        errors[401] = {"model": ErrorBody, "description": "the API key is missing or wrong"}
    return {200: ok, **dict(sorted(errors.items()))}
