"""Honest age intervals: a model's age distribution, its central intervals, how often they hold the
true age, and a temperature that makes them hold as often as they claim.

```python
from agekeras import calibration as C

probs = C.age_distribution(outputs)                  # (n, K) from a DEX softmax or CORAL logits
offset = C.class_offset(probs, outputs["age"])       # age of class 0 (age_min for DEX)
iv = C.interval(probs, 0.9, temperature=1.8, offset=offset)
C.coverage(iv, true_ages)                            # about 0.9 when the temperature is right
t = C.fit_temperature(val_probs, val_ages, 0.9, offset=val_offset)
```

**Interval.** The classes of the head are integer ages `offset + k`, k = 0..K-1. The central
`level` interval runs from the first class where the cumulative probability reaches
`(1 - level) / 2` to the first where it reaches `1 - (1 - level) / 2`, both ends included, so it
holds at least `level` of the distribution's mass.

**Temperature.** A network trained to fit its training faces closely is over-confident on faces it
has not seen: its softmax is too peaked, and a 90 % interval holds the true age far less often than
90 % of the time. Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks")
divides the logits by one number T > 0 before the softmax; on probabilities that is
`p_T(k) = p(k)^(1/T) / sum_j p(j)^(1/T)`. T > 1 widens the distribution, T < 1 sharpens it, T = 1
leaves it alone, and the predicted age (the model's own expectation) does not change. `fit_temperature`
picks, on held-out faces, the smallest T whose `level` intervals hold the true age at least `level`
of the time (the narrowest honest intervals at that level).

**In a run.** `calibrate_run` fits T on the run's validation split (plain faces and flip-averaged
ones, each its own T) and writes the run's calibration (`agekeras.runs.RunDir.write_calibration`) in the run directory; training calls it at the
end, `predict` reads it (`run_temperature`) and reports the level of its intervals.
"""

from __future__ import annotations

import logging
import pathlib

import numpy as np

from agekeras.ages import rank_class_probabilities
from agekeras.runs import BEST, RunDir

logger = logging.getLogger("agekeras.calibration")

DEFAULT_LEVEL = 0.9
"""The interval level `predict` reports and `calibrate_run` fits."""

"""The run file holding the fitted temperatures (see `calibrate_run`)."""

# Probabilities that underflowed to 0 in float32 stay finite in log space.
_FLOOR = 1e-30
# Years by which an interval's ends may miss an integer age and still hold it.
_TOLERANCE = 1e-3
# Candidate temperatures of `fit_temperature`: 0.1 to 30, 2 % apart.
_TEMPERATURES = np.exp(np.linspace(np.log(0.1), np.log(30.0), 290))


def age_distribution(outputs):
    """Per-face probabilities over the age classes, or None.

    Args:
        outputs: the model's output dict (NumPy), batch first.

    Returns:
        float64 (batch, K) probabilities from "age_probs" or, for CORAL,
        from "age_logits" (batch, K - 1): P(age > k) = sigmoid(logit_k),
        p_k = P(age > k - 1) - P(age > k) (clipped at 0, renormalised);
        None for models without either.

    Example:
        >>> age_distribution({"age_probs": np.array([[1.0, 3.0]])}).tolist()
        [[0.25, 0.75]]
    """
    if "age_probs" in outputs:
        p = np.asarray(outputs["age_probs"], dtype="float64")
    elif "age_logits" in outputs:
        return rank_class_probabilities(outputs["age_logits"])
    else:
        return None
    return p / np.maximum(p.sum(-1, keepdims=True), 1e-12)


def class_offset(probs, age):
    """The age of class 0 for each face: the model's age minus its distribution's mean class.

    DEX and CORAL heads decode the age as the expectation of their distribution, so this is the
    head's `age_min` and no configuration is needed to place the classes on the age axis.

    Args:
        probs: (n, K) probabilities.
        age: (n,) the model's predicted ages.

    Returns:
        float64 (n,) offsets in years.

    Example:
        >>> class_offset(np.array([[0.5, 0.5]]), np.array([10.5])).tolist()
        [10.0]
    """
    probs = np.asarray(probs, dtype="float64")
    return np.asarray(age, dtype="float64").reshape(-1) - probs @ np.arange(probs.shape[-1], dtype="float64")


