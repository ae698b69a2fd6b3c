"""``subject="main"`` keeps the person or group a photo is of; ``"all"`` keeps everyone.

The rule is checked on maps drawn by hand, then through every shell that offers the
choice (Segmenter, video, CLI, API), and once on the shipped model with a real photo.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from segmentation import DEFAULT_MODEL_PATH, SUBJECTS, Segmenter
from segmentation.subject import check_subject, main_subject_probability, select_subject

EXAMPLE = Path(__file__).resolve().parent.parent / "assets" / "example.png"


def person_map(shape: tuple[int, int], people: list[tuple[int, int, int, int]]) -> np.ndarray:
    """A probability map with one filled ellipse (cx, cy, half-width, half-height) each."""
    prob = np.zeros(shape, np.float32)
    for cx, cy, ax, ay in people:
        cv2.ellipse(prob, (cx, cy), (ax, ay), 0, 0, 360, 0.95, -1)
    return prob


def kept(prob: np.ndarray, x: int, y: int) -> bool:
    return bool(prob[y, x] > 0.5)


def test_a_small_person_far_from_the_subject_is_dropped() -> None:
    prob = person_map((256, 256), [(100, 140, 40, 100), (225, 40, 8, 20)])
    main = main_subject_probability(prob)
    assert kept(main, 100, 140)
    assert not kept(main, 225, 40)
    assert np.all(main <= prob)
    assert main.shape == prob.shape and main.dtype == prob.dtype


def test_every_member_of_a_group_is_kept() -> None:
    group = [(50, 150, 25, 90), (120, 150, 28, 95), (195, 160, 22, 80)]
    prob = person_map((256, 256), group)
    main = main_subject_probability(prob)
    for cx, cy, _, _ in group:
        assert kept(main, cx, cy)


def test_what_lies_just_beside_the_subject_stays() -> None:
    """A held bag or a hand the network is unsure of, next to the person, is kept."""
    prob = person_map((256, 256), [(128, 140, 40, 100)])
    cv2.circle(prob, (178, 150), 6, 0.6, -1)  # faint region just outside the body
    main = main_subject_probability(prob)
    assert main[150, 178] > 0.5


def test_one_person_or_nobody_is_left_as_it_is() -> None:
    one = person_map((128, 128), [(64, 64, 20, 50)])
    np.testing.assert_array_equal(main_subject_probability(one), one)
    empty = np.zeros((128, 128), np.float32)
    np.testing.assert_array_equal(main_subject_probability(empty), empty)


def test_all_keeps_every_person_and_unknown_choices_are_refused() -> None:
    prob = person_map((256, 256), [(100, 140, 40, 100), (225, 40, 8, 20)])
    assert select_subject(prob, "all") is prob
    assert SUBJECTS == ("main", "all")
    with pytest.raises(ValueError, match="main, all"):
        check_subject("everyone")


def crowd_photo() -> np.ndarray:
    """A tall red figure and a small red one far off in a corner, on green."""
    rgb = np.full((600, 800, 3), (30, 90, 60), np.uint8)
    cv2.ellipse(rgb, (300, 330), (90, 230), 0, 0, 360, (230, 40, 40), -1)
    cv2.ellipse(rgb, (720, 90), (18, 45), 0, 0, 360, (230, 40, 40), -1)
    return rgb


def test_segmenter_keeps_the_main_person_by_default(colour_segmenter) -> None:
    segmenter, _ = colour_segmenter
    rgb = crowd_photo()
    main = segmenter.predict(rgb, zoom=False, mirror=False).mask
    every = segmenter.predict(rgb, zoom=False, mirror=False, subject="all").mask
    assert main[330, 300] > 0.5 and every[330, 300] > 0.5
    assert every[90, 720] > 0.5
    assert main[90, 720] < 0.1
    with pytest.raises(ValueError, match="subject"):
        segmenter.predict(rgb, subject="crowd")


def test_video_masks_take_the_same_choice(colour_segmenter) -> None:
    from segmentation.video import masks

    segmenter, _ = colour_segmenter
    frames = [crowd_photo()] * 3
    main = list(masks(frames, segmenter, stabilize=True, subject="main"))
    every = list(masks(frames, segmenter, stabilize=True, subject="all"))
    assert len(main) == len(every) == 3
    assert all(m[90, 720] < 30 and m[330, 300] > 200 for m in main)
    assert all(e[90, 720] > 200 for e in every)


def test_cli_offers_the_choice_and_refuses_others(tmp_path: Path, tiny_model_path: Path) -> None:
    from segmentation.cli import main as cli

    photo = tmp_path / "p.png"
    Image.fromarray(crowd_photo()).save(photo)
    out = tmp_path / "out"
    assert cli(["mask", str(photo), "-o", str(out), "--model", str(tiny_model_path)]) == 0
    assert cli(["mask", str(photo), "-o", str(out), "--model", str(tiny_model_path),
                "--subject", "all"]) == 0  # fmt: skip
    assert (out / "p.png").is_file()
    with pytest.raises(SystemExit) as exit_info:
        cli(["mask", str(photo), "-o", str(out), "--subject", "crowd"])
    assert exit_info.value.code == 2


def test_api_subject_parameter(colour_segmenter) -> None:
    from fastapi.testclient import TestClient

    from segmentation.api import create_app

    segmenter, _ = colour_segmenter
    buffer = io.BytesIO()
    Image.fromarray(crowd_photo()).save(buffer, format="PNG")
    files = {"image": ("crowd.png", buffer.getvalue(), "image/png")}
    with TestClient(create_app(segmenter=segmenter)) as client:
        masks = {}
        for subject in SUBJECTS:
            response = client.post(
                "/v1/mask", params={"subject": subject, "zoom": False}, files=files
            )
            assert response.status_code == 200, response.text
            masks[subject] = np.asarray(Image.open(io.BytesIO(response.content)))
        refused = client.post("/v1/mask", params={"subject": "crowd"}, files=files)
    assert masks["all"][90, 720] > 128 and masks["main"][90, 720] < 30
    assert refused.status_code == 422
    assert "subject" in refused.json()["detail"]


@pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason="trained weights not exported yet")
def test_shipped_model_drops_a_small_passer_by() -> None:
    """The example portrait large, and a small copy of it far off: only the first stays."""
    portrait = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    rgb = np.full((900, 1200, 3), 235, np.uint8)
    rgb[388:900, 100:612] = portrait
    rgb[40:168, 1040:1168] = cv2.resize(portrait, (128, 128), interpolation=cv2.INTER_AREA)
    segmenter = Segmenter()
    every = segmenter.predict(rgb, subject="all").mask
    main = segmenter.predict(rgb).mask
    big, small = (slice(388, 900), slice(100, 612)), (slice(40, 168), slice(1040, 1168))
    assert every[small].mean() > 0.15, "the network should see the small person"
    assert main[small].mean() < 0.02
    assert main[big].mean() > 0.9 * every[big].mean()


class TwoChannelNetwork:
    """A stand-in two-channel network: every person = how red; the subject = the red in
    the left half only (so the rule alone could not tell, were both figures large)."""

    runtime = "fake"
    channels = 2

    def __init__(self, input_size: int) -> None:
        self.input_size = input_size
        self.channels_asked: list[int] = []

    def __call__(self, batch: np.ndarray, channel: int = 0) -> np.ndarray:
        self.channels_asked.append(channel)
        prob = (batch[0, :, :, 0] / 255).astype(np.float32)
        if channel == 1:
            prob[:, prob.shape[1] // 2 :] = 0
        return prob


def two_people_photo() -> np.ndarray:
    """Two red figures of the same size, one in each half."""
    rgb = np.full((600, 800, 3), (30, 90, 60), np.uint8)
    for cx in (200, 600):
        cv2.ellipse(rgb, (cx, 330), (80, 220), 0, 0, 360, (230, 40, 40), -1)
    return rgb


def test_a_network_with_a_subject_channel_answers_main(colour_segmenter) -> None:
    segmenter, _ = colour_segmenter
    network = TwoChannelNetwork(segmenter.input_size)
    two = segmenter.with_network(network)
    assert two.channels == 2 and segmenter.channels == 1
    rgb = two_people_photo()
    main = two.predict(rgb, zoom=False, mirror=False).mask
    assert network.channels_asked == [1]
    every = two.predict(rgb, zoom=False, mirror=False, subject="all").mask
    assert network.channels_asked == [1, 0]
    assert main[330, 200] > 0.5 and main[330, 600] < 0.1
    assert every[330, 200] > 0.5 and every[330, 600] > 0.5
    # The rule alone keeps both: they are the same size.
    rule = segmenter.predict(rgb, zoom=False, mirror=False).mask
    assert rule[330, 600] > 0.5

    from segmentation.video import masks

    frames = list(masks([rgb, rgb], two, stabilize=False))
    assert all(f[330, 600] < 30 and f[330, 200] > 200 for f in frames)
