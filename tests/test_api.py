"""The HTTP API through FastAPI's test client: endpoints, options, errors, the API key.

Every image answer is compared with what the shared tiny Segmenter gives for the same
bytes, so a mix-up of options or photos shows. Every bad request must answer 4xx with
one readable ``detail`` string (the CLI's reason), never a 500.
"""

from __future__ import annotations

import io
import os
import re
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


def raw_multipart(filename: str, data: bytes) -> dict:
    """A multipart upload whose file name goes as UTF-8 bytes, only ``"`` escaped (as curl
    and most HTTP libraries send it; browsers percent-encode quotes and line breaks)."""
    quoted = filename.replace('"', '\\"').encode()
    body = (
        b'--nobg\r\nContent-Disposition: form-data; name="image"; filename="' + quoted + b'"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n--nobg--\r\n"
    )
    return {"content": body, "headers": {"Content-Type": "multipart/form-data; boundary=nobg"}}


def suggested_name(header: str) -> str:
    """The name a client saves the answer as: filename* when there is one (RFC 6266)."""
    from urllib.parse import unquote

    header.encode("ascii")  # so Latin-1, as every HTTP header must be
    assert "\r" not in header and "\n" not in header, repr(header)
    extended = re.search(r"filename\*=UTF-8''([^;\s]+)$", header)
    if extended:
        assert re.match(r'inline; filename="[ -!#-\[\]-~]+"; filename\*=', header), header
        return unquote(extended.group(1), errors="strict")
    plain = re.fullmatch(r'inline; filename="([ -!#-\[\]-~]+)"', header)
    assert plain, header
    return plain.group(1)


#: Upload names (sent as raw UTF-8) -> the name the answer suggests.
UPLOAD_NAMES = {
    "chinese": ("人像照片.jpg", "人像照片-nobg.png"),
    "cyrillic": ("Фотография.jpg", "Фотография-nobg.png"),
    "greek": ("Φωτογραφία.jpg", "Φωτογραφία-nobg.png"),
    "arabic": ("صورة شخصية.jpg", "صورة شخصية-nobg.png"),
    "emoji": ("party 🎉.jpg", "party 🎉-nobg.png"),
    "the issue's": ("unicode name é 人.jpg", "unicode name é 人-nobg.png"),
    "quote": ('say "cheese".jpg', "say _cheese_-nobg.png"),
    "newline": ("a\nSet-Cookie: evil=1.jpg", "a_Set-Cookie_ evil=1-nobg.png"),
    "nul": ("a\x00b.jpg", "a_b-nobg.png"),
    "path": ("../../etc/passwd.jpg", "passwd-nobg.png"),
    "windows path": ("..\\..\\me.jpg", "me-nobg.png"),
    "percent": ("100%.jpg", "100%-nobg.png"),
}


@pytest.mark.parametrize("case", UPLOAD_NAMES, ids=list(UPLOAD_NAMES))
def test_any_upload_name_gives_a_safe_content_disposition(client: TestClient, case: str) -> None:
    """Every script, emoji, quotes, line breaks, paths: a 200 whose header says the name."""
    name, expected = UPLOAD_NAMES[case]
    response = client.post("/v1/cutout", **raw_multipart(name, jpeg(24, 18)))
    assert response.status_code == 200, response.text
    assert suggested_name(response.headers["content-disposition"]) == expected
    assert "set-cookie" not in response.headers
    assert decoded(response.content).size == (24, 18)


def test_a_300_character_name_is_cut_to_255_bytes(client: TestClient) -> None:
    name = "长" * 150 + "x" * 146 + ".jpg"  # 1,200 bytes of UTF-8
    response = client.post("/v1/cutout", **raw_multipart(name, jpeg(24, 18)))
    assert response.status_code == 200, response.text
    suggested = suggested_name(response.headers["content-disposition"])
    assert suggested.startswith("长" * 80) and suggested.endswith("-nobg.png")
    assert len(suggested.encode()) <= 255


