import keras
import numpy as np
import pytest

from agekeras import metrics as M

T = np.array([10.0, 20.0, 30.0, 40.0])
P = np.array([12.0, 20.0, 25.0, 47.0])


def test_array_metrics_by_hand():
    assert M.mae(T, P) == pytest.approx((2 + 0 + 5 + 7) / 4)
    assert M.rmse(T, P) == pytest.approx(np.sqrt((4 + 0 + 25 + 49) / 4))
    assert M.cumulative_accuracy(T, P, 5) == pytest.approx(0.5)  # errors 2, 0 < 5; 5 is not
    assert M.cumulative_accuracy(T, P, 5.5) == pytest.approx(0.75)
    d = M.age_metrics(T, P)
    assert set(d) == {"mae", "rmse", "n", "ca3", "ca5", "ca7"} and d["n"] == 4


def test_epsilon_error():
    mean, std = np.array([20.0, 30.0]), np.array([2.0, 5.0])
    pred = np.array([20.0, 35.0])
    ref = np.mean([0.0, 1 - np.exp(-25 / 50)])
    assert M.epsilon_error(pred, mean, std) == pytest.approx(ref)


def test_groups_and_accuracies():
    groups = M.age_to_group([1, 3, 5, 14, 30, 45, 70])
    np.testing.assert_array_equal(groups, [0, 0, 1, 2, 4, 5, 7])
    assert M.group_accuracy([0, 1, 2, 3], [0, 2, 2, 5], off=0) == pytest.approx(0.5)
    assert M.group_accuracy([0, 1, 2, 3], [0, 2, 2, 5], off=1) == pytest.approx(0.75)
    assert M.gender_accuracy([0, 1, -1, 1], [[0.9, 0.1], [0.8, 0.2], [0, 1], [0.1, 0.9]]) == pytest.approx(2 / 3)


def test_keras_metrics_match_numpy():
    ca = M.CumulativeAccuracy(5)
    ca.update_state(T, P)
    assert float(ca.result()) == pytest.approx(M.cumulative_accuracy(T, P, 5))
    eps = M.EpsilonError()
    eps.update_state(np.array([[20.0, 2.0], [30.0, 5.0]]), np.array([20.0, 35.0]))
    assert float(eps.result()) == pytest.approx(M.epsilon_error([20, 35], [20, 30], [2, 5]), rel=1e-5)
    probs = np.eye(8)[[0, 2, 2, 5]]
    one_off = M.GroupAccuracy(off=1)
    one_off.update_state(np.array([0, 1, 2, 3]), probs)
    assert float(one_off.result()) == pytest.approx(0.75)
    assert one_off.name == "1off_acc" and M.GroupAccuracy().name == "exact_acc"


def test_keras_metrics_serialize():
    for m in (M.CumulativeAccuracy(3), M.EpsilonError(), M.GroupAccuracy(1), M.AbsoluteError()):
        revived = keras.metrics.deserialize(keras.metrics.serialize(m))
        assert revived.get_config() == m.get_config()


def test_known_gender_accuracy_skips_unknown_gender():
    from agekeras.metrics import KnownGenderAccuracy

    y_true = np.array([0, 1, -1, 1, -1])
    y_pred = np.array([[0.9, 0.1], [0.8, 0.2], [0.0, 1.0], [0.1, 0.9], [1.0, 0.0]], "float32")
    metric = KnownGenderAccuracy()
    metric.update_state(y_true[:3], y_pred[:3])
    metric.update_state(y_true[3:], y_pred[3:])
    # 2 right of 3 known; the NumPy reference agrees; SparseCategoricalAccuracy would say 2/5.
    assert float(metric.result()) == pytest.approx(2 / 3)
    assert float(metric.result()) == pytest.approx(M.gender_accuracy(y_true, y_pred))
    metric.reset_state()
    metric.update_state(np.array([-1, -1]), y_pred[:2])
    assert float(metric.result()) == 0.0  # nothing known yet: 0, not NaN
    metric.update_state(np.array([1, 0]), y_pred[:2], sample_weight=np.array([1.0, 0.0]))
    assert float(metric.result()) == 0.0  # the one weighted known face is wrong
    restored = KnownGenderAccuracy.from_config(metric.get_config())
    assert restored.name == "acc"


def test_absolute_error_averages_over_faces_not_batches():
    rng = np.random.default_rng(0)
    true, pred = rng.uniform(0, 80, 70).astype("float32"), rng.uniform(0, 80, 70).astype("float32")
    metric = M.AbsoluteError()
    for lo, hi in ((0, 32), (32, 64), (64, 70)):  # a small last batch, as in a validation pass
        metric.update_state(true[lo:hi], pred[lo:hi])
    metric.update_state(np.zeros(0, "float32"), np.zeros(0, "float32"))  # the empty step that ends a pass
    assert float(metric.result()) == pytest.approx(M.mae(true, pred), rel=1e-5)
    batch_means = np.mean([np.abs(true[a:b] - pred[a:b]).mean() for a, b in ((0, 32), (32, 64), (64, 70))])
    assert abs(batch_means - M.mae(true, pred)) > 0.1  # what a per-batch average would have reported


