"""What notebook 01 drives: VoVNetv4's Tables I and II, run the way the paper does.

The builders (`vovnetv4`, `vovnet39`, `vovnet57`, `resnet34_ce`,
`resnet34_orcnn`, and the baseline `resnet34_coral`) live in
`agekeras.models.vovnet` and `agekeras.models.baselines`; this module puts them
to work:

- `PAPER_SETTING`, `PAPER_TABLE1`, `PAPER_TABLE2`: the paper's setting and its
  numbers, each with its table, dataset, protocol and pretraining;
- `data_setting(C)`: the data, age range (K) and schedule of each course mode;
- `train_config(setting, model, out)`: the `TrainConfig` of one model in that
  setting (the notebook's training cells pass it to `agekeras.training.train`);
  `train_prior(setting)`: the label prior of its training faces (where a CORAL
  head built in a notebook cell starts its biases);
- `train_table_models(...)`: one `agekeras.training.train` run per model (the
  command-line path; the notebook writes the loop out);
- `vovnetv4_summary`, `vovnetv4_parameter_rows`, `vovnetv4_result_rows`:
  the text and table rows the notebook shows;
- `run_outputs(run_dir)`: the pooled features, CORAL logits and ages of a
  trained run's test faces (`embedding_and_ages` for `agekeras.plots.plot_tsne`);
- `figure_title`, `plot_coral_curves`, `plot_adaptive_stages`: the notebook's
  figure titles and its two figures of the paper's model.

Reference: "Research on Phased Single Aggregation Age Estimation Algorithm
Based on VoVNetv4" (Zhang, Shi, Cui, Tao, Zhang, Liu, 2023; IAENG journal
article, no arXiv or DOI version known).
"""

from __future__ import annotations

import dataclasses
import pathlib

import keras
import numpy as np

from agekeras import ages, evaluation, layers, training
from agekeras.config import TrainConfig
from agekeras.runs import RunDir
from agekeras.models import registry

#: Table I of the paper (its ablation): registry names, in the paper's order.
TABLE1_MODELS = ("resnet34_ce", "resnet34_coral", "vovnet57", "vovnetv4")
#: Table II (comparison with other methods): OR-CNN and CORAL-CNN, both on
#: ResNet-34 as in the CORAL paper's own comparison, beside VoVNetv4.
#: Curriculum learning (Wang et al.), the third method of Table II, is not
#: implemented in this course.
TABLE2_MODELS = ("resnet34_orcnn", "resnet34_coral", "vovnetv4")

METHOD_NAMES = {
    "resnet34_ce": "ResNet-34 (cross-entropy)",
    "resnet34_coral": "ResNet-34 + CORAL",
    "resnet34_orcnn": "OR-CNN (ResNet-34)",
    "vovnet39": "VoVNet-39 + CORAL",
    "vovnet57": "VoVNet-57 + CORAL",
    "vovnetv4": "VoVNetv4 + CORAL",
}
#: Table II calls ResNet-34 + CORAL "CORAL-CNN" (Cao et al.).
TABLE2_NAMES = {"resnet34_coral": "CORAL-CNN (ResNet-34 + CORAL)"}

#: The paper's training setting (Sec. III-D): AFAD ages 15-40 (K = 26),
#: seed 1, learning rate 0.0005, 200 epochs, batch 128. The paper states
#: neither the optimiser, the input size, the augmentation nor the split:
#: Adam (the CORAL reference code's), 120 px (the CORAL reference code's AFAD
#: crop) and a seeded random 80/20 split are our choices. It names one
#: learning rate and no schedule, so it stays constant (`lr_drops=[]`, no
#: warm-up), as in the CORAL reference code.
PAPER_SETTING = dict(
    dataset="afad", min_age=15, max_age=40, seed=1, lr=5e-4, epochs=200, batch_size=128, image_size=120,
    warmup=0.0, lr_drops=[],
)

_PAPER_PROTOCOL = "split not stated; seed 1, lr 0.0005, 200 ep, batch 128"
_PAPER_COLUMNS = dict(
    dataset="AFAD 15-40 (K = 26)", protocol=_PAPER_PROTOCOL, pretraining="not stated", size="not stated"
)

