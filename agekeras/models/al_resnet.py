"""AL-ResNets and AL-RoR: attention-LSTM fine-grained age estimation.

Zhang, Liu, Yuan, Guo, Gao, Zhao and Ma, "Fine-Grained Age Estimation in
the Wild with Attention LSTM Networks" (IEEE TCSVT 2019, arXiv:1805.10445).

A backbone (ResNet-34/152 or RoR-34) gives the last feature map F
(512 x 7 x 7 at 224 px). Two predictions are made from it:

- global: average-pool F -> FC -> softmax = P_global;
- local: the pooled global feature drives an attention LSTM
  (`AttentionLSTMLocator`, Eqs. 3-4) that outputs an age-sensitive box; the
  box is cropped out of F with a differentiable bilinear sampler
  (`FeatureCrop`), average pooled -> FC -> softmax = P_local.

They are combined as P_final = (P_global + 0.5 P_local) / 1.5 (Eq. 5,
renormalised) and the age is the DEX expectation sum_k P_final[k] (age_min + k).

Registered models (see `agekeras.models.available(paper="al_resnet")`):

| name | what |
|---|---|
| `ror34_dex` | plain RoR-34 (pre-activation, middle + root shortcuts) + DEX head |
| `al_resnet34` | keras-cv ResNet-34 + global and local heads (stage 1 = `resnet34_dex`) |
| `al_resnet152` | keras.applications ResNet152V2 + global and local heads |
| `al_ror34` | RoR-34 + global and local heads (stage 1 = `ror34_dex`) |

Outputs of the AL models: "age" (years, the DEX expectation of P_final),
"age_probs_global" and "age_probs_local" (each trained with cross-entropy on
the age class). P_final (`final_probs`) and the located boxes
(`inspection_model`) are not outputs, because Keras wants a target for every
output of a dict model, and they carry no loss.

**Two-stage training** (as the paper): stage 1 trains the backbone and the
global head: that is the plain model (`resnet34_dex` / `ror34_dex`, or any
AL builder with `global_only=True`; the layer names match). Stage 2 builds
the AL model with `init_from=<stage-1 .keras>` and `freeze_backbone=True`:
the backbone and the global head are copied and frozen, and only the LSTM,
the location layer and the local head learn (the global cross-entropy is
then a constant). From the command line:

    python -m agekeras train --model ror34_dex ... --out runs/s1
    python -m agekeras train --model al_ror34 ... --out runs/s2 \\
        --model-arg init_from=runs/s1/best.keras --model-arg freeze_backbone=true

and from Python `two_stage_train(TrainConfig(...), "ror34_dex", "al_ror34")`.
Without `init_from` the AL model trains end to end (both cross-entropies).

The helpers below import `agekeras.training` / `agekeras.metrics` lazily,
inside the functions, so that importing the models package stays
independent of training.
"""

from __future__ import annotations

import dataclasses
import pathlib

import keras
import numpy as np
from keras import ops

from agekeras.layers import AttentionLSTMLocator, DEXHead, FeatureCrop, RoRGroup
from agekeras.models.baselines import age_model, resnet_backbone
from agekeras.models.registry import register

PAPER = "al_resnet"
ROR34_BLOCKS = (3, 4, 6, 3)
FILTERS = (64, 128, 256, 512)


# ----- layers -----------------------------------------------------------------


