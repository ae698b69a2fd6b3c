"""The HTTP API through FastAPI's test client: endpoints, options, errors, the API key.

Every image answer is compared with what the shared tiny Segmenter gives for the same
bytes, so a mix-up of options or photos shows. Every bad request must answer 4xx with
one readable ``detail`` string (the CLI's reason), never a 500.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from segmentation.api import API_KEY_HEADER, Settings, create_app
from segmentation.errors import ImageError
from segmentation.io import load_image
from tests.conftest import small_person_photo
from tests.corpus import encode, synthetic_photo, zero_png

#: A small upload limit, so the size tests need no big bodies.
MAX_UPLOAD_MB = 0.2


def jpeg(width: int = 90, height: int = 70, seed: int = 1) -> bytes:
    return encode(Image.fromarray(synthetic_photo(width, height, seed=seed)), "JPEG", quality=92)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture(scope="module")
def client(tiny_segmenter) -> Iterator[TestClient]:
    settings = Settings(max_upload_mb=MAX_UPLOAD_MB, max_megapixels=2.0, concurrency=2)
    with TestClient(create_app(settings, segmenter=tiny_segmenter)) as test_client:
        yield test_client


def test_cutout_from_multipart_and_raw_body(client: TestClient, tiny_segmenter) -> None:
    data = jpeg()
    expected = tiny_segmenter.predict(data).cutout()
    multipart = client.post("/v1/cutout", files={"image": ("me.jpg", data, "image/jpeg")})
    raw = client.post("/v1/cutout", content=data, headers={"Content-Type": "image/jpeg"})
    for response in (multipart, raw):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        image = decoded(response.content)
        assert (image.mode, image.size) == ("RGBA", (90, 70))
        np.testing.assert_array_equal(np.asarray(image), expected)
    assert multipart.headers["content-disposition"] == 'inline; filename="me-nobg.png"'
    assert "network;dur=" in multipart.headers["server-timing"]


def test_mask_follows_the_refine_option(client: TestClient, tiny_segmenter) -> None:
    data = jpeg(64, 100, seed=2)
    refined = client.post("/v1/mask", content=data)
    stretched = client.post("/v1/mask", content=data, params={"refine": "false"})
    assert refined.status_code == stretched.status_code == 200
    refined_mask, stretched_mask = (np.asarray(decoded(r.content)) for r in (refined, stretched))
    assert decoded(refined.content).mode == "L" and refined_mask.shape == (100, 64)
    np.testing.assert_array_equal(refined_mask, tiny_segmenter.predict(data).alpha)
    expected = tiny_segmenter.predict(data, refine=False).alpha
    np.testing.assert_array_equal(stretched_mask, expected)
    assert not np.array_equal(refined_mask, stretched_mask)


def assert_mask_follows_a_look_option(segmenter, data: bytes, option: str) -> None:
    """``option=false`` gives the Segmenter's mask without that look, and it differs."""
    settings = Settings(max_upload_mb=MAX_UPLOAD_MB, max_megapixels=2.0, concurrency=2)
    with TestClient(create_app(settings, segmenter=segmenter)) as look_client:
        default = look_client.post("/v1/mask", content=data)
        without = look_client.post("/v1/mask", content=data, params={option: "false"})
    assert default.status_code == without.status_code == 200
    default_mask, without_mask = (np.asarray(decoded(r.content)) for r in (default, without))
    np.testing.assert_array_equal(default_mask, segmenter.predict(data).alpha)
    expected = segmenter.predict(data, **{option: False}).alpha
    np.testing.assert_array_equal(without_mask, expected)
    assert not np.array_equal(default_mask, without_mask)


def test_mask_follows_the_zoom_option(colour_segmenter) -> None:
    rgb, _ = small_person_photo()
    assert_mask_follows_a_look_option(
        colour_segmenter[0], encode(Image.fromarray(rgb), "PNG"), "zoom"
    )


def test_mask_follows_the_mirror_option(biased_segmenter) -> None:
    data = encode(Image.fromarray(synthetic_photo(160, 120, seed=3)), "PNG")
    assert_mask_follows_a_look_option(biased_segmenter, data, "mirror")


