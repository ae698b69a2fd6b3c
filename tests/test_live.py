"""The live view's frame processor (segmentation.live) and the tab's pure helpers.

The network is conftest's ColourNetwork (probability = how red a pixel is), so a red
figure on black and cyan stripes is a person on a busy background whose exact mask is
known; frames go through the same code as the app's WebRTC callback.
"""

from __future__ import annotations

import io
import threading

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from app_live import describe_stats, rtc_configuration
from segmentation.live import LiveProcessor, checkerboard

PERSON = (230, 40, 40)
YELLOW = (255, 255, 0)
#: Colour levels a pixel may be off: the guided filter leaks a few levels of alpha
#: across the outline onto high-contrast stripes (4 at most here).
TOL = 6


def stripes_frame(
    width: int = 320, height: int = 240, centre: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Black and cyan vertical stripes (no red: the network sees no person there) with a
    red figure; returns the frame and the figure's boolean mask."""
    cols = (np.arange(width) // 8) % 2
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, cols == 1] = (0, 255, 255)
    truth = np.zeros((height, width), np.uint8)
    cx, cy = centre or (width // 2, height // 2)
    cv2.ellipse(truth, (cx, cy + height // 8), (width // 10, height // 4), 0, 0, 360, 1, -1)
    cv2.circle(truth, (cx, cy - height // 8 - height // 12), height // 10, 1, -1)  # on the neck
    rgb[truth > 0] = PERSON
    return rgb, truth > 0


def inner(mask: np.ndarray, px: int = 12) -> np.ndarray:
    """The mask shrunk by ``px``: pixels well away from the outline."""
    disc = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return cv2.erode(mask.astype(np.uint8), disc) > 0


def outer(mask: np.ndarray, px: int = 12) -> np.ndarray:
    """Pixels at least ``px`` away from the mask."""
    return inner(~mask, px)


@pytest.fixture
def segmenter(colour_segmenter):
    return colour_segmenter[0]


def test_stripes_are_replaced_and_the_person_kept(segmenter) -> None:
    rgb, truth = stripes_frame()
    processor = LiveProcessor(segmenter, background=YELLOW)
    out = processor.process(rgb)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    background = out[outer(truth)].astype(int)
    assert np.abs(background - YELLOW).max() <= TOL, "the stripes are replaced by the colour"
    person = out[inner(truth)].astype(int)
    assert np.abs(person - PERSON).max() <= TOL, "the person is kept as it was"


def test_transparent_is_shown_over_a_checkerboard(segmenter) -> None:
    rgb, truth = stripes_frame()
    out = LiveProcessor(segmenter, background=None).process(rgb)
    board = checkerboard(*rgb.shape[:2])
    away = outer(truth)
    assert np.abs(out[away].astype(int) - board[away]).max() <= TOL
    assert set(np.unique(board)) == {200, 235}


def test_blur_removes_the_stripes(segmenter) -> None:
    rgb, truth = stripes_frame()
    out = LiveProcessor(segmenter, background="blur").process(rgb)
    away = outer(truth, 12)
    # Sharp stripes swing 0..255 from column to column; blurred, they barely move.
    swing = np.abs(np.diff(rgb[:, :, 1].astype(int), axis=1))[away[:, 1:]]
    blurred = np.abs(np.diff(out[:, :, 1].astype(int), axis=1))[away[:, 1:]]
    assert swing.max() == 255 and blurred.max() < 64
    assert blurred.mean() < 0.4 * swing.mean()
    assert np.abs(out[inner(truth)].astype(int) - PERSON).max() <= TOL


def test_an_image_background_covers_the_frame(segmenter) -> None:
    rgb, truth = stripes_frame()
    picture = np.zeros((60, 100, 3), np.uint8)
    picture[:, :50] = (0, 0, 255)
    picture[:, 50:] = (0, 255, 0)
    out = LiveProcessor(segmenter, background=picture).process(rgb)
    away = outer(truth)
    left, right = away.copy(), away.copy()
    left[:, 150:], right[:, :170] = False, False
    assert np.abs(out[left].astype(int) - (0, 0, 255)).max() <= TOL
    assert np.abs(out[right].astype(int) - (0, 255, 0)).max() <= TOL


def test_each_output_belongs_to_its_own_frame(segmenter) -> None:
    """No look-ahead: when the person jumps, the very next output shows them there."""
    processor = LiveProcessor(segmenter, background=YELLOW)
    first, at_left = stripes_frame(centre=(70, 120))
    second, at_right = stripes_frame(centre=(250, 120))
    processor.process(first)
    out = processor.process(second)
    assert np.abs(out[inner(at_right)].astype(int) - PERSON).max() <= TOL
    assert np.abs(out[outer(at_right) & inner(at_left)].astype(int) - YELLOW).max() <= TOL


def test_a_blurry_first_frame_leaves_no_trace_on_a_still_scene(segmenter) -> None:
    """WebRTC starts at a low bitrate: the first frames are blurred versions of the
    later ones. Their block means are the same, but their mask must not be kept."""
    sharp, _ = stripes_frame()
    blurry = cv2.GaussianBlur(sharp, (0, 0), 6)
    processor = LiveProcessor(segmenter, background=YELLOW)
    processor.process(blurry)
    for _ in range(12):
        processor.process(sharp)
    fresh = LiveProcessor(segmenter, background=YELLOW)
    fresh.process(sharp)
    held = processor.snapshot()[1].astype(int)
    assert np.abs(held - fresh.snapshot()[1]).max() <= 8  # the dead band (6) and rounding


def test_a_frame_of_another_size_restarts_the_stream(segmenter) -> None:
    big, _ = stripes_frame(320, 240)
    small, _ = stripes_frame(200, 150, centre=(60, 75))
    fresh = LiveProcessor(segmenter, background=YELLOW).process(small)
    processor = LiveProcessor(segmenter, background=YELLOW)
    for _ in range(3):
        assert processor.process(big).shape == big.shape
    out = processor.process(small)
    assert out.shape == small.shape
    # The steady map and the held alpha start again: nothing of the big frames remains.
    np.testing.assert_array_equal(out, fresh)
    assert processor.snapshot()[1].shape == small.shape[:2]
    assert processor.process(big).shape == big.shape
    assert processor.stats().size == (320, 240)


def test_grey_frames(segmenter) -> None:
    processor = LiveProcessor(segmenter, background=YELLOW)
    grey = np.full((120, 160), 30, np.uint8)  # a one-channel camera in a dark room
    out = processor.process(grey)
    assert out.shape == (120, 160, 3)
    # Hardly any red anywhere: nobody, so all background.
    assert np.abs(out.astype(int) - YELLOW).max() <= TOL
    flat = np.full((120, 160, 3), 128, np.uint8)  # a covered lens: one flat grey
    out = processor.process(flat)
    assert out.shape == flat.shape and np.isfinite(out).all()
    png = Image.open(io.BytesIO(processor.snapshot_png()))
    assert png.mode == "RGBA" and png.size == (160, 120)


def test_bgr_frames_come_back_in_bgr(segmenter) -> None:
    rgb, _ = stripes_frame()
    from_rgb = LiveProcessor(segmenter, background=YELLOW).process(rgb)
    from_bgr = LiveProcessor(segmenter, background=YELLOW).process(
        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), order="bgr"
    )
    np.testing.assert_array_equal(cv2.cvtColor(from_bgr, cv2.COLOR_BGR2RGB), from_rgb)


def test_snapshot_is_a_transparent_png_at_camera_resolution(segmenter) -> None:
    # Bilinear: the guided filter on a 64 px stand-in map 10x smaller than the frame
    # fits on a grid too coarse for stripes (the real map is 448 px).
    processor = LiveProcessor(segmenter, background=YELLOW, refine=False)
    assert processor.snapshot_png() is None
    rgb, truth = stripes_frame(640, 480)
    processor.process(rgb)
    rgba = np.asarray(Image.open(io.BytesIO(processor.snapshot_png())))
    assert rgba.shape == (480, 640, 4)
    # One map pixel covers 10 frame pixels here: the soft edge is twice as wide.
    assert rgba[:, :, 3][inner(truth, 24)].min() >= 255 - TOL
    assert rgba[:, :, 3][outer(truth, 24)].max() <= TOL
    assert np.abs(rgba[:, :, :3][inner(truth, 24)].astype(int) - PERSON).max() <= TOL


def test_the_main_subject_rule_drops_a_small_bystander(segmenter) -> None:
    rgb, truth = stripes_frame(320, 240, centre=(120, 120))
    cv2.circle(rgb, (280, 40), 10, PERSON, -1)  # someone small, far off
    bystander = np.zeros(truth.shape, np.uint8)
    cv2.circle(bystander, (280, 40), 6, 1, -1)
    main = LiveProcessor(segmenter, background=YELLOW, subject="main").process(rgb)
    everyone = LiveProcessor(segmenter, background=YELLOW, subject="all").process(rgb)
    assert np.abs(main[bystander > 0].astype(int) - YELLOW).max() <= TOL
    assert np.abs(everyone[bystander > 0].astype(int) - PERSON).max() <= TOL
    assert np.abs(main[inner(truth)].astype(int) - PERSON).max() <= TOL


def test_configure_changes_the_next_frame(segmenter) -> None:
    rgb, truth = stripes_frame()
    processor = LiveProcessor(segmenter, background=YELLOW)
    processor.process(rgb)
    processor.configure(subject="main", refine=False, background="#0000ff")
    out = processor.process(rgb)
    assert np.abs(out[outer(truth)].astype(int) - (0, 0, 255)).max() <= TOL
    with pytest.raises(ValueError, match="subject"):
        processor.configure(subject="nobody", refine=True)  # type: ignore[arg-type]


def test_sessions_keep_their_own_state(segmenter) -> None:
    one, two = LiveProcessor(segmenter), LiveProcessor(segmenter, background=YELLOW)
    rgb, _ = stripes_frame()
    one.process(rgb)
    assert two.snapshot() is None and two.stats().frames == 0
    small, _ = stripes_frame(200, 150)
    two.process(small)
    assert one.snapshot()[0].shape == rgb.shape
    assert one.stats().frames == 1 and two.stats().frames == 1


def test_av_frames_in_and_out(segmenter) -> None:
    rgb, truth = stripes_frame()
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    out = LiveProcessor(segmenter, background=YELLOW).recv(frame)
    assert isinstance(out, av.VideoFrame)
    assert (out.width, out.height) == (320, 240)
    picture = out.to_ndarray(format="rgb24")
    assert np.abs(picture[outer(truth, 8)].astype(int) - YELLOW).mean() < 6


class _BlockingNetwork:
    """ColourNetwork's maps, but each call waits until the test lets it go."""

    input_size = 64
    runtime = "fake"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.entered.set()
        assert self.release.wait(30), "the test never released the network"
        return (batch[0, :, :, 0] / 255).astype(np.float32)


def test_closing_mid_frame(tiny_segmenter) -> None:
    network = _BlockingNetwork()
    processor = LiveProcessor(tiny_segmenter.with_network(network), background=YELLOW)
    rgb, truth = stripes_frame()
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(processor.process(rgb))
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert network.entered.wait(30)
    processor.close()  # the session goes away while the network runs
    closed_while_busy = worker.is_alive()
    network.release.set()
    worker.join(30)
    assert closed_while_busy, "close() waited for the frame in progress"
    assert not errors and len(results) == 1
    assert results[0].shape == rgb.shape  # the frame in progress still gets its result
    assert processor.closed
    assert processor.snapshot() is None and processor.stats().frames == 0  # but not kept
    # A later frame starts a new stream as if the processor were new.
    out = processor.process(rgb)
    assert not processor.closed
    assert np.abs(out[outer(truth)].astype(int) - YELLOW).max() <= TOL
    assert processor.stats().frames == 1


def test_stats_count_frames(segmenter) -> None:
    processor = LiveProcessor(segmenter)
    assert describe_stats(processor) == "Waiting for the first frame…"
    rgb, _ = stripes_frame()
    for _ in range(3):
        processor.process(rgb)
    stats = processor.stats()
    assert stats.frames == 3 and stats.size == (320, 240)
    assert stats.fps > 0 and stats.processing_ms > 0
    assert "processed frames/s" in describe_stats(processor)
    assert "320 × 240 px" in describe_stats(processor)


def test_rtc_configuration_has_no_ice_servers_unless_a_turn_server_is_set() -> None:
    assert rtc_configuration({}) == {"iceServers": []}
    env = {
        "NOBG_TURN_URL": "turn:turn.example.org:3478, turns:turn.example.org:5349",
        "NOBG_TURN_USERNAME": "nobg",
        "NOBG_TURN_CREDENTIAL": "secret",
    }
    assert rtc_configuration(env) == {
        "iceServers": [
            {
                "urls": ["turn:turn.example.org:3478", "turns:turn.example.org:5349"],
                "username": "nobg",
                "credential": "secret",
            }
        ]
    }
    assert rtc_configuration({"NOBG_TURN_URL": "stun:stun.example.org"}) == {
        "iceServers": [{"urls": ["stun:stun.example.org"]}]
    }
