"""Touch-up: a dab fixes the whole wrong region, and nothing else (segmentation.touchup)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segmentation.errors import ImageError
from segmentation.touchup import WORK_SIDE, hint_mask, paint_hints, touch_up

HEIGHT, WIDTH = 600, 800  # bigger than WORK_SIDE: the working copy and upsampling run


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(photo, person, blanket, bag): a red figure on a noisy green background, a
    striped blue blanket it sits on and a yellow bag it holds, both touching it."""
    rng = np.random.default_rng(0)
    photo = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    photo[:] = (40, 120, 60)
    person = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.ellipse(person, (400, 330), (70, 170), 0, 0, 360, 1, -1)
    cv2.circle(person, (400, 130), 50, 1, -1)
    blanket = np.zeros_like(person)
    cv2.rectangle(blanket, (250, 470), (560, 590), 1, -1)
    blanket &= 1 - person
    bag = np.zeros_like(person)
    cv2.rectangle(bag, (468, 300), (540, 380), 1, -1)
    bag &= 1 - person
    photo[blanket > 0] = (40, 60, 200)
    stripes = (np.arange(WIDTH) // 12) % 2 == 0
    photo[(blanket > 0) & stripes[None, :]] = (70, 90, 230)  # a pattern, not one colour
    photo[bag > 0] = (230, 200, 40)
    photo[person > 0] = (200, 50, 50)
    noise = rng.integers(-12, 13, photo.shape)
    photo = np.clip(photo.astype(int) + noise, 0, 255).astype(np.uint8)
    return photo, person > 0, blanket > 0, bag > 0


def _soft(mask: np.ndarray) -> np.ndarray:
    """A network-like alpha: the mask with a blurred outline."""
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2.0)


def _disc(centre: tuple[int, int], radius: int = 12, shape=(HEIGHT, WIDTH)) -> np.ndarray:
    dab = np.zeros(shape, np.uint8)
    cv2.circle(dab, centre, radius, 255, -1)
    return dab


@pytest.fixture(scope="module")
def scene():
    return _scene()


def test_remove_dab_on_a_corner_removes_the_whole_blanket_and_keeps_the_person(scene):
    photo, person, blanket, _ = scene
    alpha = _soft(person | blanket)
    out = touch_up(photo, alpha, remove=_disc((275, 565)))
    assert out.shape == (HEIGHT, WIDTH) and out.dtype == np.float32
    assert np.mean(out[blanket] < 0.5) > 0.97
    assert np.mean(out[person] >= 0.5) > 0.99


def test_plain_brush_only_paints_the_dab(scene):
    _, person, blanket, _ = scene
    alpha = _soft(person | blanket)
    out = paint_hints(alpha, None, _disc((275, 565)))
    assert np.mean(out[blanket] < 0.5) < 0.05  # why touch_up exists


def test_keep_dab_brings_the_held_bag_back_without_background(scene):
    photo, person, _, bag = scene
    alpha = _soft(person)
    out = touch_up(photo, alpha, keep=_disc((510, 350)))
    assert np.mean(out[bag] >= 0.5) > 0.97
    background = ~(person | bag)
    assert np.mean(out[background] >= 0.5) < 0.005
    assert np.mean(out[person] >= 0.5) > 0.99


