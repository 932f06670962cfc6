"""GRA_Net (Garain et al., 2021): a Residual Attention Network whose
attention modules fuse mask and trunk through a gate (Eq. 3), with a gender
head and an age head split into an age-group classifier and an exact-age
regressor.

Registered models:

- `gra_net`: Attention-56 or -92 of `GatedResidualAttention` modules; the
  attention type, the gamma mode (fixed or learned, and its value) and the
  unit type (pre-activation or ResNeXt) are arguments.
- `residual_attention56`: the Residual Attention Network baseline, Attention-56
  with (1 + M) * F fusion (gamma fixed at 0, `fusion="residual"`), same heads.

Outputs (see `agekeras.models.outputs`): `gender_probs` (2-way softmax,
cross-entropy, unknown gender ignored), `group_probs` (softmax over the age
groups, cross-entropy on the group index computed from the age by
`group_targets`), `age` (years, SmoothL1 loss with weight 0.1: `LOSS_WEIGHTS`).

The age head is `agekeras.layers.GroupedAgeHead` (our reading of the report's
"label division": the expected age over groups of group start + regressed
offset inside the group).

The training of the paper's variants, attention maps, learned gammas,
parameter counts and the report's numbers live in `agekeras.experiments.gra_net`.

Reference: GRA_Net: A Deep Learning Model for Classification of Age and
Gender From Facial Images (Garain et al., IEEE Access 2021,
https://ieeexplore.ieee.org/document/9446083); Residual Attention Network for
Image Classification (Wang et al., CVPR 2017, https://arxiv.org/abs/1704.06904).
"""

from __future__ import annotations

import keras

from agekeras.layers import GatedResidualAttention, GroupedAgeHead
from agekeras.layers.grouped_age_head import DECADES
from agekeras.layers.pre_act_residual_unit import batch_norm
from agekeras.layers.soft_mask_branch import residual_unit
from agekeras.losses import SmoothL1
from agekeras.models.backbones import scale_inputs
from agekeras.models.registry import register

TASKS = ("joint", "gender", "age_group", "age")
"""What a `gra_net` model is trained for (see `gra_net`)."""

LOSS_WEIGHTS = {"age": 0.1, "group_probs": 1.0, "gender_probs": 1.0}
"""Registry loss weights: the age output is in years, so at initialisation its SmoothL1
loss sends a gradient ~10x larger into the shared features than the group and gender
cross-entropies (2.5 vs 0.24 and 0.23 at Attention-56, 32 px, batch 32); 0.1 brings the
three to the same order (`agekeras.experiments.gra_net.task_gradient_norms`). Keras
wants one weight per loss, so every output is named."""

SMALL_STEM_BELOW = 64
"""`stem="auto"` uses the small stem for inputs smaller than this (the report's 32 px)."""

ATTENTION_STAGES = {56: (1, 1, 1), 92: (1, 2, 3)}
"""Attention modules per stage (Wang et al., 2017, Table 2)."""

MASK_DEPTHS = (3, 2, 1)
"""Max-pooling levels of the soft mask branch per stage (56, 28, 14 px at 224 px input)."""

NUM_PRE, NUM_TRUNK = 1, 2
"""Units of every attention module: p before the split (and p after the fusion), t on the trunk branch
(the Residual Attention Network's p = 1, t = 2)."""


def group_index(age, group_edges=DECADES):
    """Age -> group index = number of edges <= age (tf ops; NumPy input works too)."""
    import tensorflow as tf  # tf.data runs TensorFlow whatever the Keras backend

    age = tf.cast(tf.reshape(age, (-1, 1)), tf.float32)
    edges = tf.constant([[float(e) for e in group_edges]], tf.float32)
    return tf.reduce_sum(tf.cast(age >= edges, tf.int32), axis=-1)


def group_targets(labels, group_edges=DECADES, **_):
    """The registry's `targets=` hook: `{"group_probs": group index}` from `labels["age"]`."""
    return {"group_probs": group_index(labels["age"], group_edges)}


def _stem(x, kind, filters, init):
    if kind == "imagenet":
        x = keras.layers.Conv2D(filters, 7, strides=2, padding="same", use_bias=False,
                                kernel_initializer=init, name="stem_conv")(x)
        x = batch_norm(None, "stem_bn")(x)
        x = keras.layers.ReLU(name="stem_relu")(x)
        return keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    if kind == "small":
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                kernel_initializer=init, name="stem_conv")(x)
        x = batch_norm(None, "stem_bn")(x)
        return keras.layers.ReLU(name="stem_relu")(x)
    raise ValueError(f"stem must be 'auto', 'imagenet' or 'small'; got {kind!r}.")


