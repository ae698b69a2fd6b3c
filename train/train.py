"""Train the U-Net on a mix of people data folders; resumable, one checkpoint per epoch.

python -m train.train --data ../shared/data/people=3 --data ../shared/data/viton=1 \
    --out ~/runs/NAME [--epochs 30] [--size 384] [--batch 16] [--init weights/MODEL.keras]
    [--paste-from ../shared/data/viton] [--resume] [--export weights/NAME.keras]

Each ``--data PATH[=SHARE]`` adds a folder's train split; an epoch draws from the folders
in proportion to their shares. Validation uses the first folder's val split.

``--subject-head`` trains a second output channel for the main subject (the person or
group the photo is of) beside every person: ``--single-subject NAME`` marks the --data
folders (by folder name or path) whose photos show one subject, so their subject is
their person mask; the others' subject is the rule of ``segmentation.subject`` on their
true masks, and pasted people become the subject or passers-by by size (train/data.py).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np

from segmentation.model import (
    DEFAULT_DECODER_FILTERS,
    DEFAULT_INPUT_SIZE,
    architecture_of,
    build_unet,
    copy_matching_weights,
)
from train.data import (
    TRAINING_AUGMENT,
    Sample,
    SubjectLabels,
    build_cache,
    build_subject_cache,
    make_dataset,
    make_mixed_dataset,
    read_backgrounds,
    read_split,
)
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
    p.add_argument(
        "--data",
        required=True,
        action="append",
        type=parse_source,
        metavar="PATH[=SHARE]",
        help="folder with images/, masks/, *.txt; repeat to mix folders (share default 1)",
    )
    p.add_argument(
        "--backgrounds",
        action="append",
        type=parse_source,
        default=[],
        metavar="PATH[=SHARE]",
        help="folder of person-free photos (images/, all.txt) that always get a person "
        "pasted in; its share counts with the --data shares",
    )
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
    p.add_argument(
        "--residual-blocks",
        type=int,
        default=0,
        help="decoder blocks (coarsest first) with an extra residual unit",
    )
    p.add_argument(
        "--global-context",
        action="store_true",
        help="gate the bottleneck by the whole image's pooled features",
    )
    p.add_argument(
        "--subject-head",
        action="store_true",
        help="a second output channel for the main subject (the person or group the photo "
        "is of); --init from a 1-channel model starts it as a copy of the person head",
    )
    p.add_argument(
        "--single-subject",
        action="append",
        default=[],
        metavar="NAME_OR_PATH",
        help="with --subject-head: a --data folder (its name or path) whose photos show one "
        "subject, so its subject label is its person mask; repeat for several",
    )
    p.add_argument(
        "--subject-weight",
        type=float,
        default=1.0,
        help="weight of the subject channel's loss against the person channel's",
    )
    p.add_argument("--encoder-weights", type=Path, default=DEFAULT_ENCODER_WEIGHTS)
    p.add_argument(
        "--init", type=Path, help="start from this model's weights (same decoder), e.g. weights/"
    )
    p.add_argument("--steps-per-epoch", type=int, default=0, help="default: train images / batch")
    p.add_argument(
        "--paste-from",
        type=Path,
        action="append",
        help="a --data folder whose people are pasted in; repeat to draw from several "
        "(default: the first --data folder)",
    )
    p.add_argument(
        "--paste",
        type=float,
        default=TRAINING_AUGMENT.paste_probability,
        help="share of examples with a pasted person",
    )
    p.add_argument(
        "--paste-height",
        type=parse_fraction_range,
        default=TRAINING_AUGMENT.paste_height,
        metavar="MIN,MAX",
        help="height of a pasted person as a fraction of the frame (small: distant people)",
    )
    p.add_argument(
        "--upper-body",
        type=float,
        default=TRAINING_AUGMENT.upper_body_probability,
        help="share of crops framed as portraits (top of the person)",
    )
    p.add_argument(
        "--close-up",
        type=float,
        default=TRAINING_AUGMENT.close_up_probability,
        help="share of crops zoomed into any part of the person (no face needed)",
    )
    p.add_argument(
        "--boundary-weight",
        type=float,
        default=0.0,
        help="extra BCE weight on pixels near the true outline",
    )
    p.add_argument(
        "--mixed-precision",
        action="store_true",
        help="bfloat16 compute (fast on CPUs with AVX-512 BF16)",
    )
    p.add_argument("--jit", action="store_true", help="compile the train step with XLA")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    p.add_argument("--limit", type=int, default=0, help="use only the first N of each split")
    p.add_argument("--cache-dir", type=Path, help="decoded-data cache (default OUT/../cache)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT")
    p.add_argument("--export", type=Path, help="write the best model here at the end (.keras)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--log-every",
        type=int,
        default=25,
        help="steps between progress lines when the output is not a terminal (0: off)",
    )
    return p.parse_args(argv)


def parse_source(text: str) -> tuple[Path, float]:
    """``PATH[=SHARE]`` of ``--data``: a folder and its relative share of each epoch."""
    path, _, share = text.rpartition("=") if "=" in text else (text, "", "1")
    try:
        value = float(share)
    except ValueError:
        raise argparse.ArgumentTypeError(f"share of {path!r} is not a number: {share!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"share of {path!r} must be positive, got {share}")
    return Path(path).expanduser(), value


def parse_fraction_range(text: str) -> tuple[float, float]:
    """``MIN,MAX`` with 0 < MIN <= MAX <= 1, e.g. ``--paste-height 0.1,1``."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX, got {text!r}") from None
    if not 0 < low <= high <= 1:
        raise argparse.ArgumentTypeError(f"need 0 < MIN <= MAX <= 1, got {text!r}")
    return low, high


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
        "residual_blocks": args.residual_blocks,
        "global_context": args.global_context,
        "subject_head": args.subject_head,
        "single_subject": list(args.single_subject),
        "subject_weight": args.subject_weight,
        "epochs": args.epochs,
        "batch": args.batch,
        "lr": args.lr,
        "data": [f"{path}={share:g}" for path, share in args.data],
        "backgrounds": [f"{path}={share:g}" for path, share in args.backgrounds],
        "paste_from": [str(path) for path in args.paste_from or []],
        "paste": args.paste,
        "paste_height": list(args.paste_height),
        "upper_body": args.upper_body,
        "close_up": args.close_up,
        "boundary_weight": args.boundary_weight,
        "init": str(args.init) if args.init else None,
        "mixed_precision": args.mixed_precision,
        "jit": args.jit,
        "seed": args.seed,
        "limit": args.limit,
    }
    if args.resume and config_path.exists():
        saved = json.loads(config_path.read_text())
        saved["decoder_filters"] = tuple(saved["decoder_filters"])
        saved.setdefault("residual_blocks", 0)  # runs from before the option
        saved.setdefault("global_context", False)
        saved.setdefault("subject_head", False)
        fixed = (
            "size",
            "decoder_filters",
            "residual_blocks",
            "global_context",
            "subject_head",
            "batch",
        )
        changed = {k for k in fixed if saved[k] != config[k]}
        if changed:
            sys.exit(f"--resume with different {', '.join(sorted(changed))} than the saved run")
    single = _single_subject_folders(args)
    out.mkdir(parents=True, exist_ok=True)
    # Before its first epoch ends a run has nothing to restore: --resume then starts it
    # as new, warm start included, so an interrupted first epoch is not lost silently.
    resuming = args.resume and _has_backup(out / "backup")
    if args.resume and not resuming:
        print(f"--resume: no finished epoch in {out} yet; starting the run from its beginning")
    config_path.write_text(json.dumps(config, indent=2))
    keras.utils.set_random_seed(args.seed)
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")

    cache_dir = args.cache_dir or out.parent / "cache"
    t0 = time.time()
    sources, caches, subjects, source_subjects = [], {}, {}, []
    for path, share in args.data:
        samples = read_split(path, args.train_split)[: args.limit or None]
        images, masks = build_cache(samples, int(args.size * CACHE_OVERSIZE), cache_dir)
        caches[path.resolve()] = (images, masks)
        sources.append((images, masks, share))
        if args.subject_head:
            subjects[path.resolve()] = _subject_labels(samples, masks, path in single, cache_dir)
            source_subjects.append(subjects[path.resolve()])
    background_counts = ""
    for path, share in args.backgrounds:
        samples = read_backgrounds(path)[: args.limit or None]
        images, masks = build_cache(samples, int(args.size * CACHE_OVERSIZE), cache_dir)
        sources.append((images, masks, share))
        source_subjects.append(SubjectLabels.single(masks))  # nobody: a pasted one is the subject
        background_counts += f", {path.name} {len(images)}"
    val_samples = read_split(args.data[0][0], args.val_split)[: args.limit or None]
    val_x, val_y = build_cache(val_samples, args.size, cache_dir)
    val_subjects = None
    if args.subject_head:
        val_rule = _subject_labels(val_samples, val_y, args.data[0][0] in single, cache_dir)
        val_subjects = SubjectLabels.single(val_rule.masks)  # every val photo counts alike
    paste_pools, paste_subjects = [], []
    for path in args.paste_from or [args.data[0][0]]:
        key = path.expanduser().resolve()
        if key not in caches:
            sys.exit(f"--paste-from {path} must be one of the --data folders")
        paste_pools.append(caches[key])
        if args.subject_head:
            paste_subjects.append(subjects[key].masks)
    n_train = sum(len(images) for images, _, _ in sources)
    counts = ", ".join(f"{path.name} {len(images)}" for path, (images, _) in caches.items())
    counts += background_counts
    print(f"data: {n_train} train ({counts}), {len(val_x)} val, {time.time() - t0:.0f} s")
    for path, labels in subjects.items():
        kind = "its people" if path in {p.resolve() for p in single} else "the rule"
        guessed = int((labels.weights < 1).sum())
        print(f"subject labels: {path.name} by {kind}, {guessed} of {len(labels.weights)} guessed")

    augment = dataclasses.replace(
        TRAINING_AUGMENT,
        paste_probability=args.paste,
        paste_height=args.paste_height,
        upper_body_probability=args.upper_body,
        close_up_probability=args.close_up,
    )
    train_ds = make_mixed_dataset(
        sources,
        args.batch,
        args.size,
        augment,
        paste_pools=paste_pools,
        seed=args.seed,
        subjects=source_subjects if args.subject_head else None,
        paste_subjects=paste_subjects,
    )
    val_ds = make_dataset(val_x, val_y, args.batch, args.size, False, subjects=val_subjects)
    steps = args.steps_per_epoch or n_train // args.batch
    weights = args.encoder_weights if args.encoder_weights.is_file() else None
    if weights is None and not resuming and not args.init:
        print(f"warning: {args.encoder_weights} not found; encoder starts from random weights")
    model = build_unet(
        args.size,
        filters,
        encoder_weights=None if args.init else weights,
        residual_blocks=args.residual_blocks,
        global_context=args.global_context,
        subject_head=args.subject_head,
    )
    if args.init and not resuming:
        start_from = keras.saving.load_model(args.init, compile=False)
        try:
            fresh = copy_matching_weights(start_from, model)
        except ValueError as error:
            sys.exit(f"--init {args.init} does not fit this network: {error}")
        if fresh:
            print(f"--init: {len(fresh)} layers start as the identity ({', '.join(fresh)})")
        if args.subject_head and not architecture_of(start_from)["subject_head"]:
            print("--init: the subject head starts as a copy of the person head")
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=args.lr / 20,
        warmup_target=args.lr,
        warmup_steps=steps,
        decay_steps=max(1, steps * (args.epochs - 1)),
        alpha=0.01,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=BceDiceLoss(boundary_weight=args.boundary_weight, subject_weight=args.subject_weight),
        metrics=_metrics(args.subject_head),
        jit_compile=args.jit,
    )
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup"), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(str(out / "last.keras")),
        keras.callbacks.ModelCheckpoint(
            str(out / "best.keras"),
            monitor="val_iou",
            mode="max",
            save_best_only=True,
            # A resumed run must beat the best epoch so far, not just its own first one.
            initial_value_threshold=_best_logged(out / "log.csv", "val_iou") if resuming else None,
        ),
        keras.callbacks.CSVLogger(str(out / "log.csv"), append=True),
        _PlotCallback(out),
    ]
    if not sys.stdout.isatty() and args.log_every > 0:
        callbacks.append(_ProgressCallback(args.log_every, steps, args.batch))
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=args.epochs,
        steps_per_epoch=steps,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    keras.mixed_precision.set_global_policy("float32")  # export builds a float32 model
    return out / "best.keras"


