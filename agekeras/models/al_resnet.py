"""AL-ResNets and AL-RoR: attention-LSTM fine-grained age estimation (builders).

A backbone (ResNet-34/152 or RoR-34) gives the last feature map F
(512 x 7 x 7 at 224 px). Two predictions are made from it:

- global: average-pool F -> FC -> softmax = P_global;
- local: the pooled global feature drives an attention LSTM
  (`AttentionLSTMLocator`, Eqs. 3-4) that outputs an age-sensitive box; the
  box is cropped out of F with a differentiable bilinear sampler
  (`FeatureCrop`), average pooled -> FC -> softmax = P_local.

They are combined with the weights of Eq. 5, 1 and 0.5, and divided by
their sum so that P_final is a distribution (the division is ours):
P_final = (P_global + 0.5 P_local) / 1.5 (`GlobalLocalFusion`); the age is
the DEX expectation sum_k P_final[k] (age_min + k).

Registered models (see `agekeras.models.available(paper="al_resnet")`):

| name | what |
|---|---|
| `ror34_dex` | plain RoR-34 (middle + root shortcuts) + DEX head |
| `al_resnet34` | ResNet-34 (`backbones.resnet_v1`) + global and local heads (stage 1 = `resnet34_dex`) |
| `al_resnet152` | keras.applications ResNet152V2 (pre-activation, standing in for the paper's ResNet-152) + global and local heads |
| `al_ror34` | RoR-34 + global and local heads (stage 1 = `ror34_dex`) |

Outputs of the AL models: "age" (years, the DEX expectation of P_final),
"age_probs_global" and "age_probs_local" (each trained with cross-entropy on
the age class). P_final and the located boxes are not outputs, because
Keras wants a target for every output of a dict model, and they carry no
loss (`agekeras.experiments.al_resnet.inspection_model` exposes them).

Two-stage training (as the paper): stage 1 trains the backbone and the
global head: the plain model (`resnet34_dex` / `ror34_dex`, or any AL
builder with `global_only=True`; the layer names match). Stage 2 builds the
AL model with `init_from=<stage-1 .keras>` and `freeze_backbone=True`: the
backbone and the global head are copied and frozen, and only the LSTM, the
location layer and the local head learn. `agekeras.experiments.al_resnet.
two_stage_train` runs both; without `init_from` the AL model trains end to
end (both cross-entropies).

Reference: Fine-Grained Age Estimation in the Wild with Attention LSTM
Networks (https://arxiv.org/abs/1805.10445).
"""

from __future__ import annotations

import pathlib

import keras
import numpy as np

from agekeras.layers import AttentionLSTMLocator, DEXHead, FeatureCrop, GlobalLocalFusion, RoRGroup
from agekeras.models.backbones import scale_inputs
from agekeras.models.baselines import age_model, resnet_backbone
from agekeras.models.registry import register

PAPER = "al_resnet"
ROR34_BLOCKS = (3, 4, 6, 3)
FILTERS = (64, 128, 256, 512)


# ----- backbones ---------------------------------------------------------------


