"""Age intervals, their coverage and the temperature that calibrates them (`agekeras.calibration`),
against NumPy references and on a tiny run."""

import json
import pathlib

import keras
import numpy as np
import pytest

from agekeras import calibration as C
from agekeras import evaluation, inference
from agekeras.models.baselines import age_model
from agekeras.config import TrainConfig, load_splits
from agekeras.evaluation import load_run


def gaussians(centres, sigma, k=100):
    """(n, k) discretised Gaussians over the classes 0..k-1."""
    x = np.arange(k)[None, :]
    p = np.exp(-0.5 * ((x - np.asarray(centres, float)[:, None]) / sigma) ** 2)
    return p / p.sum(1, keepdims=True)


def reference_interval(p, level):
    """The central interval by its definition, one face at a time."""
    tail = (1 - level) / 2
    out = []
    for row in p:
        cdf, lo, hi = 0.0, None, None
        for k, q in enumerate(row):
            cdf += q
            if lo is None and cdf >= tail - 1e-12:
                lo = k
            if hi is None and cdf >= 1 - tail - 1e-12:
                hi = k
        out.append([lo, hi])
    return np.array(out, float)


def test_temper_is_the_softmax_of_logits_over_the_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (5, 30))
    softmax = lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)  # noqa: E731
    p = softmax(logits)
    for t in (0.5, 1.0, 2.5):
        np.testing.assert_allclose(C.temper(p, t), softmax(logits / t), rtol=1e-9, atol=1e-12)
    assert np.allclose(C.temper(p, 1e6), 1 / 30, atol=1e-4)  # very hot: uniform
    with pytest.raises(ValueError, match="temperature"):
        C.temper(p, 0.0)


def test_interval_matches_its_definition_and_holds_the_mass():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.full(40, 0.3), size=200)
    for level in (0.5, 0.8, 0.9, 0.95):
        iv = C.interval(p, level, offset=0)
        np.testing.assert_array_equal(iv, reference_interval(p, level))
        k = np.arange(40)[None, :]
        inside = ((k >= iv[:, :1]) & (k <= iv[:, 1:])) * p
        assert np.all(inside.sum(1) >= level - 1e-9)
    # a Gaussian of sigma 5 at 50: the 90 % interval is 50 -+ 1.645 sigma, to the class
    iv = C.interval(gaussians([50.0], 5.0), 0.9, offset=10)
    np.testing.assert_allclose(iv, [[10 + 50 - 8, 10 + 50 + 8]], atol=1)
    # the offset moves per face; a temperature of 4 doubles a Gaussian's sigma
    np.testing.assert_array_equal(C.interval(gaussians([50.0, 50.0], 5.0), 0.9, offset=[0, 3])[:, 0], [42, 45])
    np.testing.assert_allclose(C.interval(gaussians([50.0], 5.0), 0.9, temperature=4.0), [[50 - 16, 50 + 16]], atol=1)
    with pytest.raises(ValueError, match="level"):
        C.interval(p, 1.0)


def test_std_and_class_offset_against_numpy():
    p = gaussians([40.0, 60.0], 3.0)
    np.testing.assert_allclose(C.std(p), [3.0, 3.0], rtol=1e-3)
    np.testing.assert_allclose(C.std(p, 4.0), [6.0, 6.0], rtol=1e-3)
    age = p @ np.arange(100) + 7  # a DEX head whose class 0 is age 7
    np.testing.assert_allclose(C.class_offset(p, age), [7.0, 7.0])


def test_coverage_counts_both_ends_inside():
    iv = np.array([[10, 20], [10, 20], [10, 20], [10, 20]], float)
    assert C.coverage(iv, [10, 20, 9, 21]) == 0.5
    assert C.coverage(iv, [15, 15, 15, 15]) == 1.0
    with pytest.raises(ValueError, match="as many"):
        C.coverage(iv, [1, 2])


def test_fit_temperature_calibrates_an_over_confident_model():
    """True ages spread 6 years about each centre, the model says 2: p^(1/T) of a Gaussian has sigma
    2 sqrt(T), so the calibrating temperature is about (6 / 2)^2 = 9, and it holds on new faces."""
    rng = np.random.default_rng(2)

    def faces(n):
        centres = rng.uniform(25, 75, n)
        return gaussians(centres, 2.0), np.round(centres + rng.normal(0, 6, n))

    p, ages = faces(2000)
    assert C.coverage(C.interval(p, 0.9), ages) < 0.5  # over-confident
    t = C.fit_temperature(p, ages, 0.9)
    assert 7.0 < t < 11.5
    new_p, new_ages = faces(2000)
    assert 0.87 < C.coverage(C.interval(new_p, 0.9, t), new_ages) < 0.93
    # the smallest such temperature: 2 % cooler falls short on the fitted faces
    assert C.coverage(C.interval(p, 0.9, t / 1.02), ages) < 0.9 <= C.coverage(C.interval(p, 0.9, t), ages)
    # an under-confident model is sharpened (T < 1)
    wide = gaussians(np.full(500, 50.0), 8.0)
    assert C.fit_temperature(wide, np.round(rng.normal(50, 2, 500)), 0.9) < 1.0