def test_hints_of_another_size_are_scaled_to_the_photo(scene):
    photo, person, blanket, _ = scene
    alpha = _soft(person | blanket)
    full = touch_up(photo, alpha, remove=_disc((275, 565)))
    small_hint = _disc((275 // 4, 565 // 4), 3, (HEIGHT // 4, WIDTH // 4))
    scaled = touch_up(photo, alpha, remove=small_hint)
    assert np.mean((scaled >= 0.5) == (full >= 0.5)) > 0.995
    assert np.mean(scaled[blanket] < 0.5) > 0.97


def test_empty_or_missing_hints_change_nothing(scene):
    photo, person, blanket, _ = scene
    alpha = _soft(person | blanket)
    empty = np.zeros((HEIGHT // 2, WIDTH // 2), np.uint8)
    np.testing.assert_array_equal(touch_up(photo, alpha), alpha)
    np.testing.assert_array_equal(touch_up(photo, alpha, keep=empty, remove=empty), alpha)


def test_alpha_of_another_size_or_uint8_is_accepted(scene):
    photo, person, blanket, _ = scene
    small = cv2.resize(_soft(person | blanket), (200, 150), interpolation=cv2.INTER_AREA)
    out = touch_up(photo, np.round(small * 255).astype(np.uint8), remove=_disc((275, 565)))
    assert out.shape == (HEIGHT, WIDTH)
    assert np.mean(out[blanket] < 0.5) > 0.9
    assert np.mean(out[person] >= 0.5) > 0.97


def test_the_dabbed_pixels_follow_the_hint_even_where_nothing_else_changes():
    photo = np.full((100, 120, 3), 128, np.uint8)  # no colour to grow a region on
    alpha = np.zeros((100, 120), np.float32)
    alpha[20:80, 30:90] = 1.0
    keep = np.zeros((100, 120), bool)
    keep[5:10, 5:10] = True
    remove = np.zeros((100, 120), bool)
    remove[40:45, 50:55] = True
    out = touch_up(photo, alpha, keep=keep, remove=remove)
    assert (out[keep] == 1).all() and (out[remove] == 0).all()
    assert max(photo.shape[:2]) < WORK_SIDE


def test_rgba_hint_marks_by_opacity_not_colour():
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[:, :, :3] = 255  # white everywhere, but transparent
    rgba[10:20, 10:30, 3] = 255
    marked = hint_mask(rgba, (80, 120, 3))
    assert marked.shape == (80, 120)
    assert marked[20:40, 20:60].all()
    assert marked.sum() == 20 * 40


@pytest.mark.parametrize(
    "hint",
    [
        np.array([[0, 255]], np.uint8),
        np.array([[False, True]]),
        np.array([[0.0, 1.0]], np.float32),
        np.array([[0, 1]], np.uint8),  # a 0/1 mask
        np.array([[[0, 0, 0], [0, 0, 200]]], np.uint8),  # a blue stroke on black
    ],
)
def test_hint_formats_mark_the_bright_pixel(hint):
    np.testing.assert_array_equal(hint_mask(hint, (1, 2)), [[False, True]])


@pytest.mark.parametrize(
    "hint",
    [
        np.zeros((10, 10), np.int64),
        np.zeros((10, 10), np.complex64),
        np.zeros(10, np.uint8),
        np.zeros((10, 10, 5), np.uint8),
        np.zeros((0, 10), np.uint8),
        np.full((10, 10), np.nan, np.float32),
    ],
)
def test_bad_hints_raise_image_error(scene, hint):
    photo, person, _, _ = scene
    with pytest.raises(ImageError, match="hint"):
        touch_up(photo, _soft(person), remove=hint)


def test_bad_photo_or_alpha_raise_image_error(scene):
    photo, person, _, _ = scene
    with pytest.raises(ImageError):
        touch_up(photo[:, :, 0], _soft(person))
    with pytest.raises(ImageError):
        touch_up(photo, np.zeros((4, 4, 2), np.float32))
    assert issubclass(ImageError, ValueError)


def test_predict_and_result_take_hints_as_arrays_or_files(colour_segmenter, tmp_path) -> None:
    """The Python entry points: ``predict(keep=, remove=)`` and ``result.touch_up``;
    a hint file keeps its transparency (opaque = marked), a grey one marks white."""
    import io as _io

    from PIL import Image

    from segmentation import ImageError

    segmenter, _ = colour_segmenter
    rgb = np.full((300, 400, 3), (30, 90, 60), np.uint8)
    cv2.ellipse(rgb, (130, 160), (50, 120), 0, 0, 360, (230, 40, 40), -1)
    cv2.rectangle(rgb, (280, 110), (360, 210), (210, 170, 40), -1)  # reddish: kept wrongly
    plain = segmenter.predict(rgb, zoom=False, mirror=False, subject="all")
    assert plain.mask[160, 320] > 0.5 and plain.mask[160, 130] > 0.5

    dab = np.zeros((150, 200, 4), np.uint8)  # half size, RGBA: opaque = marked
    cv2.circle(dab, (160, 80), 4, (255, 255, 255, 255), -1)
    path = tmp_path / "remove.png"
    Image.fromarray(dab).save(path)
    for hint in (dab, path, path.read_bytes(), _io.BytesIO(path.read_bytes())):
        fixed = segmenter.predict(rgb, zoom=False, mirror=False, subject="all", remove=hint)
        assert fixed.mask[160, 320] < 0.1, "the whole box goes, not only the dab"
        assert fixed.mask[160, 130] > 0.5, "the person stays"
        assert "touch-up" in fixed.timings
    assert plain.touch_up() is plain
    again = plain.touch_up(remove=path)
    np.testing.assert_array_equal(again.mask, fixed.mask)
    with pytest.raises(ImageError):
        plain.touch_up(keep=b"not an image")


def box_photo() -> np.ndarray:
    """A red figure and a reddish box beside it that a red-loving network keeps too."""
    rgb = np.full((300, 400, 3), (30, 90, 60), np.uint8)
    cv2.ellipse(rgb, (130, 160), (50, 120), 0, 0, 360, (230, 40, 40), -1)
    cv2.rectangle(rgb, (280, 110), (360, 210), (210, 170, 40), -1)
    return rgb


def png_bytes(array: np.ndarray) -> bytes:
    import io as _io

    from PIL import Image

    buffer = _io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_api_takes_keep_and_remove_file_fields(colour_segmenter) -> None:
    import io as _io

    from fastapi.testclient import TestClient
    from PIL import Image

    from segmentation.api import create_app

    segmenter, _ = colour_segmenter
    dab = np.zeros((150, 200), np.uint8)  # grey, half size: white = marked
    cv2.circle(dab, (160, 80), 4, 255, -1)
    photo = ("box.png", png_bytes(box_photo()), "image/png")
    params = {"subject": "all", "zoom": False, "mirror": False}
    with TestClient(create_app(segmenter=segmenter)) as client:
        plain = client.post("/v1/mask", params=params, files={"image": photo})
        fixed = client.post(
            "/v1/mask",
            params=params,
            files={"image": photo, "remove": ("dab.png", png_bytes(dab), "image/png")},
        )
        broken = client.post(
            "/v1/cutout", files={"image": photo, "keep": ("k.png", b"nope", "image/png")}
        )
        text = client.post("/v1/cutout", files={"image": photo}, data={"keep": "here"})
        schema = client.get("/openapi.json").json()
    assert plain.status_code == fixed.status_code == 200, fixed.text
    before, after = (np.asarray(Image.open(_io.BytesIO(r.content))) for r in (plain, fixed))
    assert before[160, 320] > 128 and after[160, 320] < 30
    assert after[160, 130] > 128
    assert broken.status_code == 422 and broken.json()["detail"].startswith("keep: ")
    assert text.status_code == 422 and "keep" in text.json()["detail"]
    form = schema["paths"]["/v1/cutout"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert {"keep", "remove"} <= set(form["schema"]["properties"])
    assert form["schema"]["required"] == ["image"]


def test_cli_passes_keep_and_remove_to_every_photo(
    tmp_path, tiny_model_path, monkeypatch, capsys
) -> None:
    from segmentation.cli import main as cli
    from segmentation.segmenter import Segmenter

    photo = tmp_path / "box.png"
    photo.write_bytes(png_bytes(box_photo()))
    hint = tmp_path / "dab.png"
    hint.write_bytes(png_bytes(np.full((10, 10), 255, np.uint8)))
    seen: list[dict] = []
    real = Segmenter.predict

    def spying(self, source, **kwargs):
        seen.append({k: kwargs.get(k) for k in ("keep", "remove")})
        return real(self, source, **kwargs)

    monkeypatch.setattr(Segmenter, "predict", spying)
    out = tmp_path / "out"
    args = ["cutout", str(photo), "-o", str(out), "--model", str(tiny_model_path)]
    assert cli([*args, "--remove", str(hint)]) == 0
    assert (out / "box.png").is_file()
    assert seen[-1]["keep"] is None and seen[-1]["remove"].shape == (10, 10)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(SystemExit) as exit_info:
        cli([*args, "--keep", str(broken)])
    assert exit_info.value.code == 2
    assert "--keep" in capsys.readouterr().err