def ror_backbone(
    input_shape,
    blocks=ROR34_BLOCKS,
    filters=FILTERS,
    middle_shortcuts=True,
    root_shortcut=True,
    stochastic_depth=0.0,
    small_input=False,
    name="ror34_backbone",
):
    """RoR-34 feature extractor `(H, W, 3) in [-1, 1] -> (H/32, W/32, 512)`.

    ImageNet-style stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool), then four
    `RoRGroup`s of pre-activation basic blocks (3, 4, 6, 3; 64-512 filters;
    strides 1, 2, 2, 2) each with its middle-level shortcut, then the
    root-level shortcut: a 1x1 convolution + BN of stride 8 (the product of
    the groups' strides) from the first group's input, added to the last
    group's output; a final BN + ReLU (pre-activation networks end with one).

    Args:
        input_shape: `(H, W, 3)`.
        blocks, filters: blocks and channels per group.
        middle_shortcuts, root_shortcut: the RoR shortcuts (False for
            ablations: both False gives a pre-activation ResNet-34).
        stochastic_depth: largest drop rate; block i of n drops its residual
            branch with rate `stochastic_depth * (i + 1) / n` (RoR's linear
            decay rule). 0 disables it.
        small_input: for small faces: no stem max-pool and a stride-1 last
            group, so the total stride is 8 instead of 32 and a 64 px face
            ends in an 8 x 8 map (the paper's is 7 x 7 at 224 px; the
            standard layout gives 2 x 2 at 64 px, too small to locate a
            region in). Our choice for CPU runs, not the paper's.
        name: model name.
    """
    inputs = keras.Input(tuple(input_shape), name="ror_input")
    x = keras.layers.Conv2D(filters[0], 7, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    if not small_input:
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    root_input = x
    total = sum(blocks)
    done = 0
    strides = [1] + [2] * (len(blocks) - 1)
    if small_input:
        strides[-1] = 1
    for i, (f, n) in enumerate(zip(filters, blocks)):
        rates = [stochastic_depth * (done + j + 1) / total for j in range(n)]
        done += n
        x = RoRGroup(
            f, n, stride=strides[i], middle_shortcut=middle_shortcuts, drop_rates=rates, name=f"group{i + 1}"
        )(x)
    if root_shortcut:
        stride = int(np.prod(strides))
        r = keras.layers.Conv2D(filters[-1], 1, strides=stride, padding="same", use_bias=False, name="root_conv")(
            root_input
        )
        r = keras.layers.BatchNormalization(epsilon=1e-5, name="root_bn")(r)
        x = keras.layers.Add(name="root_add")([x, r])
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="post_bn")(x)
    x = keras.layers.ReLU(name="post_relu")(x)
    return keras.Model(inputs, x, name=name)


def resnet152_backbone(input_shape, pretrained=False):
    """keras.applications ResNet152V2 (pre-activation) without its top.

    `pretrained=True` downloads the ImageNet weights (online only).
    """
    return keras.applications.ResNet152V2(
        include_top=False,
        weights="imagenet" if pretrained else None,
        input_shape=tuple(input_shape),
        name="resnet152_backbone",
    )


# ----- the AL model ----------------------------------------------------------------


def al_model(
    backbone,
    *,
    input_shape,
    num_classes,
    age_min,
    name,
    local_weight=0.5,
    lstm_units=128,
    crop_size=7,
    min_box=0.1,
    carry_state=True,
    inference_mode="independent",
    global_only=False,
    init_from=None,
    freeze_backbone=False,
):
    """Wrap a backbone with the global and attention-LSTM local heads.

    Args:
        backbone: a `keras.Model` `(H, W, 3) in [-1, 1] -> (h, w, C)`; its
            name is kept, so it matches the plain `*_dex` model's backbone.
        input_shape, num_classes, age_min: as every builder.
        name: model name.
        local_weight: lambda of Eq. 5 (0.5).
        lstm_units: LSTM size (128).
        crop_size: samples per side of the bilinear crop.
        min_box: smallest relative box side (see `AttentionLSTMLocator`).
        carry_state: keep the LSTM state across training batches.
        inference_mode: "independent" (default) or "sequence" (see
            `AttentionLSTMLocator`).
        global_only: build only the backbone + global head (the stage-1
            model, outputs "age_probs" and "age" like `*_dex`).
        init_from: path of a `.keras` model (stage 1, or an AL model) whose
            layers with the same names and weight shapes are copied in.
        freeze_backbone: freeze the backbone and the global head (stage 2).
    """
    inputs = keras.Input(tuple(input_shape), name="image")
    x = scale_inputs(inputs)
    fmap = backbone(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="embedding")(fmap)
    p_global, age_global = DEXHead(num_classes, age_min=age_min, dtype="float32", name="dex_head")(pooled)
    if global_only:
        model = keras.Model(inputs, {"age_probs": p_global, "age": age_global}, name=f"{name}_global")
    else:
        box = AttentionLSTMLocator(
            lstm_units, min_size=min_box, carry_state=carry_state, inference_mode=inference_mode,
            dtype="float32", name="locator",
        )(pooled)
        crop = FeatureCrop(crop_size, name="feature_crop")([fmap, box])
        local = keras.layers.GlobalAveragePooling2D(name="local_embedding")(crop)
        p_local, _ = DEXHead(num_classes, age_min=age_min, dtype="float32", name="local_head")(local)
        _, age = GlobalLocalFusion(local_weight, age_min=age_min, dtype="float32", name="fusion")([p_global, p_local])
        outputs = {"age": age, "age_probs_global": p_global, "age_probs_local": p_local}
        model = keras.Model(inputs, outputs, name=name)
    if init_from:
        copied = copy_matching_weights(model, init_from)
        if backbone.name not in copied:
            raise ValueError(
                f"init_from={init_from!r} has no layer {backbone.name!r} with matching weights; "
                f"copied only {copied}. Stage 1 must use the same backbone and image size."
            )
    if freeze_backbone:
        backbone.trainable = False
        model.get_layer("dex_head").trainable = False
    return model


