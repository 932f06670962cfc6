"""GRA_Net experiments (notebook 05): the attention-type and gamma variants,
their results beside the numbers the report quotes, learned gammas, attention
masks over faces, the embedding for t-SNE, parameter counts and the gradient
each task's loss sends into the shared features.

The model builders are in `agekeras.models.gra_net`; notebook 05 wires the
model from `agekeras.layers` and trains its variants with
`agekeras.training.train(config, model=...)`. This module holds the plumbing
around them: the variants' settings, result tables, test predictions and the
inspection of trained models.

The report has no result table of its own (see `PRIOR_WORK`): it gives
settings only (32x32 RGB input, Nadam with lr 0.001, about 33 M trainable
parameters per model, a 2-way softmax gender model and an age-category
model). The numbers it quotes belong to prior methods of its literature
survey; we print them as such, never as GRA_Net's.

Reference: GRA_Net: A Deep Learning Model for Classification of Age and
Gender From Facial Images (Garain et al., IEEE Access 2021,
https://ieeexplore.ieee.org/document/9446083), read through its seminar
report (V. K., LBS College of Engineering, 2022).
"""

from __future__ import annotations

import re

import numpy as np

PAPER_PARAMS = 33_000_000
"""Trainable parameters per model that the report states ("33 million", Sec. 7.1)."""

RAN_PARAMS = {"RAN Attention-56 (ImageNet head)": 31.9e6, "RAN Attention-92 (ImageNet head)": 51.3e6}
"""Residual Attention Network (Wang et al., 2017, Table 2 / Table 6): parameters on
ImageNet, including a 2048 x 1000 classifier (2.05 M)."""

PAPER_SETTINGS = {"input": "32x32 RGB", "optimizer": "Nadam", "lr": 1e-3, "gender loss": "binary cross-entropy",
                  "age-category loss": "categorical cross-entropy", "params": PAPER_PARAMS}
"""Settings the report gives (Sec. 7.1); epochs, batch size, age-group edges and the
regression loss are not stated."""

_SURVEY = "report Sec. 2 (literature survey)"
_UNSTATED = "not stated in the report"
PRIOR_WORK = {
    "edge-density features (Karimi & Tashk 2012, inferred)": {
        "gender acc": 0.95, "age-group acc": 0.7931, "dataset": "FG-NET (3 groups: 1-12, 13-40, 41-80)"},
    "3 conv + 2 FC CNN (Levi & Hassner 2015, inferred)": {
        "gender acc": 0.868, "age-group acc": 0.507, "dataset": "Adience"},
    "two region-based CNNs (Srinivas et al. 2017, inferred)": {
        "gender acc": 0.88, "age-group acc": 0.38, "dataset": "WEAFD"},
    "hierarchy of CNNs (Smith & Chen 2018, inferred)": {"gender acc": 0.987, "MAE": 4.1, "dataset": "MORPH-II"},
    "Gabor-filter-input CNN (Hosseini et al. 2018, inferred)": {
        "gender acc": 0.88, "age-group acc": 0.61, "dataset": "not named (Adience, inferred)"},
    "LMCNN, depth-wise separable (Lee et al. 2018, inferred)": {
        "gender acc": 0.85, "age-group acc": 0.44, "dataset": "Adience"},
    "two-stage modified MobileNet (Savchenko 2019)": {"gender acc": 0.941, "MAE": 5.44, "dataset": "UTKFace"},
    "multi-task CNN, dynamic loss weights (Das & Dantcheva 2018, inferred)": {
        "gender acc": 0.9823, "age-group acc": 0.701, "dataset": "UTKFace"},
}
"""The numbers the report quotes for prior methods (Sec. 2; `004-results.md`).

The report seldom names the method beside a number: names marked "inferred"
are matched by dataset and description (its Fig. 1 table and reference list).
Every entry has table "report Sec. 2", protocol and pretraining not stated
(see `prior_work_rows`). None of these is a GRA_Net number: the report has none.
"""

UTKFACE_PRIOR_WORK = ("two-stage modified MobileNet (Savchenko 2019)",
                      "multi-task CNN, dynamic loss weights (Das & Dantcheva 2018, inferred)")
"""The quoted methods measured on UTKFace: the ones to set beside our UTKFace numbers."""

FIG4_VARIANTS = {
    "mixed, gamma learned": {"attention": "mixed"},
    "channel, gamma learned": {"attention": "channel"},
    "spatial, gamma learned": {"attention": "spatial"},
    "mixed, gamma fixed 0": {"attention": "mixed", "gamma_mode": "fixed", "gamma": 0.0},
    "mixed, gamma fixed 1": {"attention": "mixed", "gamma_mode": "fixed", "gamma": 1.0},
}
"""The three attention types (Eqs. 4-6) with learned gamma, and the two ends of the gate
that the report's Fig. 4 table describes (gamma = 0: full mask, gamma = 1: no mask)."""


