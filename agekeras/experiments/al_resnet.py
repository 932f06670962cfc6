"""AL-ResNets / AL-RoR experiments: the plumbing of notebook 02 (the notebook
wires the AL network and writes its two-stage training loop out itself).

- `two_stage_train`: the paper's two stages (backbone + global head, then
  the frozen backbone with the attention LSTM, locator and local head) for
  registered model names, in one call (scripts and tests).
- `stage_histories`: the two stages' histories on one epoch axis.
- `inspection_model`, `predict_al_outputs`, `al_outputs_on`: the outputs
  of an AL model plus the located box and P_final (Eq. 5).
- `embeddings_on`: the pooled global feature, for a t-SNE.
- `ablation_rows`: Table I of the paper (global only, local only, both) on
  our data; `run_row`: a results row from a finished run.
- `ten_crops`, `ten_crop_predict`: the paper's test-time augmentation.
- `PAPER_RESULTS`, `paper_numbers`: the paper's Tables I-VI, each number
  with its table, dataset, protocol and pretraining, for
  `agekeras.tables.results_table(rows, paper=...)`.
- `PAPER_SCHEDULES`, `paper_config`: the paper's optimiser and per-dataset
  epochs, learning rates and step schedule (Sec. IV-A), and which table
  each dataset belongs to.

Reference: Fine-Grained Age Estimation in the Wild with Attention LSTM
Networks (https://arxiv.org/abs/1805.10445).
"""

from __future__ import annotations

import dataclasses
import pathlib

import keras
import numpy as np

from agekeras import metrics as M
from agekeras.ages import expected_age
from agekeras.layers import AttentionLSTMLocator, GlobalLocalFusion
from agekeras.training import TrainConfig, train
from agekeras.evaluation import dataset_outputs
from agekeras.runs import RunDir

PAPER_TITLE = "Fine-Grained Age Estimation in the Wild with Attention LSTM Networks"
PAPER_URL = "https://arxiv.org/abs/1805.10445"

# ----- the paper's numbers ------------------------------------------------------------

_IMAGENET_IMDB = "ImageNet + IMDB-WIKI-101"
#: DEX (Rothe et al.) pre-trained on ImageNet and then on IMDB-WIKI itself, not on
#: the cleaned 101-class IMDB-WIKI-101 of the AL paper's own models.
_DEX_IMDB = "ImageNet + IMDB-WIKI"
_ADIENCE_1 = {"table": "I", "dataset": "Adience fold 4 (8 groups)", "protocol": "single crop", "size": 224}
_ADIENCE_2 = {"table": "II", "dataset": "Adience 5 folds (8 groups)", "protocol": "ten-crop, mean over folds",
              "size": 224, "pretraining": _IMAGENET_IMDB}
_LAP15 = {"table": "IV", "dataset": "ChaLearn LAP 2015", "protocol": "validation set", "size": 224,
          "pretraining": _IMAGENET_IMDB}
_LAP16 = {"table": "V", "dataset": "ChaLearn LAP 2016", "protocol": "test set", "size": 224,
          "pretraining": _IMAGENET_IMDB}
_MORPH = {"table": "VI", "dataset": "MORPH II (5,475 Caucasian)", "protocol": "random 80/20", "size": 224,
          "pretraining": _IMAGENET_IMDB}
_FGNET = {"table": "VI", "dataset": "FG-NET", "protocol": "leave one person out", "size": 224,
          "pretraining": _IMAGENET_IMDB}

