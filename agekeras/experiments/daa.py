"""DAA experiments: what notebook 03 drives.

The model builders are in `agekeras.models.daa`; this module holds what
the notebook does with them:

- the paper's training settings, named (`TRAINING_SETTINGS`: the paper's
  text and the authors' released config) and `train_config`, which turns a
  named setting into a `TrainConfig`;
- template faces for the template variants (`select_templates`,
  `save_templates`, `templates_from_split`, `read_templates`);
- the rows of the Table 5 ablation (`ablation_variants`: label -> registered
  model and builder arguments; the notebook wires and trains each variant in
  a visible loop);
- what a figure's title says of a run (`training_label`);
- reading a trained model: the learned styles of Fig. 3
  (`learned_style_statistics`), the per-age deltas (`per_age_deltas`),
  interval sampling (`interval_sweep`, Tables 6-7), the FaceEncoder
  embedding (`encoder_embeddings`, for a t-SNE map) and the parameter counts
  beside Table 1 (`table1_parameter_counts`);
- the paper's numbers (`PAPER_TABLES`) and our result rows (`result_row`),
  for `agekeras.tables.results_table`.

Reference: A Delta Age AdaIN operation for age estimation via binary code
transformer (Chen et al., CVPR 2023), https://arxiv.org/abs/2303.07929.
"""

from __future__ import annotations

import pathlib
import time

import keras
import numpy as np
from keras import ops

from agekeras import models
from agekeras.layers import BinaryCodeMapping, TemplateBank
from agekeras.models import daa as daa_models
from agekeras.models.backbones import scale_inputs
from agekeras.training import TrainConfig

#: Settings columns of our tables and the paper's (what makes numbers comparable).
TABLE_SETTINGS = ("table", "dataset", "protocol", "pretraining", "size")

# ----- the paper's training settings ----------------------------------------------

#: Named training settings. "paper_text": Sec. 4.2 of the paper (Adam,
#: weight decay 0.0005, lr 0.001 with cosine decay, 200 epochs, batch 128,
#: 128 x 128 inputs). "released_config": the authors' released `config.py`
#: (batch 64, lr 1e-3, 120 epochs, 128 px); it names no weight decay, so the
#: text's 0.0005 is kept. Our Adam applies weight decay decoupled (AdamW
#: style, `agekeras.runtime.make_optimizer`), while PyTorch's Adam, which
#: the authors used, adds it to the gradient (L2): the same number is a
#: different regulariser here. `warmup=0`: the text names no warm-up.
TRAINING_SETTINGS = {
    "paper_text": {"epochs": 200, "batch_size": 128, "lr": 1e-3, "optimizer": "adam", "weight_decay": 5e-4,
                   "image_size": 128, "warmup": 0.0},
    "released_config": {"epochs": 120, "batch_size": 64, "lr": 1e-3, "optimizer": "adam", "weight_decay": 5e-4,
                        "image_size": 128, "warmup": 0.0},
}


def train_config(setting=None, **overrides):
    """A `TrainConfig` from a named setting (`TRAINING_SETTINGS`) and overrides.

    Args:
        setting: "paper_text", "released_config" or None (the package's
            defaults).
        **overrides: any `TrainConfig` field (they win over the setting).

    Returns:
        A `TrainConfig`.
    """
    if setting is not None and setting not in TRAINING_SETTINGS:
        raise ValueError(f"setting must be one of {sorted(TRAINING_SETTINGS)} or None, got {setting!r}.")
    fields = {**(TRAINING_SETTINGS[setting] if setting else {}), **overrides}
    return TrainConfig(**fields)


# ----- template faces ------------------------------------------------------------