def attention_features(
    x,
    *,
    depth=56,
    base_filters=64,
    unit="preact",
    cardinality=32,
    attention="mixed",
    gamma_mode="learned",
    gamma=0.5,
    fusion="gated",
    stem="small",
    kernel_initializer="he_normal",
):
    """The Attention-56/92 body: `(B, H, W, 3)` scaled images -> `(B, h, w, 32 * base_filters)`.

    Stem (ImageNet: 7x7/2 conv + 3x3/2 max-pool; "small": one 3x3/1 conv,
    for tiny inputs), then three stages of [residual unit (stride 2 except
    the first) + attention modules] with 4, 8, 16 x `base_filters` channels
    and mask depths 3, 2, 1, and a last stage of three units with 32 x
    `base_filters` channels (the first with stride 2), as in Table 2 of the
    Residual Attention Network paper.

    `attention="none"` keeps every module's trunk path (its `NUM_PRE` +
    `NUM_TRUNK` + `NUM_PRE` residual units) and drops its soft mask branch and
    gate: the same network without attention, the baseline of the
    gated-attention ablation.
    """
    if depth not in ATTENTION_STAGES:
        raise ValueError(f"depth must be one of {sorted(ATTENTION_STAGES)}; got {depth!r}.")

    def make_unit(filters, strides, name):
        return residual_unit(unit, filters, strides, cardinality, kernel_initializer, name=name)

    x = _stem(x, stem, base_filters, kernel_initializer)
    for s, (n_modules, mask_depth) in enumerate(zip(ATTENTION_STAGES[depth], MASK_DEPTHS)):
        x = make_unit(base_filters * 4 * 2**s, 1 if s == 0 else 2, f"stage{s + 1}_unit")(x)
        for m in range(n_modules):
            if attention == "none":  # the module's trunk path alone: p + t + p units, no mask, no gate
                for k in range(2 * NUM_PRE + NUM_TRUNK):
                    x = make_unit(base_filters * 4 * 2**s, 1, f"attention{s + 1}_{m + 1}_unit{k + 1}")(x)
                continue
            x = GatedResidualAttention(
                mask_depth=mask_depth,
                num_pre=NUM_PRE,
                num_trunk=NUM_TRUNK,
                unit=unit,
                cardinality=cardinality,
                attention=attention,
                gamma_mode=gamma_mode,
                gamma=gamma,
                fusion=fusion,
                kernel_initializer=kernel_initializer,
                name=f"attention{s + 1}_{m + 1}",
            )(x)
    for i in range(3):
        x = make_unit(base_filters * 32, 2 if i == 0 else 1, f"stage4_unit{i + 1}")(x)
    if unit == "preact":  # pre-activation units leave the last map un-normalised
        x = batch_norm(None, "final_bn")(x)
        x = keras.layers.ReLU(name="final_relu")(x)
    return x


def resolve_stem(stem, input_shape):
    """"auto" -> "small" below `SMALL_STEM_BELOW` px, else "imagenet"; other values unchanged."""
    if stem == "auto":
        return "small" if min(input_shape[:2]) < SMALL_STEM_BELOW else "imagenet"
    return stem


# task -> (outputs, GroupedAgeHead.feature_gradient)
_TASK_HEADS = {
    "joint": (("age", "group_probs", "gender_probs"), "both"),
    "gender": (("age", "gender_probs"), "none"),
    "age_group": (("age", "group_probs"), "group"),
    "age": (("age",), "both"),
}


def _build(name, input_shape, num_classes, age_min, group_edges, dropout, task="joint", **body):
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3); got {input_shape}.")
    if min(input_shape[:2]) < 32:
        raise ValueError(f"GRA_Net needs inputs of at least 32x32 px; got {input_shape}.")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {task!r}.")
    names, feature_gradient = _TASK_HEADS[task]
    body["stem"] = resolve_stem(body.get("stem", "auto"), input_shape)
    inputs = keras.Input(input_shape, name="image")
    x = scale_inputs(inputs)
    x = attention_features(x, **body)
    x = keras.layers.GlobalAveragePooling2D(name="embedding")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    group_probs, age = GroupedAgeHead(
        group_edges, age_min=age_min, age_max=age_min + num_classes - 1, feature_gradient=feature_gradient,
        dtype="float32", name="age_head",
    )(x)
    outputs = {"age": age, "group_probs": group_probs}
    if "gender_probs" in names:
        outputs["gender_probs"] = keras.layers.Dense(2, activation="softmax", dtype="float32", name="gender_head")(x)
    return keras.Model(inputs, {k: outputs[k] for k in names}, name=name)


HEADS_TRAINING = {"paper": "gra_net", "losses": {"age": SmoothL1(name="age_smooth_l1")}, "loss_weights": LOSS_WEIGHTS,
                  "targets": group_targets}
"""How every network with GRA_Net's heads trains (registry fields): the smooth L1 on the age, `LOSS_WEIGHTS`,
the age-group targets."""


