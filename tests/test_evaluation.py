"""`evaluate` on a hand-made run: a linear read-out of the pixels on a
UTKFace-style folder of lossless noise faces, so that every per-face output
can be recomputed here from the image files alone."""

import csv
import json
import pathlib

import numpy as np
import pytest

from agekeras.training import evaluate
from tests.tiny_runs import linear_model, make_run, read_face, utkface_folder


@pytest.fixture
def run(tmp_path):
    folder = tmp_path / "faces"
    utkface_folder(folder, n=60)
    model = linear_model()
    return make_run(tmp_path / "run", model, dataset="utkface", data_dir=str(folder), batch_size=4), model


def _rows(metrics_file):
    """The per-face rows written beside a metrics file (metrics<suffix>.json -> predictions<suffix>.csv)."""
    path = pathlib.Path(metrics_file)
    with open(path.with_name(path.name.replace("metrics", "predictions", 1)).with_suffix(".csv")) as f:
        return list(csv.DictReader(f))


def _own_ages(model, rows, mirrored=False):
    """The model's age of each row's face, run on that face alone (or on its mirror image)."""
    ages = []
    for row in rows:
        x = read_face(row["path"])
        ages.append(float(np.asarray(model.predict_on_batch((x[:, ::-1] if mirrored else x)[None])["age"]).ravel()[0]))
    return np.array(ages)


def test_breakdowns_are_the_mae_of_each_group_of_the_per_face_predictions(run):
    run_dir, model = run
    result = evaluate(run_dir)
    saved = json.loads((run_dir / "metrics.json").read_text())
    rows = _rows(result["metrics_file"])
    assert len(rows) == saved["n"] >= 8 and [int(r["index"]) for r in rows] == list(range(len(rows)))
    # Row i is face i: its labels are its own file's, its prediction the model on that face alone.
    for row in rows:
        age, gender, race = (int(v) for v in pathlib.Path(row["path"]).name.split("_")[:3])
        assert (float(row["age"]), int(row["gender"]), int(row["race"])) == (age, gender, race), row
    true = np.array([float(r["age"]) for r in rows])
    pred = np.array([float(r["predicted"]) for r in rows])
    np.testing.assert_allclose(pred, _own_ages(model, rows), atol=2e-3)
    assert saved["mae"] == pytest.approx(np.mean(np.abs(pred - true)), abs=2e-3)
    # Each group's MAE over its own faces only.
    codes = {"by_gender": ("gender", {0: "male", 1: "female"}),
             "by_race": ("race", {0: "white", 1: "black", 2: "asian", 3: "indian", 4: "others"})}
    for key, (column, names) in codes.items():
        expected = {}
        for code, name in names.items():
            m = np.array([int(r[column]) == code for r in rows])
            if m.any():
                expected[name] = (int(m.sum()), float(np.mean(np.abs(pred[m] - true[m]))))
        got = {name: (g["n"], g["mae"]) for name, g in saved[key].items()}
        assert got.keys() == expected.keys(), key
        for name, (n, mae) in expected.items():
            assert got[name][0] == n and got[name][1] == pytest.approx(mae, abs=2e-3), (key, name, got[name], n, mae)
    assert len(saved["by_race"]) >= 3
    assert any(abs(g["mae"] - saved["mae"]) > 0.1 for g in saved["by_race"].values())  # the groups differ
    # Age brackets "lo-hi": [lo, hi) of the true age.
    for bracket in saved["by_age"]:
        lo, hi = (float(v) for v in bracket["bracket"].split("-"))
        m = (true >= lo) & (true < hi)
        assert bracket["n"] == int(m.sum()), bracket
        if m.any():
            assert bracket["mae"] == pytest.approx(np.mean(np.abs(pred[m] - true[m])), abs=2e-3), bracket
        else:
            assert bracket["mae"] is None
    assert sum(b["n"] for b in saved["by_age"]) == len(rows)
    assert sum(1 for b in saved["by_age"] if b["n"]) >= 3


def test_flip_averages_each_face_with_its_own_mirror_image(run):
    run_dir, model = run
    result = evaluate(run_dir, flip=True)
    assert result["flip"] and pathlib.Path(result["metrics_file"]).name == "metrics_flip.json"
    rows = _rows(result["metrics_file"])
    plain, mirrored = _own_ages(model, rows), _own_ages(model, rows, mirrored=True)
    assert np.abs(plain - mirrored).min() > 0.05  # every mirror image is another input
    pred = np.array([float(r["predicted"]) for r in rows])
    np.testing.assert_allclose(pred, (plain + mirrored) / 2, atol=2e-3)
    true = np.array([float(r["age"]) for r in rows])
    assert result["mae"] == pytest.approx(np.mean(np.abs((plain + mirrored) / 2 - true)), abs=2e-3)
