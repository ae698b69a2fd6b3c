"""The second, closer look: framing the people, merging the maps, and what it buys."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from segmentation import Segmenter
from segmentation.zoom import (
    ZOOM_MAX_ASPECT,
    ZOOM_MAX_UPSCALES,
    Box,
    merge_close_looks,
    merge_maps,
    person_box,
    person_boxes,
)
from tests.conftest import ColourNetwork, small_person_photo
from train.metrics import boundary_f1, iou

S = 64  # network input side used throughout


def blob_map(h: int, w: int, rows: slice, cols: slice) -> np.ndarray:
    prob = np.zeros((h, w), np.float32)
    prob[rows, cols] = 0.9
    return prob


def test_no_person_no_second_look() -> None:
    assert person_box(np.full((S, S), 0.2, np.float32), (900, 1600), S) is None


def test_a_person_filling_the_photo_gets_no_second_look() -> None:
    prob = blob_map(S, S, slice(2, 62), slice(3, 60))
    assert person_box(prob, (900, 1600), S) is None


def test_box_frames_a_small_person_with_margin_and_a_photo_like_aspect() -> None:
    # Map pixels 20..39 x 30..35 of a 1600x900 photo: a tall, thin person.
    prob = blob_map(S, S, slice(20, 40), slice(30, 36))
    box = person_box(prob, (900, 1600), S)
    assert box is not None
    person = Box(round(20 * 900 / S), round(40 * 900 / S), 30 * 1600 // S, 36 * 1600 // S)
    assert box.top < person.top and box.bottom > person.bottom
    assert box.left < person.left and box.right > person.right
    assert 0 <= box.top and box.bottom <= 900 and 0 <= box.left and box.right <= 1600
    aspect = box.height / box.width
    assert 1 / ZOOM_MAX_ASPECT - 0.01 <= aspect <= ZOOM_MAX_ASPECT + 0.01
    assert box.height * box.width < 0.25 * 900 * 1600  # a real zoom


def test_box_is_shifted_inside_the_photo_at_its_edge() -> None:
    prob = blob_map(S, S, slice(0, 10), slice(54, 64))  # top-right corner
    box = person_box(prob, (900, 1600), S)
    assert box is not None
    assert box.top == 0 and box.right == 1600
    assert box.height > 10 * 900 / S and box.width > 10 * 1600 / S


def test_crops_are_never_blown_up_beyond_the_limit() -> None:
    """A 20 px person in a 200 px photo: the crop stays at least S / 1.5 px a side."""
    prob = blob_map(S, S, slice(28, 34), slice(30, 33))
    box = person_box(prob, (200, 200), S, max_upscale=1.5)
    assert box is not None
    assert box.height >= S / 1.5 - 1 and box.width >= S / 1.5 - 1
    # With no room to zoom (the photo is already that small) there is no second look.
    assert person_box(prob, (40, 40), S, max_upscale=1.5) is None


def test_merge_pastes_the_close_map_at_its_resolution() -> None:
    whole = np.full((S, S), 0.25, np.float32)
    close = np.full((S, S), 0.75, np.float32)
    box = Box(300, 556, 800, 1056)  # 256 px square in a 900x1600 photo
    merged = merge_maps(whole, close, box, (900, 1600))
    k = S / 256
    assert merged.shape == (round(900 * k), round(1600 * k))  # the photo's aspect
    top, left, side = round(300 * k), round(800 * k), round(256 * k)
    np.testing.assert_allclose(merged[top : top + side, left : left + side], 0.75)
    outside = np.ones(merged.shape, bool)
    outside[top : top + side, left : left + side] = False
    np.testing.assert_allclose(merged[outside], 0.25)


def test_merge_never_exceeds_the_photo_resolution() -> None:
    merged = merge_maps(np.zeros((S, S)), np.ones((S, S)), Box(10, 42, 10, 42), (100, 150))
    assert merged.shape == (100, 150)
    assert merged[10:42, 10:42].min() == 1.0 and merged.sum() == 32 * 32


def test_a_tiny_person_gets_one_crop_per_limit_and_a_big_one_a_single_crop() -> None:
    tiny = blob_map(S, S, slice(30, 33), slice(31, 33))  # ~9 px of a 200 px photo
    boxes = person_boxes(tiny, (200, 200), S)
    assert len(boxes) == len(ZOOM_MAX_UPSCALES) == 2
    wide, close = boxes
    assert wide == person_box(tiny, (200, 200), S)  # the first limit's crop comes first
    assert close.height < wide.height and close.width < wide.width
    assert close.height >= S / ZOOM_MAX_UPSCALES[1] - 1
    # Both limits give the same crop of a person this size: it is looked at once.
    assert len(person_boxes(blob_map(S, S, slice(20, 40), slice(30, 36)), (900, 1600), S)) == 1
    assert person_boxes(np.zeros((S, S), np.float32), (900, 1600), S) == []
    assert person_boxes(blob_map(S, S, slice(2, 62), slice(3, 60)), (900, 1600), S) == []


def test_close_looks_are_averaged_on_the_widest_crops_grid() -> None:
    whole = np.full((S, S), 0.25, np.float32)
    wide, close = Box(300, 556, 800, 1056), Box(364, 492, 864, 992)  # 256 and 128 px
    looks = [(np.full((S, S), 0.75, np.float32), wide), (np.ones((S, S), np.float32), close)]
    merged = merge_close_looks(whole, looks, (900, 1600))
    k = S / 256
    assert merged.shape == (round(900 * k), round(1600 * k)) and merged.dtype == np.float32
    inner = merged[round(364 * k) + 1 : round(492 * k) - 1, round(864 * k) + 1 : round(992 * k) - 1]
    np.testing.assert_allclose(inner, (0.75 + 1.0) / 2)  # both close maps
    np.testing.assert_allclose(merged[round(300 * k) + 1, round(800 * k) + 1], (0.75 + 0.25) / 2)
    np.testing.assert_allclose(merged[0, 0], 0.25)  # outside every crop: the first look
    single = merge_close_looks(whole, looks[:1], (900, 1600))
    np.testing.assert_array_equal(single, merge_maps(whole, looks[0][0], wide, (900, 1600)))


def test_a_tiny_person_takes_two_closer_looks_in_a_photo_and_one_in_a_video(
    colour_segmenter: tuple[Segmenter, ColourNetwork],
) -> None:
    from segmentation.video import frame_probability

    segmenter, network = colour_segmenter
    rgb = np.full((200, 200, 3), (30, 90, 60), np.uint8)
    rgb[96:104, 97:103] = (230, 40, 40)
    network.calls = 0
    segmenter.predict(rgb, refine=False, mirror=False)
    assert network.calls == 3  # the whole photo, then a crop at each limit
    segmenter.predict(rgb, refine=False)
    assert network.calls == 3 + 6  # each look mirrored too
    frame_probability(segmenter, rgb, zoom=True)
    assert network.calls == 9 + 2  # a frame: the whole, then the first limit's crop


def test_second_look_sharpens_a_small_person(
    colour_segmenter: tuple[Segmenter, ColourNetwork],
) -> None:
    segmenter, network = colour_segmenter
    network.calls = 0
    rgb, truth = small_person_photo()
    once = segmenter.predict(rgb, refine=False, zoom=False, mirror=False).mask >= 0.5
    assert network.calls == 1
    twice = segmenter.predict(rgb, refine=False, zoom=True, mirror=False).mask >= 0.5
    assert network.calls == 3
    segmenter.predict(rgb, refine=False)  # both looks, each with its mirrored look
    assert network.calls == 7  # both limits frame this person alike: one closer look
    assert iou(truth, twice) > iou(truth, once) + 0.05
    assert boundary_f1(truth, twice) > boundary_f1(truth, once) + 0.1


def test_person_probability_without_zoom_is_the_single_look(
    colour_segmenter: tuple[Segmenter, ColourNetwork],
) -> None:
    segmenter, _ = colour_segmenter
    rgb, _ = small_person_photo()
    single = segmenter.person_probability(rgb, zoom=False, mirror=False)
    np.testing.assert_array_equal(single, segmenter.predict_probability(rgb))
    zoomed = segmenter.person_probability(rgb)
    assert zoomed.shape[0] / zoomed.shape[1] == pytest.approx(900 / 1600, abs=0.01)


def test_a_photo_the_person_fills_is_looked_at_once(
    colour_segmenter: tuple[Segmenter, ColourNetwork],
) -> None:
    segmenter, network = colour_segmenter
    network.calls = 0
    rgb = np.zeros((400, 300, 3), np.uint8)
    rgb[10:395, 5:295] = (230, 40, 40)
    segmenter.predict(rgb, mirror=False)
    assert network.calls == 1


def test_mirrored_look_cancels_a_left_right_bias(biased_segmenter: Segmenter) -> None:
    rgb = np.full((480, 640, 3), (30, 90, 60), np.uint8)
    truth = np.zeros((480, 640), bool)
    truth[60:460, 220:420] = True
    rgb[truth] = (230, 40, 40)
    plain = biased_segmenter.predict(rgb, refine=False, zoom=False, mirror=False).mask
    mirrored = biased_segmenter.predict(rgb, refine=False, zoom=False, mirror=True).mask
    assert iou(truth, mirrored >= 0.5) > iou(truth, plain >= 0.5) + 0.04
    # The bias shifts the outline right; the average puts it back in the middle.
    columns = np.flatnonzero((mirrored >= 0.5).any(axis=0))
    assert abs((columns[0] + columns[-1]) / 2 - 320) < 10


def moving_person_frames(count: int = 4) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The small person at 800x450, moving 6 px right per frame, and the true masks."""
    rgb, truth = small_person_photo()
    frames, truths = [], []
    for t in range(count):
        shift = np.float32([[0.5, 0, 6 * t], [0, 0.5, 0]])
        frames.append(cv2.warpAffine(rgb, shift, (800, 450), flags=cv2.INTER_AREA))
        moved = cv2.warpAffine(truth.astype(np.uint8) * 255, shift, (800, 450))
        truths.append(moved >= 128)
    return frames, truths


