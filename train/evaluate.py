"""Score models through the same Segmenter the app uses, at full resolution.

    python -m train.evaluate [--model PATH] [--compare OTHER.keras] [--out DIR]
    python -m train.evaluate --data ../shared/data/people --split val [--compare-bilinear]

Without --data it scores the six test sets of ../shared/data (people val with
``subject="all"``, since its labels mark every person; VITON, portraits and the three
clips with the default ``subject="main"``, since only the main person is labelled) and
prints one table beside the peer models' figures from ../shared/data/README.md. Per set it writes
DIR/<set>/per_image.csv, worst.png (photo | truth | prediction for the 12 lowest IoU)
and summary.json.
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
from segmentation.subject import SUBJECTS, Subject
from train.data import Sample, read_split
from train.metrics import boundary_f1, dice, iou, pixel_accuracy

METRICS = ("iou", "dice", "accuracy", "boundary_f1")
THRESHOLD = 0.5
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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
    zoom: bool = True,
    mirror: bool = True,
    subject: Subject = "main",
) -> list[dict]:
    """Per-image rows: name, metrics (and bilinear-upsampling metrics when asked)."""
    rows = []
    looks = {"zoom": zoom, "mirror": mirror, "subject": subject}
    for sample in tqdm(samples, desc="evaluating", unit="img"):
        truth = np.asarray(Image.open(sample.mask).convert("L")) >= 128
        result = segmenter.predict(sample.image, refine=refine, **looks)
        row = {"name": sample.name, **score(truth, result.mask)}
        if compare_bilinear:
            plain = segmenter.predict(result.original, refine=False, **looks)
            row.update({f"bilinear_{k}": v for k, v in score(truth, plain.mask).items()})
        rows.append(row)
    return rows


def summarize(rows: list[dict]) -> dict[str, float]:
    keys = [k for k in rows[0] if k != "name"]
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def worst_grid(
    segmenter: Segmenter,
    samples: list[Sample],
    rows: list[dict],
    out_png: Path,
    n: int = 12,
    zoom: bool = True,
    mirror: bool = True,
    subject: Subject = "main",
) -> None:
    """Photo | truth | prediction for the n lowest-IoU images, one row each."""
    by_name = {s.name: s for s in samples}
    worst = sorted(rows, key=lambda r: r["iou"])[:n]
    height, strips = 180, []
    for row in worst:
        sample = by_name[row["name"]]
        result = segmenter.predict(sample.image, zoom=zoom, mirror=mirror, subject=subject)
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


#: The test sets of ../shared/data: (name, folder, split, subject). People val marks
#: every person; the others mark only the person the photo or clip is of.
DEFAULT_SETS: tuple[tuple[str, Path, str, Subject], ...] = (
    ("people val", SHARED_DATA / "people", "val", "all"),
    ("viton test", SHARED_DATA / "viton", "test", "main"),
    ("portraits test", SHARED_DATA / "portraits", "test", "main"),
    ("parkour clip", SHARED_DATA / "clips" / "parkour", "test", "main"),
    ("breakdance clip", SHARED_DATA / "clips" / "breakdance", "test", "main"),
    ("dance-twirl clip", SHARED_DATA / "clips" / "dance-twirl", "test", "main"),
)
#: Peer models' mean IoU / boundary F1 on those sets, from ../shared/data/README.md
#: (its scorer's boundary F1 reads a little higher than this one's). The portraits'
#: labels are MediaPipe's own, so a score there is agreement with it, not truth.
PEER_SCORES = {
    "MediaPipe selfie": {
        "people val": (0.756, 0.660),
        "viton test": (0.971, 0.954),
        "portraits test": (1.0, 1.0),
        "parkour clip": (0.683, 0.579),
        "breakdance clip": (0.128, 0.099),
        "dance-twirl clip": (0.644, 0.428),
    },
    "RVM": {
        "portraits test": (0.926, 0.711),
        "parkour clip": (0.918, 0.899),
        "breakdance clip": (0.162, 0.172),
        "dance-twirl clip": (0.824, 0.716),
    },
    "Google Meet": {"portraits test": (0.939, 0.742), "parkour clip": (0.710, 0.565)},
    "IS-Net": {"parkour clip": (0.834, 0.816)},
}


def score_sets(
    segmenter: Segmenter,
    sets: list[tuple[str, Path, str, Subject]],
    out: Path,
    refine: bool = True,
    compare_bilinear: bool = False,
    limit: int = 0,
    zoom: bool = True,
    mirror: bool = True,
) -> dict[str, dict[str, float]]:
    """Evaluate every set; writes OUT/<set>/{per_image.csv,worst.png,summary.json}."""
    summaries = {}
    for name, folder, split, subject in sets:
        samples = read_split(folder, split)[: limit or None]
        folder_out = out / name.replace(" ", "-")
        folder_out.mkdir(parents=True, exist_ok=True)
        start = time.time()
        rows = evaluate(segmenter, samples, refine, compare_bilinear, zoom, mirror, subject)
        summary = {"images": len(rows), "seconds": round(time.time() - start, 1)}
        summary.update(summarize(rows))
        with open(folder_out / "per_image.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        worst_grid(
            segmenter, samples, rows, folder_out / "worst.png", zoom=zoom, mirror=mirror,
            subject=subject,
        )  # fmt: skip
        (folder_out / "summary.json").write_text(json.dumps(summary, indent=2))
        summaries[name] = summary
    return summaries


def model_labels(models: list[Path | None]) -> list[str]:
    """Short distinct column names: the file's stem, with its folder or a number if need be."""
    stems = [Path(m).stem if m else "default" for m in models]
    labels = [
        f"{Path(m).parent.name}/{stem}" if m and stems.count(stem) > 1 else stem
        for m, stem in zip(models, stems, strict=True)
    ]
    return [
        f"{label} ({i + 1})" if labels.count(label) > 1 else label for i, label in enumerate(labels)
    ]


