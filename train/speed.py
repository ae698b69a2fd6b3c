"""Training speed (images/second) of the train step for the options that might help.

    python -m train.speed [--sizes 256,384] [--batch 16] [--steps 6] [--no-xla]
        [--threads INTRA,INTER]

Each row builds the model afresh and times ``train_on_batch`` on one fixed batch after
warm-up, so only the network's forward and backward pass is measured; the tf.data
pipeline is timed separately (it runs on the same cores during training). Thread pools
are fixed once per process, so compare ``--threads`` settings in separate runs.
"""

from __future__ import annotations

import argparse
import itertools
import time

import keras
import numpy as np
import tensorflow as tf

from segmentation.model import DEFAULT_DECODER_FILTERS, build_unet
from train.metrics import BceDiceLoss


def step_speed(
    size: int, batch: int, steps: int, *, mixed_precision: bool, jit: bool, warmup: int = 3
) -> float:
    """Images per second of the train step at one setting."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if mixed_precision else "float32")
    try:
        model = build_unet(size, DEFAULT_DECODER_FILTERS)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-4),
            loss=BceDiceLoss(boundary_weight=2.0),
            jit_compile=jit,
        )
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
        y = (rng.uniform(size=(batch, size, size, 1)) > 0.5).astype(np.float32)
        for _ in range(warmup):
            model.train_on_batch(x, y)
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        return batch * steps / (time.perf_counter() - start)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m train.speed", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="256,384")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--no-xla", action="store_true", help="skip the XLA rows (slow on CPUs)")
    p.add_argument(
        "--threads",
        default="0,0",
        help="TensorFlow's intra-op and inter-op thread pools (0: its default)",
    )
    args = p.parse_args(argv)
    intra, inter = (int(n) for n in args.threads.split(","))
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    print(f"threads: intra-op {intra or 'default'}, inter-op {inter or 'default'}")
    print("| input | precision | XLA | images/s |\n|---|---|---|---|")
    for size, bf16, jit in itertools.product(
        [int(s) for s in args.sizes.split(",")],
        (False, True),
        (False,) if args.no_xla else (False, True),
    ):
        try:
            speed = f"{step_speed(size, args.batch, args.steps, mixed_precision=bf16, jit=jit):.1f}"
        except Exception as exc:  # XLA rejects some combinations; report, go on
            speed = f"fails: {str(exc).splitlines()[0][:60]}"
        precision = "bfloat16" if bf16 else "float32"
        print(f"| {size} | {precision} | {'on' if jit else 'off'} | {speed} |", flush=True)


if __name__ == "__main__":
    main()