def test_composite_on_colour_blur_and_uploaded_image(client: TestClient, tiny_segmenter) -> None:
    data = jpeg()
    result = tiny_segmenter.predict(data)
    colour = client.post("/v1/composite", content=data, params={"background": "#1e90ff"})
    assert colour.status_code == 200, colour.text
    np.testing.assert_array_equal(
        np.asarray(decoded(colour.content)), result.composite((0x1E, 0x90, 0xFF))
    )
    blur = client.post("/v1/composite", content=data, params={"background": "blur"})
    np.testing.assert_array_equal(np.asarray(decoded(blur.content)), result.composite("blur"))

    background = jpeg(40, 30, seed=9)
    files = {"image": ("me.jpg", data), "background": ("beach.jpg", background)}
    uploaded = client.post("/v1/composite", files=files, params={"format": "jpeg"})
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.headers["content-type"] == "image/jpeg"
    image = decoded(uploaded.content)
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (90, 70))
    exact = result.composite(load_image(background))
    assert np.abs(np.asarray(image).astype(int) - exact).mean() < 4  # JPEG's loss only


def cli_reason(data: bytes, **limits: float) -> str:
    """What the CLI prints after ``error: <path>: `` for these bytes."""
    with pytest.raises(ImageError) as info:
        load_image(data, **limits)
    return str(info.value)


