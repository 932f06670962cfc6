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
`group_targets`), `age` (years, SmoothL1 loss).

How the age head combines its two parts (the paper's "label division",
Fig. 8, states the decomposition but not the formula; this is our reading):
the groups are the intervals [lo_g, hi_g) between consecutive `group_edges`
(the first starting at the dataset's youngest age, the last ending at its
oldest); the classifier gives p_g, the regressor gives one position
t_g = sigmoid(z_g) in (0, 1) per group, and

    age = sum_g p_g * (lo_g + t_g * (hi_g - lo_g)),

the expected age over groups of "group start + regressed offset inside the
group". It stays inside the age range, and the age loss trains both the
regressor and (through p_g) the classifier, which the group cross-entropy
also supervises.

Helpers for the notebook: `attention_modules`, `learned_gammas`,
`attention_maps`, `plot_attention_maps`, `plot_gammas`, `parameter_counts`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from agekeras.layers import GatedResidualAttention
from agekeras.layers.soft_mask_branch import residual_unit
from agekeras.losses import SmoothL1
from agekeras.models.registry import register

DECADES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
"""Default age-group edges: 0-9, 10-19, ..., 80-89, 90+ (10 groups)."""

ATTENTION_STAGES = {56: (1, 1, 1), 92: (1, 2, 3)}
"""Attention modules per stage (Wang et al., 2017, Table 2)."""

MASK_DEPTHS = (3, 2, 1)
"""Max-pooling levels of the soft mask branch per stage (56, 28, 14 px at 224 px input)."""

PAPER_PARAMS = 33_000_000
"""Trainable parameters GRA_Net reports ("about 33M")."""


