"""The app's video tab, run headless with AppTest on the tiny untrained model.

Upload a clip: the first frame's result, a player, and a download that decodes as a
transparent WebM (or an MP4 on the chosen background); a bad file gets a message.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_app import APP, RUN_TIMEOUT, _RecordingManager
from tests.test_app import download_bytes as click_download
from tests.test_video import decode, write_clip


@pytest.fixture
def app(tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    monkeypatch.setenv("SEGMENTATION_MODEL", str(tiny_model_path))
    monkeypatch.setattr("streamlit.testing.v1.app_test.MediaFileManager", _RecordingManager)
    _RecordingManager.instances.clear()
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    at.run()
    at.toggle(key="example").set_value(False)  # the photo tab stays idle
    yield at
    _RecordingManager.instances.clear()


def download_bytes(at: AppTest, key: str) -> bytes:
    (button,) = [b for b in at.download_button if b.key == key]
    return click_download(button)


def test_video_upload_renders_a_transparent_webm(app: AppTest, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "walk.mp4", frames=8, audio="aac").read_bytes()
    app.file_uploader(key="video").upload("walk.mp4", clip, "video/mp4")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    captions = [caption for image in app.image for caption in image.captions]
    assert "First frame, background removed" in captions
    assert any("96 × 64 px" in c.value for c in app.caption)
    assert any("60 s" in c.value and "MB" in c.value for c in app.caption), "limits stated"
    assert app.get("video"), "a player"
    assert any("Rendered 8 frames" in p.proto.text for p in app.get("progress"))

    webm = tmp_path / "walk-nobg.webm"
    webm.write_bytes(download_bytes(app, "video-download"))
    frames = decode(webm, "rgba", decoder="libvpx-vp9")
    assert len(frames) == 8 and frames[0].shape == (64, 96, 4)

    app.run()  # a rerun shows the kept result without rendering again
    assert not app.get("progress")
    assert app.get("video")


def test_video_on_a_colour_gives_an_mp4(app: AppTest, tmp_path: Path) -> None:
    app.sidebar.radio(key="background").set_value("Colour")
    clip = write_clip(tmp_path / "walk.mov", frames=5).read_bytes()
    app.file_uploader(key="video").upload("walk.mov", clip, "video/quicktime")
    app.run()
    assert not app.exception and not app.error
    mp4 = tmp_path / "walk-nobg.mp4"
    mp4.write_bytes(download_bytes(app, "video-download"))
    assert len(decode(mp4, "rgb24")) == 5


def test_a_bad_video_gets_a_message_naming_it(app: AppTest) -> None:
    app.file_uploader(key="video").upload("party.mp4", b"not a video " * 50, "video/mp4")
    app.run()
    assert not app.exception
    assert len(app.error) == 1 and "party.mp4: not a video" in app.error[0].value
    assert not app.get("video")


def test_a_session_that_goes_away_stops_its_render(tmp_path: Path) -> None:
    """Streamlit stops a gone session's script at its next page update: the progress bar.

    That update raises StopException inside remove_background's progress callback; the
    render must end there (threads stopped) and leave no file behind.
    """
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException

    from segmentation.video import remove_background
    from tests.test_video import BlockSegmenter

    source = write_clip(tmp_path / "long.mp4", frames=30)
    out = tmp_path / "out"
    out.mkdir()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done == 3:
            raise StopException()

    with pytest.raises(StopException):
        remove_background(source, out / "x.webm", BlockSegmenter(), progress=progress)
    assert seen == [1, 2, 3], "no frame was encoded after the stop"
    assert list(out.iterdir()) == []
