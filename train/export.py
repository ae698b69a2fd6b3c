"""Export a training checkpoint as the plain inference model that segmentation/ loads.

python -m train.export runs/NAME/best.keras weights/NAME.keras [--size S] [--no-tflite]
python -m train.export --tflite-only weights/NAME.keras

Besides the .keras model (the source of truth) a float32 .tflite conversion is written
next to it, checked against the Keras model; the Segmenter runs it with LiteRT, which
starts without importing TensorFlow and runs the network ~3x faster on a CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras
import numpy as np

import train.metrics  # noqa: F401  (registers the loss and metrics the checkpoint names)
from segmentation.model import architecture_of, build_unet

MAX_EXPORT_BYTES = 10 * 1024 * 1024
#: Largest mean absolute difference allowed between the .tflite and the Keras model's
#: probabilities (float32 conversion gives ~1e-7).
MAX_TFLITE_DIFFERENCE = 1e-3


def export_model(
    checkpoint: str | Path,
    destination: str | Path,
    *,
    input_size: int | None = None,
    tflite: bool = True,
) -> Path:
    """Copy the weights into a freshly built, uncompiled model and save it.

    The result holds only standard Keras layers, so it loads with safe_mode on and
    needs neither the training code nor the optimizer state. The network is fully
    convolutional: ``input_size`` may differ from the training size (a larger input sees
    small, distant people better; ``python -m train.variants`` measures the trade-off).
    With ``tflite`` the LiteRT conversion is written beside it (see :func:`export_tflite`).
    """
    trained = keras.saving.load_model(checkpoint, compile=False)
    size = input_size or trained.input_shape[1]
    model = build_unet(size, **architecture_of(trained))
    model.set_weights(trained.get_weights())
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    model.save(destination)
    if destination.stat().st_size > MAX_EXPORT_BYTES:
        raise ValueError(f"{destination} is over {MAX_EXPORT_BYTES} bytes")
    if tflite:
        export_tflite(destination)
    return destination


def export_tflite(model_path: str | Path, destination: str | Path | None = None) -> Path:
    """Convert a saved .keras model to float32 TFLite (by default next to it) and check it.

    Written after the .keras file, so the Segmenter sees it as current; a conversion
    whose output differs from Keras by more than MAX_TFLITE_DIFFERENCE is refused
    (and nothing is written).
    """
    import tensorflow as tf

    model_path = Path(model_path)
    destination = Path(destination) if destination else model_path.with_suffix(".tflite")
    model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    difference = _tflite_difference(model, data)
    if difference > MAX_TFLITE_DIFFERENCE:
        raise ValueError(f"TFLite conversion differs from Keras by {difference:.2e} on average")
    partial = destination.with_suffix(".tflite.partial")
    partial.write_bytes(data)
    partial.replace(destination)
    return destination


def _tflite_difference(model: keras.Model, data: bytes) -> float:
    """Mean absolute difference of the two runtimes' outputs on a smooth random image."""
    from ai_edge_litert.interpreter import Interpreter

    size = model.input_shape[1]
    rng = np.random.default_rng(0)
    small = rng.uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)
    x = keras.ops.convert_to_numpy(keras.ops.image.resize(small, (size, size)))
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return float(np.abs(got - expected).mean())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m train.export", description=__doc__.split("\n")[0])
    p.add_argument(
        "checkpoint",
        type=Path,
        help="training checkpoint (or, with --tflite-only, an exported .keras model)",
    )
    p.add_argument("destination", type=Path, nargs="?", help="where to write the .keras model")
    p.add_argument("--size", type=int, help="network input side (default: the training size)")
    p.add_argument("--no-tflite", action="store_true", help="skip the .tflite conversion")
    p.add_argument(
        "--tflite-only",
        action="store_true",
        help="only convert an already exported .keras model, writing .tflite beside it",
    )
    args = p.parse_args(argv)
    if args.tflite_only:
        written = [export_tflite(args.checkpoint)]
    else:
        if args.destination is None:
            p.error("the destination .keras path is required")
        path = export_model(
            args.checkpoint, args.destination, input_size=args.size, tflite=not args.no_tflite
        )
        written = [path] if args.no_tflite else [path, path.with_suffix(".tflite")]
    for path in written:
        print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