def select_templates(ages, age_min=None, num_ages=None, seed=0):
    """Indices of one template face per comparison age.

    For every integer age y in age_min..age_min+num_ages-1 that occurs in
    `ages` (rounded), one face of that age is drawn at random (seeded); ages
    with no face are skipped, so the comparison set is the ages present in
    the data (Eq. 6 averages over whichever ages are compared).

    Args:
        ages: `(n,)` ages of the candidate faces (e.g. the training split).
        age_min, num_ages: the comparison range (default: the ages' range).
        seed: random seed.

    Returns:
        int array of indices into `ages`, sorted by age.
    """
    ages = np.asarray(ages, "float64").reshape(-1)
    if ages.size == 0 or not np.all(np.isfinite(ages)):
        raise ValueError("ages must be a non-empty array of finite numbers.")
    ages = np.rint(ages).astype(int)
    lo = int(ages.min()) if age_min is None else int(age_min)
    hi = int(ages.max()) if num_ages is None else lo + int(num_ages) - 1
    rng = np.random.default_rng(seed)
    out = []
    for y in range(lo, hi + 1):
        candidates = np.flatnonzero(ages == y)
        if len(candidates):
            out.append(int(rng.choice(candidates)))
    if not out:
        raise ValueError(f"no face has an age in [{lo}, {hi}].")
    return np.asarray(out)


def save_templates(path, images, ages):
    """Write template faces to an `.npz` file for the builders' `templates=path`.

    Args:
        path: the file to write.
        images: `(n, H, W, 3)` pixels in [0, 255], at the model's input size.
        ages: `(n,)` their ages.

    Returns:
        `str(path)`.
    """
    images = np.asarray(images, "float32")
    ages = np.asarray(ages, "float32").reshape(-1)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) != len(ages):
        raise ValueError(f"templates must be images (n, H, W, 3) and ages (n,); got {images.shape}, {ages.shape}.")
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=images, ages=ages)
    return str(path)


def load_images(ds, image_size, batch_size=64):
    """Every readable face of `ds` as `(images (n, H, W, 3) in [0, 255], ages (n,))`,
    resized as the model sees them (no augmentation), in order."""
    from agekeras.datasets.pipeline import make_tf_dataset

    images, ages = [], []
    for x, y in make_tf_dataset(ds, image_size=image_size, batch_size=batch_size, training=False, augment=False):
        images.append(np.asarray(x))
        ages.append(np.asarray(y["age"]))
    if not images:
        raise ValueError(f"no readable image in {ds.name} ({len(ds)} rows).")
    images, ages = np.concatenate(images), np.concatenate(ages)
    if len(images) != len(ds):
        print(f"{len(ds) - len(images)} of {len(ds)} faces of {ds.name} could not be read and are skipped.")
    return images, ages


def templates_from_split(train_split, image_size, path, seed=0):
    """Draw one template face per age of `train_split`, write them to `path`.

    Returns:
        `(path, template ages)`.
    """
    idx = select_templates(train_split.age, seed=seed)
    faces = train_split.subset(idx)
    images, ages = load_images(faces, image_size)
    return save_templates(path, images, ages), ages


def read_templates(path):
    """The template faces written by `save_templates`: `{"images": (n, H, W, 3), "ages": (n,)}`, the form the
    builders' (and `TemplateBank.set_templates`') `templates` take."""
    with np.load(path) as data:
        return {"images": np.asarray(data["images"], "float32"), "ages": np.asarray(data["ages"], "float32")}


# ----- the Table 5 ablation -------------------------------------------------------


def ablation_variants(encoder, templates):
    """The rows of Table 5: label -> (registered model, builder kwargs).

    Args:
        encoder: "resnet18" (the paper's Table 5) or "c3ae" (smaller, for
            smoke tests; only the binary mapping and "w/o DAA" exist for it
            in the registry, the template variants take `daa_c3ae` with a
            `variant`).
        templates: path of the template faces (`save_templates`).
    """
    return {
        "without DAA": (f"daa_{encoder}_plain", {}),
        "single-channel template (Eq. 3)": (f"daa_{encoder}", {"variant": "single", "templates": str(templates)}),
        "multi-channel template (Eq. 5)": (f"daa_{encoder}", {"variant": "multi", "templates": str(templates)}),
        "binary code mapping (Eq. 7)": (f"daa_{encoder}", {}),
    }