def _single_subject_folders(args: argparse.Namespace) -> set[Path]:
    """The --data folders named by --single-subject (by folder name or path)."""
    if args.single_subject and not args.subject_head:
        sys.exit("--single-subject needs --subject-head")
    folders = set()
    for name in args.single_subject:
        wanted = Path(name).expanduser().resolve()
        matches = [p for p, _ in args.data if name == p.name or p.expanduser().resolve() == wanted]
        if not matches:
            sys.exit(f"--single-subject {name}: not one of the --data folders")
        folders.update(matches)
    return folders


def _subject_labels(
    samples: list[Sample], masks: np.ndarray, single: bool, cache_dir: Path
) -> SubjectLabels:
    """A source's subject labels: its person masks if it shows one subject, else the rule's."""
    return SubjectLabels.single(masks) if single else build_subject_cache(samples, masks, cache_dir)


def _metrics(subject_head: bool) -> list[keras.metrics.Metric]:
    """IoU, Dice and accuracy of every person (``val_iou`` compares with older runs'
    logs), and with a subject head the subject channel's ``subject_iou``."""
    if not subject_head:
        return [MeanImageScore("iou"), MeanImageScore("dice"), MeanImageScore("accuracy")]
    person = [MeanImageScore(kind, channel=0) for kind in ("iou", "dice", "accuracy")]
    return [*person, MeanImageScore("iou", name="subject_iou", channel=1)]


