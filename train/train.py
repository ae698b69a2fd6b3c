"""Train the U-Net on a people data folder; resumable, one checkpoint per epoch.

python -m train.train --data ../shared/data/people --out runs/NAME [--epochs 30]
    [--size 256] [--batch 16] [--resume] [--export weights/NAME.keras]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import keras

from segmentation.model import DEFAULT_DECODER_FILTERS, DEFAULT_INPUT_SIZE, build_unet
from train.data import AugmentConfig, build_cache, make_dataset, read_split
from train.export import export_model
from train.metrics import BceDiceLoss, MeanImageScore
from train.plots import plot_history

DEFAULT_ENCODER_WEIGHTS = (
    Path(__file__).resolve().parents[1].parent
    / "shared/pretrained/mobilenet_v3_small_imagenet_no_top.h5"
)
#: Cached photos are stored a bit larger than the network input so crops keep detail.
CACHE_OVERSIZE = 1.25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.train", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path, help="folder with images/, masks/, *.txt")
    p.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, logs)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--size", type=int, default=DEFAULT_INPUT_SIZE, help="network input side")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument(
        "--decoder-filters",
        default=",".join(map(str, DEFAULT_DECODER_FILTERS)),
        help="decoder block widths, coarsest first",
    )
    p.add_argument("--encoder-weights", type=Path, default=DEFAULT_ENCODER_WEIGHTS)
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    p.add_argument("--limit", type=int, default=0, help="use only the first N of each split")
    p.add_argument("--cache-dir", type=Path, help="decoded-data cache (default OUT/../cache)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT")
    p.add_argument("--export", type=Path, help="write the best model here at the end (.keras)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def train(args: argparse.Namespace) -> Path:
    """Run (or resume) training; returns the path of the best checkpoint."""
    out: Path = args.out
    config_path = out / "config.json"
    if config_path.exists() and not args.resume:
        sys.exit(f"{out} already holds a run: pass --resume to continue it, or pick a new --out")
    filters = tuple(int(f) for f in str(args.decoder_filters).split(","))
    config = {
        "size": args.size,
        "decoder_filters": filters,
        "epochs": args.epochs,
        "batch": args.batch,
        "lr": args.lr,
        "data": str(args.data),
        "seed": args.seed,
        "limit": args.limit,
    }
    if args.resume and config_path.exists():
        saved = json.loads(config_path.read_text())
        saved["decoder_filters"] = tuple(saved["decoder_filters"])
        changed = {k for k in ("size", "decoder_filters", "batch") if saved[k] != config[k]}
        if changed:
            sys.exit(f"--resume with different {', '.join(sorted(changed))} than the saved run")
    out.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config, indent=2))
    keras.utils.set_random_seed(args.seed)

    train_samples = read_split(args.data, args.train_split)
    val_samples = read_split(args.data, args.val_split)
    if args.limit:
        train_samples, val_samples = train_samples[: args.limit], val_samples[: args.limit]
    cache_dir = args.cache_dir or out.parent / "cache"
    t0 = time.time()
    train_x, train_y = build_cache(train_samples, int(args.size * CACHE_OVERSIZE), cache_dir)
    val_x, val_y = build_cache(val_samples, args.size, cache_dir)
    print(f"data: {len(train_x)} train, {len(val_x)} val, cached in {time.time() - t0:.0f} s")

    train_ds = make_dataset(
        train_x, train_y, args.batch, args.size, True, AugmentConfig(), seed=args.seed
    )
    val_ds = make_dataset(val_x, val_y, args.batch, args.size, False)
    steps = len(train_x) // args.batch
    weights = args.encoder_weights if args.encoder_weights.is_file() else None
    if weights is None and not args.resume:
        print(f"warning: {args.encoder_weights} not found; encoder starts from random weights")
    model = build_unet(args.size, filters, encoder_weights=weights)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=args.lr / 20,
        warmup_target=args.lr,
        warmup_steps=steps,
        decay_steps=max(1, steps * (args.epochs - 1)),
        alpha=0.01,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=BceDiceLoss(),
        metrics=[MeanImageScore("iou"), MeanImageScore("dice"), MeanImageScore("accuracy")],
    )
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup"), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(str(out / "last.keras")),
        keras.callbacks.ModelCheckpoint(
            str(out / "best.keras"), monitor="val_iou", mode="max", save_best_only=True
        ),
        keras.callbacks.CSVLogger(str(out / "log.csv"), append=True),
        _PlotCallback(out),
    ]
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=args.epochs,
        steps_per_epoch=steps,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    return out / "best.keras"


class _PlotCallback(keras.callbacks.Callback):
    """Redraws the training curves after every epoch so a long run can be watched."""

    def __init__(self, out: Path):
        super().__init__()
        self.out = out

    def on_epoch_end(self, epoch, logs=None):
        plot_history(self.out / "log.csv", self.out / "curves.png")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    best = train(args)
    if args.export:
        path = export_model(best, args.export)
        print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