#: Names of the datasets in figure titles.
DATASET_NAMES = {"synthetic": "synthetic faces", "utkface": "UTKFace", "morph2": "MORPH II", "fgnet": "FG-NET"}


def training_label(config):
    """What a figure's title says of a run: data, image size and budget.

    Args:
        config: the run's `TrainConfig`.

    Returns:
        e.g. "UTKFace, 64 px, 15 min" or "synthetic faces, 48 px, 1 epoch".
    """
    name = DATASET_NAMES.get(config.dataset, config.dataset)
    if config.time_budget is not None:
        budget = f"{float(config.time_budget):g} min"
    elif config.epochs is not None:
        budget = f"{config.epochs} epoch" + ("" if config.epochs == 1 else "s")
    else:
        raise ValueError("the config has neither `epochs` nor `time_budget`.")
    return f"{name}, {config.image_size} px, {budget}"


# ----- reading a trained model ----------------------------------------------------


def learned_style_statistics(model):
    """The learned S, T of a binary-mapping DAA model for all its ages (Fig. 3).

    Returns:
        dict of NumPy arrays `ages`, `s`, `t`, each `(A,)`.
    """
    mapping = [layer for layer in model.layers if isinstance(layer, BinaryCodeMapping)]
    if not mapping:
        raise ValueError(f"{model.name!r} has no BinaryCodeMapping layer.")
    m = mapping[0]
    s, t, ages = m.style_statistics(np.arange(m.num_ages))
    return {"ages": ops.convert_to_numpy(ages), "s": ops.convert_to_numpy(s), "t": ops.convert_to_numpy(t)}


def per_age_deltas(model, images):
    """Per-age deltas Delta_y `(batch, A)` and comparison ages `(A,)` of a DAA
    model on `images` (inference mode), for inspection (Eqs. 8-9)."""
    probe = daa_models.with_delta_outputs(model)
    out = probe(np.asarray(images, "float32"), training=False)
    return ops.convert_to_numpy(out["deltas"]), ops.convert_to_numpy(out["comparison_ages"])


def comparison_count(model):
    """How many ages a DAA model compares with (after interval sampling)."""
    layers = [layer for layer in model.layers if isinstance(layer, (BinaryCodeMapping, TemplateBank))]
    if len(layers) != 1:
        raise ValueError(f"{model.name!r} has no DAA comparison-age layer.")
    return len(layers[0].sampled_indices())


def interval_sweep(model, images, intervals=(1, 2, 5, 10, 20), batch_size=64):
    """Predict with every `interval` (Tables 6-7 of the paper): the trained
    model compares with every k-th age only, which cuts the decoder's work.

    Args:
        model: a trained DAA model (binary mapping or templates).
        images: `(n, H, W, 3)` faces, pixels in [0, 255].
        intervals: the k values.
        batch_size: prediction batch size.

    Returns:
        A list of dicts, one per k: `interval`, `comparisons` (number of
        ages compared), `pred` (predicted ages `(n,)`), `seconds` (wall time
        of predicting all images, encoder included, after a warm-up batch)
        and `ms_per_image`.
    """
    images = np.asarray(images, "float32")
    if len(images) == 0:
        raise ValueError("interval_sweep needs at least one image.")
    out = []
    for k in intervals:
        sub = daa_models.with_interval(model, k)
        sub.predict(images[:batch_size], batch_size=batch_size, verbose=0)  # trace + warm-up
        start = time.perf_counter()
        pred = sub.predict(images, batch_size=batch_size, verbose=0)["age"]
        seconds = time.perf_counter() - start
        out.append({"interval": int(k), "comparisons": comparison_count(sub), "pred": np.asarray(pred).reshape(-1),
                    "seconds": seconds, "ms_per_image": 1000.0 * seconds / len(images)})
    return out


