"""Score a model on a data split through the same Segmenter the app uses, at full resolution.

    python -m train.evaluate --data ../shared/data/people --split val [--model PATH]
        [--out DIR] [--no-refine] [--compare-bilinear]

Writes DIR/per_image.csv, DIR/worst.png (photo | truth | prediction for the 12 lowest IoU)
and DIR/summary.json, and prints the mean per-image metrics.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from segmentation import Segmenter
from train.data import Sample, read_split
from train.metrics import boundary_f1, dice, iou, pixel_accuracy

METRICS = ("iou", "dice", "accuracy", "boundary_f1")
THRESHOLD = 0.5


def score(truth: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """All metrics of one image; truth and probability share the photo's size."""
    pred = probability >= THRESHOLD
    return {
        "iou": iou(truth, pred),
        "dice": dice(truth, pred),
        "accuracy": pixel_accuracy(truth, pred),
        "boundary_f1": boundary_f1(truth, pred),
    }


def evaluate(
    segmenter: Segmenter,
    samples: list[Sample],
    refine: bool = True,
    compare_bilinear: bool = False,
) -> list[dict]:
    """Per-image rows: name, metrics (and bilinear-upsampling metrics when asked)."""
    rows = []
    for sample in tqdm(samples, desc="evaluating", unit="img"):
        truth = np.asarray(Image.open(sample.mask).convert("L")) >= 128
        result = segmenter.predict(sample.image, refine=refine)
        row = {"name": sample.name, **score(truth, result.mask)}
        if compare_bilinear:
            plain = segmenter.predict(result.original, refine=False)
            row.update({f"bilinear_{k}": v for k, v in score(truth, plain.mask).items()})
        rows.append(row)
    return rows


def summarize(rows: list[dict]) -> dict[str, float]:
    keys = [k for k in rows[0] if k != "name"]
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def worst_grid(
    segmenter: Segmenter, samples: list[Sample], rows: list[dict], out_png: Path, n: int = 12
) -> None:
    """Photo | truth | prediction for the n lowest-IoU images, one row each."""
    by_name = {s.name: s for s in samples}
    worst = sorted(rows, key=lambda r: r["iou"])[:n]
    height, strips = 180, []
    for row in worst:
        sample = by_name[row["name"]]
        result = segmenter.predict(sample.image)
        truth = np.asarray(Image.open(sample.mask).convert("L"))
        pred = (result.mask * 255).astype(np.uint8)
        panels = [result.original, *(np.repeat(m[..., None], 3, axis=2) for m in (truth, pred))]
        h, w = result.original.shape[:2]
        size = (max(1, round(w * height / h)), height)
        strip = np.hstack([cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in panels])
        cv2.putText(
            strip, f"{row['name'][:40]} IoU {row['iou']:.2f}", (4, 16),
            cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 0, 0), 1, cv2.LINE_AA,
        )  # fmt: skip
        strips.append(strip)
    width = max(s.shape[1] for s in strips)
    grid = np.vstack([np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0))) for s in strips])
    Image.fromarray(grid).save(out_png)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--split", default="val")
    p.add_argument("--model", type=Path, help="a .keras model (default: the one in weights/)")
    p.add_argument("--out", type=Path, help="report folder (default runs/eval-<model>-<split>)")
    p.add_argument("--no-refine", action="store_true", help="plain bilinear upsampling")
    p.add_argument("--compare-bilinear", action="store_true", help="also score bilinear upsampling")
    p.add_argument("--limit", type=int, default=0, help="only the first N images")
    args = p.parse_args(argv)

    segmenter = Segmenter(args.model)
    samples = read_split(args.data, args.split)
    if args.limit:
        samples = samples[: args.limit]
    model_name = Path(args.model).stem if args.model else "default"
    out = args.out or Path("runs") / f"eval-{model_name}-{args.split}"
    out.mkdir(parents=True, exist_ok=True)

    start = time.time()
    rows = evaluate(segmenter, samples, not args.no_refine, args.compare_bilinear)
    summary = {"images": len(rows), "seconds": round(time.time() - start, 1), **summarize(rows)}
    with open(out / "per_image.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    worst_grid(segmenter, samples, rows, out / "worst.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))

    print(f"\n{args.split}: {len(rows)} images, threshold {THRESHOLD}, full resolution")
    print("| metric | mean |\n|---|---|")
    for key, value in summary.items():
        if key not in ("images", "seconds"):
            print(f"| {key} | {value:.4f} |")
    print(f"\nreport: {out}/per_image.csv, {out}/worst.png, {out}/summary.json")


if __name__ == "__main__":
    main()