#: Table I of the paper (ablation on AFAD): MAE and RMSE per method.
PAPER_TABLE1 = {
    "ResNet-34 (cross-entropy)": dict(table="I", MAE=3.71, RMSE=5.15, **_PAPER_COLUMNS),
    "ResNet-34 + CORAL": dict(table="I", MAE=3.44, RMSE=4.69, **_PAPER_COLUMNS),
    # The paper does not name the VoVNet variant of Table I; we compare VoVNet-57.
    "VoVNet-57 + CORAL": dict(table="I (VoVNet variant not named)", MAE=3.36, RMSE=4.74, **_PAPER_COLUMNS),
    "VoVNetv4 + CORAL": dict(table="I", MAE=3.30, RMSE=4.64, **_PAPER_COLUMNS),
}
#: Table II of the paper (methods re-run by the authors on AFAD, 200 epochs).
PAPER_TABLE2 = {
    "Curriculum learning (not implemented)": dict(table="II", MAE=3.47, RMSE=5.03, **_PAPER_COLUMNS),
    "OR-CNN (ResNet-34)": dict(table="II (backbone not stated)", MAE=3.51, RMSE=4.75, **_PAPER_COLUMNS),
    "CORAL-CNN (ResNet-34 + CORAL)": dict(table="II", MAE=3.47, RMSE=4.71, **_PAPER_COLUMNS),
    "VoVNetv4 + CORAL": dict(table="II", MAE=3.30, RMSE=4.64, **_PAPER_COLUMNS),
}
#: Columns of the notebook's tables that describe a setting, not a metric.
TABLE_SETTINGS = ("table", "dataset", "protocol", "pretraining", "size")


def method_name(model, table=1):
    """The label of registry name `model` in Table `table` (1 or 2)."""
    if table == 2 and model in TABLE2_NAMES:
        return TABLE2_NAMES[model]
    return METHOD_NAMES.get(model, model)


def paper_table(table):
    """The paper's Table I or II as `agekeras.tables.results_table(paper=...)` wants it.

    Args:
        table: 1 or 2.

    Returns:
        dict method -> {"MAE", "RMSE", "table", "dataset", "protocol", "pretraining"}.
    """
    tables = {1: PAPER_TABLE1, 2: PAPER_TABLE2}
    if table not in tables:
        raise ValueError(f"The paper has Tables I and II: table must be 1 or 2, got {table!r}.")
    return {k: dict(v) for k, v in tables[table].items()}


@dataclasses.dataclass
class DataSetting:
    """Data and schedule of one notebook run (see `data_setting`).

    Attributes:
        dataset, data_dir, dataset_kwargs: what `agekeras.training.TrainConfig` reads.
        label: the dataset column of the results tables.
        min_age, max_age: the age range; K = max_age - min_age + 1 classes.
        image_size, epochs, time_budget, batch_size, lr, seed: the schedule.
        models: the registry names trained in this mode.
        warmup, lr_drops: the learning-rate schedule (`TrainConfig`): the
            package's warm-up and cosine by default; a constant learning
            rate in paper mode (`lr_drops=[]`).
    """

    dataset: str
    data_dir: str | None
    dataset_kwargs: dict
    label: str
    min_age: int
    max_age: int
    image_size: int
    epochs: int | None
    time_budget: float | None
    batch_size: int
    lr: float
    seed: int
    models: tuple
    warmup: float = TrainConfig.warmup
    lr_drops: list | None = None

    @property
    def num_classes(self):
        return self.max_age - self.min_age + 1

    def budget(self):
        """The training length, for figure titles: "1 epoch", "200 epochs" or "15 min"."""
        if self.time_budget is not None:
            return f"{self.time_budget:g} min"
        return f"{self.epochs} epoch" + ("" if self.epochs == 1 else "s")

    def protocol(self):
        """The protocol column of our rows."""
        length = f"{self.epochs} ep" if self.time_budget is None else f"{self.time_budget:g} min budget"
        constant = " constant" if self.lr_drops == [] else ""
        return f"random 80/20 seed {self.seed}; lr {self.lr:g}{constant}, {length}, batch {self.batch_size}"


