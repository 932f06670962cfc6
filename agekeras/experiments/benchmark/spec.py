"""What a benchmark trains: its models, data, budget and seeds (`BenchmarkSpec`), and the papers' numbers.

`make_spec` turns the options of `python -m agekeras benchmark` (or a
notebook's keyword arguments) into a checked `BenchmarkSpec`, filling the
defaults of the full benchmark or of `quick=True`.
"""

from __future__ import annotations

import dataclasses

#: Every paper model and the baselines, in the order of the tables.
DEFAULT_MODELS = ("resnet18_dex", "resnet34_dex", "resnet34_coral", "vovnetv4", "al_ror34", "daa_resnet18", "dhaa",
                  "gra_net")
#: `--quick`: two small models on synthetic faces, one seed, one epoch at 32 px.
QUICK_MODELS = ("resnet18_dex", "resnet18_coral")
QUICK_FACES = 300
QUICK_IMAGE_SIZE = 32
QUICK_BATCH_SIZE = 32
#: Default protocol of the full benchmark.
DEFAULT_TIME_BUDGET = 15.0

#: The best from-scratch recipe found for 15 CPU-minutes on UTKFace at 64 px
#: (the README's "Results"): `TrainConfig` fields, trained for `CPU_RECIPE_MINUTES`
#: and scored with flip test-time averaging. `quickstart --data-dir` trains it.
#: Its only augmentation is the mirror image: in 15 CPU-minutes the network is short of
#: fitting, and rotation, shifts and zoom cost more fit than they add (README).
CPU_RECIPE = {
    "model": "resnet18_dex", "image_size": 64, "batch_size": 64, "label_sigma": 2.0, "age_l1": 1.0,
    "augment": {"rotation": 0, "translation": 0, "zoom": 0},
}
CPU_RECIPE_MINUTES = 15.0

#: How every model of a benchmark is trained. "default": each model's own
#: losses (one-hot cross-entropy for softmax heads, CORAL's binary
#: cross-entropy, ...) and the input pipeline's default augmentation (mirror,
#: rotation, shifts, zoom). "cpu": `CPU_RECIPE`'s loss and augmentation for every
#: model: every `age_probs*` softmax (DEX, DHAA's classifiers, DAA, the AL heads,
#: GRA_Net's age) trained towards a Gaussian label distribution of sigma
#: `CPU_RECIPE["label_sigma"]` years, an L1 loss on the "age" output (the
#: expected age; for CORAL and OR-CNN heads the sum of the rank probabilities,
#: our ordinal analogue: their binary cross-entropy stays, the L1 is added;
#: DAA and GRA_Net regress the age with a smooth L1 of their own, which stays)
#: and the mirror image as the only augmentation.
RECIPES = {
    "default": {},
    "cpu": {k: CPU_RECIPE[k] for k in ("label_sigma", "age_l1", "augment")},
}
DEFAULT_RECIPE = "default"

#: Each paper's own claim as a comparison at one recipe: paper -> the paper's
#: model ("model") and the models that differ from it by one component
#: ("without": registry name -> what it leaves out), same trunk where the paper
#: has one, and the builder arguments they share ("model_args", optional). `benchmark --ablation PAPER` trains them; `ablation_table` compares.
ABLATIONS = {
    "vovnetv4": {"model": "vovnetv4", "without": {
        "vovnet57": "plain OSA stages instead of ROSA + Adaptive Stages (the same OSA blocks, CORAL head)",
        "vovnetv4_dex": "a softmax (DEX) head instead of CORAL (the same network)"}},
    "al_resnet": {"model": "al_ror34", "without": {
        "ror34_dex": "the global head alone (no attention-LSTM locator, no local head)"},
        # the RoR trunk's small-input stem at 64 px, as in the benchmark's al_ror34 (and for both)
        "model_args": {"al_ror34": {"small_input": True}, "ror34_dex": {"small_input": True}}},
    "daa": {"model": "daa_resnet18", "without": {
        "daa_resnet18_plain": "the same encoder without the DAA module (FC regression)"}},
    "dhaa": {"model": "dhaa", "without": {
        "resnet18_dex": "the Res18+EX baseline (whole face, no regions, no fusion)",
        "dhaa_global": "the global branch alone", "dhaa_local": "the local branch alone",
        "dhaa_global_local": "the global-local branch alone"}},
    "gra_net": {"model": "gra_net", "without": {
        "gra_net_no_attention": "no attention: each module's trunk units alone (no mask branch, no gate)",
        "residual_attention56": "attention without the gate: (1 + M) x F, as in the Residual Attention Network"}},
}