@pytest.mark.parametrize(
    ("endpoint", "params", "ending"),
    [
        ("/v1/mask", {}, "-mask.png"),
        ("/v1/composite", {}, "-background.png"),
        ("/v1/composite", {"format": "jpeg"}, "-background.jpg"),
    ],
)
def test_every_endpoint_and_format_names_its_answer_the_same_way(
    client: TestClient, endpoint: str, params: dict, ending: str
) -> None:
    for name, stem in [("人像照片.jpg", "人像照片"), ('a"b\n.jpg', "a_b_"), ("😀.png", "😀")]:
        response = client.post(endpoint, params=params, **raw_multipart(name, jpeg(24, 18)))
        assert response.status_code == 200, response.text
        assert suggested_name(response.headers["content-disposition"]) == stem + ending


def test_a_browser_style_upload_name_arrives_percent_encoded(client: TestClient) -> None:
    """Browsers (and httpx) send a line break in a name as %0D%0A: it stays text."""
    files = {"image": ("a\r\nb.jpg", jpeg(24, 18), "image/jpeg")}
    response = client.post("/v1/cutout", files=files)
    assert response.status_code == 200, response.text
    header = response.headers["content-disposition"]
    assert header.startswith('inline; filename="a_0D_0Ab-nobg.png"; ')  # no % in the fallback
    assert suggested_name(header) == "a%0D%0Ab-nobg.png"


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
        "max_megapixels: Input should be greater than or equal to 0.000001",
    ),
    "max_megapixels under one pixel": (  # 5e-324 was a valid option that refused everything
        {"content": jpeg(), "params": {"max_megapixels": "5e-324"}},
        422,
        "max_megapixels: Input should be greater than or equal to 0.000001",
    ),
    "infinite max_megapixels": (
        {"content": jpeg(), "params": {"max_megapixels": "inf"}},
        422,
        "max_megapixels: Input should be a finite number",
    ),
    "misspelt option": (  # not silently ignored
        {"content": jpeg(), "params": {"refnie": "false"}},
        422,
        "refnie: Extra inputs are not permitted",
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


def image_operations(schema: dict) -> dict[str, dict]:
    return {
        path: schema["paths"][path]["post"] for path in ("/v1/cutout", "/v1/mask", "/v1/composite")
    }


@pytest.mark.parametrize("api_key", [None, "open sesame"], ids=["no key", "key"])
def test_openapi_declares_the_key_only_when_there_is_one(tiny_segmenter, api_key) -> None:
    settings = Settings(api_key=api_key, max_upload_mb=7, max_megapixels=3)
    schema = create_app(settings, segmenter=tiny_segmenter).openapi()
    keyed = api_key is not None
    assert ("securitySchemes" in schema.get("components", {})) == keyed
    for operation in image_operations(schema).values():
        assert ("security" in operation) == keyed
        assert ("401" in operation["responses"]) == keyed
        # What no schema can say, in words, with this server's numbers:
        assert "at least 1 x 1 pixel and at most 3 megapixels" in operation["description"]
        assert "at most 7 MB" in operation["description"]
        assert "7 MB" in operation["responses"]["413"]["description"]
    assert "security" not in schema["paths"]["/health"]["get"]


def test_openapi_states_what_the_server_checks(client: TestClient) -> None:
    operations = image_operations(client.get("/openapi.json").json())
    for path, operation in operations.items():
        params = {p["name"]: p["schema"] for p in operation["parameters"]}
        assert params["max_megapixels"] == {
            "description": params["max_megapixels"]["description"],
            "type": "number",
            "minimum": 1e-06,
            "title": "Max Megapixels",
        }
        assert params["refine"]["type"] == "boolean"
        form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert form["required"] == ["image"]
        assert form["properties"]["image"] == {
            "type": "string",
            "format": "binary",
            "description": "the photo",
        }
        assert ("background" in form["properties"]) == (path == "/v1/composite")
        ok = operation["responses"]["200"]
        assert ok["headers"]["Server-Timing"]["required"] is True
    assert operations["/v1/composite"]["parameters"][-1]["schema"]["enum"] == ["png", "jpeg"]


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 2), (1, 40)])
def test_the_smallest_images_give_a_result_of_their_size(client: TestClient, size) -> None:
    """Any image with pixels works, down to 1 x 1, on every endpoint."""
    data = encode(Image.fromarray(synthetic_photo(*size, seed=4)), "PNG")
    for endpoint, mode in [("/v1/cutout", "RGBA"), ("/v1/mask", "L"), ("/v1/composite", "RGB")]:
        response = client.post(endpoint, content=data)
        assert response.status_code == 200, (endpoint, response.text)
        assert (decoded(response.content).mode, decoded(response.content).size) == (mode, size)


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
