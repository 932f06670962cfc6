"""Building blocks shared by the model builders: input scaling and ResNet v1.

- `scale_inputs`: the one input convention of every agekeras model: float
  RGB images in [0, 255] become [-1, 1] inside the model (layer "scale"), so
  that a saved model takes raw pixels.
- `resnet_stack` / `resnet_v1`: ResNet v1 with basic blocks (ResNet-18/34),
  written with Keras layers. Keras ships ResNet-50 and larger
  (`keras.applications`), not the basic-block ResNets that age-estimation
  papers use, and DAA and DHAA need the stages one by one (their own stems,
  branches after stage 1). Layer names and weight order follow the common
  Keras ResNet v1 layout (`conv1_conv`, `<stack>_block<i>_1_conv`, ...).

Reference: Deep Residual Learning for Image Recognition
(https://arxiv.org/abs/1512.03385).
"""

from __future__ import annotations

import keras

#: BatchNorm epsilon of the Keras ResNet family.
BN_EPSILON = 1.001e-5
RESNET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


def scale_inputs(x, name="scale"):
    """[0, 255] pixels -> [-1, 1]: `x / 127.5 - 1` (the package's preprocessing).

    Args:
        x: a symbolic image tensor `(B, H, W, 3)` in [0, 255].
        name: layer name (experiments find the scaled input by it).

    Returns:
        The scaled tensor, same shape.
    """
    return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=name)(x)


def basic_block(x, filters, stride=1, conv_shortcut=True, name="block"):
    """One ResNet v1 basic block: two 3x3 conv + BN, added to the shortcut, ReLU.

    Args:
        x: input tensor `(B, H, W, C)`.
        filters: output channels.
        stride: stride of the first conv (and of the shortcut conv).
        conv_shortcut: 1x1 conv + BN shortcut; otherwise identity.
        name: prefix of the layer names.

    Returns:
        `(B, H / stride, W / stride, filters)`.
    """
    if conv_shortcut:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=name + "_0_conv")(x)
        shortcut = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name + "_0_bn")(shortcut)
    else:
        shortcut = x
    x = keras.layers.Conv2D(filters, 3, padding="same", strides=stride, use_bias=False, name=name + "_1_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name + "_1_bn")(x)
    x = keras.layers.Activation("relu", name=name + "_1_relu")(x)
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name + "_2_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name + "_2_bn")(x)
    x = keras.layers.Add(name=name + "_add")([shortcut, x])
    return keras.layers.Activation("relu", name=name + "_out")(x)


def resnet_stack(x, filters, blocks, stride=2, first_shortcut=True, name="stack"):
    """`blocks` basic blocks; only the first one strides (and may project).

    Args:
        x: input tensor.
        filters: channels of every block.
        blocks: number of blocks.
        stride: stride of the first block.
        first_shortcut: conv shortcut in the first block (identity otherwise).
        name: prefix; blocks are `<name>_block1`, `<name>_block2`, ...

    Returns:
        The output tensor.
    """
    x = basic_block(x, filters, stride=stride, conv_shortcut=first_shortcut, name=name + "_block1")
    for i in range(2, blocks + 1):
        x = basic_block(x, filters, conv_shortcut=False, name=f"{name}_block{i}")
    return x


def resnet_stem(x, filters=64, kernel_size=7, max_pool=True):
    """The ResNet stem: conv (stride 2) + BN + ReLU [+ 3x3 max-pool, stride 2]."""
    x = keras.layers.Conv2D(filters, kernel_size, strides=2, use_bias=False, padding="same", name="conv1_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name="conv1_bn")(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    if max_pool:
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_pool")(x)
    return x


def resnet_v1(depth, input_shape, max_pool=True, name=None):
    """ResNet-18/34 v1 feature extractor `(H, W, 3)` in [-1, 1] -> `(h, w, 512)`.

    Args:
        depth: 18 or 34.
        input_shape: `(H, W, 3)`.
        max_pool: keep the stem's max-pool (total stride 32); False gives
            total stride 16, for small faces.
        name: model name.

    Returns:
        A `keras.Model`.
    """
    if depth not in RESNET_BLOCKS:
        raise ValueError(f"depth must be one of {sorted(RESNET_BLOCKS)}, got {depth}")
    inputs = keras.Input(tuple(input_shape))
    x = resnet_stem(inputs, max_pool=max_pool)
    for i, (filters, blocks) in enumerate(zip((64, 128, 256, 512), RESNET_BLOCKS[depth])):
        x = resnet_stack(x, filters, blocks, stride=1 if i == 0 else 2, first_shortcut=i > 0, name=f"v2_stack_{i}")
    return keras.Model(inputs, x, name=name or f"resnet{depth}_backbone")
