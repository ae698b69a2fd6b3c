"""How steady and how right the video masks are, on the hand-labelled shared clips.

``../shared/data/clips`` holds three clips of one performer (parkour, breakdance,
dance-twirl; 854x480, DAVIS 2016) with a hand-drawn mask of that performer on every
frame (the crowds behind are background). Each is assembled into an H.264 clip (24 fps,
CRF 16, like a camera file), run end to end through
:func:`segmentation.video.remove_background` to a mask video, and the decoded masks are
scored against the labels:

* mean IoU (mask >= 128 against label >= 128) and boundary F1 (3 px), per frame;
* flicker: the mean absolute change of the alpha (0..255) between consecutive frames,
  over the pixels whose label did not change between them (a steady mask scores 0
  there; a real edge moving with the person is not counted);
* blinks: pixels that flip across 128 for exactly one frame (on in frame t, off in
  t-1 and t+1, or the reverse) where the labels are steady, per frame.

Rows: the defaults, each option (``--no-stabilize``, ``--zoom``, ``--subject all``), and
the photo path on each frame (``Segmenter.predict``'s defaults: closer and mirrored
looks) as the mark the video path aims at; per clip and the mean of the clips. The
clips are research-only data: read from ../shared, never copied into the repository.

Usage: ``python -m bench.video_quality [--model PATH] [--clips NAME ...] [--grid] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.common import ROOT, log, machine_line

CLIPS_DIR = ROOT.parent / "shared" / "data" / "clips"
CLIP_NAMES = ("parkour", "breakdance", "dance-twirl")
RESULTS = ROOT / "bench" / "VIDEO_QUALITY.md"
FPS = 24


def load_labelled(clip: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The frames (RGB) and labels (bool) in test.txt order."""
    names = (clip / "test.txt").read_text().split()
    frames, labels = [], []
    for name in names:
        bgr = cv2.imread(str(clip / "images" / f"{name}.jpg"), cv2.IMREAD_COLOR)
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        labels.append(cv2.imread(str(clip / "masks" / f"{name}.png"), cv2.IMREAD_GRAYSCALE) >= 128)
    return frames, labels


def write_clip(frames: list[np.ndarray], path: Path, fps: int = FPS) -> None:
    """Frames to an H.264 MP4 (CRF 16: visually lossless, like a good camera file)."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "16", "preset": "medium"})
        stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: h - h % 2, : w - w % 2]))
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def read_masks(path: Path) -> list[np.ndarray]:
    """Decode a mask video into (H, W) uint8 arrays."""
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray") for f in container.decode(video=0)]


def score(masks: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
    """Mean IoU, boundary F1, flicker and blinks per frame (see the module docstring)."""
    from train.metrics import boundary_f1

    h, w = masks[0].shape
    labels = [lab[:h, :w] for lab in labels]
    ious, f1s = [], []
    for mask, label in zip(masks, labels, strict=True):
        pred = mask >= 128
        union = np.logical_or(pred, label).sum()
        ious.append(np.logical_and(pred, label).sum() / union if union else 1.0)
        f1s.append(boundary_f1(label, pred))
    changes, blinks = [], []
    for t in range(1, len(masks)):
        steady = labels[t] == labels[t - 1]
        diff = np.abs(masks[t].astype(np.int16) - masks[t - 1].astype(np.int16))
        changes.append(diff[steady].mean())
        if t + 1 < len(masks):
            on = [m >= 128 for m in masks[t - 1 : t + 2]]
            flip = (on[1] != on[0]) & (on[1] != on[2])
            still = steady & (labels[t + 1] == labels[t])
            blinks.append(float((flip & still).sum()))
    return {
        "iou": float(np.mean(ious)),
        "boundary_f1": float(np.mean(f1s)),
        "flicker": float(np.mean(changes)),
        "blinks": float(np.mean(blinks)),
    }


#: (label, remove_background options) of each row; the photo path is added by :func:`run`.
SETTINGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("defaults", {}),
    ("`--no-stabilize`", {"stabilize": False}),
    ("`--zoom`", {"zoom": True}),
    ("`--zoom --no-stabilize`", {"zoom": True, "stabilize": False}),
    ("`--subject all`", {"subject": "all"}),
)
PHOTO_PATH = "photo path on each frame (closer + mirrored looks)"
METRICS = ("iou", "boundary_f1", "flicker", "blinks")


def grid_settings() -> list[tuple[str, dict[str, Any]]]:
    """The stabiliser's settings tried by ``--grid`` (one fresh instance per render)."""
    from segmentation.video import TemporalStabilizer

    rows = []
    for median in (True, False):
        for min_rate in (0.4, 1.0):
            for scene_change in (4.0, 1e9):
                label = f"median {'on' if median else 'off'}, min rate {min_rate}, " + (
                    f"still-block gate {scene_change:g}" if scene_change < 1e9 else "no gate"
                )
                options: dict[str, Any] = {"median": median, "scene_change": scene_change}
                if scene_change >= 1e9:
                    options["override"] = 0
                make = lambda o=options, r=min_rate: TemporalStabilizer(0.3, r, 6, **o)  # noqa: E731
                rows.append((label, {"stabilize": make}))
    return rows


