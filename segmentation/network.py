"""Run the trained network: LiteRT on an exported .tflite when there is one, else Keras.

The .keras file is the source of truth; ``python -m train.export`` also writes a
float32 ``.tflite`` next to it. LiteRT (the ``ai-edge-litert`` package, XNNPACK on
the CPU) loads without importing TensorFlow and runs the network faster. Measured on
the 2-core dev machine with the 256 px model, under a training job's load: import
0.19 s against ~5 s for TensorFlow + Keras, one forward pass 7.5 ms against 23 ms
for the traced Keras model, masks equal within 1.5e-7 mean absolute difference on 40
validation photos (6e-6 at most).

Both backends take a (1, S, S, 3) float32 batch of 0..255 RGB and return (S, S)
float32 probabilities. Neither is thread-safe on its own; the Segmenter serialises
calls with its lock.

A model built with ``subject_head`` has ``channels == 2``: channel 0 is every person,
channel 1 the main subject. Calling the network still gives channel 0, so code that
knows one channel is unchanged; ``network(batch, channel=1)`` gives the subject map
and ``network.maps(batch)`` all of them, (S, S, C), from one pass.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

__all__ = ["Network", "Runtime", "load_network", "tflite_sibling"]

Runtime = Literal["auto", "litert", "keras"]
_log = logging.getLogger(__name__)


class Network(Protocol):
    """A loaded network with a square RGB input of ``input_size`` pixels."""

    input_size: int
    runtime: str
    #: Output channels: 1 (every person) or 2 (every person, the main subject).
    channels: int

    def __call__(self, batch: np.ndarray, channel: int = 0) -> np.ndarray:
        """(S, S) float32 probabilities of ``channel`` for a (1, S, S, 3) float32 batch."""
        ...

    def maps(self, batch: np.ndarray) -> np.ndarray:
        """(S, S, C) float32 probabilities of every channel, from one network pass."""
        ...


class _Channels:
    """``__call__`` as one channel of ``maps``; the backends implement ``maps``."""

    channels: int

    def maps(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, batch: np.ndarray, channel: int = 0) -> np.ndarray:
        if not 0 <= channel < self.channels:
            raise ValueError(f"channel {channel} of a {self.channels}-channel network")
        return np.ascontiguousarray(self.maps(batch)[:, :, channel])


def _output_channels(shape: tuple, source: object) -> int:
    """The channels of a (1 or B, S, S, C) output: 1 or 2, else a ValueError."""
    if len(shape) != 4 or shape[3] not in (1, 2):
        raise ValueError(f"{source}: expected a (B, S, S, 1 or 2) output, got {shape}")
    return int(shape[3])


def tflite_sibling(keras_path: Path) -> Path | None:
    """The exported ``.tflite`` beside ``keras_path``, if it exists and is not older.

    An older .tflite was converted from a previous model: using it would silently
    serve stale weights, so the .keras file wins then. (A git checkout writes files
    in name order, so a .tflite committed with its .keras still comes out newer.)
    """
    candidate = keras_path.with_suffix(".tflite")
    try:
        if candidate.stat().st_mtime >= keras_path.stat().st_mtime:
            return candidate
    except OSError:
        pass
    return None


def load_network(keras_path: Path, runtime: Runtime = "auto") -> Network:
    """Load the model at ``keras_path`` with the fastest runtime available.

    ``auto`` uses LiteRT on a current .tflite sibling and falls back to Keras (with
    a warning when a .tflite exists but cannot be used); ``litert`` insists on it;
    ``keras`` never looks for it.

    Raises:
        ValueError: the model (or, for ``litert``, the .tflite) cannot be loaded.
        FileNotFoundError: ``litert`` was asked for but there is no current .tflite.
    """
    if runtime not in ("auto", "litert", "keras"):
        raise ValueError(f"runtime must be 'auto', 'litert' or 'keras', not {runtime!r}")
    if runtime != "keras":
        tflite = tflite_sibling(keras_path)
        if tflite is None and runtime == "litert":
            raise FileNotFoundError(f"no .tflite at least as new as {keras_path} beside it")
        if tflite is not None:
            try:
                return LiteRTNetwork(tflite)
            except (ImportError, ValueError) as exc:
                if runtime == "litert":
                    raise ValueError(f"{tflite}: cannot run it with LiteRT ({exc})") from exc
                _log.warning("%s: falling back to Keras (%s)", tflite, exc)
    return KerasNetwork(keras_path)


class LiteRTNetwork(_Channels):
    """A .tflite model on the LiteRT interpreter (XNNPACK delegate, all cores)."""

    runtime = "litert"

    def __init__(self, path: Path, num_threads: int | None = None) -> None:
        """Load ``path``; ``num_threads`` defaults to every core (one image at a time)."""
        from ai_edge_litert.interpreter import Interpreter

        threads = num_threads or os.cpu_count() or 1
        try:
            interpreter = Interpreter(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
        except Exception as exc:  # a damaged flatbuffer raises plain ValueError/RuntimeError
            raise ValueError(f"not a loadable TFLite model ({exc})") from exc
        (inp,) = interpreter.get_input_details()
        (out,) = interpreter.get_output_details()
        shape = tuple(int(s) for s in inp["shape"])
        if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2] or inp["dtype"] != np.float32:
            raise ValueError(f"expected a float32 (1, S, S, 3) input, got {shape}")
        self.input_size = shape[1]
        self.channels = _output_channels(tuple(int(s) for s in out["shape"]), path)
        self._interpreter = interpreter
        self._input, self._output = inp["index"], out["index"]

    def maps(self, batch: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        # get_tensor copies: the interpreter reuses its buffer on the next call.
        return self._interpreter.get_tensor(self._output)[0]


class KerasNetwork(_Channels):
    """The .keras model, loaded with safe_mode and traced once with tf.function."""

    runtime = "keras"

    def __init__(self, path: Path) -> None:
        import keras
        import tensorflow as tf

        from segmentation.model import DEFAULT_INPUT_SIZE

        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:
            raise ValueError(f"{path}: not a loadable Keras model ({exc})") from exc
        shape = tuple(model.input_shape)
        if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
            raise ValueError(f"{path}: expected a (B, S, S, 3) input, got {shape}")
        self.input_size = int(shape[1] or DEFAULT_INPUT_SIZE)
        self.channels = _output_channels(tuple(model.output_shape), path)
        self._model = model
        size = self.input_size
        # A traced graph runs the network ~8x faster than eager calls on a CPU.
        self._forward = tf.function(
            self._call_model,
            input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32)],
            autograph=False,
        )
        self._forward(tf.zeros((1, size, size, 3)))  # trace now, not on the first photo

    def _call_model(self, x):
        return self._model(x, training=False)

    def maps(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._forward(batch), dtype=np.float32)[0]
