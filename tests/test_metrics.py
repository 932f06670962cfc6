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
    model.compile(optimizer="sgd", **compile_args(model, head_is_regression=True))
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(70, 3)).astype("float32"), rng.uniform(0, 80, 70).astype("float32")
    logs = model.evaluate(x, {"age": y}, batch_size=32, return_dict=True, verbose=0)
    pred = model.predict(x, verbose=0)["age"]
    logged = logs["mae"]  # a one-output model logs "mae" ("age_mae" with more outputs)
    assert logged == pytest.approx(M.mae(y, pred), rel=1e-5)