def test_coverage_table_reports_levels_and_widths():
    p = gaussians([30.0] * 4, 2.0)
    table = C.coverage_table(p, np.array([30, 31, 40, 20]), levels=(0.5, 0.9))
    assert set(table) == {"0.5", "0.9"} and table["0.9"]["coverage"] == 0.5
    assert table["0.9"]["width"] > table["0.5"]["width"]


# ----- a run ----------------------------------------------------------------------------------------

SIZE = 32


def tiny_run(run_dir):
    """A run directory of an untrained tiny DEX model (ages 0-98) on 160 synthetic faces (ages 0-98)."""
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True)
    config = TrainConfig(dataset="synthetic", dataset_kwargs={"n": 160}, image_size=SIZE, batch_size=32,
                         out=str(run_dir))
    model = age_model(lambda x: keras.layers.Conv2D(4, 3, strides=4, activation="relu")(x),
                      input_shape=(SIZE, SIZE, 3), head="dex", num_classes=99, age_min=0, name="tiny")
    (run_dir / "config.json").write_text(json.dumps({"train": config.to_json(), "age_min": 0, "num_classes": 99}))
    model.save(run_dir / "best.keras")
    return run_dir


def test_calibrate_run_fits_plain_and_flip_temperatures_on_the_validation_faces(tmp_path, monkeypatch):
    """The model's outputs are stood in for: over-confident Gaussians about noisy guesses, the mirror
    images guessing differently, so that faces and flip-averaged faces need their own temperatures."""
    run = tiny_run(tmp_path / "r")
    assert C.run_temperature(run) == (1.0, C.DEFAULT_LEVEL)  # not calibrated yet
    val = load_splits(load_run(run)[1])[0]["val"]
    rng = np.random.default_rng(3)
    guess = val.age + rng.normal(0, 5, len(val))
    views = {False: gaussians(guess, 2.0, 99), True: gaussians(guess + rng.normal(0, 4, len(val)), 2.0, 99)}

    def fake_predict(model, ds, image_size, batch_size=64, with_labels=False, flip=False, zoom=1.0):
        assert np.array_equal(ds.age, val.age)  # the validation faces
        out = {"age_probs": views[flip], "age": views[flip] @ np.arange(99.0)}
        return (out, {"age": ds.age.astype("float32")}) if with_labels else out

    monkeypatch.setattr(evaluation, "dataset_outputs", fake_predict)
    saved = C.calibrate_run(run)
    assert json.loads((run / "calibration.json").read_text()) == saved
    assert saved["split"] == "val" and saved["n"] == len(val) > 0 and saved["level"] == 0.9
    for key, p in (("", views[False]), ("_flip", (views[False] + views[True]) / 2)):
        t = C.fit_temperature(p, val.age, 0.9)  # class k is age k here
        assert saved["temperature" + key] == pytest.approx(t, rel=1e-3)
        assert saved["coverage" + key]["0.9"]["coverage"] == pytest.approx(
            C.coverage(C.interval(p, 0.9, t), val.age), abs=1e-4)
        assert saved["coverage_uncalibrated" + key]["0.9"]["coverage"] == pytest.approx(
            C.coverage(C.interval(p, 0.9), val.age), abs=1e-4)
    assert saved["temperature"] != saved["temperature_flip"]
    assert C.run_temperature(run, flip=True) == (saved["temperature_flip"], 0.9)


def test_predict_reads_the_run_temperature_and_reports_its_level(tmp_path):
    run = tiny_run(tmp_path / "r")
    (run / "calibration.json").write_text(json.dumps({"level": 0.9, "temperature": 6.0, "temperature_flip": 1.0}))
    image = np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype="uint8")
    hot = inference.predict(image, run, align=None)[0]
    assert inference.predict(image, run, align=None).stats["interval_temperature"] == 6.0
    (run / "calibration.json").unlink()
    plain = inference.predict(image, run, align=None)[0]
    assert hot["age_interval_level"] == plain["age_interval_level"] == 0.9
    assert hot["age"] == plain["age"]
    width = lambda f: f["age_interval"][1] - f["age_interval"][0]  # noqa: E731
    assert width(hot) > width(plain) and hot["age_std"] > plain["age_std"]
