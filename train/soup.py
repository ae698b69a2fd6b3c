"""Average the weights of several training runs of one network (a "model soup").

python -m train.soup OUT.keras RUN_A/best.keras RUN_B/best.keras [...]

Runs warm-started from the same weights stay in one basin of the loss, so the mean of
their weights is a network as cheap as each of them and often better than either
(Wortsman et al. 2022, "Model soups"). The shipped v4 is the soup of v3 and a run
warm-started from v3 (weights/MODEL_CARD.md). A run of the extended network
(``--residual-blocks``, ``--global-context``) can be averaged with one of the plain
network it was warm-started from: name the extended run first. Export the result with
train.export.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

import train.metrics  # noqa: F401  (registers the loss and metrics the checkpoints name)
from segmentation.model import architecture_of, build_unet, copy_matching_weights


def soup(checkpoints: Sequence[str | Path], destination: str | Path) -> Path:
    """Save the element-wise mean of the checkpoints' weights, in the first one's model.

    Batch-norm statistics are averaged like every other weight. A checkpoint of the
    first's network without its extras (``build_unet``'s residual units and context
    gate; the first must be the one with them) joins with the extras as the identity,
    so the mean lies between its predictions and the first's (see :func:`_as_first`).

    Raises:
        ValueError: fewer than two checkpoints, or one that does not fit the first's
            network (another decoder width, or layers the first lacks).
    """
    if len(checkpoints) < 2:
        raise ValueError("a soup needs at least two checkpoints")
    first = keras.saving.load_model(checkpoints[0], compile=False)
    total = [w.astype(np.float64) for w in first.get_weights()]
    for path in checkpoints[1:]:
        try:
            weights = _as_first(keras.saving.load_model(path, compile=False), first)
        except ValueError as error:
            message = f"{path}: not the same network as {checkpoints[0]} ({error})"
            raise ValueError(message) from None
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


def _as_first(model: keras.Model, first: keras.Model) -> list[np.ndarray]:
    """``model``'s weights in ``first``'s layout; extras it lacks set to the identity.

    An extra is the identity when the weights its builder starts at zero are zero; its
    other weights then do not change the output, so they are taken from ``first``
    (rather than a random start). Averaging then scales the extras' effect down instead
    of mixing two unrelated sets of convolution weights.
    """
    if [w.shape for w in model.get_weights()] == [w.shape for w in first.get_weights()]:
        return model.get_weights()
    ours = {layer.name for layer in first.layers if layer.weights}
    extra = sorted({layer.name for layer in model.layers if layer.weights} - ours)
    if extra:
        raise ValueError(f"layers {', '.join(extra)} are not in the first")
    target = build_unet(first.input_shape[1], **architecture_of(first))
    fresh = set(copy_matching_weights(model, target))
    for layer in target.layers:
        if layer.name in fresh:
            start = layer.get_weights()
            trained = first.get_layer(layer.name).get_weights()
            pairs = zip(start, trained, strict=True)
            layer.set_weights([t if s.any() else np.zeros_like(s) for s, t in pairs])
    return target.get_weights()


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