def prior_work_rows(names=None):
    """`PRIOR_WORK` as rows for `agekeras.tables.results_table(..., settings=PRIOR_WORK_SETTINGS)`.

    Args:
        names: the methods to keep (default: all, in order).

    Returns:
        A list of dicts: method, its numbers, and the setting keys
        "table", "dataset", "protocol", "pretraining".
    """
    names = list(PRIOR_WORK) if names is None else list(names)
    return [{"method": n, **PRIOR_WORK[n], "table": _SURVEY, "protocol": _UNSTATED, "pretraining": _UNSTATED}
            for n in names]


PRIOR_WORK_SETTINGS = ("table", "dataset", "protocol", "pretraining")


def run_name(variant):
    """A folder name for a variant label: "mixed, gamma fixed 0" -> "mixed_gamma_fixed_0"
    (every run of characters other than letters and digits becomes one "_")."""
    return re.sub(r"[^A-Za-z0-9]+", "_", variant).strip("_")


def train_gra_net_variants(variants, run_dir, *, model="gra_net", model_kwargs=None, **config):
    """Train (or resume) one `agekeras.training.train` run per variant, each built by the registry.

    Notebook 05 writes this loop out (a model wired from `agekeras.layers`
    per variant, `train(config, model=...)`); this is the same experiment
    for scripts and tests.

    Args:
        variants: `{label: builder kwargs}` (e.g. `FIG4_VARIANTS`).
        run_dir: `fn(folder name) -> path` of each run (e.g. `C.run_dir`).
        model: registered model name.
        model_kwargs: builder kwargs shared by every variant (a variant's own
            kwargs win).
        **config: the other `TrainConfig` fields (dataset, image_size,
            epochs or time_budget, optimizer, ...).

    Returns:
        `{label: test metrics dict of train()}`, each with its run folder
        under "run_dir".
    """
    from agekeras.training import TrainConfig, train

    results = {}
    for label, kwargs in variants.items():
        out = run_dir(run_name(label))
        cfg = TrainConfig(model=model, out=str(out), model_kwargs={**(model_kwargs or {}), **kwargs}, **config)
        results[label] = {**train(cfg), "run_dir": str(out)}
    return results


def predicted_ages(run_dir, suffix=""):
    """`(true ages, predicted ages)` of a finished run's test faces, from its predictions file.

    Args:
        run_dir: the run directory.
        suffix: the predictions file's suffix (e.g. "_flip"), as `evaluate` names it.

    Returns:
        Two float arrays `(n,)`, in the order of the faces evaluated.
    """
    from agekeras.runs import RunDir

    rows = RunDir(run_dir).read_predictions(suffix)
    if not rows:
        raise FileNotFoundError(f"{run_dir}: no predictions{suffix}.csv (train or evaluate the run first)")
    return (np.array([float(r["age"]) for r in rows]), np.array([float(r["predicted"]) for r in rows]))


def variant_result_rows(results, **setting):
    """Rows for `results_table`: method, test MAE and gender accuracy, plus the setting keys."""
    return [{"method": label, "MAE": r.get("mae"), "gender acc": r.get("gender_accuracy"), **setting}
            for label, r in results.items()]


# ----- inspection -----------------------------------------------------------------


def attention_modules(model):
    """The model's `GatedResidualAttention` layers, in network order."""
    from agekeras.layers import GatedResidualAttention

    return [layer for layer in model.layers if isinstance(layer, GatedResidualAttention)]


def with_best_weights(model, run_dir):
    """`model` holding the weights of its run's best checkpoint (the one its test metrics score).

    `agekeras.training.train(config, model=model)` leaves the model it trained
    at its last epoch; this loads `best.keras` (or `last.keras` when there is no
    best) into that same object, without building a new model.

    Args:
        model: the model object the run trained (same architecture).
        run_dir: the run directory.

    Returns:
        `model`.
    """
    from agekeras.runs import RunDir

    model.load_weights(RunDir(run_dir).checkpoint())
    return model


def learned_gammas(model):
    """`{module name: gamma}` for every attention module (learned or fixed)."""
    from keras import ops

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
    from keras import ops

    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max'; got {reduce!r}.")
    images = np.asarray(images, "float32")
    out = {}
    for module, mask in _inference_masks(model, images):
        mask = mask.mean(-1) if reduce == "mean" else mask.max(-1)
        up = ops.convert_to_numpy(ops.image.resize(mask[..., None], images.shape[1:3], interpolation="bilinear"))[..., 0]
        lo = up.min(axis=(1, 2), keepdims=True)
        hi = up.max(axis=(1, 2), keepdims=True)
        out[module.name] = (up - lo) / np.maximum(hi - lo, 1e-8)
    return out


def _inference_masks(model, images):
    """Yields `(module, soft mask as NumPy)` for every attention module, in inference mode."""
    import keras
    from keras import ops

    for module in attention_modules(model):
        x = keras.Model(model.input, module.input)(images, training=False)
        for u in module.pre_units:
            x = u(x, training=False)
        yield module, ops.convert_to_numpy(module.mask_branch(x, training=False))