def _has_backup(backup_dir: Path) -> bool:
    """Whether BackupAndRestore has saved an epoch there to resume from."""
    return backup_dir.is_dir() and any(backup_dir.iterdir())


def _best_logged(log_csv: Path, key: str) -> float | None:
    """The highest ``key`` in a run's CSV log, or None before the first epoch."""
    if not log_csv.is_file():
        return None
    with open(log_csv, newline="") as f:
        values = [float(row[key]) for row in csv.DictReader(f) if row.get(key)]
    return max(values, default=None)


class _PlotCallback(keras.callbacks.Callback):
    """Redraws the training curves after every epoch so a long run can be watched."""

    def __init__(self, out: Path):
        super().__init__()
        self.out = out

    def on_epoch_end(self, epoch, logs=None):
        plot_history(self.out / "log.csv", self.out / "curves.png")


class _ProgressCallback(keras.callbacks.Callback):
    """Prints step rate and loss mid-epoch, flushed, for runs logged to a file.

    Keras writes one line per epoch when stdout is not a terminal, so a slow background
    epoch is silent for its whole length; this makes the images/second visible at once.
    """

    def __init__(self, every: int, steps: int, batch: int):
        super().__init__()
        self.every, self.steps, self.batch = every, steps, batch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.start = epoch + 1, time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        done = batch + 1
        if done % self.every and done != self.steps:
            return
        elapsed = time.perf_counter() - self.start
        rate = done * self.batch / elapsed
        eta_min = (self.steps - done) * self.batch / rate / 60
        loss = (logs or {}).get("loss", float("nan"))
        print(
            f"epoch {self.epoch} step {done}/{self.steps}: {rate:.1f} img/s, "
            f"loss {loss:.4f}, epoch ends in {eta_min:.1f} min",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    best = train(args)
    if args.export:
        path = export_model(best, args.export)
        print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
