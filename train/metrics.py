"""Losses and metrics: Keras objects for training, NumPy functions for evaluation."""

from __future__ import annotations

import cv2
import keras
import numpy as np
from keras import ops

#: Channel of a subject label (see :func:`train.data.make_mixed_dataset`) holding each
#: example's weight of the subject channel as a constant plane: Keras hands a loss only
#: ``y_true`` and ``y_pred``, and its ``sample_weight`` would weigh both channels alike.
SUBJECT_WEIGHT_CHANNEL = 2


def subject_example_weight(y_true):
    """(B,) weight of each example's subject channel, read from its weight plane."""
    return y_true[:, 0, 0, SUBJECT_WEIGHT_CHANNEL]


@keras.saving.register_keras_serializable(package="train")
class BceDiceLoss(keras.losses.Loss):
    """Binary cross-entropy plus soft Dice: BCE drives pixels, Dice keeps small people.

    ``boundary_weight`` > 0 weighs the BCE of pixels within a few pixels of the true
    outline (1 + boundary_weight) times more, rewarding sharp outlines over blobs.

    A 2-channel prediction (``build_unet(subject_head=True)``) takes a 3-channel label
    (every person, the main subject, the subject weight plane): the loss is this loss
    on channel 0 plus ``subject_weight`` times each example's weight times the same
    loss on channel 1.
    """

    def __init__(
        self,
        dice_weight: float = 1.0,
        boundary_weight: float = 0.0,
        boundary_radius: int = 3,
        subject_weight: float = 1.0,
        name: str = "bce_dice",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.dice_weight = dice_weight
        self.boundary_weight = boundary_weight
        self.boundary_radius = boundary_radius
        self.subject_weight = subject_weight

    def call(self, y_true, y_pred):
        if y_pred.shape[-1] == 1:
            return self._one_channel(y_true, y_pred)
        person = self._one_channel(y_true[..., 0:1], y_pred[..., 0:1])
        subject = self._one_channel(y_true[..., 1:2], y_pred[..., 1:2])
        return person + self.subject_weight * subject_example_weight(y_true) * subject

    def _one_channel(self, y_true, y_pred):
        """(B,) BCE + Dice of (B, H, W, 1) labels and probabilities."""
        y_pred = ops.clip(y_pred, 1e-6, 1 - 1e-6)
        bce = keras.losses.binary_crossentropy(y_true, y_pred)  # (B, H, W)
        if self.boundary_weight:
            bce = bce * (1.0 + self.boundary_weight * boundary_band(y_true, self.boundary_radius))
        bce = ops.mean(bce, axis=(1, 2))
        inter = ops.sum(y_true * y_pred, axis=(1, 2, 3))
        total = ops.sum(y_true + y_pred, axis=(1, 2, 3))
        dice = 1.0 - (2.0 * inter + 1.0) / (total + 1.0)
        return bce + self.dice_weight * dice

    def get_config(self):
        return {
            **super().get_config(),
            "dice_weight": self.dice_weight,
            "boundary_weight": self.boundary_weight,
            "boundary_radius": self.boundary_radius,
            "subject_weight": self.subject_weight,
        }


def boundary_band(y_true, radius: int = 3):
    """(B, H, W) 1 within ``radius`` px of the mask's outline, else 0 (dilation - erosion)."""
    size = 2 * radius + 1
    dilated = ops.max_pool(y_true, size, strides=1, padding="same")
    eroded = -ops.max_pool(-y_true, size, strides=1, padding="same")
    return ops.squeeze(dilated - eroded, axis=-1)


@keras.saving.register_keras_serializable(package="train")
class MeanImageScore(keras.metrics.Mean):
    """Mean over images of per-image IoU, Dice or pixel accuracy at threshold 0.5.

    ``channel`` scores that channel of a subject label and 2-channel prediction (None:
    the whole 1-channel tensors); on channel 1, examples whose subject weight is 0 (no
    known subject) are not counted.
    """

    def __init__(
        self, kind: str = "iou", name: str | None = None, channel: int | None = None, **kwargs
    ):
        super().__init__(name=name or kind, **kwargs)
        self.kind = kind
        self.channel = channel

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.channel is not None:
            if self.channel == 1:
                known = ops.cast(subject_example_weight(y_true) > 0, "float32")
                sample_weight = known if sample_weight is None else sample_weight * known
            y_true = y_true[..., self.channel : self.channel + 1]
            y_pred = y_pred[..., self.channel : self.channel + 1]
        t = ops.cast(y_true > 0.5, "float32")
        p = ops.cast(y_pred > 0.5, "float32")
        inter = ops.sum(t * p, axis=(1, 2, 3))
        union = ops.sum(ops.maximum(t, p), axis=(1, 2, 3))
        total = ops.sum(t + p, axis=(1, 2, 3))
        if self.kind == "iou":
            score = ops.where(union > 0, inter / ops.maximum(union, 1.0), 1.0)
        elif self.kind == "dice":
            score = ops.where(total > 0, 2 * inter / ops.maximum(total, 1.0), 1.0)
        else:
            score = ops.mean(ops.cast(ops.equal(t, p), "float32"), axis=(1, 2, 3))
        return super().update_state(score, sample_weight)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "channel": self.channel}


def iou(truth: np.ndarray, pred: np.ndarray) -> float:
    """IoU of two boolean masks; 1.0 when both are empty."""
    union = np.logical_or(truth, pred).sum()
    return float(np.logical_and(truth, pred).sum() / union) if union else 1.0


def dice(truth: np.ndarray, pred: np.ndarray) -> float:
    total = truth.sum() + pred.sum()
    return float(2 * np.logical_and(truth, pred).sum() / total) if total else 1.0


def pixel_accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    return float((truth == pred).mean())


def _boundary(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)) > 0


def boundary_f1(truth: np.ndarray, pred: np.ndarray, tolerance: int = 3) -> float:
    """F1 of boundary pixels matched within `tolerance` px (Perazzi et al., DAVIS)."""
    bt, bp = _boundary(truth), _boundary(pred)
    if not bt.any() and not bp.any():
        return 1.0
    if not bt.any() or not bp.any():
        return 0.0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1,) * 2)
    near_t = cv2.dilate(bt.astype(np.uint8), kernel) > 0
    near_p = cv2.dilate(bp.astype(np.uint8), kernel) > 0
    precision = (bp & near_t).sum() / bp.sum()
    recall = (bt & near_p).sum() / bt.sum()
    return float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0