@register(
    "gra_net",
    description="GRA_Net: gated residual attention (Attention-56/92) + gender, age-group and age heads",
    **HEADS_TRAINING,
)
def gra_net(
    input_shape=(32, 32, 3),
    num_classes=101,
    age_min=0,
    depth=56,
    unit="preact",
    attention="mixed",
    gamma_mode="learned",
    gamma=0.5,
    fusion="gated",
    base_filters=64,
    cardinality=32,
    group_edges=DECADES,
    stem="auto",
    dropout=0.0,
    task="joint",
):
    """GRA_Net (Garain et al., 2021).

    Args:
        input_shape: `(H, W, 3)`, images in [0, 255]; the paper uses 32x32.
        num_classes, age_min: the data's ages are age_min..age_min+num_classes-1
            (they bound the first and last age group).
        depth: 56 or 92 (Attention-56 / Attention-92 module counts).
        unit: "preact" or "resnext" units in trunk and mask branches.
        attention: "mixed", "channel" or "spatial" (Eqs. 4-6).
        gamma_mode: "learned" (gamma = sigmoid of a free parameter, one per
            module, starting at `gamma`) or "fixed".
        gamma: initial or fixed gamma (Eq. 3): 1 = no mask, 0 = full mask.
        fusion: "gated" (Eq. 3) or "residual" (mask M = 1 + K).
        base_filters: stem width; stages have 4, 8, 16, 32 x this (64 in
            the paper).
        cardinality: groups of the ResNeXt units.
        group_edges: ages starting a new group (default decades).
        stem: "imagenet" (7x7/2 conv + max-pool, the Attention-56 original),
            "small" (one 3x3/1 conv) or "auto" (default): small below 64 px,
            so that at the report's 32 px the three attention stages run at
            32, 16 and 8 px instead of 8, 4 and 2 (where the depth-3 mask
            pools a 8x8 map down to 1x1).
        dropout: dropout before the heads.
        task: what the model learns. The report trains separate models: a
            gender model and an age-category model (33 M parameters each),
            and an exact-age regression model. "gender": outputs
            `gender_probs` and a probe `age` (its head reads the features
            through a stop-gradient, so only gender trains the network);
            "age_group": `group_probs` and a probe `age` decoded by the
            group head (only the group cross-entropy trains the network);
            "age": `age` only (exact age; the grouped head trained by the
            age loss). "joint" (default): all three heads on one network,
            our addition. Every model keeps an `age` output, which training
            monitors (`val_age_mae`) to keep the best checkpoint: for
            "gender" that is the probe's MAE, not the gender accuracy.

    Returns:
        A model with outputs `age` and, by task, `group_probs`, `gender_probs`.
    """
    return _build(
        "gra_net", input_shape, num_classes, age_min, group_edges, dropout, task=task,
        depth=depth, base_filters=base_filters, unit=unit, cardinality=cardinality, attention=attention,
        gamma_mode=gamma_mode, gamma=gamma, fusion=fusion, stem=stem,
    )


@register(
    "residual_attention56",
    description="Residual Attention Network-56 ((1 + M) * F fusion, gamma fixed 0) with GRA_Net's heads",
    **HEADS_TRAINING,
)
def residual_attention56(
    input_shape=(32, 32, 3),
    num_classes=101,
    age_min=0,
    unit="preact",
    attention="mixed",
    base_filters=64,
    cardinality=32,
    group_edges=DECADES,
    stem="auto",
    dropout=0.0,
):
    """Residual Attention Network (Attention-56) baseline: O = (1 + K(X)) * F(X).

    `GatedResidualAttention(fusion="residual", gamma_mode="fixed", gamma=0)`
    in every module; arguments as for `gra_net`.
    """
    return _build(
        "residual_attention56", input_shape, num_classes, age_min, group_edges, dropout,
        depth=56, base_filters=base_filters, unit=unit, cardinality=cardinality, attention=attention,
        gamma_mode="fixed", gamma=0.0, fusion="residual", stem=stem,
    )


@register(
    "gra_net_no_attention",
    description="GRA_Net's network without attention: every module's trunk units, no mask branch, no gate (ablation)",
    **HEADS_TRAINING,
)
def gra_net_no_attention(input_shape=(32, 32, 3), num_classes=101, age_min=0, group_edges=DECADES, dropout=0.0,
                         task="joint", **body):
    """GRA_Net without its attention: `attention_features(attention="none")`,
    the same stem, stages, units and heads, each attention module replaced by
    its trunk path; the baseline against which the gated residual attention
    is measured (arguments as for `gra_net`, less the attention's own)."""
    return _build("gra_net_no_attention", input_shape, num_classes, age_min, group_edges, dropout, task=task,
                  attention="none", **body)
