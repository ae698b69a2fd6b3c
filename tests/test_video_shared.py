"""Stabilisation on real, hand-labelled footage: steadier masks, no real loss of accuracy.

Needs ../shared/data/clips/parkour and the trained weights (skipped cleanly without
them). The figures themselves come from ``python -m bench.video_quality``; this only
checks the direction on the first 40 frames, with no timing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from segmentation import DEFAULT_MODEL_PATH

pytestmark = pytest.mark.shared_data

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips" / "parkour"
FRAMES = 40


@pytest.fixture(scope="module")
def parkour() -> tuple[list, list]:
    if not (CLIP / "test.txt").is_file():
        pytest.skip(f"{CLIP} is absent (the team's shared data)")
    if not Path(DEFAULT_MODEL_PATH).is_file():
        pytest.skip("no trained weights")
    from bench.video_quality import load_labelled

    frames, labels = load_labelled(CLIP)
    return frames[:FRAMES], labels[:FRAMES]


def test_stabilisation_steadies_the_parkour_masks_without_losing_iou(parkour) -> None:
    from bench.video_quality import read_masks, score, write_clip
    from segmentation import Segmenter
    from segmentation.video import remove_background

    frames, labels = parkour
    segmenter = Segmenter()
    scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "parkour.mp4"
        write_clip(frames, clip)
        for stabilize in (False, True):
            out = Path(tmp) / f"mask-{stabilize}.mp4"
            remove_background(clip, out, segmenter, output="mask", stabilize=stabilize)
            scores[stabilize] = score(read_masks(out), labels)
    plain, steady = scores[False], scores[True]
    assert steady["flicker"] < 0.8 * plain["flicker"], scores
    assert steady["blinks"] < 0.5 * plain["blinks"], scores
    assert steady["iou"] > plain["iou"] - 0.02, scores