DEFAULT_SEEDS = (0, 1, 2)
#: Minutes at which the curves say which model leads.
MARK_MINUTES = (1, 5, 15)
#: Metrics of each run's metrics.json copied to the results rows.
METRICS = ("mae", "rmse", "ca3", "ca5", "ca7", "median_predictor_mae", "gender_accuracy")

_MORPH_8020 = "MORPH II, random 80/20"
#: The papers' headline numbers next to the model that implements them (from
#: `NNN-results.md`; each with its table, dataset, protocol and pretraining).
#: Not comparable with ours: other datasets, 128-256 px where stated, 120-200
#: GPU epochs where stated, and each paper's own start (`pretraining`:
#: ImageNet for DHAA and its Res18+EX, ImageNet + IMDB-WIKI-101 for the AL
#: paper's models, none for DAA's 2.25, not stated by VoVNetv4). GRA_Net's
#: seminar report gives no result number (its MAE stays empty). `resnet34_ce`
#: is not in the default benchmark; its line shows when it is benchmarked.
PAPER_HEADLINES = {
    "resnet18_dex": {"method": "Res18+EX (DHAA paper's baseline)", "paper": "Tan et al., IJCAI 2019", "table": "3",
                     "dataset": _MORPH_8020, "pretraining": "ImageNet", "size": 256, "MAE": 2.331},
    "resnet34_dex": {"method": "ResNets-34 (global only: DEX, AL paper's baseline)",
                     "paper": "Zhang et al., TCSVT (arXiv 1805.10445)", "table": "IV",
                     "dataset": "ChaLearn LAP 2015, validation set", "pretraining": "ImageNet + IMDB-WIKI-101",
                     "size": 224, "MAE": 3.712},
    "resnet34_ce": {"method": "ResNet-34 (classification baseline)", "paper": "Zhang et al., VoVNetv4",
                    "table": "I", "dataset": "AFAD (ages 15-40), split not stated", "pretraining": "not stated",
                    "size": None, "MAE": 3.71, "RMSE": 5.15},
    "resnet34_coral": {"method": "ResNet-34 + CORAL", "paper": "Zhang et al., VoVNetv4", "table": "I",
                       "dataset": "AFAD (ages 15-40), split not stated", "pretraining": "not stated", "size": None,
                       "MAE": 3.44, "RMSE": 4.69},
    "vovnetv4": {"method": "VoVNetv4 + CORAL", "paper": "Zhang et al., VoVNetv4", "table": "I",
                 "dataset": "AFAD (ages 15-40), split not stated", "pretraining": "not stated", "size": None,
                 "MAE": 3.30, "RMSE": 4.64},
    "al_ror34": {"method": "AL-RoR-34", "paper": "Zhang et al., TCSVT (arXiv 1805.10445)", "table": "VI",
                 "dataset": "MORPH II (5,475 Caucasian), random 80/20", "pretraining": "ImageNet + IMDB-WIKI-101",
                 "size": 224, "MAE": 2.36},
    "daa_resnet18": {"method": "ResNet18+DAA", "paper": "Chen et al., CVPR 2023 (arXiv 2303.07929)", "table": "1",
                     "dataset": _MORPH_8020 + " (C3AE protocol)", "pretraining": "none (2.06 with IMDB-Wiki)",
                     "size": 128, "MAE": 2.25},
    "dhaa": {"method": "DHAA", "paper": "Tan et al., IJCAI 2019", "table": "1 and 3", "dataset": _MORPH_8020,
             "pretraining": "ImageNet", "size": 256, "MAE": 1.908},
    "gra_net": {"method": "GRA_Net", "paper": "seminar report on Garain et al., IEEE Access 2021", "table": "—",
                "dataset": "no result number in the report", "pretraining": "—", "size": 32, "MAE": None},
}


