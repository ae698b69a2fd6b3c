"""The Live camera tab in a real browser: Chromium's fake camera through WebRTC and back.

Chromium plays a Y4M clip as its camera (the example's person in front of black and
white stripes, tests/live_clip.py); the test opens the Live camera tab, presses START
and reads the page's own <video> element back through a canvas. Processed frames must
arrive; with the trained weights the stripes must be gone and the person kept, and
the snapshot button must give a transparent PNG at the camera's 640 x 480. With the
tiny model only the stream, the sizes and the snapshot's format are checked.

Uses test_browser.py's server (its own, for this module) and its conventions; the
browser is its own, because the fake camera is a launch flag.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import live_clip, test_browser
from tests.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SAVE,
    SCREENSHOTS,
    _assert_no_traceback,
    _download,
    _trained_weights,
)

pytestmark = pytest.mark.browser
server, model_path = test_browser.server, test_browser.model_path
#: How long the stream may take to show its first processed frame (ICE, DTLS, the
#: processor's interpreter) on a busy 2-core machine.
STREAM_TIMEOUT_MS = 45_000
#: In the person's core the picture may differ from the camera's by this much on
#: average (two VP8 encodings at WebRTC's starting bitrate).
PERSON_TOLERANCE = 24
#: Mean brightness difference between the camera's white and black stripes that is
#: left on the page's background; they are 255 apart in the camera frame.
STRIPES_LEFT = 40

#: Reads the <video> through a canvas; counts the frames it presents in ``ms``.
GRAB_JS = """async (v, ms) => {
    let frames = 0;
    const t0 = performance.now();
    await new Promise((done) => {
        const tick = () => {
            frames++;
            if (performance.now() - t0 < ms) v.requestVideoFrameCallback(tick); else done();
        };
        v.requestVideoFrameCallback(tick);
        setTimeout(done, ms + 2000);  // a stalled stream still answers
    });
    const c = document.createElement('canvas');
    c.width = v.videoWidth; c.height = v.videoHeight;
    c.getContext('2d').drawImage(v, 0, 0);
    return {frames, width: v.videoWidth, height: v.videoHeight,
            png: c.toDataURL('image/png')};
}"""


@pytest.fixture(scope="module")
def clip(model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """The fake camera's clip, its first frame and the person's alpha (from the same model
    the server runs, so the regions are where that model puts the person)."""
    from segmentation import Segmenter

    folder = tmp_path_factory.mktemp("live")
    return live_clip.stripes_clip(folder / "camera.y4m", Segmenter(model_path))


@pytest.fixture(scope="module")
def browser(clip) -> Iterator[object]:
    """Chromium with the clip as its camera, and permission to use it without asking."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    from playwright.sync_api import sync_playwright

    args = [
        *CHROMIUM_ARGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={clip[0]}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, args=args, headless=True, timeout=60_000
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser, server: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(server, wait_until="domcontentloaded")
        page.get_by_role("tab", name="Live camera").wait_for()
        yield page
    finally:
        context.close()


def start_stream(page):
    """Open the tab, switch the camera on, press START; the component's frame."""
    page.get_by_role("tab", name="Live camera").click()
    page.locator(".st-key-live_on label").click()
    frame = page.frame_locator('iframe[title*="webrtc"]')
    frame.get_by_role("button", name="START").click()
    video = frame.locator("video")
    video.wait_for(timeout=STREAM_TIMEOUT_MS)
    page.wait_for_function(
        """() => [...document.querySelectorAll('iframe')].some((f) => {
            const v = f.contentDocument && f.contentDocument.querySelector('video');
            return v && v.videoWidth > 0 && v.currentTime > 0;
        })""",
        timeout=STREAM_TIMEOUT_MS,
    )
    return frame, video


def decode(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def test_live_view_replaces_the_stripes_and_keeps_the_person(
    page, clip, model_path: Path, tmp_path: Path
) -> None:
    _, camera, alpha = clip
    _frame, video = start_stream(page)
    page.wait_for_timeout(2000)  # let the stabiliser and the encoder's bitrate settle
    grab = video.evaluate(GRAB_JS, 1500)
    assert grab["frames"] >= 5, f"the stream stalled: {grab['frames']} frames in 1.5 s"
    assert (grab["width"], grab["height"]) == (live_clip.WIDTH, live_clip.HEIGHT)
    shown = decode(grab["png"])[:, :, :3].astype(np.float32)
    _assert_no_traceback(page)

    # The page's readout counts processed frames.
    readout = page.locator(".st-key-live-readout")
    readout.get_by_text(re.compile(r"processed frames/s")).wait_for(timeout=15_000)
    fps = float(re.search(r"([\d.]+)\s*processed frames/s", readout.inner_text()).group(1))
    assert fps > 0

    person, background = live_clip.regions(alpha)
    difference = np.abs(shown - camera.astype(np.float32)).mean(axis=2)
    assert difference.mean() > 10, "the page shows the camera frame unprocessed"
    if model_path == _trained_weights():
        white = background & (camera[:, :, 0] > 128)
        black = background & (camera[:, :, 0] < 128)
        brightness = shown.mean(axis=2)
        left = brightness[white].mean() - brightness[black].mean()
        assert abs(left) < STRIPES_LEFT, f"stripes left on the page: {left:.0f} of 255"
        kept = difference[person].mean()
        assert kept < PERSON_TOLERANCE, f"the person differs by {kept:.1f} on average"

    if SAVE:  # README picture (SAVE_SCREENSHOTS=1): the whole view and its readout
        page.set_viewport_size({"width": 1400, "height": 1400})
        page.wait_for_timeout(1500)
        page.screenshot(path=str(SCREENSHOTS / "app-live.png"))

    page.locator(".st-key-live-snapshot button:not([disabled])").wait_for(timeout=15_000)
    snapshot = Image.open(_download(page, ".st-key-live-snapshot", tmp_path))
    assert snapshot.mode == "RGBA" and snapshot.size == (live_clip.WIDTH, live_clip.HEIGHT)
    if model_path == _trained_weights():
        rgba = np.asarray(snapshot)
        assert rgba[:, :, 3][background].mean() < 16, "the stripes are transparent"
        assert rgba[:, :, 3][person].mean() > 240, "the person is opaque"