def encoder_embeddings(model, images, batch_size=64):
    """The FaceEncoder's globally average-pooled feature `(n, C)` of `images`
    (pixels in [0, 255]): the learned face embedding, for a t-SNE map."""
    encoders = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(encoders) != 1:
        raise ValueError(f"{model.name!r} has no single FaceEncoder sub-model.")
    inputs = keras.Input(tuple(model.inputs[0].shape[1:]))
    pooled = keras.layers.GlobalAveragePooling2D()(encoders[0](scale_inputs(inputs)))
    return keras.Model(inputs, pooled).predict(np.asarray(images, "float32"), batch_size=batch_size, verbose=0)


def table1_parameter_counts(sizes=(("daa_resnet18", 128), ("daa_c3ae", 96), ("daa_resnet18_plain", 128),
                                   ("daa_c3ae_plain", 96)), num_classes=100):
    """Parameter counts of the DAA models at the paper's feature size (8 x 8).

    Returns:
        One dict per model: `method` (the Table 1 name), `size`, `params`
        (all weights Keras holds, BN statistics included) and `trainable`
        (what PyTorch's `parameters()` counts).
    """
    names = {"daa_resnet18": "ResNet18+DAA", "daa_c3ae": "C3AE(plain)+DAA", "daa_resnet18_plain": "ResNet18 w/o DAA",
             "daa_c3ae_plain": "C3AE(plain) w/o DAA"}
    rows = []
    for name, size in sizes:
        m = models.get(name, input_shape=(size, size, 3), num_classes=num_classes)
        trainable = int(sum(np.prod(w.shape) for w in m.trainable_weights))
        rows.append({"method": names.get(name, name), "size": size, "params": m.count_params(),
                     "trainable": trainable})
    return rows


# ----- tables ---------------------------------------------------------------------


def result_row(method, metrics, *, dataset, protocol, size, table=None, pretraining="none", **extra):
    """One line of our results for `agekeras.tables.results_table`.

    Args:
        method: the row label (the paper's method name, to line up).
        metrics: a metrics dict (`train`'s or `agekeras.metrics.age_metrics`'):
            `mae` and, when present, `ca3`, `ca5`, `ca7` (shares, shown as %
            as in the paper).
        dataset, protocol, size, table, pretraining: the setting.
        **extra: more columns (e.g. `params`, `ms/face`).
    """
    row = {"method": method, "table": table, "dataset": dataset, "protocol": protocol, "pretraining": pretraining,
           "size": size, "MAE": metrics["mae"]}
    for n in (3, 5, 7):
        if f"ca{n}" in metrics:
            row[f"CA({n}) %"] = 100.0 * float(metrics[f"ca{n}"])
    row.update(extra)
    return row


def _paper(table, dataset, protocol, pretraining, size=128, **numbers):
    return {"table": table, "dataset": dataset, "protocol": protocol, "pretraining": pretraining, "size": size,
            **numbers}


_MORPH = ("MORPH II", "random 80/20 (C3AE protocol)")
_MEGA = ("MegaAge-Asian", "official split, 3,945 test faces")
#: Table 5 (the ablation, ResNet-18 encoder): variant, MAE on MORPH II, CA(3/5/7) % on MegaAge-Asian.
_TABLE5 = (
    ("without DAA", 2.72, (63.12, 80.15, 90.39)),
    ("single-channel template (Eq. 3)", 2.65, (67.97, 84.06, 92.40)),
    ("multi-channel template (Eq. 5)", 2.47, (68.29, 84.84, 92.47)),
    ("binary code mapping (Eq. 7)", 2.25, (68.82, 84.89, 92.70)),
)

