"""How steady and how right the video masks are, on the hand-labelled parkour clip.

``../shared/data/clips/parkour`` holds 100 consecutive 854x480 frames (DAVIS 2016) with a
hand-drawn mask each. They are assembled into an H.264 clip (24 fps, CRF 16, like a
camera file), run end to end through :func:`segmentation.video.remove_background` to a
mask video, and the decoded masks are scored against the labels:

* mean IoU (mask >= 128 against label >= 128), per frame, averaged;
* flicker: the mean absolute change of the alpha (0..255) between consecutive frames,
  over the pixels whose label did not change between them (a steady mask scores 0
  there; a real edge moving with the person is not counted);
* blinks: pixels that flip across 128 for exactly one frame (on in frame t, off in
  t-1 and t+1, or the reverse) where the labels are steady, per frame.

With and without stabilisation (and a few settings of it with ``--grid``). The clip is
research-only data: it is read from ../shared, never copied into the repository.

Usage: ``python -m bench.video_quality [--model PATH] [--grid] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from bench.common import ROOT, log, machine_line

CLIP = ROOT.parent / "shared" / "data" / "clips" / "parkour"
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
    """Mean IoU, flicker and blinks per frame (see the module docstring)."""
    h, w = masks[0].shape
    labels = [lab[:h, :w] for lab in labels]
    ious = []
    for mask, label in zip(masks, labels, strict=True):
        pred = mask >= 128
        union = np.logical_or(pred, label).sum()
        ious.append(np.logical_and(pred, label).sum() / union if union else 1.0)
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
        "flicker": float(np.mean(changes)),
        "blinks": float(np.mean(blinks)),
    }


def run(model: Path | None, grid: bool) -> list[tuple[str, dict[str, float]]]:
    """Score the settings; returns (label, scores) rows."""
    from segmentation import Segmenter
    from segmentation.video import TemporalStabilizer, remove_background

    frames, labels = load_labelled(CLIP)
    segmenter = Segmenter(model)
    # (label, stabilize, zoom); each stabiliser instance serves exactly one render.
    settings: list[tuple[str, bool | TemporalStabilizer, bool]] = [
        ("per frame, no stabilisation", False, False),
        ("stabilised (defaults)", True, False),
        ("per frame, zoom (`--zoom`)", False, True),
        ("stabilised, zoom (`--zoom`)", True, True),
    ]
    if grid:
        for median in (True, False):
            for min_rate in (0.4, 1.0):
                for scene_change in (4.0, 1e9):
                    label = f"median {'on' if median else 'off'}, min rate {min_rate}, " + (
                        f"still-block gate {scene_change:g}" if scene_change < 1e9 else "no gate"
                    )
                    options = {"median": median, "scene_change": scene_change}
                    if scene_change >= 1e9:
                        options["override"] = 0
                    stabilizer = TemporalStabilizer(0.3, min_rate, 6, **options)
                    settings.append((label, stabilizer, False))
    rows = []
    with tempfile.TemporaryDirectory(prefix="video-quality-") as tmp:
        clip = Path(tmp) / "parkour.mp4"
        write_clip(frames, clip)
        for label, stabilize, zoom in settings:
            out = Path(tmp) / "mask.mp4"
            remove_background(clip, out, segmenter, output="mask", stabilize=stabilize, zoom=zoom)
            scores = score(read_masks(out), labels)
            log(f"{label}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
            rows.append((label, scores))
    return rows


def render(rows: list[tuple[str, dict[str, float]]], model: str, command: str) -> str:
    """The markdown table."""
    lines = [
        "# Video masks on the parkour clip",
        "",
        f"Machine: {machine_line()}. Model `{model}`. 100 hand-labelled 854x480 frames "
        "(DAVIS 2016 `parkour`) as a 24 fps H.264 clip, end to end to a mask video; "
        f"command `{command}`.",
        "",
        "| setting | mean IoU | flicker (mean abs. alpha change, label steady, of 255) "
        "| one-frame blinks (pixels/frame) |",
        "|---|---|---|---|",
    ]
    for label, s in rows:
        lines.append(f"| {label} | {s['iou']:.4f} | {s['flicker']:.3f} | {s['blinks']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Score, print, write the markdown file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="saved .keras model")
    parser.add_argument("--grid", action="store_true", help="also try other stabiliser settings")
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown file to write")
    args = parser.parse_args(argv)
    if not (CLIP / "test.txt").is_file():
        log(f"bench.video_quality: {CLIP} is missing; nothing measured")
        return 1
    from segmentation.segmenter import DEFAULT_MODEL_PATH

    rows = run(args.model, args.grid)
    command = " ".join(["python -m bench.video_quality", *(argv or sys.argv[1:])])
    text = render(rows, str(args.model or DEFAULT_MODEL_PATH), command)
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