def format_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown: one row per set, IoU / boundary F1 of each model and of the peers."""
    sets = list(next(iter(results.values())))
    peers = [p for p in PEER_SCORES if any(s in PEER_SCORES[p] for s in sets)]
    header = ["set", "images", *results, *peers]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in sets:
        first = next(iter(results.values()))[name]
        cells = [name, str(first["images"])]
        cells += [f"{r[name]['iou']:.3f} / {r[name]['boundary_f1']:.3f}" for r in results.values()]
        for peer in peers:
            value = PEER_SCORES[peer].get(name)
            cells.append(f"{value[0]:.3f} / {value[1]:.3f}" if value else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, help="one data folder (default: the three test sets)")
    p.add_argument("--split", default="val", help="split of --data")
    p.add_argument("--model", type=Path, help="a .keras model (default: the one in weights/)")
    p.add_argument(
        "--compare", type=Path, action="append", default=[], help="also score this model"
    )
    p.add_argument("--out", type=Path, help="report folder (default runs/eval-<model>)")
    p.add_argument("--no-refine", action="store_true", help="plain bilinear upsampling")
    p.add_argument(
        "--no-zoom", action="store_true", help="one network pass (no closer look at small people)"
    )
    p.add_argument(
        "--no-mirror", action="store_true", help="no look at the mirrored photo beside each look"
    )
    p.add_argument(
        "--subject",
        choices=SUBJECTS,
        default="main",
        help="with --data: whom its labels mark, the main subject or every person",
    )
    p.add_argument("--compare-bilinear", action="store_true", help="also score bilinear upsampling")
    p.add_argument("--limit", type=int, default=0, help="only the first N images of each set")
    args = p.parse_args(argv)

    if args.data:
        sets = [(f"{args.data.name} {args.split}", args.data, args.split, args.subject)]
    else:
        sets = [s for s in DEFAULT_SETS if (s[1] / f"{s[2]}.txt").is_file()]
        if not sets:
            p.error(f"no test sets found under {SHARED_DATA}; pass --data")
    models = [args.model, *args.compare]
    labels = model_labels(models)
    base = args.out or Path("runs") / f"eval-{labels[0].replace('/', '-')}"
    results = {}
    for i, (model, label) in enumerate(zip(models, labels, strict=True)):
        out = base if i == 0 else base / label.replace("/", "-")
        results[label] = score_sets(
            Segmenter(model),
            sets,
            out,
            not args.no_refine,
            args.compare_bilinear,
            args.limit,
            zoom=not args.no_zoom,
            mirror=not args.no_mirror,
        )
        print(f"{label}: " + json.dumps(results[label]))
    print(f"\nmean per image, full resolution, threshold {THRESHOLD}: IoU / boundary F1 (3 px)")
    print(format_table(results))


if __name__ == "__main__":
    main()
