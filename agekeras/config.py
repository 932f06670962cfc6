"""What defines a training run: `TrainConfig`, and the data splits it names.

`TrainConfig` is saved in the run's config.json (`agekeras.runs.RunDir`);
`load_splits(config)` re-creates the seeded splits of a run from it, so that
evaluating a run later scores the very faces it was tested on.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

DATASET_ALIGNMENT = {"utkface": "utkface"}
#: Datasets whose faces are whole images by construction (no photo framing to match).
WHOLE_IMAGE_DATASETS = ("synthetic",)


def unaligned_photos_warning(config, where):
    """The one-line warning for photos scored by a run that records no face
    alignment, or None when there is nothing to warn about.

    A run trained on a dataset without a known framing (e.g. a `csv` of
    UTKFace crops) records `align=None`; `predict` and cross-dataset
    `evaluate` then feed each photo whole (its centre crop), which is only
    right when the training faces were whole images too.

    Args:
        config: the run's `TrainConfig`.
        where: the run's name for the message.

    Example:

    >>> unaligned_photos_warning(TrainConfig(dataset="csv"), "runs/r18")[:40]
    'runs/r18 records no face alignment (trai'
    """
    if config.align is not None or config.dataset in WHOLE_IMAGE_DATASETS:
        return None
    return (f"{where} records no face alignment (trained on {config.dataset!r}): each photo is fed whole as its "
            "centre crop; if its training faces were aligned crops, pass --align utkface (align='utkface') "
            "or the template of their framing")


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved as config.json).

    Args:
        model: registry name (`agekeras.models.available()`), or the name
            of a model passed to `train(config, model=...)`.
        dataset: dataset name (`agekeras.datasets.available()`).
        data_dir: folder of a file-backed dataset.
        protocol: split protocol (`agekeras.datasets.protocols()`).
        fold: fold index for k-fold / leave-one-person-out protocols.
        epochs: number of epochs; with `time_budget`, an upper bound (None:
            train until the budget runs out).
        time_budget: minutes of training; the learning-rate schedule is
            stretched over this budget, and training stops when it runs out.
        batch_size, image_size, lr, optimizer: as usual; optimizer is
            "adam", "adamw", "sgd" (momentum 0.9) or "nadam".
        weight_decay: None (the optimizer's default: none for adam and
            nadam, 1e-4 for adamw and sgd) or a number, which every
            optimizer honours (see `make_optimizer`).
        warmup: fraction of the run with a linear learning-rate warm-up; the
            rest follows a cosine decay to 1% of `lr`.
        lr_drops: instead of the cosine, a step schedule: fractions of the run
            (e.g. `[0.5, 0.75]`) at which the learning rate is divided by 10;
            `[]` keeps it constant (after any warm-up).
        seed: seeds the split, shuffling, augmentation and initialisation.
        out: run directory.
        strategy: "default", "mirrored" or "multiworker" (reads TF_CONFIG).
        mixed_precision: mixed precision: "mixed_float16" on a GPU,
            "mixed_bfloat16" on a CPU (`mixed_precision_policy`).
        augment: augmentation during training: True for the input
            pipeline's default factors (`agekeras.datasets.pipeline.
            DEFAULT_AUGMENT`: mirror, +-10 degrees, 5% shifts, 10% zoom),
            False for none, or a dict overriding some of them, e.g.
            `{"rotation": 0, "zoom": 0.05}`.
        val_fraction: share of the training split held out for validation
            (model selection); 0 disables validation and best.keras tracks
            the training loss.
        cache: cache decoded images in memory after the first epoch.
        max_train: cap the number of training faces (seeded subset), for
            quick runs.
        num_classes, age_min: age classes of the head; by default taken from
            the whole dataset's age range.
        model_kwargs: extra builder arguments.
        dataset_kwargs: extra reader arguments (e.g. `n` for synthetic).
        verbose: Keras progress-bar verbosity.
        align: face-alignment convention of the training crops (a template
            name of `agekeras.datasets.align.TEMPLATES`, or None for crops
            used as they are); "auto" takes it from the dataset (utkface:
            "utkface"). `predict` and cross-dataset `evaluate` align photos
            this way before the model sees them.
        label_sigma: None, or train every `age_probs*` softmax against a
            Gaussian label distribution of this standard deviation in years
            (`agekeras.losses.GaussianLabelCrossentropy`) instead of one-hot.
        age_l1: weight of an L1 loss on the "age" output (the expected age of
            a softmax head) added to the model's losses; 0 adds none.
        ema: None, or the momentum of an exponential moving average of the
            weights (Polyak averaging; Keras' optimizer `use_ema`): after
            every step, avg <- ema * avg + (1 - ema) * w. Validation and
            best.keras then use the averaged weights (last.keras keeps the
            raw weights and the average, so a resume continues both). The
            average spans about 1 / (1 - ema) steps: 0.995 is 200 steps,
            about 2 epochs of 7,811 UTKFace faces at batch 64.
        steps_per_epoch: None for epochs of one pass over the training
            faces, or a number of batches per epoch drawn from the training
            faces repeated and reshuffled: shorter epochs give a short run
            more validation points (and best.keras more chances) without
            fewer faces.
    """

    model: str = "resnet18_dex"
    dataset: str = "synthetic"
    data_dir: str | None = None
    protocol: str = "random"
    fold: int = 0
    epochs: int | None = 10
    time_budget: float | None = None
    batch_size: int = 64
    image_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float | None = None
    warmup: float = 0.03
    lr_drops: list | None = None
    seed: int = 0
    out: str = "runs/run"
    strategy: str = "default"
    mixed_precision: bool = False
    augment: bool | dict = True
    val_fraction: float = 0.1
    cache: bool = True
    max_train: int | None = None
    num_classes: int | None = None
    age_min: int | None = None
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    dataset_kwargs: dict = dataclasses.field(default_factory=dict)
    verbose: int | str = "auto"
    align: str | None = "auto"
    label_sigma: float | None = None
    age_l1: float = 0.0
    ema: float | None = None
    steps_per_epoch: int | None = None

    def __post_init__(self):
        if self.steps_per_epoch is not None and int(self.steps_per_epoch) < 1:
            raise ValueError(f"steps_per_epoch must be a positive number of batches, got {self.steps_per_epoch!r}")
        if self.align == "auto":
            self.align = DATASET_ALIGNMENT.get(self.dataset)
        if not isinstance(self.augment, bool):  # fail on unknown factors now, not after the data has loaded
            from agekeras.datasets.pipeline import augment_factors

            augment_factors(self.augment)

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d):
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})