def test_compiled_age_mae_equals_the_faces_mae():
    """The `age_mae` Keras logs for a model is the per-face MAE of its predictions (uneven last batch)."""
    from agekeras.models.outputs import compile_args

    inp = keras.Input((3,))
    model = keras.Model(inp, {"age": keras.layers.Reshape(())(keras.layers.Dense(1)(inp))})
    model.compile(optimizer="sgd", **compile_args(model, overrides={"age": "smooth_l1"}))
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(70, 3)).astype("float32"), rng.uniform(0, 80, 70).astype("float32")
    logs = model.evaluate(x, {"age": y}, batch_size=32, return_dict=True, verbose=0)
    pred = model.predict(x, verbose=0)["age"]
    logged = logs["mae"]  # a one-output model logs "mae" ("age_mae" with more outputs)
    assert logged == pytest.approx(M.mae(y, pred), rel=1e-5)


def test_error_by_age_matches_hand_computation():
    y_true = [5, 9.9, 10, 25, 29, 79.5, 80, 130, -1]
    y_pred = [6, 12.9, 20, 20, 29, 70.5, 90, 0, 0]
    rows = M.error_by_age(y_true, y_pred, bins=(0, 10, 20, 30, 80, 120))
    assert rows == [
        {"bracket": "0-10", "n": 2, "mae": 2.0},  # |1|, |3|
        {"bracket": "10-20", "n": 1, "mae": 10.0},  # 10 opens the bracket it starts
        {"bracket": "20-30", "n": 2, "mae": 2.5},  # |5|, |0|
        {"bracket": "30-80", "n": 1, "mae": 9.0},  # 79.5 is in, 80 starts the next
        {"bracket": "80-120", "n": 1, "mae": 10.0},  # 130 and -1 are out of range
    ]
    assert M.error_by_age([50], [50], bins=(0, 10, 120))[0] == {"bracket": "0-10", "n": 0, "mae": None}
    with pytest.raises(ValueError, match="increasing"):
        M.error_by_age([1], [1], bins=(10, 0))
    with pytest.raises(ValueError, match="2 true ages but 1 predictions"):
        M.error_by_age([1, 2], [1])


def test_error_by_age_default_bins_agree_with_numpy_digitize():
    rng = np.random.default_rng(0)
    y_true = rng.uniform(0, 120, size=500)
    y_pred = y_true + rng.normal(0, 5, size=500)
    rows = M.error_by_age(y_true, y_pred)
    assert [r["bracket"] for r in rows] == ["0-10", "10-20", "20-30", "30-40", "40-50", "50-60", "60-70", "70-80",
                                            "80-120"]
    index = np.digitize(y_true, M.DEFAULT_AGE_BINS) - 1  # bracket i holds bins[i] <= age < bins[i + 1]
    for i, row in enumerate(rows):
        inside = index == i
        assert row["n"] == inside.sum()
        assert row["mae"] == pytest.approx(np.abs(y_true - y_pred)[inside].mean())
    assert sum(r["n"] for r in rows) == 500
    # the brackets' MAE weighted by their counts is the overall MAE (every face counted once)
    assert sum(r["n"] * r["mae"] for r in rows) / 500 == pytest.approx(M.mae(y_true, y_pred))


@pytest.mark.parametrize("n,off", [(3, 0), (7.5, 2)])
def test_keras_metrics_at_other_thresholds_match_numpy_after_a_round_trip(n, off):
    """CA(n) and the group accuracy at other parameters than the defaults, on
    metrics rebuilt from their config; age_metrics' CA(n) entries are CA at that n."""
    y_true, y_pred = np.array([10.0, 20.0, 30.0, 40.0, 50.0]), np.array([12.9, 17.0, 36.0, 47.4, 58.0])  # errors 2.9, 3, 6, 7.4, 8
    ca = keras.metrics.deserialize(keras.metrics.serialize(M.CumulativeAccuracy(n)))
    ca.update_state(y_true, y_pred)
    assert float(ca.result()) == pytest.approx(np.mean(np.abs(y_pred - y_true) < n))
    assert M.cumulative_accuracy(y_true, y_pred, n) == pytest.approx(np.mean(np.abs(y_pred - y_true) < n))
    groups, predicted = np.array([0, 1, 2, 3, 4]), np.array([0, 3, 2, 6, 5])
    acc = keras.metrics.deserialize(keras.metrics.serialize(M.GroupAccuracy(off)))
    acc.update_state(groups, np.eye(8)[predicted])
    assert float(acc.result()) == pytest.approx(np.mean(np.abs(predicted - groups) <= off))
    assert M.group_accuracy(groups, predicted, off=off) == pytest.approx(np.mean(np.abs(predicted - groups) <= off))
    d = M.age_metrics(y_true, y_pred, ca=(n, 4))
    assert d[f"ca{n}"] == pytest.approx(np.mean(np.abs(y_pred - y_true) < n))
    assert d["ca4"] == pytest.approx(0.4)
