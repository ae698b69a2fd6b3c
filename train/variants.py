"""Val IoU against network time for input sizes, from one trained checkpoint.

    python -m train.variants --data ../shared/data/people --checkpoint runs/NAME/best.keras
        [--sizes 224,256,320,384] [--limit N]

The U-Net is fully convolutional, so the trained weights run at any multiple of 32: this
measures what a larger input buys in accuracy and costs in time, without retraining.
Decoder widths are compared on time only (`--filters`), since each needs its own training.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

import train.metrics  # noqa: F401  (registers the checkpoint's loss and metrics)
from segmentation import Segmenter
from segmentation.model import architecture_of, build_unet
from train.data import read_split
from train.evaluate import evaluate, summarize


def network_ms(segmenter: Segmenter, repeat: int = 30) -> float:
    """Median ms of one network call at the model's input size (after warm-up)."""
    size = segmenter.input_size
    photo = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    for _ in range(5):
        segmenter.predict_probability(photo)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        segmenter.predict_probability(photo)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m train.variants", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--split", default="val")
    p.add_argument("--sizes", default="224,256,320,384")
    p.add_argument("--filters", default="64,48,24,16;96,64,32,16;128,64,48,24")
    p.add_argument("--limit", type=int, default=0)
    args = p.parse_args(argv)

    trained = keras.saving.load_model(args.checkpoint, compile=False)
    architecture = architecture_of(trained)
    filters = architecture["decoder_filters"]
    samples = read_split(args.data, args.split)[: args.limit or None]
    print(f"| input | decoder | params | network ms | val IoU | val boundary F1 |\n|{'---|' * 6}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            model = build_unet(size, **architecture)
            model.set_weights(trained.get_weights())
            path = Path(tmp) / f"s{size}.keras"
            model.save(path)
            segmenter = Segmenter(path)
            ms = network_ms(segmenter)
            scores = summarize(evaluate(segmenter, samples, subject="all"))  # val marks everyone
            print(
                f"| {size} | {','.join(map(str, filters))} | {model.count_params():,} | {ms:.1f} "
                f"| {scores['iou']:.4f} | {scores['boundary_f1']:.4f} |",
                flush=True,
            )
        for spec in args.filters.split(";"):
            other = tuple(int(f) for f in spec.split(","))
            model = build_unet(trained.input_shape[1], other)
            path = Path(tmp) / f"f{'-'.join(map(str, other))}.keras"
            model.save(path)
            ms = network_ms(Segmenter(path))
            print(
                f"| {trained.input_shape[1]} | {spec} | {model.count_params():,} | {ms:.1f} "
                "| (not trained) | |",
                flush=True,
            )


if __name__ == "__main__":
    main()