#: The paper's result tables (001-results.md): table -> method -> numbers and
#: setting. Accuracies are percentages ("acc (%)", "1-off (%)"), Adience's
#: eight age groups; "MAE" in years; "epsilon-error" of the LAP challenges.
PAPER_RESULTS = {
    "I": {
        "ResNets-34 (scratch)": {**_ADIENCE_1, "pretraining": "none", "acc (%)": 56.96, "1-off (%)": 90.28},
        "I-ResNets-34": {**_ADIENCE_1, "pretraining": "ImageNet", "acc (%)": 60.18, "1-off (%)": 90.51},
        "Ft-101-RoR-34 (global only)": {**_ADIENCE_1, "pretraining": _IMAGENET_IMDB, "acc (%)": 65.46,
                                        "1-off (%)": 96.85},
        "Ft-101-ResNets-34 (global only)": {**_ADIENCE_1, "pretraining": _IMAGENET_IMDB, "acc (%)": 65.71,
                                            "1-off (%)": 96.90},
        "AL-RoR-34, local only": {**_ADIENCE_1, "pretraining": _IMAGENET_IMDB, "acc (%)": 65.25, "1-off (%)": 96.76},
        "AL-ResNets-34, local only": {**_ADIENCE_1, "pretraining": _IMAGENET_IMDB, "acc (%)": 65.33,
                                      "1-off (%)": 96.81},
        "AL-RoR-34 (global + local)": {**_ADIENCE_1, "pretraining": _IMAGENET_IMDB, "acc (%)": 65.77,
                                       "1-off (%)": 97.01},
        "AL-ResNets-34 (global + local)": {**_ADIENCE_1, "pretraining": _IMAGENET_IMDB, "acc (%)": 66.03,
                                           "1-off (%)": 97.12},
    },
    "II": {
        "Ft-101-RoR-34": {**_ADIENCE_2, "acc (%)": 66.74, "1-off (%)": 97.38},
        "Ft-101-ResNets-34": {**_ADIENCE_2, "acc (%)": 66.63, "1-off (%)": 97.20},
        "AL-RoR-34": {**_ADIENCE_2, "acc (%)": 66.82, "1-off (%)": 97.36},
        "AL-ResNets-34": {**_ADIENCE_2, "acc (%)": 67.47, "1-off (%)": 97.33},
    },
    "III": {
        "DEX, no IMDB-WIKI pre-training": {**_ADIENCE_2, "table": "III", "pretraining": "ImageNet",
                                           "acc (%)": 55.6, "1-off (%)": 89.7},
        "DEX, IMDB-WIKI pre-training": {**_ADIENCE_2, "table": "III", "pretraining": _DEX_IMDB, "acc (%)": 64.0,
                                        "1-off (%)": 96.60},
        "RoR152 + IMDB-WIKI, two mechanisms": {**_ADIENCE_2, "table": "III", "acc (%)": 67.34, "1-off (%)": 97.51},
        "AL-ResNets-34": {**_ADIENCE_2, "table": "III", "acc (%)": 67.47, "1-off (%)": 97.33},
        "AL-ResNets-152": {**_ADIENCE_2, "table": "III", "acc (%)": 67.83, "1-off (%)": 97.53},
    },
    "IV": {
        "ResNets-34 (global only)": {**_LAP15, "MAE": 3.712, "epsilon-error": 0.3167},
        "AL-ResNets-34": {**_LAP15, "MAE": 3.357, "epsilon-error": 0.2810},
        "AL-ResNets-152": {**_LAP15, "MAE": 3.243, "epsilon-error": 0.2778},
        "AL-RoR-34": {**_LAP15, "MAE": 3.137, "epsilon-error": 0.2683},
    },
    "V": {
        "AL-RoR-34": {**_LAP16, "epsilon-error": 0.2859},
        "OrangeLabs (ensemble, extra data)": {**_LAP16, "pretraining": "not stated in the paper",
                                              "epsilon-error": 0.2411},
    },
    "VI": {
        "DEX (IMDB-WIKI), MORPH II": {**_MORPH, "pretraining": _DEX_IMDB, "MAE": 2.68},
        "DLDL, MORPH II": {**_MORPH, "pretraining": "not stated in the paper", "MAE": 2.42},
        "AL-RoR-34, MORPH II": {**_MORPH, "MAE": 2.36},
        "DEX (IMDB-WIKI), FG-NET": {**_FGNET, "pretraining": _DEX_IMDB, "MAE": 3.09},
        "AL-RoR-34, FG-NET": {**_FGNET, "MAE": 2.39},
    },
}

#: Columns that describe a setting (not a metric) in our tables.
SETTINGS = ("table", "dataset", "protocol", "pretraining", "size", "budget")