def data_setting(C, *, quick_n=80):
    """The data and schedule for course `C` (`agekeras.experiments.course.setup`).

    - quick: `quick_n` synthetic faces aged 15-40 at 32 px, one epoch, only
      ResNet-34 + CORAL and VoVNetv4 (a smoke test; its numbers mean nothing).
    - cpu: AFAD when found, else UTKFace, both restricted to the paper's ages
      15-40 (K = 26); 64 px, `C.time_budget` minutes per model, batch 64.
    - paper: AFAD ages 15-40 at `PAPER_SETTING` (200 epochs, batch 128,
      120 px, a constant learning rate; a missing AFAD is offered for
      download when online); without AFAD, the same schedule on UTKFace
      15-40, then on synthetic faces, with one printed sentence.

    Returns:
        A `DataSetting`; it prints one line saying which data and K it uses.
    """
    p = PAPER_SETTING
    lo, hi = p["min_age"], p["max_age"]
    all_models = tuple(dict.fromkeys(TABLE1_MODELS + TABLE2_MODELS))
    if C.quick:
        s = DataSetting("synthetic", None, {"n": quick_n, "age_range": (lo, hi)}, "synthetic (smoke test)",
                        lo, hi, 32, 1, None, 32, p["lr"], p["seed"], ("resnet34_coral", "vovnetv4"))
    else:
        afad = C.data_dir("afad", main=C.paper)
        if afad is None and C.paper:
            afad = C.offer_download("afad")
        utk = C.data_dir("utkface", main=not C.paper)
        if afad is not None:
            name, path, label = "afad", str(afad), "AFAD"
        elif utk is not None:
            name, path, label = "utkface", str(utk), "UTKFace"
            print(f"No AFAD found (put it in {C.data_root / 'afad'}): using UTKFace ages {lo}-{hi} instead.")
        else:
            name, path, label = "synthetic", None, "synthetic"
            print(f"Neither AFAD nor UTKFace found (put one in {C.data_root}/afad or /utkface): "
                  "using 4000 synthetic faces.")
        kwargs = {"n": 4000, "age_range": (lo, hi)} if name == "synthetic" else {"min_age": lo, "max_age": hi}
        if C.paper:
            s = DataSetting(name, path, kwargs, f"{label} {lo}-{hi}", lo, hi, p["image_size"], p["epochs"], None,
                            p["batch_size"], p["lr"], p["seed"], all_models, warmup=p["warmup"],
                            lr_drops=list(p["lr_drops"]))
        else:
            s = DataSetting(name, path, kwargs, f"{label} {lo}-{hi}", lo, hi, 64, None, C.time_budget,
                            64, p["lr"], p["seed"], all_models)
    print(f"data: {s.label}, K = {s.num_classes} classes (ages {s.min_age}-{s.max_age}), {s.image_size} px; "
          f"models: {', '.join(s.models)}")
    return s


def train_config(setting, model, out, *, model_kwargs=None, verbose=0):
    """The `TrainConfig` of one run in `setting`.

    Args:
        setting: a `DataSetting`.
        model: registry name (the run's name, and the entry whose losses train
            it; a model passed to `train(config, model=...)` under that name is
            trained with them).
        out: the run folder.
        model_kwargs: builder arguments for a registered model.
        verbose: Keras progress-bar verbosity.
    """
    return training.TrainConfig(
        model=model,
        model_kwargs=dict(model_kwargs or {}),
        dataset=setting.dataset,
        data_dir=setting.data_dir,
        dataset_kwargs=dict(setting.dataset_kwargs),
        image_size=setting.image_size,
        epochs=setting.epochs,
        time_budget=setting.time_budget,
        batch_size=setting.batch_size,
        lr=setting.lr,
        warmup=setting.warmup,
        lr_drops=None if setting.lr_drops is None else list(setting.lr_drops),
        seed=setting.seed,
        age_min=setting.min_age,
        num_classes=setting.num_classes,
        out=str(out),
        verbose=verbose,
    )


def train_prior(setting):
    """P(class = k) of the training faces of `setting` (`agekeras.ages.age_prior`), as a list.

    The prior `agekeras.training` gives a registered CORAL builder; pass it as
    `age_prior` to a model built in a notebook cell so that its head starts
    where the registered one does (the log-odds of the training labels).
    """
    splits, _ = training.load_splits(train_config(setting, "vovnetv4", out="unused"))
    return ages.age_prior(splits["train"].age, setting.min_age, setting.num_classes).tolist()