#: The paper's numbers (Tables 1-7), method -> numbers and setting, keyed by
#: table; the methods are the paper's names. "IMDB-Wiki" in `pretraining`
#: means the number after IMDB-Wiki pre-training; Table 1's "a / b" pairs
#: (without / with pre-training) are split into two rows; "not stated" where
#: the table prints one number without saying. Table 5 gives each variant an
#: MAE on MORPH II and CA(n) on MegaAge-Asian: the variant's name holds the
#: MORPH II MAE, "<variant> (MegaAge-Asian)" the CA values; both are taken as
#: without pre-training (the binary rows equal Table 1's 2.25 and Table 3's
#: CA values). CA values are percentages. "CPU ms" (Table 6) times the DAA,
#: mapping and decoder only.
PAPER_TABLES = {
    "table1_morph": {
        "ResNet18+DAA": _paper("1", *_MORPH, "none", MAE=2.25, params=11_000_000),
        "ResNet18+DAA (IMDB-Wiki pre-trained)": _paper("1", *_MORPH, "IMDB-Wiki", MAE=2.06, params=11_000_000),
        "C3AE(plain)+DAA": _paper("1", *_MORPH, "not stated", MAE=2.65, params=58_000),
        "C3AE (plain)": _paper("1", *_MORPH, "not stated", MAE=3.13, params=40_000),
        "C3AE": _paper("1", *_MORPH, "not stated", MAE=2.75, params=40_000),
        "AVDL": _paper("1", *_MORPH, "not stated", MAE=1.94, params=11_000_000),
    },
    "table2_fgnet": {
        "ResNet18+DAA": _paper("2", "FG-NET", "leave-one-person-out (82 folds)", "not stated",
                               MAE=2.19, params=11_000_000),
        "PML": _paper("2", "FG-NET", "leave-one-person-out (82 folds)", "not stated", MAE=2.16, params=16_000_000),
        "C3AE": _paper("2", "FG-NET", "leave-one-person-out (82 folds)", "not stated", MAE=2.95, params=40_000),
    },
    "table3_megaage": {
        "ResNet18+DAA": _paper("3", *_MEGA, "none listed", **{"CA(3) %": 68.82, "CA(5) %": 84.89, "CA(7) %": 92.70}),
        "LRN (ResNet18)": _paper("3", *_MEGA, "IMDB-Wiki", **{"CA(3) %": 64.45, "CA(5) %": 82.95, "CA(7) %": 91.98}),
    },
    "table4_imdb_clean": {
        "ResNet18+DAA": _paper("4", "IMDB-clean", "not stated", "none listed", MAE=5.17, params=11_000_000),
        "DEX": _paper("4", "IMDB-clean", "not stated", "not stated", MAE=5.34, params=138_000_000),
    },
    # Table 5 prints, per variant, an MAE on MORPH II and CA(3/5/7) on MegaAge-Asian: two datasets, so two
    # entries per variant, each with its own dataset and protocol.
    "table5_ablation": {
        **{variant: _paper("5", *_MORPH, "none", MAE=mae) for variant, mae, _ in _TABLE5},
        **{f"{variant} (MegaAge-Asian)": _paper("5", *_MEGA, "none listed",
                                                 **{"CA(3) %": ca[0], "CA(5) %": ca[1], "CA(7) %": ca[2]})
           for variant, _, ca in _TABLE5},
    },
    # Table 6: decoder + mapping only (FaceEncoder excluded), RTX 3080 / i5-8265U; Table 7: MegaAge-Asian.
    "table6_7_interval": {
        f"every {k}": _paper("6-7", "MegaAge-Asian (accuracy); timing without the encoder", "official split",
                             "none listed", MAE=mae, **{"CA(3) %": ca3, "CA(5) %": ca5, "CA(7) %": ca7,
                                                        "ages used": 100 // k, "CPU ms": cpu})
        for k, mae, ca3, ca5, ca7, cpu in [
            (1, 2.93, 68.82, 84.89, 92.70, 13.70), (2, 2.93, 68.64, 84.61, 92.60, 10.75),
            (5, 2.94, 68.75, 84.84, 92.52, 10.35), (10, 2.93, 68.57, 84.59, 92.57, 10.17),
            (20, 2.93, 68.62, 84.56, 92.57, 8.59), (50, 2.95, 68.62, 84.59, 92.37, 8.58)]
    },
}