def paper_numbers(table, rename=None):
    """The paper's numbers of one table, for `results_table(rows, paper=...)`.

    Args:
        table: "I" ... "VI" (see `PAPER_RESULTS`).
        rename: optional dict paper method -> our method name, so that a
            paper number lines up with our row of the same method.

    Returns:
        A dict method -> numbers and setting.
    """
    if table not in PAPER_RESULTS:
        raise KeyError(f"The paper has tables {sorted(PAPER_RESULTS)}; got {table!r}.")
    rename = rename or {}
    return {rename.get(m, m): dict(v) for m, v in PAPER_RESULTS[table].items()}


#: The paper's training settings per target dataset (Sec. IV-A): SGD with
#: momentum 0.9 and weight decay 1e-4; lr divided by 10 after `drop_after`;
#: DEX with `classes` output neurons; the tables each dataset reports in.
PAPER_SCHEDULES = {
    "adience": {"epochs": 60, "lr": 1e-4, "drop_after": 60, "classes": 8, "tables": ("I", "II", "III")},
    "morph": {"epochs": 120, "lr": 1e-3, "drop_after": 60, "classes": 62, "tables": ("VI",)},
    "fgnet": {"epochs": 90, "lr": 1e-3, "drop_after": 30, "classes": 70, "tables": ("VI",)},
    "lap2015": {"epochs": 120, "lr": 1e-3, "drop_after": 60, "classes": 101, "tables": ("IV",)},
    "lap2016": {"epochs": 120, "lr": 1e-3, "drop_after": 60, "classes": 101, "tables": ("V",)},
}
PAPER_MOMENTUM, PAPER_WEIGHT_DECAY = 0.9, 1e-4


def paper_config(config, dataset):
    """`config` with the paper's optimiser, epochs and learning-rate schedule for `dataset`.

    The optimiser is `"sgd"` of `agekeras.training` (momentum 0.9; Nesterov
    there, plain momentum in the paper's Torch 7 code) with weight decay
    1e-4. The schedule is the paper's step: the learning rate starts at
    `lr` and is divided by 10 after `drop_after` epochs, given to
    `TrainConfig.lr_drops` as the fraction `drop_after / epochs` of the run
    (0.5 for MORPH's 60 of 120 epochs), with no warm-up (the paper names
    none). For Adience the drop comes after the last of its 60 epochs, so
    the learning rate stays at 1e-4 throughout.

    Args:
        config: a `TrainConfig`.
        dataset: a key of `PAPER_SCHEDULES` ("adience", "morph", "fgnet",
            "lap2015", "lap2016"); other datasets (e.g. utkface) take
            MORPH's setting, the paper's closest (single faces, exact ages).

    Returns:
        `(TrainConfig, the schedule dict used)`.

    Example:

    >>> config, schedule = paper_config(TrainConfig(), "morph")
    >>> config.optimizer, config.epochs, config.lr, config.lr_drops, config.warmup
    ('sgd', 120, 0.001, [0.5], 0.0)
    """
    schedule = PAPER_SCHEDULES.get(dataset, PAPER_SCHEDULES["morph"])
    new = dataclasses.replace(config, optimizer="sgd", weight_decay=PAPER_WEIGHT_DECAY, epochs=schedule["epochs"],
                              lr=schedule["lr"], lr_drops=[schedule["drop_after"] / schedule["epochs"]], warmup=0.0)
    return new, schedule


# ----- training -------------------------------------------------------------------------


def two_stage_train(config, stage1_model, stage2_model, *, stage1=None, stage2=None):
    """Train stage 1 (backbone + global head), then stage 2 (frozen backbone;
    LSTM, locator and local head), each with `agekeras.training.train`.

    Args:
        config: a `TrainConfig`; its `out` becomes the parent of the two runs
            (`out/stage1`, `out/stage2`).
        stage1_model: e.g. "ror34_dex" or "resnet34_dex".
        stage2_model: e.g. "al_ror34".
        stage1, stage2: dicts of `TrainConfig` fields overriding `config` for
            one stage (e.g. `{"epochs": 2, "lr": 1e-4}`); `model_kwargs`
            given here are merged into the config's.

    Returns:
        `(metrics1, metrics2, run_dir1, run_dir2)`.
    """
    out = pathlib.Path(config.out)
    stage1, stage2 = dict(stage1 or {}), dict(stage2 or {})
    kw1 = {**config.model_kwargs, **stage1.pop("model_kwargs", {})}
    c1 = dataclasses.replace(config, model=stage1_model, out=str(out / "stage1"), model_kwargs=kw1, **stage1)
    m1 = train(c1)
    kw2 = {**config.model_kwargs, **stage2.pop("model_kwargs", {})}
    kw2.update(init_from=str(RunDir(out / "stage1").best_model), freeze_backbone=True)
    c2 = dataclasses.replace(config, model=stage2_model, out=str(out / "stage2"), model_kwargs=kw2, **stage2)
    m2 = train(c2)
    return m1, m2, c1.out, c2.out