@keras.saving.register_keras_serializable(package="agekeras")
class GroupedAgeHead(keras.layers.Layer):
    """Age-group classifier + per-group exact-age regressor -> (group_probs, age).

    See the module docstring for the formula. Group g covers
    [lo_g, hi_g) with lo = [a0, e_1, ..., e_{G-1}], hi = [e_1, ..., e_{G-1}, a1],
    a0 = min(age_min, e_1 - 1) and a1 = max(age_max, e_{G-1} + 1).

    Args:
        group_edges: increasing ages where a new group starts (G - 1 edges
            for G groups).
        age_min, age_max: youngest and oldest age of the data.

    Call arguments:
        inputs: features `(batch, d)`.

    Returns:
        `(group_probs (batch, G), age (batch,))`.
    """

    def __init__(self, group_edges=DECADES, age_min=0, age_max=100, **kwargs):
        super().__init__(**kwargs)
        edges = [float(e) for e in group_edges]
        if not edges or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"group_edges must be a non-empty increasing list; got {group_edges!r}.")
        self.group_edges = edges
        self.age_min = float(age_min)
        self.age_max = float(age_max)
        lo = [min(self.age_min, edges[0] - 1.0)] + edges
        hi = edges + [max(self.age_max, edges[-1] + 1.0)]
        self.lower = np.asarray(lo, "float32")
        self.width = np.asarray(hi, "float32") - self.lower

    @property
    def num_groups(self):
        return len(self.group_edges) + 1

    def build(self, input_shape):
        d, g = input_shape[-1], self.num_groups
        self.cls_kernel = self.add_weight(name="cls_kernel", shape=(d, g), initializer="glorot_uniform")
        self.cls_bias = self.add_weight(name="cls_bias", shape=(g,), initializer="zeros")
        self.reg_kernel = self.add_weight(name="reg_kernel", shape=(d, g), initializer="glorot_uniform")
        self.reg_bias = self.add_weight(name="reg_bias", shape=(g,), initializer="zeros")

    def call(self, inputs):
        probs = ops.softmax(ops.matmul(inputs, self.cls_kernel) + self.cls_bias, axis=-1)
        position = ops.sigmoid(ops.matmul(inputs, self.reg_kernel) + self.reg_bias)
        ages = ops.convert_to_tensor(self.lower, probs.dtype) + position * ops.convert_to_tensor(
            self.width, probs.dtype
        )
        return probs, ops.sum(probs * ages, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_groups,), tuple(input_shape[:-1])

    def get_config(self):
        config = super().get_config()
        config.update({"group_edges": self.group_edges, "age_min": self.age_min, "age_max": self.age_max})
        return config


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
        x = keras.layers.BatchNormalization(name="stem_bn")(x)
        x = keras.layers.ReLU(name="stem_relu")(x)
        return keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    if kind == "small":
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                kernel_initializer=init, name="stem_conv")(x)
        x = keras.layers.BatchNormalization(name="stem_bn")(x)
        return keras.layers.ReLU(name="stem_relu")(x)
    raise ValueError(f"stem must be 'imagenet' or 'small'; got {kind!r}.")


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
    stem="imagenet",
    kernel_initializer="he_normal",
):
    """The Attention-56/92 body: `(B, H, W, 3)` scaled images -> `(B, h, w, 32 * base_filters)`.

    Stem (ImageNet: 7x7/2 conv + 3x3/2 max-pool; "small": one 3x3/1 conv,
    for tiny inputs), then three stages of [residual unit (stride 2 except
    the first) + attention modules] with 4, 8, 16 x `base_filters` channels
    and mask depths 3, 2, 1, and a last stage of three units with 32 x
    `base_filters` channels (the first with stride 2), as in Table 2 of the
    Residual Attention Network paper.
    """
    if depth not in ATTENTION_STAGES:
        raise ValueError(f"depth must be one of {sorted(ATTENTION_STAGES)}; got {depth!r}.")

    def make_unit(filters, strides, name):
        return residual_unit(unit, filters, strides, cardinality, kernel_initializer, name=name)

    x = _stem(x, stem, base_filters, kernel_initializer)
    for s, (n_modules, mask_depth) in enumerate(zip(ATTENTION_STAGES[depth], MASK_DEPTHS)):
        x = make_unit(base_filters * 4 * 2**s, 1 if s == 0 else 2, f"stage{s + 1}_unit")(x)
        for m in range(n_modules):
            x = GatedResidualAttention(
                mask_depth=mask_depth,
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
        x = keras.layers.BatchNormalization(name="final_bn")(x)
        x = keras.layers.ReLU(name="final_relu")(x)
    return x


def _build(name, input_shape, num_classes, age_min, group_edges, dropout, **body):
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3); got {input_shape}.")
    if min(input_shape[:2]) < 32:
        raise ValueError(f"GRA_Net needs inputs of at least 32x32 px; got {input_shape}.")
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    x = attention_features(x, **body)
    x = keras.layers.GlobalAveragePooling2D(name="embedding")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    group_probs, age = GroupedAgeHead(
        group_edges, age_min=age_min, age_max=age_min + num_classes - 1, dtype="float32", name="age_head"
    )(x)
    gender = keras.layers.Dense(2, activation="softmax", dtype="float32", name="gender_head")(x)
    outputs = {"age": age, "group_probs": group_probs, "gender_probs": gender}
    return keras.Model(inputs, outputs, name=name)