BAD_REQUESTS = {
    "text as a photo": (
        {"files": {"image": ("notes.jpg", b"a shopping list, not a photo")}},
        422,
        "notes.jpg: " + cli_reason(b"a shopping list, not a photo"),
    ),
    "empty body": ({"content": b""}, 422, "the file is empty"),
    "truncated jpeg": ({"content": jpeg()[:300]}, 422, cli_reason(jpeg()[:300])),
    "over max_megapixels": (
        {"content": jpeg(), "params": {"max_megapixels": "0.001"}},
        413,
        cli_reason(jpeg(), max_megapixels=0.001),
    ),
    "12 MP header over the 2 MP limit": (  # a few kB: refused from the header
        {"files": {"image": ("big.png", zero_png(4000, 3000))}},
        413,
        "big.png: " + cli_reason(zero_png(4000, 3000), max_megapixels=2.0),
    ),
    "no image field": (
        {"files": {"photo": ("me.jpg", jpeg())}},
        400,
        "no image: send the photo as the multipart file field 'image'",
    ),
    "bad option": ({"content": jpeg(), "params": {"refine": "maybe"}}, 422, "refine: "),
    "negative max_megapixels": (
        {"content": jpeg(), "params": {"max_megapixels": "-1"}},
        422,
        "max_megapixels: Input should be greater than 0",
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_bad_input_is_a_4xx_with_the_cli_message(client: TestClient, case: str) -> None:
    kwargs, status, message = BAD_REQUESTS[case]
    for endpoint in ("/v1/cutout", "/v1/mask", "/v1/composite"):
        response = client.post(endpoint, **kwargs)
        assert response.status_code == status, (endpoint, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail.startswith(message), detail


def test_upload_limit_is_enforced_before_reading_everything(client: TestClient) -> None:
    too_big = b"\xff\xd8\xff" + bytes(int(MAX_UPLOAD_MB * 1e6))
    declared = client.post("/v1/cutout", content=too_big)
    assert declared.status_code == 413
    assert declared.json()["detail"] == (
        f"too large: the upload is {len(too_big) / 1e6:.1f} MB, the limit is {MAX_UPLOAD_MB:g} MB"
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it arrives
        for _ in range(10):
            yield bytes(50_000)

    # (The test client sends a generator in one piece; test_api_server streams it.)
    streamed = client.post("/v1/mask", content=chunks())
    assert streamed.status_code == 413
    assert streamed.json()["detail"] == "too large: the upload exceeds the limit of 0.2 MB"


def test_composite_background_errors(client: TestClient) -> None:
    data = jpeg()
    colour = client.post("/v1/composite", content=data, params={"background": "blurple"})
    assert colour.status_code == 400
    assert colour.json()["detail"].startswith("background: unknown colour 'blurple'")
    clear = client.post("/v1/composite", content=data, params={"background": "transparent"})
    assert clear.status_code == 400 and "/v1/cutout" in clear.json()["detail"]
    files = {"image": ("me.jpg", data), "background": ("beach.jpg", b"not a picture")}
    broken = client.post("/v1/composite", files=files)
    assert broken.status_code == 422
    assert broken.json()["detail"] == "background beach.jpg: " + cli_reason(b"not a picture")


def test_health_and_docs(client: TestClient, tiny_segmenter) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "version": __import__("segmentation").__version__,
        "model": tiny_segmenter.model_path.name,
        "runtime": tiny_segmenter.runtime,
        "input_size": tiny_segmenter.input_size,
        "api_key_required": False,
    }
    schema = client.get("/openapi.json").json()
    assert {"/v1/cutout", "/v1/mask", "/v1/composite", "/health"} <= set(schema["paths"])
    body = schema["paths"]["/v1/cutout"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body and "image/*" in body
    assert client.get("/docs").status_code == 200


def test_api_key_is_required_when_set(tiny_segmenter) -> None:
    app = create_app(Settings(api_key="open sesame"), segmenter=tiny_segmenter)
    data = jpeg()
    with TestClient(app) as keyed:
        assert keyed.get("/health").json()["api_key_required"] is True
        missing = keyed.post("/v1/cutout", content=data)
        wrong = keyed.post("/v1/mask", content=data, headers={API_KEY_HEADER: "open sesam"})
        right = keyed.post("/v1/mask", content=data, headers={API_KEY_HEADER: "open sesame"})
    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert refused.json()["detail"].startswith("missing or wrong API key")
    assert right.status_code == 200


class GatedSegmenter:
    """The tiny Segmenter, but predict() waits until the test opens the gate."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.model_path, self.runtime = inner.model_path, inner.runtime
        self.input_size = inner.input_size
        self.entered, self.gate = threading.Event(), threading.Event()

    def predict(self, *args, **kwargs):
        self.entered.set()
        if not self.gate.wait(timeout=60):
            raise RuntimeError("the gate was never opened")
        return self._inner.predict(*args, **kwargs)


def test_a_running_prediction_does_not_block_other_requests(tiny_segmenter) -> None:
    """While one photo is inside predict(), the server still answers /health."""
    gated = GatedSegmenter(tiny_segmenter)
    with TestClient(create_app(Settings(), segmenter=gated)) as shared:
        answers: dict[str, int] = {}

        def post() -> None:
            answers["cutout"] = shared.post("/v1/cutout", content=jpeg()).status_code

        worker = threading.Thread(target=post)
        worker.start()
        assert gated.entered.wait(timeout=60)
        answers["health"] = shared.get("/health").status_code  # would hang on a blocked loop
        answered_while_blocked = "cutout" not in answers
        gated.gate.set()
        worker.join(timeout=60)
    assert answered_while_blocked
    assert answers == {"health": 200, "cutout": 200}


def test_unexpected_failure_is_json(tiny_segmenter) -> None:
    class Broken(GatedSegmenter):
        def predict(self, *args, **kwargs):
            raise RuntimeError("disk on fire")

    app = create_app(Settings(), segmenter=Broken(tiny_segmenter))
    with TestClient(app, raise_server_exceptions=False) as broken:
        response = broken.post("/v1/cutout", content=jpeg())
    assert response.status_code == 500
    assert response.json() == {"detail": "unexpected failure (RuntimeError: disk on fire)"}


def test_serve_command_hands_its_settings_to_every_worker(monkeypatch, capsys) -> None:
    """``nobg serve`` starts uvicorn on the app factory; options travel as variables."""
    import uvicorn

    from segmentation import api
    from segmentation.api import ENV_API_KEY, Settings
    from segmentation.cli import main

    names = [ENV_API_KEY, api.ENV_MAX_UPLOAD_MB, api.ENV_MAX_MEGAPIXELS, api.ENV_CONCURRENCY]
    for name in [*names, "SEGMENTATION_MODEL"]:
        monkeypatch.setenv(name, "")  # restored after the test, whatever serve sets
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))

    assert main(["serve"]) == 0
    app, kwargs = calls[-1]
    assert app == "segmentation.api:app_from_env" and kwargs["factory"] is True
    assert (kwargs["host"], kwargs["port"], kwargs["workers"]) == ("127.0.0.1", 8000, 1)
    assert capsys.readouterr().err == ""  # localhost without a key: fine

    assert main(["serve", "--host", "0.0.0.0", "--workers", "2", "--max-upload-mb", "5"]) == 0
    assert calls[-1][1]["workers"] == 2
    assert "without an API key" in capsys.readouterr().err
    assert Settings.from_env().max_upload_mb == 5

    monkeypatch.setenv(ENV_API_KEY, "from the environment")
    assert main(["serve", "--host", "0.0.0.0"]) == 0
    assert capsys.readouterr().err == ""
    assert Settings.from_env().api_key == "from the environment"