def copy_matching_weights(model, source):
    """Copy the weights of every layer of `source` (a model or a `.keras`
    path) into the layer of `model` with the same name and weight shapes.

    Returns:
        The names of the layers copied.
    """
    if not isinstance(source, keras.Model):
        path = pathlib.Path(source)
        if not path.exists():
            raise FileNotFoundError(f"init_from: no such file {str(path)!r}")
        source = keras.saving.load_model(path, safe_mode=True, compile=False)
    by_name = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in model.layers:
        src = by_name.get(layer.name)
        if src is None or not layer.weights or len(src.weights) != len(layer.weights):
            continue
        if all(tuple(a.shape) == tuple(b.shape) for a, b in zip(src.weights, layer.weights)):
            layer.set_weights(src.get_weights())
            copied.append(layer.name)
    return copied


# ----- registered builders ------------------------------------------------------


@register("ror34_dex", paper=PAPER, description="RoR-34 (middle + root shortcuts) + DEX head (AL paper's plain RoR)")
def ror34_dex(
    input_shape=(64, 64, 3), num_classes=101, age_min=0, middle_shortcuts=True, root_shortcut=True,
    stochastic_depth=0.0, dropout=0.0, small_input=False,
):
    """RoR-34 + DEX head: the stage-1 model of `al_ror34`.

    Args: input_shape, num_classes, age_min; middle_shortcuts, root_shortcut,
    stochastic_depth, small_input (see `ror_backbone`); dropout before the head.
    """
    backbone = ror_backbone(
        input_shape, middle_shortcuts=middle_shortcuts, root_shortcut=root_shortcut,
        stochastic_depth=stochastic_depth, small_input=small_input,
    )
    return age_model(
        backbone, input_shape=input_shape, head="dex", num_classes=num_classes, age_min=age_min,
        dropout=dropout, name="ror34_dex",
    )


@register("al_ror34", paper=PAPER, description="AL-RoR-34: RoR-34 + attention-LSTM local head (Eq. 5 fusion, DEX)")
def al_ror34(
    input_shape=(64, 64, 3), num_classes=101, age_min=0, middle_shortcuts=True, root_shortcut=True,
    stochastic_depth=0.0, small_input=False, **kwargs,
):
    """AL-RoR-34 (backbone arguments of `ror_backbone`; kwargs of `al_model`:
    init_from, freeze_backbone, global_only, ...)."""
    backbone = ror_backbone(
        input_shape, middle_shortcuts=middle_shortcuts, root_shortcut=root_shortcut,
        stochastic_depth=stochastic_depth, small_input=small_input,
    )
    return al_model(backbone, input_shape=input_shape, num_classes=num_classes, age_min=age_min,
                    name="al_ror34", **kwargs)


@register("al_resnet34", paper=PAPER, description="AL-ResNet-34: ResNet-34 + attention-LSTM local head")
def al_resnet34(input_shape=(64, 64, 3), num_classes=101, age_min=0, **kwargs):
    """AL-ResNet-34; stage 1 is `resnet34_dex` (kwargs of `al_model`)."""
    backbone = resnet_backbone(34, input_shape)
    return al_model(backbone, input_shape=input_shape, num_classes=num_classes, age_min=age_min,
                    name="al_resnet34", **kwargs)


@register("al_resnet152", paper=PAPER, description="AL-ResNet-152: ResNet152V2 + attention-LSTM local head")
def al_resnet152(input_shape=(64, 64, 3), num_classes=101, age_min=0, pretrained=False, **kwargs):
    """AL-ResNet-152 (ResNet152V2 backbone; `pretrained` needs internet);
    stage 1: `al_resnet152` with `global_only=True` (kwargs of `al_model`)."""
    backbone = resnet152_backbone(input_shape, pretrained=pretrained)
    return al_model(backbone, input_shape=input_shape, num_classes=num_classes, age_min=age_min,
                    name="al_resnet152", **kwargs)