def stage_histories(run_dir1, run_dir2):
    """The two stages' `history.csv` as dicts, stage 2's epochs numbered after
    stage 1's, for `agekeras.plots.plot_history` (one continuous x axis)."""
    histories = []
    offset = 0
    for run_dir in (run_dir1, run_dir2):
        history = {k: list(v) for k, v in RunDir(run_dir).read_history().items()}
        if not history:
            raise ValueError(f"{run_dir}: no epochs trained yet")
        n = len(next(iter(history.values())))
        history["epoch"] = [offset + i for i in range(n)]
        offset += n
        histories.append(history)
    return histories


# ----- inspecting an AL model ----------------------------------------------------------


def _only_layer(model, cls):
    found = [layer for layer in model.layers if isinstance(layer, cls)]
    if len(found) != 1:
        raise ValueError(f"{model.name} has {len(found)} {cls.__name__} layers; expected one (an AL model).")
    return found[0]


def is_al_model(model):
    """Whether `model` has the local branch (an `AttentionLSTMLocator`)."""
    return any(isinstance(layer, AttentionLSTMLocator) for layer in model.layers)


def set_inference_mode(model, mode):
    """Switch the locator between "sequence" and "independent" inference
    (see `AttentionLSTMLocator`) and drop the compiled dataset_outputs function."""
    if mode not in ("sequence", "independent"):
        raise ValueError(f"mode must be 'sequence' or 'independent', got {mode!r}")
    _only_layer(model, AttentionLSTMLocator).inference_mode = mode
    model.predict_function = None
    return model


def local_weight(model):
    """lambda of Eq. 5 in `model` (its `GlobalLocalFusion` layer)."""
    return _only_layer(model, GlobalLocalFusion).local_weight


def inspection_model(model):
    """A model with the same input and the outputs of `model` plus "box"
    (the located box, relative (x, y, w, h)) and "probs_final" (Eq. 5)."""
    fusion = _only_layer(model, GlobalLocalFusion)
    outputs = dict(model.output)
    outputs["box"] = _only_layer(model, AttentionLSTMLocator).output
    outputs["probs_final"] = fusion.output[0]
    return keras.Model(model.inputs, outputs, name=f"{model.name}_inspect")


def final_probs(outputs, local_weight=0.5):
    """P_final in NumPy, from an output dict: Eq. 5's P_global + w P_local,
    divided by 1 + w so that it sums to 1 as `GlobalLocalFusion` does (the
    division is ours; Eq. 5 has none)."""
    p = np.asarray(outputs["age_probs_global"], "float64") + local_weight * np.asarray(
        outputs["age_probs_local"], "float64"
    )
    return p / p.sum(-1, keepdims=True)


def predict_al_outputs(model, images, batch_size=64):
    """The outputs of `inspection_model(model)` (or of a plain model) on an
    image array `(n, H, W, 3)` in [0, 255], in order (NumPy dict)."""
    if is_al_model(model):
        model = inspection_model(model)
    return model.predict(np.asarray(images, "float32"), batch_size=batch_size, verbose=0)


def al_outputs_on(model, ds, image_size, batch_size=64):
    """Every output of `inspection_model(model)` (boxes and P_final included)
    on every face of the dataset `ds`, in order (NumPy dict)."""
    return dataset_outputs(inspection_model(model), ds, image_size, batch_size)