# ----- settings -------------------------------------------------------------------------


@dataclasses.dataclass
class BenchmarkSpec:
    """What one benchmark trains (`make_spec` builds it from the command line's options).

    Attributes:
        models: registry names, in table order.
        dataset, data_dir, dataset_kwargs: the data (see `agekeras.datasets.load`).
        time_budget: training minutes per run (equal-time view), or None.
        epochs: epochs per run (equal-epochs view), or None.
        seeds: one run per model and seed; the seed also picks the split.
        image_size, batch_size: as in `TrainConfig`.
        out: the benchmark folder.
        cross: `(dataset, data_dir)` pairs evaluated on their whole data.
        model_args: model -> extra builder arguments.
        flip: also report the test MAE with flip test-time averaging
            (`agekeras.evaluation.mean_over_views`), as `mae_flip`.
        recipe: a key of `RECIPES`: the loss and augmentation every model
            trains with.
    """

    models: tuple
    dataset: str = "utkface"
    data_dir: str | None = None
    dataset_kwargs: dict = dataclasses.field(default_factory=dict)
    time_budget: float | None = DEFAULT_TIME_BUDGET
    epochs: int | None = None
    seeds: tuple = DEFAULT_SEEDS
    image_size: int = 64
    batch_size: int = 64
    out: str = "runs/bench"
    cross: tuple = ()
    model_args: dict = dataclasses.field(default_factory=dict)
    flip: bool = False
    recipe: str = DEFAULT_RECIPE

    @property
    def view(self):
        """"equal time" or "equal epochs"."""
        return "equal time" if self.time_budget is not None else "equal epochs"

    def protocol(self):
        """The settings that must not change between the runs of one benchmark folder."""
        return {"dataset": self.dataset, "data_dir": self.data_dir, "dataset_kwargs": self.dataset_kwargs,
                "time_budget": self.time_budget, "epochs": self.epochs, "image_size": self.image_size,
                "batch_size": self.batch_size, "recipe": self.recipe}

    def describe(self):
        """The protocol in one line, e.g. "utkface, random split by seed, 64 px, batch 64, 15 min per run ..."."""
        budget = f"{self.time_budget:g} min" if self.time_budget is not None else f"{self.epochs} epochs"
        return (f"{self.dataset}, random split by seed, {self.image_size} px, batch {self.batch_size}, "
                f"{budget} per run ({self.view}), {self.recipe} recipe, seeds {','.join(map(str, self.seeds))}")