def train_table_models(setting, run_dir, *, models=None, verbose=0):
    """Train (or resume) one run per registered model; returns `{model: test metrics}`.

    Args:
        setting: a `DataSetting`.
        run_dir: callable `name -> run folder` (e.g. `C.run_dir`).
        models: registry names (default `setting.models`).
        verbose: Keras progress-bar verbosity.
    """
    return {name: training.train(train_config(setting, name, run_dir(name), verbose=verbose))
            for name in models or setting.models}


def vovnetv4_summary(model):
    """Text table of a `vovnetv4` model's main parts: output shape, kernel/stride, parameters.

    Args:
        model: a model built by `agekeras.models.vovnet.vovnetv4`.

    Returns:
        A string, one line per part (stem, each ROSA region, each Adaptive
        Stage, the second aggregation, the embedding, the CORAL head).
    """
    rosa = model.get_layer("rosa")
    lines = [f"{'part':22s} {'output shape':22s} {'kernel/stride':14s} {'params':>12s}"]

    def line(name, shape, ks, params):
        lines.append(f"{name:22s} {str(tuple(shape)):22s} {ks:14s} {params:>12,}")

    stem_params = sum(model.get_layer(f"stem_{i}").count_params() for i in (1, 2, 3))
    line("stem (3 ConvBlocks)", model.get_layer("stem_3").output.shape, "3x3 /2,1,2", stem_params)
    for r, (order, shape) in enumerate(zip(rosa.schedule, rosa.output)):
        params = sum(rosa.osa_modules[i].count_params() for i in sorted(set(order)))
        if r > 0:
            params += rosa.transitions[r - 1].count_params()
        line(f"ROSA region {r + 1} ({len(order)} cyc.)", shape.shape, "", params)
    for r in range(len(rosa.schedule)):
        stage = model.get_layer(f"adaptive_{r + 1}")
        ks = f"{stage.kernel_size[0]}x{stage.kernel_size[1]} /{stage.strides[0]}"
        line(f"adaptive_{r + 1}", stage.output.shape, ks, stage.count_params())
    line("second_aggregation", model.get_layer("second_aggregation").output.shape, "concat", 0)
    line("embedding (GAP)", model.get_layer("embedding").output.shape, "", 0)
    head = model.get_layer("coral_head")
    line("coral_head", head.output.shape, "", head.count_params())
    lines.append(f"{'total':22s} {'':22s} {'':14s} {model.count_params():>12,}")
    return "\n".join(lines)


def _head_params(model):
    """Parameters of the layers after the pooled embedding (the age head)."""
    names = [layer.name for layer in model.layers]
    after = names[names.index("embedding") + 1:] if "embedding" in names else []
    return sum(model.get_layer(n).count_params() for n in after)


def vovnetv4_parameter_rows(models=TABLE1_MODELS, input_shape=(120, 120, 3), num_classes=26):
    """One row per model: total, trainable and head parameters.

    Args:
        models: registry names.
        input_shape: image shape (the counts of the convolutions do not depend
            on it; VoVNetv4's Adaptive Stage kernels do).
        num_classes: age classes (26 for AFAD ages 15-40).

    Returns:
        list of dicts `{"method", "model", "params", "trainable", "head"}`.
    """
    rows = []
    for name in models:
        model = registry.get(name, input_shape=input_shape, num_classes=num_classes)
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        rows.append(
            {
                "method": method_name(name),
                "model": name,
                "params": model.count_params(),
                "trainable": trainable,
                "head": _head_params(model),
            }
        )
        del model
    keras.backend.clear_session()
    return rows