Scores = dict[str, dict[str, dict[str, float]]]  # setting -> clip -> metric -> value


def run(model: Path | None, clips: list[Path], grid: bool) -> Scores:
    """Score every setting on every clip."""
    from segmentation import Segmenter
    from segmentation.video import remove_background

    segmenter = Segmenter(model)
    settings = list(SETTINGS) + (grid_settings() if grid else [])
    table: Scores = {}
    with tempfile.TemporaryDirectory(prefix="video-quality-") as tmp:
        for clip_dir in clips:
            frames, labels = load_labelled(clip_dir)
            clip = Path(tmp) / f"{clip_dir.name}.mp4"
            write_clip(frames, clip)
            for label, options in settings:
                options = dict(options)
                if callable(options.get("stabilize")):
                    options["stabilize"] = options["stabilize"]()
                out = Path(tmp) / "mask.mp4"
                remove_background(clip, out, segmenter, output="mask", **options)
                _record(table, label, clip_dir.name, score(read_masks(out), labels))
            photo = [_photo_mask(segmenter, f) for f in _decoded(clip)]
            _record(table, PHOTO_PATH, clip_dir.name, score(photo, labels))
    return table


def _record(table: Scores, label: str, clip: str, scores: dict[str, float]) -> None:
    table.setdefault(label, {})[clip] = scores
    log(f"{clip}, {label}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))


def _decoded(clip: Path) -> list[np.ndarray]:
    """The frames as the video path sees them (decoded from the H.264 clip)."""
    import av

    with av.open(str(clip)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _photo_mask(segmenter: Any, rgb: np.ndarray) -> np.ndarray:
    return (segmenter.predict(rgb).mask * 255 + 0.5).astype(np.uint8)


def _row(label: str, scores: dict[str, float]) -> str:
    return (
        f"| {label} | {scores['iou']:.3f} | {scores['boundary_f1']:.3f} "
        f"| {scores['flicker']:.2f} | {scores['blinks']:.0f} |"
    )


def render(table: Scores, model: str, command: str) -> str:
    """The markdown tables: the mean of the clips, then each clip."""
    clips = list(next(iter(table.values())))
    head = ["| setting | IoU | boundary F1 | flicker | blinks a frame |", "|---|---|---|---|---|"]
    lines = [
        "# Video masks on the shared clips",
        "",
        f"Machine: {machine_line()}. Model `{model}`. Hand-labelled 854x480 clips (DAVIS "
        f"2016: {', '.join(clips)}; only the performer labelled) as 24 fps H.264 clips, "
        f"end to end to a mask video; command `{command}`. Flicker: mean absolute alpha "
        "change (of 255) where the label is steady; blinks: one-frame flips, pixels a frame.",
        "",
        f"## Mean of the {len(clips)} clips",
        "",
        *head,
    ]
    for label, per_clip in table.items():
        mean = {k: float(np.mean([per_clip[c][k] for c in clips])) for k in METRICS}
        lines.append(_row(label, mean))
    for clip in clips:
        lines += ["", f"## {clip}", "", *head]
        lines += [_row(label, per_clip[clip]) for label, per_clip in table.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Score, print, write the markdown file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="saved .keras model")
    parser.add_argument(
        "--clips", nargs="+", default=list(CLIP_NAMES), metavar="NAME", help="clips to score"
    )
    parser.add_argument("--grid", action="store_true", help="also try other stabiliser settings")
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown file to write")
    args = parser.parse_args(argv)
    clips = [CLIPS_DIR / name for name in args.clips]
    missing = [c for c in clips if not (c / "test.txt").is_file()]
    if missing:
        log(f"bench.video_quality: {', '.join(map(str, missing))} missing; nothing measured")
        return 1
    from segmentation.segmenter import DEFAULT_MODEL_PATH

    table = run(args.model, clips, args.grid)
    command = " ".join(["python -m bench.video_quality", *(argv or sys.argv[1:])])
    text = render(table, str(args.model or DEFAULT_MODEL_PATH), command)
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
