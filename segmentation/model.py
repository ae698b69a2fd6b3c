"""U-Net with a MobileNetV3-Small encoder: the one builder shared by training and inference."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
from keras import layers

#: Encoder layers whose outputs feed the decoder, finest first (stride 2, 4, 8, 16).
#: The stride-32 bottleneck is the encoder's own output.
ENCODER_SKIP_LAYERS: tuple[str, ...] = (
    "conv_bn",  # 1/2, 16 channels
    "expanded_conv_project_bn",  # 1/4, 16 channels
    "expanded_conv_2_add",  # 1/8, 24 channels
    "expanded_conv_7_add",  # 1/16, 48 channels
)

DEFAULT_INPUT_SIZE = 256
DEFAULT_DECODER_FILTERS: tuple[int, ...] = (96, 64, 32, 16)
#: Keras ships MobileNetV3 with batch-norm momentum 0.999: its moving statistics lag the
#: training weights for thousands of steps, so validation in inference mode collapses.
#: 0.99 tracks the weights within ~100 steps.
ENCODER_BN_MOMENTUM = 0.99


def build_unet(
    input_size: int | None = DEFAULT_INPUT_SIZE,
    decoder_filters: Sequence[int] = DEFAULT_DECODER_FILTERS,
    encoder_weights: str | Path | None = None,
    name: str = "mobilenetv3small_unet",
) -> keras.Model:
    """Build the person-segmentation network.

    Args:
        input_size: side of the square RGB input (0..255 floats); a multiple of 32,
            or None for any size that is a multiple of 32.
        decoder_filters: channels of the four decoder blocks, coarsest first
            (strides 16, 8, 4, 2).
        encoder_weights: path to ImageNet weights for MobileNetV3-Small without its top
            (training only; inference loads everything from the saved model).
        name: the model's name.

    Returns:
        A model mapping (B, S, S, 3) RGB to (B, S, S, 1) person probability.
    """
    if len(decoder_filters) != len(ENCODER_SKIP_LAYERS):
        raise ValueError(f"decoder_filters needs {len(ENCODER_SKIP_LAYERS)} values")
    if input_size is not None and input_size % 32:
        raise ValueError(f"input_size must be a multiple of 32, got {input_size}")
    encoder = keras.applications.MobileNetV3Small(
        input_shape=(input_size, input_size, 3),
        include_top=False,
        weights=str(encoder_weights) if encoder_weights else None,
        include_preprocessing=True,
    )
    for layer in encoder.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = ENCODER_BN_MOMENTUM

    skips = [encoder.get_layer(n).output for n in ENCODER_SKIP_LAYERS]
    x = encoder.output
    x = layers.Conv2D(decoder_filters[0], 1, use_bias=False, name="bottleneck_conv")(x)
    x = layers.BatchNormalization(name="bottleneck_bn")(x)
    x = layers.ReLU(name="bottleneck_relu")(x)

    for i, (skip, filters) in enumerate(zip(reversed(skips), decoder_filters, strict=True)):
        x = _decoder_block(x, skip, filters, name=f"decoder_block{i + 1}")

    x = layers.Conv2D(1, 1, name="head_conv")(x)
    x = layers.UpSampling2D(2, interpolation="bilinear", name="head_upsample")(x)
    probability = layers.Activation("sigmoid", dtype="float32", name="mask")(x)
    return keras.Model(encoder.input, probability, name=name)


def decoder_filters_of(model: keras.Model) -> tuple[int, ...]:
    """The ``decoder_filters`` a model was built with, read from its named decoder layers."""
    return tuple(
        model.get_layer(f"decoder_block{i}_conv1").filters
        for i in range(1, len(ENCODER_SKIP_LAYERS) + 1)
    )


def _decoder_block(x: keras.KerasTensor, skip: keras.KerasTensor, filters: int, name: str):
    """Upsample x2, fuse the skip, then two separable 3x3 convs (cheap on a CPU)."""
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_upsample")(x)
    x = layers.Concatenate(name=f"{name}_concat")([x, skip])
    for j in (1, 2):
        x = layers.SeparableConv2D(
            filters, 3, padding="same", use_bias=False, name=f"{name}_conv{j}"
        )(x)
        x = layers.BatchNormalization(name=f"{name}_bn{j}")(x)
        x = layers.ReLU(name=f"{name}_relu{j}")(x)
    return x