def mask_saturation(model, images, low=0.01, high=0.99):
    """Share of inference-mode soft-mask values below `low` or above `high`, per module.

    A saturated sigmoid passes (almost) no gradient and gates features fully
    on or off; at initialisation the share should be small.

    Args:
        model: a `gra_net` / `residual_attention56` model.
        images: `(N, H, W, 3)` float images in [0, 255].
        low, high: saturation thresholds.

    Returns:
        `{module name: share in [0, 1]}` (raw masks, before any display scaling).
    """
    out = {}
    for module, mask in _inference_masks(model, np.asarray(images, "float32")):
        out[module.name] = float(np.mean((mask < low) | (mask > high)))
    return out


def _embedding_layer(model):
    """The shared feature vector: the input of the model's `GroupedAgeHead` (found by type)."""
    from agekeras.layers import GroupedAgeHead

    heads = [layer for layer in model.layers if isinstance(layer, GroupedAgeHead)]
    if heads:
        return heads[0].input
    pools = [layer for layer in model.layers if layer.__class__.__name__ == "GlobalAveragePooling2D"]
    if not pools:
        raise ValueError(f"{model.name}: no GroupedAgeHead nor global pooling to take the embedding from.")
    return pools[-1].output


def shared_features(model, ds, image_size, batch_size=64):
    """The shared features (the heads' input) of every face of `ds`, for a t-SNE.

    Args:
        model: a trained `gra_net` model.
        ds: an `AgeDataset`.
        image_size: the model's input size.
        batch_size: prediction batch size.

    Returns:
        `(features (n, d), ages (n,))`, in the order of the faces read.
    """
    import keras

    from agekeras.evaluation import dataset_outputs

    extractor = keras.Model(model.input, {"features": _embedding_layer(model)})
    out, labels = dataset_outputs(extractor, ds, image_size, batch_size, with_labels=True)
    return out["features"], labels["age"]


def gra_net_parameter_counts(configs, input_shape=(32, 32, 3), num_classes=116, age_min=1):
    """Trainable parameters of several `gra_net` configurations.

    Counted with the ImageNet stem unless a configuration names its own, so
    that they compare with the Residual Attention Network's ImageNet counts
    (the small stem has 7,680 fewer weights at 64 base filters).

    Args:
        configs: `{label: gra_net kwargs}`.
        input_shape, num_classes, age_min: as for `gra_net` (the parameter
            count does not depend on the input size).

    Returns:
        `{label: number of trainable parameters}`.
    """
    from agekeras.models.gra_net import gra_net

    counts = {}
    for label, kwargs in configs.items():
        model = gra_net(input_shape=input_shape, num_classes=num_classes, age_min=age_min,
                        **{"stem": "imagenet", **kwargs})
        counts[label] = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return counts


def task_gradient_norms(model, images, targets, losses=None, loss_weights=None, training=True):
    """L2 norm of the gradient each task's (weighted) loss sends into the shared features.

    The shared features are the heads' input (the pooled embedding). A task
    whose norm is 10x the others' steers the shared network almost alone.

    Args:
        model: a multi-output agekeras model (TensorFlow backend).
        images: a batch `(B, H, W, 3)` in [0, 255].
        targets: `{output name: targets}` (as `make_targets` builds them).
        losses: `{output name: loss}`; default the registry's declared losses
            (`entry(model name).compile_args(model)`).
        loss_weights: `{output name: weight}`; default the registry's.
        training: BatchNorm mode; True (batch statistics) is what a
            training step sees.

    Returns:
        `{output name: gradient norm}` for every output with a loss and a target.
    """
    import keras
    import tensorflow as tf

    from agekeras.models import entry

    if losses is None or loss_weights is None:
        args = entry(model.name).compile_args(model)
        losses = args["loss"] if losses is None else losses
        loss_weights = (args["loss_weights"] or {}) if loss_weights is None else loss_weights
    probe = keras.Model(model.input, {"features": _embedding_layer(model), **model.output})
    x = tf.convert_to_tensor(np.asarray(images, "float32"))
    norms = {}
    for name, loss in losses.items():
        if name not in targets:
            continue
        with tf.GradientTape() as tape:
            out = probe(x, training=training)
            feats = out["features"]
            value = float(loss_weights.get(name, 1.0)) * loss(targets[name], out[name])
        grad = tape.gradient(value, feats)
        norms[name] = 0.0 if grad is None else float(tf.norm(grad))
    return norms


def plot_attention_maps(images, maps_by_model, titles=None, save_to=None):
    """Faces with the soft mask of each module of one or more models drawn over them.

    Args:
        images: `(N, H, W, 3)` in [0, 255].
        maps_by_model: `{model label: attention_maps(...)}`.
        titles: optional row titles (e.g. true ages).
        save_to: optional PNG path.

    Returns:
        The `Figure` (`agekeras.plots.plot_overlays`).
    """
    from agekeras import plots

    columns = {f"{label.split(',')[0]}: {module}": m for label, maps in maps_by_model.items() for module, m in maps.items()}
    return plots.plot_overlays(images, columns, titles=titles, save_to=save_to)