def temper(probs, temperature):
    """The distributions at a temperature: `p^(1/T)`, renormalised (the softmax of logits / T).

    Args:
        probs: (..., K) probabilities.
        temperature: T > 0, a number or an array broadcasting against `probs[..., :1]`.

    Returns:
        float64 (..., K) probabilities.

    Example:
        >>> temper(np.array([0.2, 0.8]), 1.0).round(3).tolist()
        [0.2, 0.8]
    """
    temperature = np.asarray(temperature, dtype="float64")
    if np.any(~(temperature > 0)):
        raise ValueError(f"temperature must be > 0; got {temperature!r}")
    logp = np.log(np.maximum(np.asarray(probs, dtype="float64"), _FLOOR)) / temperature
    logp -= logp.max(-1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(-1, keepdims=True)


def interval(probs, level=DEFAULT_LEVEL, temperature=1.0, offset=0.0):
    """Central `level` intervals of age distributions, in years.

    Args:
        probs: (n, K) probabilities over the classes k = 0..K-1.
        level: the mass the interval holds at least, in (0, 1).
        temperature: applied first (`temper`); 1 leaves the distributions alone.
        offset: the age of class 0, a number or (n,) (`class_offset`).

    Returns:
        float64 (n, 2): the first and the last age inside each interval.

    Example:
        >>> interval(np.array([[0.25, 0.5, 0.25]]), 0.5, offset=30).tolist()
        [[30.0, 31.0]]
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1; got {level!r}")
    p = temper(probs, temperature) if temperature != 1 else np.asarray(probs, dtype="float64")
    cdf = np.cumsum(p, -1)
    tail = (1.0 - level) / 2.0
    lo = np.argmax(cdf >= tail - 1e-12, axis=-1)
    hi = np.argmax(cdf >= 1.0 - tail - 1e-12, axis=-1)
    offset = np.asarray(offset, dtype="float64").reshape(-1, 1)
    return np.stack([lo, hi], axis=-1) + offset


def std(probs, temperature=1.0):
    """Standard deviation in years of the distributions at a temperature.

    Example:
        >>> round(float(std(np.array([[0.25, 0.5, 0.25]]))[0]), 4)
        0.7071
    """
    p = temper(probs, temperature) if temperature != 1 else np.asarray(probs, dtype="float64")
    k = np.arange(p.shape[-1], dtype="float64")
    mean = p @ k
    return np.sqrt(np.maximum(p @ k**2 - mean**2, 0.0))


def coverage(intervals, ages):
    """The share of faces whose true age lies inside their interval (both ends included, to 0.001
    years: float32 outputs put the ends of a DEX interval a few millionths off the integer ages).

    Args:
        intervals: (n, 2) from `interval`.
        ages: (n,) true ages.

    Returns:
        A float in [0, 1].

    Example:
        >>> coverage(np.array([[20.0, 30.0], [40.0, 45.0]]), np.array([30, 39]))
        0.5
    """
    intervals = np.asarray(intervals, dtype="float64")
    ages = np.asarray(ages, dtype="float64").reshape(-1)
    if len(ages) == 0 or len(ages) != len(intervals):
        raise ValueError(f"coverage needs as many intervals as ages; got {len(intervals)} and {len(ages)}")
    return float(np.mean((intervals[:, 0] - _TOLERANCE <= ages) & (ages <= intervals[:, 1] + _TOLERANCE)))


def fit_temperature(probs, ages, level=DEFAULT_LEVEL, offset=0.0, temperatures=None):
    """The smallest temperature whose `level` intervals hold the true age at least `level` of the time.

    Args:
        probs: (n, K) held-out faces' probabilities.
        ages: (n,) their true ages.
        level: the interval level to calibrate.
        offset: the age of class 0 (`class_offset`).
        temperatures: the candidates, ascending (default: 0.1 to 30, 2 % apart).

    Returns:
        The temperature (a float); the largest candidate when none reaches `level`.

    Example:
        >>> p = np.tile(np.eye(5)[2] * 0.9 + 0.02, (10, 1))     # peaked at class 2
        >>> t = fit_temperature(p, np.array([1, 3] * 5), 0.9)    # truth one class off
        >>> coverage(interval(p, 0.9, t), np.array([1, 3] * 5))
        1.0
    """
    temps = _TEMPERATURES if temperatures is None else np.asarray(temperatures, dtype="float64")
    probs = np.asarray(probs, dtype="float64")
    ages = np.asarray(ages, dtype="float64").reshape(-1)
    if len(ages) == 0:
        raise ValueError("fit_temperature needs at least one face")
    for t in temps:
        if coverage(interval(probs, level, t, offset), ages) >= level:
            return float(t)
    return float(temps[-1])


def coverage_table(probs, ages, offset=0.0, temperature=1.0, levels=(0.5, 0.8, 0.9, 0.95)):
    """Stated level against measured coverage, and the mean interval width, at each level.

    Returns:
        A dict `{"0.9": {"coverage": ..., "width": ...}, ...}` (width in years: last age - first age + 1).

    Example:
        >>> coverage_table(np.array([[0.1, 0.8, 0.1]]), np.array([1]), levels=(0.5,))
        {'0.5': {'coverage': 1.0, 'width': 1.0}}
    """
    out = {}
    for level in levels:
        iv = interval(probs, level, temperature, offset)
        out[f"{level:g}"] = {"coverage": round(coverage(iv, ages), 4),
                             "width": round(float(np.mean(iv[:, 1] - iv[:, 0] + 1)), 2)}
    return out


# ----- a run's calibration --------------------------------------------------------------------------


def calibrate_run(run_dir, *, level=DEFAULT_LEVEL, splits=None, split="val", checkpoint=BEST, model=None):
    """Fit the run's interval temperature on its validation faces; write the run's calibration (`agekeras.runs.RunDir.write_calibration`).

    Two temperatures: one for faces predicted as they are, one for the average of each face and its
    mirror image (`predict --flip`, `evaluate --flip`), whose distributions are a little wider.

    Args:
        run_dir: a run directory with a model that has an age distribution (DEX, CORAL).
        level: the interval level to calibrate.
        splits: the run's splits, already loaded (else re-created from its config.json).
        split: the held-out split to fit on ("val"; "test" only to measure, never to report).
        checkpoint: the run's checkpoint.
        model: that checkpoint already loaded (`agekeras.evaluation.load_run`), to save loading it again.

    Returns:
        The dict written, or None (and nothing written) for a model without an age distribution or a
        run without that split.

    Example:
        >>> calibrate_run("runs/r18")["temperature"]  # doctest: +SKIP
        1.9
    """
    from agekeras.config import load_splits
    from agekeras.evaluation import dataset_outputs, load_run, mean_over_views

    run_dir = pathlib.Path(run_dir)
    if model is None:
        model, config, _ = load_run(run_dir, checkpoint)
    else:
        from agekeras.config import TrainConfig

        config = TrainConfig.from_json(RunDir(run_dir).read_config()["train"])
    if splits is None:
        splits, _ = load_splits(config)
    if split not in splits or not len(splits[split]):
        logger.info("%s: no %s split to calibrate the age intervals on", run_dir, split)
        return None
    ds = splits[split]
    plain, labels = dataset_outputs(model, ds, config.image_size, config.batch_size, with_labels=True)
    probs = age_distribution(plain)
    if probs is None:
        return None
    mirrored = dataset_outputs(model, ds, config.image_size, config.batch_size, flip=True)
    flipped = mean_over_views(plain, mirrored)
    ages = labels["age"].astype("float64")
    result = {"level": level, "split": split, "n": int(len(ages)), "checkpoint": checkpoint}
    for key, out in (("", plain), ("_flip", flipped)):
        p = age_distribution(out)
        offset = class_offset(p, out["age"])
        t = fit_temperature(p, ages, level, offset)
        result["temperature" + key] = round(t, 4)
        result["coverage_uncalibrated" + key] = coverage_table(p, ages, offset)
        result["coverage" + key] = coverage_table(p, ages, offset, t)
    RunDir(run_dir).write_calibration(result)
    logger.info("%s: interval temperature %.2f (flip %.2f) from %d %s faces", run_dir, result["temperature"],
                result["temperature_flip"], len(ages), split)
    return result


def run_temperature(run_dir, flip=False):
    """The temperature a run's `calibrate_run` fitted, and its level.

    Args:
        run_dir: a run directory, or None.
        flip: the temperature for flip-averaged (or more) views.

    Returns:
        (temperature, level): (1.0, `DEFAULT_LEVEL`) when the run was never calibrated.
    """
    saved = {} if run_dir is None else RunDir(run_dir).read_calibration()
    if not saved:
        return 1.0, DEFAULT_LEVEL
    return float(saved["temperature_flip" if flip else "temperature"]), float(saved["level"])


def interval_report(probs, age, true, run_dir=None, flip=False, levels=(0.5, 0.8, 0.9, 0.95)):
    """How often the age intervals hold the true age, with the run's temperature and without.

    Args:
        probs: (n, K) probabilities (`age_distribution`).
        age: (n,) predicted ages.
        true: (n,) true ages.
        run_dir: the run whose the run's calibration (`agekeras.runs.RunDir.write_calibration`) gives the temperature (None: 1).
        flip: the outputs are averaged views (the run's flip temperature).
        levels: stated levels to measure.

    Returns:
        `{"level": ..., "temperature": ..., "coverage": coverage_table at the temperature,
        "coverage_uncalibrated": coverage_table at 1}`.

    Example:
        >>> interval_report(np.array([[0.1, 0.8, 0.1]]), np.array([1.0]), np.array([1]), levels=(0.9,))["coverage"]
        {'0.9': {'coverage': 1.0, 'width': 3.0}}
    """
    temperature, level = run_temperature(run_dir, flip)
    offset = class_offset(probs, age)
    return {"level": level, "temperature": temperature,
            "coverage": coverage_table(probs, true, offset, temperature, levels),
            "coverage_uncalibrated": coverage_table(probs, true, offset, 1.0, levels)}