@keras.saving.register_keras_serializable(package="agekeras")
class GlobalLocalFusion(keras.layers.Layer):
    """Eq. 5 of the AL paper: P_final = P_global + lambda * P_local,
    renormalised to sum to one, plus the DEX expectation of P_final.

    Args:
        local_weight: lambda (0.5 in the paper).
        age_min: the age of class 0 (class k is age `age_min + k`).

    Call arguments:
        inputs: `[p_global, p_local]`, each `(batch, K)` probabilities.

    Returns:
        `(p_final (batch, K), age (batch,))`.
    """

    def __init__(self, local_weight=0.5, age_min=0, **kwargs):
        super().__init__(**kwargs)
        if float(local_weight) < 0:
            raise ValueError(f"`local_weight` must be >= 0, got {local_weight}.")
        self.local_weight = float(local_weight)
        self.age_min = age_min

    def call(self, inputs):
        p_global, p_local = inputs
        p = p_global + self.local_weight * p_local
        p = p / ops.sum(p, axis=-1, keepdims=True)
        ages = ops.arange(p.shape[-1], dtype=p.dtype) + ops.cast(self.age_min, p.dtype)
        return p, ops.sum(p * ages, axis=-1)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[0])
        return shape, shape[:-1]

    def get_config(self):
        return {**super().get_config(), "local_weight": self.local_weight, "age_min": self.age_min}


# ----- backbones ---------------------------------------------------------------


