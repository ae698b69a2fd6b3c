"""Export a training checkpoint as the plain inference model that segmentation/ loads.

python -m train.export runs/NAME/best.keras weights/NAME.keras
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras

import train.metrics  # noqa: F401  (registers the loss and metrics the checkpoint names)
from segmentation.model import ENCODER_SKIP_LAYERS, build_unet

MAX_EXPORT_BYTES = 10 * 1024 * 1024


def export_model(checkpoint: str | Path, destination: str | Path) -> Path:
    """Copy the weights into a freshly built, uncompiled model and save it.

    The result holds only standard Keras layers, so it loads with safe_mode on and
    needs neither the training code nor the optimizer state.
    """
    trained = keras.saving.load_model(checkpoint, compile=False)
    size = trained.input_shape[1]
    filters = tuple(
        trained.get_layer(f"decoder_block{i + 1}_conv1").filters
        for i in range(len(ENCODER_SKIP_LAYERS))
    )
    model = build_unet(size, filters)
    model.set_weights(trained.get_weights())
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    model.save(destination)
    if destination.stat().st_size > MAX_EXPORT_BYTES:
        raise ValueError(f"{destination} is over {MAX_EXPORT_BYTES} bytes")
    return destination


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m train.export", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("destination", type=Path)
    args = p.parse_args(argv)
    path = export_model(args.checkpoint, args.destination)
    print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