def vovnetv4_result_rows(results, setting, models=None, table=1, extra=None):
    """Rows for `agekeras.tables.results_table` from `{model: metrics dict}`.

    Args:
        results: registry name -> the dict returned by `agekeras.training.train`.
        setting: dict of setting columns, e.g. `{"dataset": "UTKFace 15-40",
            "protocol": "...", "size": 64}`.
        models: order (default: the keys of `results`); models without a
            result are skipped.
        table: 1 or 2 (the method labels follow that table).
        extra: optional registry name -> dict of more columns.

    Returns:
        list of dicts with method, the setting, MAE, RMSE and CA(5) (%).
    """
    rows = []
    for name in models or list(results):
        if name not in results:
            continue
        m = results[name]
        ca5 = m.get("ca5")
        rows.append(
            {
                "method": method_name(name, table),
                **setting,
                "MAE": m["mae"],
                "RMSE": m["rmse"],
                "CA(5) %": None if ca5 is None else 100 * float(ca5),
                **(extra or {}).get(name, {}),
            }
        )
    return rows


_OUTPUTS_CACHE = {}


def run_outputs(run_dir, *, split="test", max_faces=1000):
    """What a trained run's best checkpoint says about its faces, in one pass.

    Args:
        run_dir: a folder written by `agekeras.training.train`.
        split: "test", "val" or "train".
        max_faces: at most this many faces (a seeded subset).

    Returns:
        dict of NumPy arrays: "embedding" `(n, d)` (the pooled features, the
        head's input), "age" `(n,)` (the predicted age), "true_age" `(n,)`,
        "age_logits" `(n, K-1)` for a CORAL or OR-CNN head, and "age_min"
        (the age of rank 1). Cached per checkpoint.
    """
    run = pathlib.Path(run_dir)
    try:
        ckpt = RunDir(run).checkpoint()  # best.keras, else last.keras
    except FileNotFoundError:
        ckpt = None
    key = (str(run.resolve()), split, max_faces, ckpt.stat().st_mtime_ns if ckpt is not None else None)
    if key in _OUTPUTS_CACHE:
        return _OUTPUTS_CACHE[key]
    model, config, saved = evaluation.load_run(run)
    splits, _ = training.load_splits(config)
    faces = splits[split]
    if len(faces) > max_faces:
        idx = np.sort(np.random.default_rng(config.seed).choice(len(faces), max_faces, replace=False))
        faces = faces.subset(idx)
    wanted = {"embedding": model.get_layer("embedding").output, "age": model.output["age"]}
    if "age_logits" in model.output:
        wanted["age_logits"] = model.output["age_logits"]
    features = keras.Model(model.inputs, wanted)
    out, labels = evaluation.dataset_outputs(features, faces, config.image_size, with_labels=True)
    result = {k: np.asarray(v) for k, v in out.items()}
    result["true_age"] = np.asarray(labels["age"])
    result["age_min"] = saved["age_min"]
    _OUTPUTS_CACHE[key] = result
    return result


def embedding_and_ages(run_dir, *, split="test", max_faces=1000):
    """The pooled features ("embedding", the head's input) of a run's faces.

    Args:
        run_dir: a folder written by `agekeras.training.train`.
        split: "test", "val" or "train".
        max_faces: at most this many faces (a seeded subset).

    Returns:
        `(embeddings (n, d), ages (n,))` as NumPy arrays.
    """
    out = run_outputs(run_dir, split=split, max_faces=max_faces)
    return out["embedding"], out["true_age"]


def figure_title(what, setting, model="VoVNetv4 + CORAL"):
    """A figure's title: what it shows, the model, the data, the image size and the training length."""
    return f"{what}: {model}, {setting.label}, {setting.image_size} px, {setting.budget()}"


