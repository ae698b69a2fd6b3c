"""The video tab in a real browser: upload a clip, play the result, download a WebM with alpha.

Uses the server, browser and page fixtures of test_browser.py (its own server for this
module). With the trained weights the clip is the example photo's 3:4 crop drifting
slowly, and the downloaded frames must have transparent top corners and an opaque
face; with the tiny model only format, size, frame count and the alpha plane count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import test_browser
from tests.test_browser import (
    EXAMPLE,
    RESULT_TIMEOUT_MS,
    SAVE,
    SCREENSHOTS,
    _assert_no_traceback,
    _download,
    _trained_weights,
    _wait_idle,
)
from tests.test_video import decode, write_clip

pytestmark = pytest.mark.browser
# The photo tests' fixtures: a server of our own (module scope), Chromium, a fresh page.
browser, server, page = test_browser.browser, test_browser.server, test_browser.page
model_path = test_browser.model_path
FRAMES = 12


def portrait_clip(path: Path) -> Path:
    """240x320, 12 frames at 10 fps: the example's 3:4 crop moving 2 px a frame."""
    source = Image.open(EXAMPLE).convert("RGB").crop((96, 0, 480, 512)).resize((264, 352))
    wide = np.asarray(source)
    pictures = [np.ascontiguousarray(wide[:320, 2 * i : 240 + 2 * i]) for i in range(FRAMES)]
    return write_clip(path, frames=FRAMES, size=(240, 320), pictures=pictures)


def test_video_upload_plays_and_downloads_a_transparent_webm(
    page, model_path: Path, tmp_path: Path
) -> None:
    clip = portrait_clip(tmp_path / "walk.mp4")
    page.get_by_role("tab", name="Video").click()
    page.locator(".st-key-video input[type=file]").set_input_files(str(clip))
    video = page.locator(".st-key-video-result video")
    video.wait_for(timeout=RESULT_TIMEOUT_MS)
    _wait_idle(page)
    _assert_no_traceback(page)
    assert page.get_by_text("240 × 320 px").count() >= 1

    # The page's player can decode and play it (Chromium plays VP9 with alpha).
    state = video.evaluate(
        """async (v) => {
            v.muted = true;
            if (v.readyState < 2) {
                await new Promise((ok, fail) => {
                    v.addEventListener('loadeddata', ok, {once: true});
                    v.addEventListener('error', () => fail(String(v.error && v.error.code)),
                                       {once: true});
                    v.load();
                });
            }
            await v.play();
            await new Promise((ok) => setTimeout(ok, 300));
            return {width: v.videoWidth, height: v.videoHeight, time: v.currentTime,
                    error: v.error && v.error.code, duration: v.duration};
        }"""
    )
    assert state["error"] is None, state
    assert (state["width"], state["height"]) == (240, 320), state
    assert state["time"] > 0, state
    assert state["duration"] == pytest.approx(FRAMES / 10, abs=0.15), state

    if SAVE:  # README picture (SAVE_SCREENSHOTS=1), the player paused on its first frame
        video.evaluate("(v) => { v.pause(); v.currentTime = 0; }")
        page.set_viewport_size({"width": 1400, "height": 1500})
        page.wait_for_timeout(800)
        page.screenshot(path=str(SCREENSHOTS / "app-video.png"))

    downloaded = _download(page, ".st-key-video-download", tmp_path)
    assert downloaded.name == "walk-nobg.webm"
    frames = decode(downloaded, "rgba", decoder="libvpx-vp9")
    assert len(frames) == FRAMES and frames[0].shape == (320, 240, 4)
    alpha = frames[FRAMES // 2][:, :, 3].astype(np.float32)
    assert alpha.min() < 128, "the alpha plane is not all opaque"
    if model_path == _trained_weights():
        assert alpha[:20, :20].mean() < 64, "the top left corner is transparent"
        assert alpha[:20, 140:170].mean() < 64, "the wall right of the head is transparent"
        face = alpha[72:92, 66:86]
        assert face.mean() > 192, "the face is opaque"