def ror_backbone(
    input_shape,
    blocks=ROR34_BLOCKS,
    filters=FILTERS,
    middle_shortcuts=True,
    root_shortcut=True,
    stochastic_depth=0.0,
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
        name: model name.
    """
    inputs = keras.Input(tuple(input_shape), name="ror_input")
    x = keras.layers.Conv2D(filters[0], 7, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    root_input = x
    total = sum(blocks)
    done = 0
    for i, (f, n) in enumerate(zip(filters, blocks)):
        rates = [stochastic_depth * (done + j + 1) / total for j in range(n)]
        done += n
        x = RoRGroup(
            f, n, stride=1 if i == 0 else 2, middle_shortcut=middle_shortcuts, drop_rates=rates, name=f"group{i + 1}"
        )(x)
    if root_shortcut:
        stride = 2 ** (len(blocks) - 1)
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
    min_box=0.25,
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
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
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
    stochastic_depth=0.0, dropout=0.0,
):
    """RoR-34 + DEX head: the stage-1 model of `al_ror34`.

    Args: input_shape, num_classes, age_min; middle_shortcuts, root_shortcut,
    stochastic_depth (see `ror_backbone`); dropout before the head.
    """
    backbone = ror_backbone(
        input_shape, middle_shortcuts=middle_shortcuts, root_shortcut=root_shortcut,
        stochastic_depth=stochastic_depth,
    )
    return age_model(
        backbone, input_shape=input_shape, head="dex", num_classes=num_classes, age_min=age_min,
        dropout=dropout, name="ror34_dex",
    )


@register("al_ror34", paper=PAPER, description="AL-RoR-34: RoR-34 + attention-LSTM local head (Eq. 5 fusion, DEX)")
def al_ror34(
    input_shape=(64, 64, 3), num_classes=101, age_min=0, middle_shortcuts=True, root_shortcut=True,
    stochastic_depth=0.0, **kwargs,
):
    """AL-RoR-34 (kwargs of `al_model`: init_from, freeze_backbone, global_only, ...)."""
    backbone = ror_backbone(
        input_shape, middle_shortcuts=middle_shortcuts, root_shortcut=root_shortcut,
        stochastic_depth=stochastic_depth,
    )
    return al_model(backbone, input_shape=input_shape, num_classes=num_classes, age_min=age_min,
                    name="al_ror34", **kwargs)


@register("al_resnet34", paper=PAPER, description="AL-ResNet-34: keras-cv ResNet-34 + attention-LSTM local head")
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


# ----- helpers for notebooks -------------------------------------------------------


def locator_layer(model):
    """The model's `AttentionLSTMLocator`."""
    return model.get_layer("locator")


def set_inference_mode(model, mode):
    """Switch the locator between "sequence" and "independent" inference
    (see `AttentionLSTMLocator`) and drop the compiled predict function."""
    layer = locator_layer(model)
    if mode not in ("sequence", "independent"):
        raise ValueError(f"mode must be 'sequence' or 'independent', got {mode!r}")
    layer.inference_mode = mode
    model.predict_function = None
    return model


def two_stage_train(config, stage1_model, stage2_model, *, stage1=None, stage2=None):
    """Train stage 1 (backbone + global head), then stage 2 (frozen backbone;
    LSTM, locator and local head), each with `agekeras.training.train`.

    Args:
        config: a `TrainConfig`; its `out` becomes the parent of the two runs
            (`out/stage1`, `out/stage2`).
        stage1_model: e.g. "ror34_dex" or "resnet34_dex".
        stage2_model: e.g. "al_ror34".
        stage1, stage2: dicts of `TrainConfig` fields overriding `config` for
            one stage (e.g. `{"epochs": 2, "lr": 1e-4}`).

    Returns:
        `(metrics1, metrics2, run_dir1, run_dir2)`.
    """
    from agekeras.training import train

    out = pathlib.Path(config.out)
    c1 = dataclasses.replace(config, model=stage1_model, out=str(out / "stage1"), **(stage1 or {}))
    m1 = train(c1)
    kwargs = dict(config.model_kwargs)
    kwargs.update(init_from=str(out / "stage1" / "best.keras"), freeze_backbone=True)
    c2 = dataclasses.replace(config, model=stage2_model, out=str(out / "stage2"), model_kwargs=kwargs,
                             **(stage2 or {}))
    m2 = train(c2)
    return m1, m2, c1.out, c2.out


def inspection_model(model):
    """A model with the same input and the outputs of `model` plus "box"
    (the located box, relative (x, y, w, h)) and "probs_final" (Eq. 5)."""
    fusion = model.get_layer("fusion")
    outputs = dict(model.output)
    outputs["box"] = locator_layer(model).output
    outputs["probs_final"] = fusion.output[0]
    return keras.Model(model.inputs, outputs, name=f"{model.name}_inspect")


def final_probs(outputs, local_weight=0.5):
    """Eq. 5 in NumPy: (P_global + w P_local) / (1 + w), from an output dict."""
    p = np.asarray(outputs["age_probs_global"], "float64") + local_weight * np.asarray(
        outputs["age_probs_local"], "float64"
    )
    return p / p.sum(-1, keepdims=True)


def predict_outputs(model, images, batch_size=64):
    """The outputs of `inspection_model(model)` (or of a plain model) on an
    image array `(n, H, W, 3)` in [0, 255], in order."""
    if "age_probs_local" in model.output:
        model = inspection_model(model)
    return model.predict(np.asarray(images, "float32"), batch_size=batch_size, verbose=0)


def ablation_rows(outputs, true_age, age_min, *, local_weight=0.5, setting=None):
    """Table I of the paper on our data: global only, local only, both (Eq. 5).

    Args:
        outputs: the AL model's output dict (NumPy), e.g. from
            `agekeras.training.predict` or `predict_outputs`.
        true_age: the true ages.
        age_min: the age of class 0.
        local_weight: lambda of Eq. 5.
        setting: dict merged into every row (e.g. dataset, size).

    Returns:
        A list of result rows for `agekeras.tables.results_table`: MAE, RMSE,
        and the Adience-style exact and 1-off group accuracies of the ages
        mapped to Adience's eight groups (`agekeras.metrics.age_to_group`).
    """
    from agekeras import metrics as M

    true_age = np.asarray(true_age, "float64")
    rows = []
    variants = (
        ("global only", np.asarray(outputs["age_probs_global"], "float64")),
        ("local only", np.asarray(outputs["age_probs_local"], "float64")),
        ("global + local (Eq. 5)", final_probs(outputs, local_weight)),
    )
    for label, probs in variants:
        pred = probs @ (np.arange(probs.shape[1]) + age_min)
        rows.append({"method": label, **(setting or {}), "MAE": M.mae(true_age, pred),
                     "RMSE": M.rmse(true_age, pred), **group_metrics(true_age, pred)})
    return rows


def group_metrics(true_age, pred_age):
    """Adience-style exact and 1-off accuracy after mapping both ages to
    Adience's eight groups (nearest group; `agekeras.metrics.age_to_group`)."""
    from agekeras import metrics as M

    # Predictions are rounded to 0.01 year first: an age exactly between two
    # groups (e.g. 3.0) then maps the same way whether it comes from memory
    # or from predictions.csv (3 decimals).
    gt, gp = M.age_to_group(true_age), M.age_to_group(np.round(np.asarray(pred_age, "float64"), 2))
    return {"group acc": M.group_accuracy(gt, gp), "1-off": M.group_accuracy(gt, gp, off=1)}


def ten_crops(images, size):
    """The ten crops of the paper's test-time augmentation: four corners and
    the centre, and the same five of the mirrored images.

    Args:
        images: `(n, H, W, 3)` with H, W >= size.
        size: crop side.

    Returns:
        A list of ten `(n, size, size, 3)` arrays.
    """
    images = np.asarray(images)
    n, h, w = images.shape[:3]
    if h < size or w < size:
        raise ValueError(f"ten_crops needs images of at least {size}x{size}, got {h}x{w}")
    top, left = (h - size) // 2, (w - size) // 2
    offsets = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), (top, left)]
    crops = [images[:, y:y + size, x:x + size] for y, x in offsets]
    return crops + [c[:, :, ::-1] for c in crops]