def plot_coral_curves(logits, true_ages, age_min, *, faces=6, title=None, save_to=None):
    """The CORAL rank probabilities P(y > r_k) of a few faces against the rank age r_k.

    Each curve is one face (spread over the age range of `true_ages`); its
    true age is a dotted vertical line of the same colour, and the count
    decode is where the curve crosses 0.5 (the dashed line). A rank-consistent
    head gives non-increasing curves.

    Args:
        logits: `(n, K-1)` CORAL logits.
        true_ages: `(n,)` true ages.
        age_min: the age of rank 1 (task k asks "is y > age_min + k - 1?").
        faces: how many faces to draw.
        title: the figure title.
        save_to: optional PNG path.

    Returns:
        The `Figure`.
    """
    from agekeras import plots
    from agekeras.plots.common import new_axes

    p = np.asarray(keras.ops.convert_to_numpy(layers.coral_probabilities(np.asarray(logits, "float32"))))
    true_ages = np.asarray(true_ages, "float64").reshape(-1)
    order = np.argsort(true_ages, kind="stable")
    pick = order[np.unique(np.linspace(0, len(order) - 1, min(faces, len(order))).round().astype(int))]
    ranks = age_min + np.arange(p.shape[1])
    fig, ax = new_axes(None, figsize=(7, 4))
    for i, j in enumerate(pick):
        decoded = age_min + int(np.sum(p[j] > 0.5))
        ax.plot(ranks, p[j], color=f"C{i}", marker=".", label=f"true {true_ages[j]:.0f}, decoded {decoded}")
        ax.axvline(true_ages[j], color=f"C{i}", linestyle=":", linewidth=1)
    ax.axhline(0.5, color="k", linestyle="--", linewidth=1)
    ax.set_xlabel("rank age r_k (task k: is y > r_k?)")
    ax.set_ylabel("P(y > r_k)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize="small", loc="upper right")
    return plots.with_title(fig, title or "CORAL rank probabilities", save_to=save_to)


def adaptive_stage_shapes(model):
    """One dict per ROSA region of a `vovnetv4` model: its output size and width,
    its Adaptive Stage's kernel, stride and output, and the cycles it ran."""
    rosa = model.get_layer("rosa")
    rows = []
    for r, order in enumerate(rosa.schedule):
        region = rosa.output[r]
        stage = model.get_layer(f"adaptive_{r + 1}")
        rows.append({"region": r + 1, "cycles": len(order), "modules": len(set(order)),
                     "size": int(region.shape[1]), "width": int(region.shape[-1]),
                     "kernel": int(stage.kernel_size[0]), "stride": int(stage.strides[0]),
                     "out_size": int(stage.output.shape[1]), "out_width": int(stage.output.shape[-1])})
    return rows


def plot_adaptive_stages(models, *, title=None, save_to=None):
    """The paper's phased aggregation, drawn to scale: for each model, the four
    ROSA regions (a square of side = feature-map size, labelled with width and
    cycles) and the Adaptive Stage that brings each one to the common size.

    Args:
        models: dict label -> a `vovnetv4` model (e.g. two input sizes).
        title: the figure title.
        save_to: optional PNG path.

    Returns:
        The `Figure`.
    """
    import matplotlib.patches as patches

    from agekeras import plots
    from agekeras.plots.common import panel_axes

    fig, axes = panel_axes(None, len(models), figsize=(6.5 * len(models), 3.4))
    for ax, (label, model) in zip(axes, models.items()):
        rows = adaptive_stage_shapes(model)
        scale = 1.0 / max(r["size"] for r in rows)
        for i, r in enumerate(rows):
            x = i * 1.3
            side = r["size"] * scale
            ax.add_patch(patches.Rectangle((x, 1.15), side, side, facecolor=f"C{i}", alpha=0.35, edgecolor=f"C{i}"))
            ax.text(x, 1.2 + side, f"R{r['region']}: {r['size']}x{r['size']}x{r['width']}\n{r['cycles']} cycle(s)",
                    va="bottom", fontsize="small")
            out = r["out_size"] * scale
            ax.add_patch(patches.Rectangle((x, 0.0), out, out, facecolor=f"C{i}", alpha=0.8, edgecolor="k"))
            ax.annotate("", xy=(x + out / 2, out + 0.02), xytext=(x + side / 2, 1.13),
                        arrowprops=dict(arrowstyle="->", color="0.3"))
            ax.text(x + side / 2 + 0.08, 0.55, f"k={r['kernel']}\ns={r['stride']}", fontsize="small", color="0.2")
        ax.text(len(rows) * 1.3 - 0.1, 0.05, f"-> concat:\n{rows[0]['out_size']}x{rows[0]['out_size']}x"
                f"{sum(r['out_width'] for r in rows)}", fontsize="small")
        ax.set_xlim(-0.1, len(rows) * 1.3 + 0.9)
        ax.set_ylim(-0.15, 2.6)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(label, fontsize="medium")
    return plots.with_title(fig, title or "ROSA regions and Adaptive Stages", save_to=save_to)
