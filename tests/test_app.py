"""The Streamlit app, run headless with streamlit.testing (AppTest) on a tiny untrained model.

AppTest simulates uploads and widget changes in-process. Downloads are deferred (encoded
when clicked), so a test runs the button's generator through the run's MediaFileManager,
recorded by a patch below, and checks the actual file a user would get.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

import app_support
from segmentation import ImageError

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
EXAMPLE = ROOT / "assets" / "example.png"
#: Loading TensorFlow and the model in the first run takes seconds on a busy 2-core box.
RUN_TIMEOUT = 180


class _RecordingManager(MediaFileManager):
    """MediaFileManager that remembers its instances (AppTest makes one per run)."""

    instances: list[MediaFileManager] = []  # noqa: RUF012 (test-only registry)

    def __init__(self, storage) -> None:
        super().__init__(storage)
        self.storage = storage
        _RecordingManager.instances.append(self)


@pytest.fixture
def app(tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    """An AppTest of app.py serving the tiny model, with download bytes readable."""
    import streamlit as st

    monkeypatch.setenv("SEGMENTATION_MODEL", str(tiny_model_path))
    monkeypatch.setattr("streamlit.testing.v1.app_test.MediaFileManager", _RecordingManager)
    _RecordingManager.instances.clear()
    st.cache_data.clear()
    yield AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    _RecordingManager.instances.clear()


def downloaded_file(button):
    """Click an st.download_button of the last AppTest run the way the server does: the
    stored file (its ``content``, and the ``filename`` the browser is told)."""
    manager = _RecordingManager.instances[-1]
    url = button.proto.url
    if button.proto.deferred_file_id:
        url = manager.execute_deferred(button.proto.deferred_file_id)
    return manager.storage.get_file(url.rsplit("/", 1)[-1])


def download_bytes(button) -> bytes:
    """The bytes a click on an st.download_button gives."""
    return downloaded_file(button).content


def buttons_by_prefix(at: AppTest, prefix: str) -> list:
    """Download buttons whose key starts with ``prefix`` (keys are ``nobg-<i>-<hash>``)."""
    return [b for b in at.download_button if b.key and b.key.startswith(prefix)]


def jpeg_bytes(size: tuple[int, int]) -> bytes:
    """The example photo resized to (width, height), as JPEG: a non-square upload."""
    buffer = io.BytesIO()
    Image.open(EXAMPLE).convert("RGB").resize(size).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def assert_clean(at: AppTest) -> None:
    """No exception element: a traceback must never reach the page."""
    assert not at.exception, [e.value for e in at.exception]


def test_first_visit_shows_the_example(app: AppTest) -> None:
    at = app.run()
    assert_clean(at)
    assert not at.error
    assert len(at.image) >= 4  # result, original, mask, overlay
    png = Image.open(io.BytesIO(download_bytes(buttons_by_prefix(at, "nobg-")[0])))
    assert png.mode == "RGBA"
    assert png.size == Image.open(EXAMPLE).size
    assert any("50 MB" in c.value for c in at.caption)


def test_upload_shows_results_and_a_full_size_rgba_png(app: AppTest) -> None:
    at = app.run()
    at.file_uploader(key="photos").upload("portrait.jpg", jpeg_bytes((300, 200)), "image/jpeg")
    at.run()
    assert_clean(at)
    assert not at.error
    assert at.subheader[0].value == "portrait.jpg"
    captions = [caption for image in at.image for caption in image.captions]
    for expected in ("Original", "Mask", "Mask over the photo", "Background removed"):
        assert expected in captions
    assert any("300 × 200 px" in c.value for c in at.caption)

    png = Image.open(io.BytesIO(download_bytes(buttons_by_prefix(at, "nobg-")[0])))
    assert (png.mode, png.size) == ("RGBA", (300, 200))
    mask = Image.open(io.BytesIO(download_bytes(buttons_by_prefix(at, "mask-")[0])))
    assert (mask.mode, mask.size) == ("L", (300, 200))
    jpeg = Image.open(io.BytesIO(download_bytes(buttons_by_prefix(at, "background-")[0])))
    assert (jpeg.format, jpeg.size) == ("JPEG", (300, 200))


def test_camera_photo_is_processed(app: AppTest) -> None:
    at = app.run()
    at.toggle(key="camera_on").set_value(True)
    at.run()
    at.camera_input(key="camera").upload("image.jpg", jpeg_bytes((320, 240)))
    at.run()
    assert_clean(at)
    assert at.subheader[0].value == "camera.jpg"
    png = Image.open(io.BytesIO(download_bytes(buttons_by_prefix(at, "nobg-")[0])))
    assert (png.mode, png.size) == ("RGBA", (320, 240))


def test_a_non_image_gives_an_error_naming_the_file(app: AppTest) -> None:
    at = app.run()
    at.file_uploader(key="photos").upload("holiday.jpg", b"this is not a photo", "image/jpeg")
    at.run()
    assert_clean(at)
    assert len(at.error) == 1
    assert "holiday.jpg" in at.error[0].value
    assert not at.download_button  # nothing to download, and no example either


def test_batch_with_a_bad_file_zips_the_good_ones(app: AppTest) -> None:
    good_png = EXAMPLE.read_bytes()
    truncated = good_png[: len(good_png) // 3]
    at = app.run()
    uploader = at.file_uploader(key="photos")
    uploader.upload("first.png", good_png, "image/png")
    uploader.upload("broken.png", truncated, "image/png")
    uploader.upload("second.jpg", jpeg_bytes((200, 300)), "image/jpeg")
    at.run()
    assert_clean(at)
    assert len(at.error) == 1 and "broken.png" in at.error[0].value
    assert at.progress, "a batch shows a progress bar"

    archive = zipfile.ZipFile(io.BytesIO(download_bytes(at.download_button(key="zip-all"))))
    names = sorted(archive.namelist())
    assert names == sorted(
        f"{stem}-{kind}"
        for stem in ("first", "second")
        for kind in ("nobg.png", "mask.png", "background.jpg")
    )
    second = Image.open(io.BytesIO(archive.read("second-nobg.png")))
    assert (second.mode, second.size) == ("RGBA", (200, 300))


def test_odd_upload_names_give_readable_downloads_and_zip_entries(app: AppTest) -> None:
    """Names in any script, with quotes, line breaks, paths or 300 characters: each
    download keeps the readable part, and zipfile reads every entry back (UTF-8 flag)."""
    long_name = "长" * 150 + "x" * 146 + ".jpg"
    uploads = ["人像照片.jpg", 'say "cheese"\r\n.jpg', "../../Фото.jpg", long_name]
    at = app.run()
    uploader = at.file_uploader(key="photos")
    for i, name in enumerate(uploads):
        uploader.upload(name, jpeg_bytes((40 + i, 30)), "image/jpeg")
    at.run()
    assert_clean(at)
    assert not at.error

    assert downloaded_file(buttons_by_prefix(at, "nobg-")[0]).filename == "人像照片-nobg.png"

    archive = zipfile.ZipFile(io.BytesIO(download_bytes(at.download_button(key="zip-all"))))
    entries = {entry.filename: entry for entry in archive.infolist()}
    assert len(entries) == 3 * len(uploads)
    for stem in ("人像照片", "say_cheese", "Фото"):
        assert f"{stem}-nobg.png" in entries and f"{stem}-background.jpg" in entries
    long_entries = [name for name in entries if name.startswith("长" * 70)]
    assert len(long_entries) == 3 and all(len(n.encode()) <= 255 for n in long_entries)
    for name, entry in entries.items():
        assert bool(entry.flag_bits & 0x800) == (not name.isascii())
        with Image.open(io.BytesIO(archive.read(entry))) as image:
            assert image.size[1] == 30


def test_display_controls_do_not_rerun_the_network(
    app: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    import streamlit as st

    from segmentation import Segmenter

    calls: list[tuple[bool, str]] = []
    real_predict = Segmenter.predict

    def counting_predict(self, source, *, refine: bool = True, subject: str = "main"):
        calls.append((refine, subject))
        return real_predict(self, source, refine=refine, subject=subject)

    monkeypatch.setattr(Segmenter, "predict", counting_predict)
    st.cache_resource.clear()  # predictions live there; the model reloads, that is fine
    at = app.run()
    assert calls == [(True, "main")]
    at.slider(key="opacity").set_value(0.9)
    at.color_picker(key="overlay_colour").pick("#00FF00")
    at.slider(key="softness").set_value(4)
    at.run()
    assert calls == [(True, "main")], "display and edge controls reuse the cached prediction"
    at.toggle(key="refine").set_value(False)
    at.run()
    assert calls == [(True, "main"), (False, "main")], "refinement is part of the cache key"
    at.radio(key="subject").set_value("Everyone")
    at.run()
    assert calls[-1] == (False, "all"), "the people to keep are part of the cache key"
    assert_clean(at)


def test_hard_edges_reach_the_downloaded_mask(app: AppTest) -> None:
    at = app.run()
    soft = np.asarray(Image.open(io.BytesIO(download_bytes(buttons_by_prefix(at, "mask-")[0]))))
    at.toggle(key="hard_edges").set_value(True)
    at.run()
    at.slider(key="threshold").set_value(0.3)
    at.run()
    assert_clean(at)
    hard = np.asarray(Image.open(io.BytesIO(download_bytes(buttons_by_prefix(at, "mask-")[0]))))
    assert len(np.unique(soft)) > 2, "the tiny model gives a soft mask"
    assert set(np.unique(hard)) <= {0, 255}


def test_example_off_and_nothing_uploaded_shows_a_hint(app: AppTest) -> None:
    at = app.run()
    at.toggle(key="example").set_value(False)
    at.run()
    assert_clean(at)
    assert not at.download_button and at.info


@pytest.mark.parametrize("choice", ["Colour", "Blurred original", "Image"])
def test_background_choices(app: AppTest, choice: str) -> None:
    at = app.run()
    at.radio(key="background").set_value(choice)
    at.run()
    if choice == "Colour":
        at.color_picker(key="bg_colour").pick("#0000FF")
    if choice == "Image":
        at.file_uploader(key="bg_upload").upload("beach.jpg", jpeg_bytes((64, 48)), "image/jpeg")
    at.run()
    assert_clean(at)
    assert not at.error
    jpeg = Image.open(io.BytesIO(download_bytes(buttons_by_prefix(at, "background-")[0])))
    assert (jpeg.format, jpeg.size) == ("JPEG", Image.open(EXAMPLE).size)


def test_a_bad_background_image_is_reported_not_raised(app: AppTest) -> None:
    at = app.run()
    at.radio(key="background").set_value("Image")
    at.run()
    at.file_uploader(key="bg_upload").upload("bg.png", b"\x89PNG\r\n\x1a\nnope", "image/png")
    at.run()
    assert_clean(at)
    assert any("bg.png" in e.value for e in at.sidebar.error)
    assert buttons_by_prefix(at, "nobg-"), "the photo is still processed"


def test_missing_weights_are_explained(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENTATION_MODEL", "/nonexistent/model.keras")
    at = app.run()
    assert_clean(at)
    assert "/nonexistent/model.keras" in at.error[0].value


# --- app_support: the pure helpers -------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("photo.jpg", "photo-nobg.png"),
        ("My Photo (1).HEIC", "My_Photo_1-nobg.png"),
        ("../../etc/passwd", "passwd-nobg.png"),
        ("C:\\Users\\me\\selfie.png", "selfie-nobg.png"),
        (".jpg", "jpg-nobg.png"),
        ("???.png", "photo-nobg.png"),
    ],
)
def test_output_name(filename: str, expected: str) -> None:
    assert app_support.output_name(filename, "nobg", "png") == expected


def test_build_zip_keeps_duplicate_names_apart() -> None:
    data = app_support.build_zip([("a.png", b"1"), ("a.png", b"2"), ("b", b"3"), ("b", b"4")])
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.namelist() == ["a.png", "a-2.png", "b", "b-2"]
    assert archive.read("a-2.png") == b"2"


def test_process_photo_turns_failures_into_messages() -> None:
    def bad_image(digest: str, data: bytes) -> app_support.Prediction:
        raise ImageError("not an image")

    def crash(digest: str, data: bytes) -> app_support.Prediction:
        raise RuntimeError("secret internals")

    assert app_support.process_photo("x.jpg", b"1", bad_image).error == "x.jpg: not an image"
    generic = app_support.process_photo("y.jpg", b"1", crash).error
    assert generic.startswith("y.jpg: ") and "secret" not in generic
    assert "empty" in app_support.process_photo("z.jpg", b"", crash).error


def test_checkerboard_and_previews() -> None:
    board = app_support.checkerboard(30, 50, cell=10)
    assert board.shape == (30, 50, 3) and board[0, 0, 0] != board[0, 10, 0]
    rgba = np.zeros((30, 50, 4), np.uint8)
    assert np.array_equal(app_support.over_checkerboard(rgba), app_support.checkerboard(30, 50))
    big = np.zeros((3000, 4000), np.float32)
    assert app_support.fit_preview(big, 1200).shape == (900, 1200)
    assert app_support.fit_preview(board, 1200) is board
