"""Average the weights of several training runs of one network (a "model soup").

python -m train.soup OUT.keras RUN_A/best.keras RUN_B/best.keras [...]

Runs warm-started from the same weights stay in one basin of the loss, so the mean of
their weights is a network as cheap as each of them and often better than either
(Wortsman et al. 2022, "Model soups"). The shipped v4 is the soup of v3 and a run
warm-started from v3 (weights/MODEL_CARD.md). Export the result with train.export.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

import train.metrics  # noqa: F401  (registers the loss and metrics the checkpoints name)


def soup(checkpoints: Sequence[str | Path], destination: str | Path) -> Path:
    """Save the element-wise mean of the checkpoints' weights, in the first one's model.

    Batch-norm statistics are averaged like every other weight.

    Raises:
        ValueError: fewer than two checkpoints, or one whose weights differ in number
            or shape from the first's (another architecture).
    """
    if len(checkpoints) < 2:
        raise ValueError("a soup needs at least two checkpoints")
    first = keras.saving.load_model(checkpoints[0], compile=False)
    total = [w.astype(np.float64) for w in first.get_weights()]
    for path in checkpoints[1:]:
        weights = keras.saving.load_model(path, compile=False).get_weights()
        shapes = [w.shape for w in weights]
        if shapes != [w.shape for w in total]:
            raise ValueError(f"{path}: not the same network as {checkpoints[0]}")
        for acc, w in zip(total, weights, strict=True):
            acc += w
    dtypes = [w.dtype for w in first.get_weights()]
    first.set_weights(
        [(acc / len(checkpoints)).astype(dtype) for acc, dtype in zip(total, dtypes, strict=True)]
    )
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    first.save(destination)
    return destination


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m train.soup", description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="the averaged model (.keras)")
    p.add_argument("checkpoints", type=Path, nargs="+", help="two or more .keras checkpoints")
    args = p.parse_args(argv)
    try:
        path = soup(args.checkpoints, args.out)
    except ValueError as exc:
        p.error(str(exc))
    print(f"averaged {len(args.checkpoints)} checkpoints into {path}")


if __name__ == "__main__":
    main()