def make_spec(*, models=None, dataset=None, data_dir=None, time_budget=None, epochs=None, seeds=None, image_size=None,
              batch_size=None, out="runs/bench", cross=(), model_args=None, flip=False, recipe=None, quick=False,
              ablation=None):
    """The checked `BenchmarkSpec` of the benchmark's options; None picks the default.

    The defaults are those of the full benchmark (`DEFAULT_MODELS` on
    utkface, `DEFAULT_TIME_BUDGET` minutes per run, seeds 0, 1, 2, 64 px), or
    with `quick` those of a check of the code (`QUICK_MODELS` on
    `QUICK_FACES` synthetic faces, one epoch, seed 0, 32 px).

    Args:
        models: registry names, in table order.
        dataset, data_dir: the data (see `agekeras.datasets.load`).
        time_budget: training minutes per run (the equal-time view).
        epochs: epochs per run (the equal-epochs view); not with `time_budget`.
        seeds: one run per model and seed.
        image_size, batch_size: as in `TrainConfig`.
        out: the benchmark folder.
        cross: `(dataset, data_dir)` pairs also scored on their whole data.
        model_args: model -> extra builder arguments, e.g. `{"dhaa": {"width": 0.25}}`.
        flip: also report the test MAE with flip test-time averaging.
        recipe: a key of `RECIPES` (default `DEFAULT_RECIPE`).
        quick: the quick defaults above.
        ablation: a key of `ABLATIONS`: its paper's model and the models
            without its component (when `models` is not given).

    Returns:
        A `BenchmarkSpec`.

    Raises:
        ValueError: an unknown or repeated model, no model or seed, both
            `time_budget` and `epochs`, builder arguments of a model that is
            not benchmarked, a cross dataset that is the benchmark's own, or
            an unknown ablation.

    Example:

    >>> spec = make_spec(models=("resnet18_dex", "dhaa"), epochs=3, model_args={"dhaa": {"width": 0.25}})
    >>> spec.view, spec.seeds
    ('equal epochs', (0, 1, 2))
    """
    from agekeras import models as registry

    if ablation is not None and ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}: choose one of {', '.join(ABLATIONS)}")
    if ablation is not None and models is not None:
        raise ValueError("give the models or an ablation (which names its models), not both")
    if models is not None:
        names = tuple(models)
    elif ablation is not None:
        names = ablation_models(ablation)
    else:
        names = QUICK_MODELS if quick else DEFAULT_MODELS
    if not names:
        raise ValueError("no model to benchmark: the models list is empty")
    for name in names:
        registry.entry(name)  # unknown names raise with the list of choices
    if len(set(names)) != len(names):
        raise ValueError(f"the models list names a model twice: {','.join(names)}")
    recipe = recipe or DEFAULT_RECIPE
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}: choose one of {', '.join(RECIPES)}")
    if time_budget is not None and epochs is not None:
        raise ValueError("give a time budget (equal time) or a number of epochs (equal epochs), not both")
    seeds = tuple(int(s) for s in seeds) if seeds is not None else ((0,) if quick else DEFAULT_SEEDS)
    if not seeds:
        raise ValueError("no seed to run: the seeds list is empty")
    dataset = dataset or ("synthetic" if quick else "utkface")
    cross = tuple((str(name), str(folder)) for name, folder in cross)
    for name, folder in cross:
        if name == dataset and folder == data_dir:
            raise ValueError(f"cross dataset {name}:{folder} is the benchmark's own dataset: its test MAE is "
                             "already reported")
    defaults = ABLATIONS[ablation].get("model_args", {}) if ablation is not None else {}
    given = model_args or {}
    model_args = {m: {**defaults.get(m, {}), **given.get(m, {})} for m in dict.fromkeys([*defaults, *given])}
    for model in model_args:
        if model not in names:
            raise ValueError(f"builder arguments for {model!r}, which is not one of the benchmarked models "
                             f"{list(names)}")
    if quick:
        kwargs = {"n": QUICK_FACES} if dataset == "synthetic" else {}
        if epochs is None and time_budget is None:
            epochs = 1
        image_size, batch_size = image_size or QUICK_IMAGE_SIZE, batch_size or QUICK_BATCH_SIZE
    else:
        kwargs = {}
        if epochs is None and time_budget is None:
            time_budget = DEFAULT_TIME_BUDGET
        image_size, batch_size = image_size or 64, batch_size or 64
    return BenchmarkSpec(models=names, dataset=dataset, data_dir=data_dir, dataset_kwargs=kwargs,
                         time_budget=time_budget, epochs=epochs, seeds=seeds, image_size=image_size,
                         batch_size=batch_size, out=str(out), cross=cross, model_args=model_args, flip=bool(flip),
                         recipe=recipe)


def ablation_models(paper):
    """The registry names of `ABLATIONS[paper]`: the paper's model first, then those without its component.

    Example:

    >>> ablation_models("daa")
    ('daa_resnet18', 'daa_resnet18_plain')
    """
    a = ABLATIONS[paper]
    return (a["model"], *a["without"])