def ten_crop_predict(model, images, age_min, batch_size=64):
    """Average P_final (or a plain model's "age_probs") over the ten crops.

    Each crop set is one pass in the images' order (the LSTM sees the same
    sequence order for every crop).

    Returns:
        `(probs (n, K), ages (n,))`.
    """
    size = model.input_shape[1]
    plain = "age_probs_local" not in model.output
    weight = None if plain else model.get_layer("fusion").local_weight

    def probs_of(crop):
        out = model.predict(np.asarray(crop, "float32"), batch_size=batch_size, verbose=0)
        return np.asarray(out["age_probs"]) if plain else final_probs(out, weight)

    probs = np.mean([probs_of(c) for c in ten_crops(images, size)], axis=0)
    return probs, probs @ (np.arange(probs.shape[1]) + age_min)


def first_images(ds, image_size, n=16):
    """The first `n` faces of `ds` as a float32 array `(n, size, size, 3)` in
    [0, 255], through the evaluation pipeline (no augmentation)."""
    from agekeras.datasets.pipeline import make_tf_dataset

    n = min(int(n), len(ds))
    data = make_tf_dataset(ds.subset(np.arange(n)), image_size=image_size, batch_size=n, training=False,
                           augment=False)
    images, _ = next(iter(data))
    return np.asarray(images)


def al_outputs(model, ds, image_size, batch_size=64):
    """Every output of `inspection_model(model)` (boxes and P_final included)
    on every face of `ds`, in order (NumPy dict)."""
    from agekeras.training import predict

    return predict(inspection_model(model), ds, image_size, batch_size)


def no_paper_numbers(methods, **setting):
    """`results_table(paper=...)` entries for methods whose paper numbers we
    could not read offline: the paper's setting is shown, its numbers as "—"."""
    return {m: dict(setting) for m in methods}


def run_row(run_dir, method, setting=None):
    """A results row from a finished run directory: MAE, RMSE (metrics.json),
    Adience-style group accuracy and 1-off (from predictions.csv, ages mapped
    to Adience's groups) and the epsilon-error when the data had one."""
    import csv
    import json

    run_dir = pathlib.Path(run_dir)
    result = json.loads((run_dir / "metrics.json").read_text())
    with open(run_dir / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    true = np.array([float(r["age"]) for r in rows])
    pred = np.array([float(r["predicted"]) for r in rows])
    row = {"method": method, **(setting or {}), "MAE": result["mae"], "RMSE": result["rmse"],
           **group_metrics(true, pred)}
    if "epsilon_error" in result:
        row["epsilon-error"] = result["epsilon_error"]
    return row
