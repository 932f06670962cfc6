import keras
import numpy as np
import pytest
from keras import ops

from agekeras import losses


def _np_coral(labels, logits, importance=None):
    k = logits.shape[1]
    levels = (labels[:, None] > np.arange(k)[None]).astype("float64")
    s = 1 / (1 + np.exp(-logits.astype("float64")))
    term = levels * np.log(s) + (1 - levels) * np.log(1 - s)
    if importance is not None:
        term = term * importance
    return -term.sum(1)


def test_coral_levels():
    np.testing.assert_array_equal(
        ops.convert_to_numpy(losses.coral_levels(np.array([0, 2, 3]), 4)),
        [[0, 0, 0], [1, 1, 0], [1, 1, 1]],
    )


@pytest.mark.parametrize("weighted", [False, True])
def test_coral_loss_matches_numpy(weighted):
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 6, size=10)
    logits = rng.randn(10, 5).astype("float32") * 3
    imp = rng.uniform(0.2, 1.0, 5).astype("float32") if weighted else None
    got = ops.convert_to_numpy(losses.coral_loss(labels, logits, imp))
    np.testing.assert_allclose(got, _np_coral(labels, logits, imp), rtol=1e-4)
    keras_loss = losses.CORALLoss(importance=None if imp is None else list(imp))
    np.testing.assert_allclose(
        float(keras_loss(labels, logits)), _np_coral(labels, logits, imp).mean(), rtol=1e-4
    )


def test_coral_loss_is_stable_for_large_logits():
    logits = np.array([[100.0, -100.0]], "float32")
    val = ops.convert_to_numpy(losses.coral_loss(np.array([1]), logits))
    assert np.isfinite(val).all() and val[0] < 1e-6
    val = ops.convert_to_numpy(losses.coral_loss(np.array([0]), logits))
    np.testing.assert_allclose(val, [100.0], rtol=1e-5)


def test_coral_importance_weights():
    labels = np.array([0, 0, 0, 1, 2])  # K = 3: S_0 = {y > 0} has 2, S_1 has 1
    w = losses.coral_importance_weights(labels, 3)
    np.testing.assert_allclose(w, np.sqrt([3, 4]) / 2.0, rtol=1e-6)


def test_smooth_l1_matches_numpy():
    y = np.array([0.0, 1.0, 2.0, 3.0], "float32")
    p = np.array([0.5, 3.0, 2.0, -1.0], "float32")
    d = np.abs(p - y)
    ref = np.where(d < 1, 0.5 * d**2, d - 0.5)
    np.testing.assert_allclose(ops.convert_to_numpy(losses.smooth_l1(y, p)), ref)
    np.testing.assert_allclose(float(losses.SmoothL1()(y, p)), ref.mean(), rtol=1e-6)


def test_gaussian_label_crossentropy_matches_numpy():
    k = np.arange(6, dtype="float64")
    y = np.array([0, 2.5, 5], "float32")
    p = np.random.default_rng(0).dirichlet(np.ones(6), size=3).astype("float32")
    q = np.exp(-((k[None] - y[:, None]) ** 2) / (2 * 1.5**2))
    q /= q.sum(1, keepdims=True)
    ref = -(q * np.log(p)).sum(1)
    np.testing.assert_allclose(ops.convert_to_numpy(losses.gaussian_label_distribution(y, 6, 1.5)), q, rtol=1e-5)
    loss = losses.GaussianLabelCrossentropy(num_classes=6, sigma=1.5)
    np.testing.assert_allclose(float(loss(y, p)), ref.mean(), rtol=1e-5)
    # A narrow distribution is the one-hot (sparse) cross-entropy.
    narrow = losses.GaussianLabelCrossentropy(num_classes=6, sigma=0.05)
    sparse = keras.losses.sparse_categorical_crossentropy(np.array([0, 2, 5]), p)
    np.testing.assert_allclose(float(narrow(np.array([0, 2, 5]), p)), float(ops.mean(sparse)), rtol=1e-4)
    with pytest.raises(ValueError, match="sigma"):
        losses.GaussianLabelCrossentropy(num_classes=6, sigma=0)


def test_losses_serialize():
    for loss in (losses.CORALLoss(importance=[1.0, 0.5]), losses.SmoothL1(delta=2.0),
                 losses.GaussianLabelCrossentropy(num_classes=7, sigma=2.0)):
        revived = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(revived) is type(loss)
        assert revived.get_config() == loss.get_config()


@pytest.mark.parametrize("delta", [0.5, 2.0])
def test_smooth_l1_delta_sets_both_parts(delta):
    """0.5 d^2 / delta inside |d| < delta, |d| - 0.5 delta outside: each part at
    a delta other than 1, with errors on both sides of it."""
    y = np.zeros(6, "float32")
    p = np.array([0.1, -0.3, 0.45, 1.0, -1.5, 3.0], "float32") * delta
    d = np.abs(p - y).astype("float64")
    ref = np.where(d < delta, 0.5 * d**2 / delta, d - 0.5 * delta)
    np.testing.assert_allclose(ops.convert_to_numpy(losses.smooth_l1(y, p, delta=delta)), ref, rtol=1e-6)
    loss = keras.losses.deserialize(keras.losses.serialize(losses.SmoothL1(delta=delta)))
    np.testing.assert_allclose(float(loss(y, p)), ref.mean(), rtol=1e-6)
    # Continuous where the parts meet.
    edge = np.array([delta * (1 - 1e-4), delta * (1 + 1e-4)], "float32")
    np.testing.assert_allclose(ops.convert_to_numpy(losses.smooth_l1(np.zeros(2, "float32"), edge, delta=delta)),
                               [0.5 * delta] * 2, rtol=1e-3)


@pytest.mark.parametrize("num_classes,sigma", [(4, 0.7), (9, 3.0)])
def test_gaussian_label_crossentropy_at_other_widths_and_sigmas(num_classes, sigma):
    k = np.arange(num_classes, dtype="float64")
    y = np.array([0, 1.5, num_classes - 1], "float32")
    p = np.random.default_rng(num_classes).dirichlet(np.ones(num_classes), size=3).astype("float32")
    q = np.exp(-((k[None] - y[:, None]) ** 2) / (2 * sigma**2))
    q /= q.sum(1, keepdims=True)
    got = ops.convert_to_numpy(losses.gaussian_label_distribution(y, num_classes, sigma))
    np.testing.assert_allclose(got, q, rtol=1e-5, atol=1e-7)
    loss = keras.losses.deserialize(keras.losses.serialize(losses.GaussianLabelCrossentropy(num_classes, sigma)))
    np.testing.assert_allclose(float(loss(y, p)), (-(q * np.log(p)).sum(1)).mean(), rtol=1e-5)

