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
#: The 1x1 conv heads on the last decoder block: every person (channel 0) and, with
#: ``subject_head``, the main subject (channel 1).
PERSON_HEAD = "head_conv"
SUBJECT_HEAD = "subject_conv"


def build_unet(
    input_size: int | None = DEFAULT_INPUT_SIZE,
    decoder_filters: Sequence[int] = DEFAULT_DECODER_FILTERS,
    encoder_weights: str | Path | None = None,
    name: str = "mobilenetv3small_unet",
    *,
    residual_blocks: int = 0,
    global_context: bool = False,
    subject_head: bool = False,
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
        residual_blocks: how many decoder blocks, coarsest first, end with an extra
            residual unit (two more separable convs: depth where the maps are small).
        global_context: gate the bottleneck's channels by the whole image's pooled
            features (as MobileNetV3's LR-ASPP head does), so what counts as the person
            can depend on everything in the photo.
        subject_head: a second 1x1 conv head (``subject_conv``) on the same decoder
            features, for the main subject (the person or group the photo is of) at no
            extra run time: the output gets a second channel.

    Both extras start as the identity (zero-initialised last scale), so a network
    warm-started from one without them (:func:`copy_matching_weights`) begins with
    exactly its predictions.

    Returns:
        A model mapping (B, S, S, 3) RGB to (B, S, S, 1) person probability, or with
        ``subject_head`` to (B, S, S, 2): every person, then the main subject.
    """
    if len(decoder_filters) != len(ENCODER_SKIP_LAYERS):
        raise ValueError(f"decoder_filters needs {len(ENCODER_SKIP_LAYERS)} values")
    if not 0 <= residual_blocks <= len(decoder_filters):
        raise ValueError(f"residual_blocks must be 0 to {len(decoder_filters)}")
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
    if global_context:
        x = _global_context_gate(x, decoder_filters[0], name="context")

    for i, (skip, filters) in enumerate(zip(reversed(skips), decoder_filters, strict=True)):
        x = _decoder_block(x, skip, filters, name=f"decoder_block{i + 1}")
        if i < residual_blocks:
            x = _residual_unit(x, filters, name=f"decoder_block{i + 1}_residual")

    logits = layers.Conv2D(1, 1, name=PERSON_HEAD)(x)
    if subject_head:
        subject = layers.Conv2D(1, 1, name=SUBJECT_HEAD)(x)
        logits = layers.Concatenate(name="heads_concat")([logits, subject])
    x = layers.UpSampling2D(2, interpolation="bilinear", name="head_upsample")(logits)
    probability = layers.Activation("sigmoid", dtype="float32", name="mask")(x)
    return keras.Model(encoder.input, probability, name=name)


def decoder_filters_of(model: keras.Model) -> tuple[int, ...]:
    """The ``decoder_filters`` a model was built with, read from its named decoder layers."""
    return tuple(
        model.get_layer(f"decoder_block{i}_conv1").filters
        for i in range(1, len(ENCODER_SKIP_LAYERS) + 1)
    )


def architecture_of(model: keras.Model) -> dict:
    """The keyword arguments of :func:`build_unet` that rebuild ``model``'s layers."""
    names = {layer.name for layer in model.layers}
    residual_blocks = 0
    while f"decoder_block{residual_blocks + 1}_residual_add" in names:
        residual_blocks += 1
    return {
        "decoder_filters": decoder_filters_of(model),
        "residual_blocks": residual_blocks,
        "global_context": "context_gate" in names,
        "subject_head": SUBJECT_HEAD in names,
    }


def copy_matching_weights(source: keras.Model, target: keras.Model) -> list[str]:
    """Warm-start ``target`` from ``source`` layer by layer (same name and shapes).

    Returns the names of the target's layers with weights that ``source`` lacks: they
    keep their initial values (the identity, for the extras of :func:`build_unet`).
    A subject head that ``source`` lacks is no such layer: it starts as a copy of the
    person head, so the subject channel starts equal to the person channel.

    Raises:
        ValueError: a layer of both models whose weights differ in shape.
    """
    fresh = []
    for layer in target.layers:
        if not layer.weights:
            continue
        try:
            donor = source.get_layer(layer.name)
        except ValueError:
            if layer.name != SUBJECT_HEAD or not _has_layer(source, PERSON_HEAD):
                fresh.append(layer.name)
                continue
            donor = source.get_layer(PERSON_HEAD)
        shapes = [w.shape for w in donor.get_weights()]
        if shapes != [w.shape for w in layer.get_weights()]:
            raise ValueError(f"layer {layer.name}: weights {shapes} do not fit")
        layer.set_weights(donor.get_weights())
    return fresh


def _has_layer(model: keras.Model, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)


def _global_context_gate(x: keras.KerasTensor, filters: int, name: str):
    """Scale each channel by 1 + tanh(a 1x1 conv of the image's mean features)."""
    g = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    g = layers.Conv2D(
        filters, 1, kernel_initializer="zeros", bias_initializer="zeros", name=f"{name}_conv"
    )(g)
    g = layers.Activation("tanh", name=f"{name}_tanh")(g)
    g = layers.Rescaling(1.0, offset=1.0, name=f"{name}_scale")(g)
    return layers.Multiply(name=f"{name}_gate")([x, g])


def _residual_unit(x: keras.KerasTensor, filters: int, name: str):
    """x + two separable 3x3 convs, the last batch norm's scale zero so it starts as x."""
    y = x
    for j in (1, 2):
        y = layers.SeparableConv2D(
            filters, 3, padding="same", use_bias=False, name=f"{name}_conv{j}"
        )(y)
        y = layers.BatchNormalization(
            gamma_initializer="zeros" if j == 2 else "ones", name=f"{name}_bn{j}"
        )(y)
        if j == 1:
            y = layers.ReLU(name=f"{name}_relu1")(y)
    x = layers.Add(name=f"{name}_add")([x, y])
    return layers.ReLU(name=f"{name}_relu2")(x)


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