def load_splits(config: TrainConfig):
    """Load `config.dataset` and split it by `config.protocol` (seeded).

    Returns:
        (splits, full): dict with "train", "test" and maybe "val"
        `AgeDataset`s, and the full dataset.
    """
    from agekeras import datasets

    kwargs = dict(config.dataset_kwargs)
    if config.dataset == "synthetic":
        kwargs.setdefault("image_size", config.image_size)
        kwargs.setdefault("seed", config.seed)
    full = datasets.load(config.dataset, config.data_dir, **kwargs)
    splits = datasets.split(
        full, config.protocol, seed=config.seed, fold=config.fold, val_fraction=config.val_fraction
    )
    if config.max_train and len(splits["train"]) > config.max_train:
        rng = np.random.default_rng(config.seed)
        idx = np.sort(rng.choice(len(splits["train"]), config.max_train, replace=False))
        splits["train"] = splits["train"].subset(idx)
    return splits, full


#: TrainConfig fields that do not change what a run computes: a run may be
#: resumed with other values of these (more `epochs` continue a finished run).
NOT_IN_RESUME_KEY = ("out", "verbose", "epochs", "cache")


def resume_key(config: TrainConfig) -> dict:
    """The settings a resumed run must share with the run it continues: every
    field of `config` but `NOT_IN_RESUME_KEY`, as JSON values."""
    d = json.loads(json.dumps(config.to_json()))  # as config.json holds it: tuples become lists
    return {k: v for k, v in d.items() if k not in NOT_IN_RESUME_KEY}


def config_differences(saved: dict, config: TrainConfig) -> list:
    """The `resume_key` fields where a saved config.json "train" dict and
    `config` differ, as "field: saved -> new" strings."""
    old = resume_key(TrainConfig.from_json(saved))
    new = resume_key(config)
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in new if old.get(k) != new.get(k)]
