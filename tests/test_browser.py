"""End to end: a real `streamlit run app.py` server driven by headless Chromium.

This is the only test that goes through the browser's file input, the upload endpoint
and the download link, i.e. what a person actually does. It serves the trained weights
when weights/person_unet.keras exists, or the model $SEGMENTATION_MODEL names (then it
also checks the corners came out transparent), else the tiny untrained model (then only
format and size are checked).

Set SAVE_SCREENSHOTS=1 to refresh the README screenshots in screenshots/.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segmentation import DEFAULT_MODEL_PATH

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "assets" / "example.png"
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SERVER_START_TIMEOUT = 120  # s: importing TensorFlow on a busy 2-core machine is slow
RESULT_TIMEOUT_MS = 300_000  # the first photo also loads the model
SAVE = os.environ.get("SAVE_SCREENSHOTS") == "1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _trained_weights() -> Path | None:
    """Weights to test with besides the tiny model: $SEGMENTATION_MODEL, else the default."""
    override = os.environ.get("SEGMENTATION_MODEL")
    path = Path(override) if override else ROOT / DEFAULT_MODEL_PATH
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def model_path(request: pytest.FixtureRequest) -> Path:
    """Trained weights when there are any, else the tiny untrained model from conftest."""
    return _trained_weights() or request.getfixturevalue("tiny_model_path")


@pytest.fixture(scope="module")
def server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the app on a free port; always stop it, whatever the test did."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "streamlit.log"
    env = {**os.environ, "SEGMENTATION_MODEL": str(model_path), "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        tail = log_path.read_text(errors="replace")[-3000:]
        assert "Traceback" not in tail, f"server log has a traceback:\n{tail}"


def _wait_healthy(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited early:\n{log_path.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit not healthy after {SERVER_START_TIMEOUT}s")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium via Playwright (`make test` installs it; nothing is downloaded)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=60_000
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser, server: str):
    """A fresh page on the app, ready for input."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(server, wait_until="domcontentloaded")
        page.locator(".st-key-photos input[type=file]").wait_for(state="attached")
        yield page
    finally:
        context.close()


def _key(index: int, data: bytes) -> str:
    """The download button keys app.py gives photo ``index`` with these bytes."""
    return f"{index}-{hashlib.sha256(data).hexdigest()[:16]}"


def _wait_idle(page) -> None:
    """Wait until Streamlit has finished the current script run."""
    page.locator("[data-testid=stStatusWidget]").wait_for(state="hidden", timeout=RESULT_TIMEOUT_MS)


def _download(page, selector: str, save_to: Path) -> Path:
    with page.expect_download(timeout=60_000) as info:
        page.locator(f"{selector} button").click()
    download = info.value
    target = save_to / download.suggested_filename
    download.save_as(target)
    return target


def _save_screenshots(page) -> None:
    """README pictures: the whole page with a result, then the card's mask tab."""
    SCREENSHOTS.mkdir(exist_ok=True)
    # Streamlit scrolls inside its own container, so full_page cannot see below the
    # fold: make the window as tall as the content instead.
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": 1400, "height": min(max(height, 900), 2400)})
    page.wait_for_timeout(500)  # let the layout settle
    page.screenshot(path=str(SCREENSHOTS / "app-result.png"))
    page.get_by_role("tab", name="Mask and overlay").first.click()
    page.wait_for_timeout(500)
    page.locator(".st-key-photo-0").screenshot(path=str(SCREENSHOTS / "app-mask.png"))


def _assert_no_traceback(page) -> None:
    assert page.locator("[data-testid=stException]").count() == 0


