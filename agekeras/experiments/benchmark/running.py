"""Running a benchmark: train (or resume) every (model, seed) of a `BenchmarkSpec`, then write its results.

`run_benchmark(spec)` is what `python -m agekeras benchmark` calls: every
(model, seed) is one `agekeras.training.train` run in `OUT/<model>/seed<seed>/`
with the same protocol; finished runs are not trained again, a model that
needs landmarks the data lacks is skipped, a failing model is reported and the
others run.
"""

from __future__ import annotations

import logging
import pathlib
import time

from agekeras.runs import RunDir, read_json, write_json

from .report import write_figures
from .results import SHARED_MACHINE, collect, free_models, run_cpu_others, run_dir, write_results

logger = logging.getLogger("agekeras.benchmark")

PROTOCOL_FILE = "benchmark.json"
"""Where a benchmark folder records its protocol (`BenchmarkSpec.protocol`)."""


def check_protocol(spec):
    """Record the protocol in OUT/benchmark.json; refuse a folder holding another one.

    Raises:
        ValueError: `spec.out` holds a benchmark with other settings (named).
    """
    out = pathlib.Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / PROTOCOL_FILE
    wanted = spec.protocol()
    saved = read_json(path)
    if saved:
        old = saved.get("protocol", {})
        diff = {k: (old.get(k), v) for k, v in wanted.items() if old.get(k) != v}
        if diff:
            changes = "; ".join(f"{k}: {a!r} there, {b!r} asked" for k, (a, b) in diff.items())
            raise ValueError(f"{out} holds a benchmark with other settings ({changes}): use another --out")
    write_json(path, {"protocol": wanted})


def skip_reason(model, has_landmarks):
    """Why `model` cannot run on the data, or None."""
    from agekeras import models as registry

    if registry.entry(model).needs_landmarks and not has_landmarks:
        return "needs 5 facial landmarks per face; the dataset has none (use the csv reader on a landmarks file)"
    return None


def _dataset_has_landmarks(spec):
    """True when some face of the dataset has 5 landmarks.

    Faces without them (e.g. MTCNN found no face and the landmarks CSV left
    the cells empty) are counted and logged, not a reason to skip the model:
    `AlignedRegionPooling` gives them its canonical face.
    """
    from agekeras import datasets

    ds = datasets.load(spec.dataset, spec.data_dir, **spec.dataset_kwargs)
    found = int(ds.landmarks_found.sum())
    if 0 < found < len(ds):
        logger.warning("%d of %d faces have no landmarks: models that need them use the canonical face there",
                       len(ds) - found, len(ds))  # fmt: skip
    return found > 0


def landmarks_available(spec):
    """Whether the models of `spec` that need landmarks (DHAA) can run: True
    when none of them needs any, else whether the dataset has them (see
    `skip_reason`)."""
    needs = [m for m in spec.models if skip_reason(m, has_landmarks=False)]
    return _dataset_has_landmarks(spec) if needs else True


def has_softmax_age_head(model, image_size=64, model_kwargs=None):
    """True when the registered `model` has an `age_probs*` softmax output (a
    label distribution can train it); False for CORAL, OR-CNN and regression heads."""
    import keras

    from agekeras import models as registry

    built = registry.entry(model).builder(input_shape=(image_size, image_size, 3), num_classes=10, age_min=0,
                                          **dict(model_kwargs or {}))
    names = list(built.output.keys()) if isinstance(built.output, dict) else []
    del built
    keras.backend.clear_session()
    return any(n.startswith("age_probs") for n in names)


def recipe_settings(spec, model):
    """The `TrainConfig` fields of `spec.recipe` for `model`: the label
    distribution only where the model has a softmax age head, the L1 on the
    expected age only where the model does not train its "age" output with a
    regression loss of its own already (DAA's and GRA_Net's smooth L1)."""
    from agekeras import models as registry

    from .spec import RECIPES

    settings = dict(RECIPES[spec.recipe])
    if settings.get("age_l1") and "age" in (registry.entry(model).losses or {}):
        del settings["age_l1"]
    if settings.get("label_sigma") and not has_softmax_age_head(model, spec.image_size,
                                                                spec.model_args.get(model)):
        del settings["label_sigma"]
    return settings