def test_video_zoom_sharpens_every_frame_with_one_map_size(
    colour_segmenter: tuple[Segmenter, ColourNetwork],
) -> None:
    """Unrefined, so the map's own sharpness shows (the guided filter alone nearly
    recovers this flat two-colour figure)."""
    from segmentation.video import frame_probability, masks

    segmenter, network = colour_segmenter
    frames, truths = moving_person_frames()
    shapes = {frame_probability(segmenter, f, zoom=True).shape for f in frames}
    assert len(shapes) == 1  # the stabiliser compares maps pixel by pixel
    network.calls = 0
    zoomed = list(masks(frames, segmenter, stabilize=False, refine=False, zoom=True))
    assert network.calls == 2 * len(frames)
    once = list(masks(frames, segmenter, stabilize=False, refine=False))
    assert network.calls == 3 * len(frames)
    for truth, a, b in zip(truths, zoomed, once, strict=True):
        assert a.shape == truth.shape
        assert iou(truth, a >= 128) > iou(truth, b >= 128) + 0.02


def write_runner_clip(path: Path, frames: list[np.ndarray]) -> Path:
    """An almost lossless H.264 clip of the frames, so the colour network still sees red."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10, options={"crf": "12"})
        stream.width, stream.height, stream.pix_fmt = 800, 450, "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def mask_clip_iou(path: Path, truths: list[np.ndarray]) -> float:
    import av

    with av.open(str(path)) as container:
        greys = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    assert len(greys) == len(truths)
    return float(np.mean([iou(t, g >= 128) for t, g in zip(truths, greys, strict=True)]))


def test_video_render_with_zoom(colour_segmenter, tmp_path: Path) -> None:
    from segmentation.video import remove_background

    segmenter, _ = colour_segmenter
    frames, truths = moving_person_frames(3)
    clip = write_runner_clip(tmp_path / "runner.mp4", frames)
    scores = {}
    for zoom in (True, False):
        target = tmp_path / f"mask-{zoom}.mp4"
        result = remove_background(clip, target, segmenter, output="mask", refine=False, zoom=zoom)
        assert result.frames == 3
        scores[zoom] = mask_clip_iou(target, truths)
    assert scores[True] > scores[False] + 0.03


def test_video_command_zoom_flag(
    monkeypatch, colour_segmenter, tmp_path: Path, tiny_model_path, capsys
) -> None:
    import segmentation.segmenter
    from segmentation.cli import main

    segmenter, _ = colour_segmenter
    monkeypatch.setattr(segmentation.segmenter, "Segmenter", lambda path: segmenter)
    frames, truths = moving_person_frames(3)
    clip = write_runner_clip(tmp_path / "runner.mp4", frames)
    scores = {}
    for flags in ([], ["--zoom"]):
        out = tmp_path / ("zoom" if flags else "once")
        args = ["video", str(clip), "-o", str(out), "--format", "mask", "--no-refine"]
        assert main([*args, "--model", str(tiny_model_path), *flags]) == 0, capsys.readouterr()
        scores[bool(flags)] = mask_clip_iou(out / "runner.mp4", truths)
    assert scores[True] > scores[False] + 0.03