def test_upload_photo_and_download_transparent_png(page, model_path: Path, tmp_path: Path) -> None:
    # First visit: the example is processed without any upload.
    page.locator(f".st-key-nobg-{_key(0, EXAMPLE.read_bytes())}").wait_for(
        timeout=RESULT_TIMEOUT_MS
    )

    photo = tmp_path / "portrait.jpg"
    # A 3:4 crop of the example (flag mostly cut off), upscaled: a portrait-format upload.
    source = Image.open(EXAMPLE).convert("RGB").crop((96, 0, 480, 512)).resize((480, 640))
    source.save(photo, quality=92)
    key = _key(0, photo.read_bytes())
    page.locator(".st-key-photos input[type=file]").set_input_files(str(photo))
    page.locator(f".st-key-nobg-{key}").wait_for(timeout=RESULT_TIMEOUT_MS)
    _wait_idle(page)
    _assert_no_traceback(page)
    assert page.get_by_text("480 × 640 px").count() >= 1

    downloaded = _download(page, f".st-key-nobg-{key}", tmp_path)
    assert downloaded.name == "portrait-nobg.png"
    result = Image.open(downloaded)
    assert (result.mode, result.size) == ("RGBA", (480, 640))
    if SAVE:
        _save_screenshots(page)

    if model_path == _trained_weights():
        # The bottom corners are suit and helmet; the top ones are plain background.
        alpha = np.asarray(result)[:, :, 3].astype(np.float32)
        assert alpha[:40, :40].mean() < 64, "the top left corner is transparent"
        assert alpha[:40, -40:].mean() < 64, "the top right corner is transparent"
        assert alpha[130:170, 141:181].mean() > 192, "the face is opaque"


def test_batch_with_a_bad_file_reports_it_and_zips_the_rest(page, tmp_path: Path) -> None:
    good = [tmp_path / "one.png", tmp_path / "two.jpg"]
    shutil.copy(EXAMPLE, good[0])
    Image.open(EXAMPLE).convert("RGB").resize((256, 320)).save(good[1], quality=90)
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"definitely not a JPEG")
    page.locator(".st-key-photos input[type=file]").set_input_files(
        [str(good[0]), str(bad), str(good[1])]
    )
    page.locator(".st-key-zip-all").wait_for(timeout=RESULT_TIMEOUT_MS)
    _wait_idle(page)
    _assert_no_traceback(page)
    error = page.locator("[data-testid=stAlertContentError]")
    assert error.count() == 1 and "notes.jpg" in error.inner_text()

    archive = zipfile.ZipFile(_download(page, ".st-key-zip-all", tmp_path))
    names = set(archive.namelist())
    assert {"one-nobg.png", "two-nobg.png"} <= names
    assert not any(name.startswith("notes") for name in names)
    two = Image.open(io.BytesIO(archive.read("two-nobg.png")))
    assert (two.mode, two.size) == ("RGBA", (256, 320))


@pytest.mark.slow
def test_12_megapixel_photo_time_to_result(page, tmp_path: Path) -> None:
    """Upload a 4000x3000 JPEG; time it to the result on the page, then to the PNG file."""
    rng = np.random.default_rng(0)
    base = Image.open(EXAMPLE).convert("RGB").crop((0, 64, 512, 448)).resize((4000, 3000))
    grain = rng.normal(0, 6, (3000, 4000, 3))  # a realistic JPEG size, not a flat one
    noisy = np.clip(np.asarray(base, np.float32) + grain, 0, 255).astype(np.uint8)
    photo = tmp_path / "big.jpg"
    Image.fromarray(noisy).save(photo, quality=90)
    key = _key(0, photo.read_bytes())

    # Let the example finish first so the clock measures this photo only.
    page.locator(f".st-key-nobg-{_key(0, EXAMPLE.read_bytes())}").wait_for(
        timeout=RESULT_TIMEOUT_MS
    )
    _wait_idle(page)
    start = time.monotonic()
    page.locator(".st-key-photos input[type=file]").set_input_files(str(photo))
    # The card's download buttons are drawn after its preview images.
    page.locator(f".st-key-nobg-{key}").wait_for(timeout=RESULT_TIMEOUT_MS)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.st-key-photo-0 img')]"
        ".some(img => img.complete && img.naturalWidth > 0)",
        timeout=RESULT_TIMEOUT_MS,
    )
    to_result = time.monotonic() - start
    _wait_idle(page)
    _assert_no_traceback(page)
    assert page.get_by_text("4000 × 3000 px").count() >= 1

    start = time.monotonic()
    downloaded = _download(page, f".st-key-nobg-{key}", tmp_path)
    to_file = time.monotonic() - start
    size_mb = photo.stat().st_size / 1e6
    print(
        f"\n12 MP photo ({size_mb:.1f} MB JPEG): upload to result on the page {to_result:.1f} s; "
        f"PNG click to saved file {to_file:.1f} s ({downloaded.stat().st_size / 1e6:.1f} MB)"
    )
    with Image.open(downloaded) as result:
        assert (result.mode, result.size) == ("RGBA", (4000, 3000))