def train_config(spec, model, seed):
    """The `TrainConfig` of one (model, seed) of the benchmark."""
    from agekeras.training import TrainConfig

    return TrainConfig(**recipe_settings(spec, model), model=model, dataset=spec.dataset, data_dir=spec.data_dir,
                       protocol="random", epochs=spec.epochs, time_budget=spec.time_budget, batch_size=spec.batch_size,
                       image_size=spec.image_size, seed=int(seed), out=str(run_dir(spec.out, model, seed)),
                       model_kwargs=dict(spec.model_args.get(model, {})),
                       dataset_kwargs=dict(spec.dataset_kwargs), verbose=0)


def _check_model_args(path, config):
    saved = RunDir(path).read_config().get("train")
    if saved and saved.get("model_kwargs", {}) != config.model_kwargs:
        raise ValueError(f"{path} was trained with model args {saved.get('model_kwargs')}, "
                         f"not {config.model_kwargs}: use another --out")


def run_benchmark(spec, *, train_fn=None, print_fn=print):
    """Train (or resume) every (model, seed) of `spec`, then write the results.

    Args:
        spec: a `BenchmarkSpec`.
        train_fn: the training function (default `agekeras.training.train`).
        print_fn: where the progress lines go.

    Returns:
        The results dict also written to `OUT/results.json` (see `collect`).
    """
    from agekeras import training

    train_fn = train_fn or training.train
    check_protocol(spec)
    has_landmarks = landmarks_available(spec)
    skipped, failed = [], []
    jobs = [(m, s) for m in spec.models for s in spec.seeds]
    print_fn(f"benchmark: {len(spec.models)} models x {len(spec.seeds)} seeds; {spec.describe()}; out {spec.out}")
    start = time.monotonic()
    for i, (model, seed) in enumerate(jobs, 1):
        tag = f"[{i}/{len(jobs)}] {model} seed {seed}"
        reason = skip_reason(model, has_landmarks)
        if reason:
            skipped.append({"model": model, "seed": seed, "reason": reason})
            logger.warning("%s skipped: %s", tag, reason)
            print_fn(f"{tag}: skipped ({reason})")
            continue
        path = run_dir(spec.out, model, seed)
        if RunDir(path).is_finished():
            print_fn(f"{tag}: finished before, not trained again ({path})")
            continue
        config = train_config(spec, model, seed)
        t0 = time.monotonic()
        try:
            _check_model_args(path, config)
            print_fn(f"{tag}: training ({spec.view}) -> {path}")
            metrics = train_fn(config)
        except Exception as e:  # one broken model must not stop the others; counted and reported
            failed.append({"model": model, "seed": seed, "error": f"{type(e).__name__}: {e}"[:500]})
            logger.exception("%s failed", tag)
            print_fn(f"{tag}: FAILED ({type(e).__name__}: {str(e)[:200]})")
            continue
        finally:
            free_models()
        state = RunDir(path).read_state()
        print_fn(f"{tag}: {state.get('epochs_done', '?')} epochs in {state.get('train_seconds', 0) / 60:.1f} min, "
                 f"test MAE {metrics.get('mae', float('nan')):.2f} "
                 f"(this run {time.monotonic() - t0:.0f} s, benchmark {(time.monotonic() - start) / 60:.1f} min so far)")
        others = run_cpu_others(path)
        if others is not None and others > SHARED_MACHINE:
            logger.warning("%s shared the machine: other processes used %.0f%% of the CPU", tag, 100 * others)
            what = "speed and MAE are" if spec.time_budget is not None else "speed is"
            print_fn(f"{tag}: WARNING other processes used {100 * others:.0f}% of the CPU during this run: its {what} "
                     f"not comparable with the other runs'; delete {path} and run it again on an idle machine")
    results = collect(spec, skipped=skipped, failed=failed)
    write_results(results, spec.out)
    write_figures(results, pathlib.Path(spec.out) / "figures")
    print_fn(f"benchmark: {len(results['runs'])} runs in results, {len(skipped)} skipped, {len(failed)} failed; "
             f"{pathlib.Path(spec.out) / 'results.csv'}")
    return results

