"""``nobg serve`` as a real uvicorn process on a free localhost port.

One server for the module (loading the tiny Keras model takes seconds), started with
the installed ``nobg`` command from another directory and an API key in the
environment. Eight clients at once, each with its own photo, must each get back exactly
what the server answers for that photo alone.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.corpus import encode, synthetic_photo

KEY = "test-key-123"
CLIENTS = 8
ROUNDS = 2
NOBG = Path(sys.executable).with_name("nobg")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "SEGMENTATION_API_KEY": KEY, "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = tmp_path_factory.mktemp("server") / "server.log"
    command = [str(NOBG), "serve", "--port", str(port), "--model", str(tiny_model_path)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--max-upload-mb", "1", "--concurrency", "3"],
            cwd=log.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def photos() -> list[bytes]:
    """Eight JPEGs of different sizes; the last two share a size, not content."""
    sizes = [(64, 48), (300, 200), (120, 333), (256, 192), (97, 61), (200, 200), (150, 110)]
    sizes.append(sizes[-1])
    return [
        encode(Image.fromarray(synthetic_photo(w, h, seed=40 + i)), "JPEG", quality=90)
        for i, (w, h) in enumerate(sizes)
    ]


def test_server_answers_with_the_key_only(server: str, tiny_segmenter) -> None:
    health = httpx.get(f"{server}/health", timeout=30).json()
    assert health["status"] == "ok" and health["api_key_required"] is True
    data = photos()[1]
    refused = httpx.post(f"{server}/v1/cutout", content=data, timeout=60)
    assert refused.status_code == 401
    answer = httpx.post(f"{server}/v1/mask", content=data, headers={"X-API-Key": KEY}, timeout=60)
    assert answer.status_code == 200, answer.text
    mask = np.asarray(Image.open(io.BytesIO(answer.content)))
    assert mask.shape == (200, 300)
    # Same model, same code, another process: the same mask within rounding.
    expected = tiny_segmenter.predict(data).alpha.astype(int)
    assert np.abs(mask.astype(int) - expected).max() <= 1


def test_streamed_upload_over_the_limit_is_refused(server: str) -> None:
    def chunks() -> Iterator[bytes]:  # chunked transfer: no Content-Length to judge by
        for _ in range(40):
            yield bytes(64 * 1024)

    response = httpx.post(
        f"{server}/v1/cutout", content=chunks(), headers={"X-API-Key": KEY}, timeout=60
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["detail"] == "too large: the upload exceeds the limit of 1 MB"


def test_concurrent_clients_get_their_own_results(server: str) -> None:
    inputs = photos()
    headers = {"X-API-Key": KEY}
    with httpx.Client(base_url=server, headers=headers, timeout=120) as client:
        alone = [client.post("/v1/cutout", content=data) for data in inputs]
    assert all(r.status_code == 200 for r in alone), [r.text for r in alone]
    expected = [r.content for r in alone]
    assert expected[-1] != expected[-2]  # else a swap of the same-sized pair is invisible

    def work(index: int) -> list[bytes]:
        with httpx.Client(base_url=server, headers=headers, timeout=120) as client:
            out = []
            for _ in range(ROUNDS):
                files = {"image": (f"photo{index}.jpg", inputs[index], "image/jpeg")}
                response = client.post("/v1/cutout", files=files)
                assert response.status_code == 200, response.text
                out.append(response.content)
            return out

    with ThreadPoolExecutor(CLIENTS) as pool:
        outcomes = list(pool.map(work, range(CLIENTS)))
    for index, answers in enumerate(outcomes):
        for answer in answers:
            assert answer == expected[index], f"client {index} got another photo's cutout"