def embeddings_on(model, ds, image_size, batch_size=64):
    """The pooled global feature (the locator's input) of every face of
    `ds`, in order: `(n, d)` NumPy, e.g. for `agekeras.plots.plot_tsne`."""
    locator = _only_layer(model, AttentionLSTMLocator)
    embed = keras.Model(model.inputs, {"embedding": locator.input}, name=f"{model.name}_embedding")
    return np.asarray(dataset_outputs(embed, ds, image_size, batch_size)["embedding"])


def first_images(ds, image_size, n=16):
    """The first `n` faces of `ds` as float32 `(n, size, size, 3)` in [0, 255],
    through the evaluation pipeline (no augmentation)."""
    from agekeras.datasets.pipeline import make_tf_dataset

    n = min(int(n), len(ds))
    data = make_tf_dataset(ds.subset(np.arange(n)), image_size=image_size, batch_size=n, training=False,
                           augment=False)
    images, _ = next(iter(data))
    return np.asarray(images, "float32")


# ----- tables --------------------------------------------------------------------------


def group_metrics(true_age, pred_age):
    """Adience-style exact and 1-off accuracy (%) after mapping both ages to
    Adience's eight groups (nearest group; `agekeras.metrics.age_to_group`)."""
    # Predictions are rounded to 0.01 year first: an age exactly between two
    # groups (e.g. 3.0) then maps the same way whether it comes from memory
    # or from predictions.csv (3 decimals).
    gt, gp = M.age_to_group(true_age), M.age_to_group(np.round(np.asarray(pred_age, "float64"), 2))
    return {"acc (%)": 100 * M.group_accuracy(gt, gp), "1-off (%)": 100 * M.group_accuracy(gt, gp, off=1)}


def ablation_rows(outputs, true_age, age_min, *, local_weight=0.5, names=None, setting=None):
    """Table I of the paper on our data: global only, local only, both (Eq. 5).

    Args:
        outputs: the AL model's output dict (NumPy), e.g. from
            `al_outputs_on` or `predict_al_outputs`.
        true_age: the true ages.
        age_min: the age of class 0.
        local_weight: lambda of Eq. 5.
        names: the three method names (global, local, both); default
            "global only", "local only", "global + local (Eq. 5)".
        setting: dict merged into every row (e.g. dataset, size).

    Returns:
        Result rows for `agekeras.tables.results_table`: MAE, RMSE and the
        Adience-style exact and 1-off group accuracies (%) of the ages mapped
        to Adience's eight groups.
    """
    true_age = np.asarray(true_age, "float64")
    names = names or ("global only", "local only", "global + local (Eq. 5)")
    rows = []
    variants = (
        np.asarray(outputs["age_probs_global"], "float64"),
        np.asarray(outputs["age_probs_local"], "float64"),
        final_probs(outputs, local_weight),
    )
    for label, probs in zip(names, variants):
        pred = expected_age(probs, age_min)
        rows.append({"method": label, **(setting or {}), "MAE": M.mae(true_age, pred),
                     "RMSE": M.rmse(true_age, pred), **group_metrics(true_age, pred)})
    return rows


def run_row(run_dir, method, setting=None):
    """A results row from a finished run directory: MAE, RMSE (its test
    metrics), Adience-style group accuracy and 1-off in % (from its per-face
    predictions, ages mapped to Adience's groups) and the epsilon-error when
    the data had one."""
    run = RunDir(run_dir)
    result = run.read_metrics()
    rows = run.read_predictions()
    true = np.array([float(r["age"]) for r in rows])
    pred = np.array([float(r["predicted"]) for r in rows])
    row = {"method": method, **(setting or {}), "MAE": result["mae"], "RMSE": result["rmse"],
           **group_metrics(true, pred)}
    if "epsilon_error" in result:
        row["epsilon-error"] = result["epsilon_error"]
    return row


# ----- ten-crop test ---------------------------------------------------------------------


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
    al = is_al_model(model)
    weight = local_weight(model) if al else None

    def probs_of(crop):
        out = model.predict(np.asarray(crop, "float32"), batch_size=batch_size, verbose=0)
        return final_probs(out, weight) if al else np.asarray(out["age_probs"], "float64")

    probs = np.mean([probs_of(c) for c in ten_crops(images, size)], axis=0)
    return probs, expected_age(probs, age_min)