@register(
    "gra_net",
    paper="gra_net",
    description="GRA_Net: gated residual attention (Attention-56/92) + gender, age-group and age heads",
    losses={"age": SmoothL1(name="age_smooth_l1")},
    targets=group_targets,
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
    stem="imagenet",
    dropout=0.0,
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
        stem: "imagenet" (7x7/2 conv + max-pool, the original) or "small".
        dropout: dropout before the heads.

    Returns:
        A model with outputs `age`, `group_probs`, `gender_probs`.
    """
    return _build(
        "gra_net", input_shape, num_classes, age_min, group_edges, dropout,
        depth=depth, base_filters=base_filters, unit=unit, cardinality=cardinality, attention=attention,
        gamma_mode=gamma_mode, gamma=gamma, fusion=fusion, stem=stem,
    )


@register(
    "residual_attention56",
    paper="gra_net",
    description="Residual Attention Network-56 ((1 + M) * F fusion, gamma fixed 0) with GRA_Net's heads",
    losses={"age": SmoothL1(name="age_smooth_l1")},
    targets=group_targets,
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
    stem="imagenet",
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


# ----- inspection helpers (notebook) ----------------------------------------------


def attention_modules(model):
    """The model's `GatedResidualAttention` layers, in network order."""
    return [layer for layer in model.layers if isinstance(layer, GatedResidualAttention)]


def learned_gammas(model):
    """`{module name: gamma}` for every attention module (learned or fixed)."""
    return {m.name: float(ops.convert_to_numpy(m.gamma_value())) for m in attention_modules(model)}


def attention_maps(model, images, reduce="mean"):
    """Soft masks K(X) of every attention module for `images`, at image size.

    Args:
        model: a `gra_net` / `residual_attention56` model.
        images: `(N, H, W, 3)` float images in [0, 255] (the model's input).
        reduce: "mean" (average over channels) or "max".

    Returns:
        `{module name: (N, H, W) array}`, each map min-max scaled to [0, 1]
        per image for display.
    """
    images = np.asarray(images, "float32")
    out = {}
    for module in attention_modules(model):
        features = keras.Model(model.input, module.input)(images, training=False)
        x = features
        for u in module.pre_units:
            x = u(x, training=False)
        mask = ops.convert_to_numpy(module.mask_branch(x, training=False))
        mask = mask.mean(-1) if reduce == "mean" else mask.max(-1)
        up = ops.convert_to_numpy(ops.image.resize(mask[..., None], images.shape[1:3], interpolation="bilinear"))[..., 0]
        lo = up.min(axis=(1, 2), keepdims=True)
        hi = up.max(axis=(1, 2), keepdims=True)
        out[module.name] = (up - lo) / np.maximum(hi - lo, 1e-8)
    return out


def plot_attention_maps(images, maps, titles=None, alpha=0.55, save_to=None):
    """Faces with each module's mask drawn over them (rows: faces, columns: modules).

    Args:
        images: `(N, H, W, 3)` in [0, 255].
        maps: `attention_maps(...)` output.
        titles: optional row titles (e.g. true ages).
        alpha: mask opacity.
        save_to: optional path of the saved figure.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    names = list(maps)
    n, cols = len(images), len(names) + 1
    fig, axes = plt.subplots(n, cols, figsize=(1.8 * cols, 1.8 * n), squeeze=False)
    for i in range(n):
        face = np.clip(images[i] / 255.0, 0, 1)
        axes[i, 0].imshow(face)
        axes[i, 0].set_title(titles[i] if titles is not None else "face", fontsize=8)
        for j, name in enumerate(names):
            axes[i, j + 1].imshow(face)
            axes[i, j + 1].imshow(maps[name][i], cmap="jet", alpha=alpha, vmin=0, vmax=1)
            if i == 0:
                axes[i, j + 1].set_title(name, fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    if save_to is not None:
        fig.savefig(save_to, dpi=120, bbox_inches="tight")
    return fig


def plot_gammas(gammas, save_to=None):
    """Bar chart of gamma per module for one or more models.

    Args:
        gammas: `{label: {module name: gamma}}` (from `learned_gammas`).
        save_to: optional path.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    labels = list(gammas)
    modules = list(next(iter(gammas.values())))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(modules), 3))
    for k, label in enumerate(labels):
        xs = np.arange(len(modules)) + k * width
        ax.bar(xs, [gammas[label].get(m, np.nan) for m in modules], width, label=label)
    ax.set_xticks(np.arange(len(modules)) + width * (len(labels) - 1) / 2, modules)
    ax.set_ylim(0, 1)
    ax.set_ylabel("gamma  (1 = no mask, 0 = full mask)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    if save_to is not None:
        fig.savefig(save_to, dpi=120, bbox_inches="tight")
    return fig


def parameter_counts(configs, input_shape=(32, 32, 3), num_classes=116, age_min=1):
    """Trainable parameters of several `gra_net` configurations.

    Args:
        configs: `{label: gra_net kwargs}`.
        input_shape, num_classes, age_min: as for `gra_net` (the parameter
            count does not depend on the input size).

    Returns:
        `{label: number of trainable parameters}`.
    """
    counts = {}
    for label, kwargs in configs.items():
        model = gra_net(input_shape=input_shape, num_classes=num_classes, age_min=age_min, **kwargs)
        counts[label] = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return counts
